"""Shared fixtures: a real, temporary FiftyOne database and workspace; the real CCP from ../shared.

FiftyOne reads its settings at import, so the environment is set here, before any test module
imports it. Tests never touch a user's database: FiftyOne's bundled service attaches to any running
FiftyOne database of the same user whatever its folder, so the session starts its own ``mongod``
on a temporary folder and a free port and points ``FIFTYONE_DATABASE_URI`` at it (which also
exercises the path a user's own MongoDB takes).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="clothcurate-tests-"))
os.environ["FIFTYONE_DATABASE_DIR"] = str(_TMP / "mongo")  # never used: the URI below wins
os.environ["CLOTHCURATE_HOME"] = str(_TMP / "home")
os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
os.environ["FIFTYONE_SHOW_PROGRESS_BARS"] = "false"
os.environ.setdefault("OMP_NUM_THREADS", "2")

from clothcurate.curation.mongod import use_private_database  # noqa: E402

_MONGOD = use_private_database(_TMP / "mongo-private")

REPO = Path(__file__).resolve().parents[1]
CCP_DIR = Path(os.environ.get("CLOTHCURATE_TEST_CCP", REPO.parent / "shared" / "datasets" / "ccp")).resolve()


def pytest_sessionfinish(session, exitstatus):
    _MONGOD.close()
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def ccp_dir() -> Path:
    """The real CCP release (read only; never copied into the project)."""
    if not (CCP_DIR / "label_list.mat").exists():
        pytest.fail(f"CCP not found at {CCP_DIR}; set CLOTHCURATE_TEST_CCP or put ../shared beside the repo")
    return CCP_DIR


@pytest.fixture(scope="session")
def ccp_dataset(ccp_dir):
    """The full real CCP ingested once for the session into dataset ``ccp-session`` (read only:
    tests that modify samples clone it)."""
    from clothcurate.curation.ingest import ingest

    ingest(ccp=ccp_dir, dataset="ccp-session", progress=False)
    import fiftyone as fo

    return fo.load_dataset("ccp-session")


@pytest.fixture
def tmp_home(tmp_path, monkeypatch) -> Path:
    """A private CLOTHCURATE_HOME for one test."""
    home = tmp_path / "home"
    monkeypatch.setenv("CLOTHCURATE_HOME", str(home))
    return home
