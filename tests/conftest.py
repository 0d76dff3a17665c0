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
import time
import uuid
from pathlib import Path

import psutil
import pytest

_TMP = Path(tempfile.mkdtemp(prefix="clothcurate-tests-"))
# every process a test starts inherits this mark, so one that outlives the session is found
_SESSION_MARK = ("CLOTHCURATE_TEST_SESSION", uuid.uuid4().hex)
os.environ[_SESSION_MARK[0]] = _SESSION_MARK[1]
os.environ["FIFTYONE_DATABASE_DIR"] = str(_TMP / "mongo")  # never used: the URI below wins
os.environ["CLOTHCURATE_HOME"] = str(_TMP / "home")
os.environ["FIFTYONE_PLUGINS_DIR"] = str(_TMP / "plugins")  # review links its plugin here, not in ~/fiftyone
os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
os.environ["FIFTYONE_SHOW_PROGRESS_BARS"] = "false"
os.environ.setdefault("OMP_NUM_THREADS", "2")

from clothcurate.curation.mongod import use_private_database  # noqa: E402

_MONGOD = use_private_database(_TMP / "mongo-private")

REPO = Path(__file__).resolve().parents[1]
CCP_DIR = Path(os.environ.get("CLOTHCURATE_TEST_CCP", REPO.parent / "shared" / "datasets" / "ccp")).resolve()


def _strays() -> list[psutil.Process]:
    """Processes that tests started and that still run: everything carrying the session mark but
    this process and its children (its multiprocessing forkserver and resource tracker, which exit
    with it)."""
    mine = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
    found = []
    for p in psutil.process_iter():
        try:
            if (p.pid not in mine and p.environ().get(_SESSION_MARK[0]) == _SESSION_MARK[1]
                    and p.status() != psutil.STATUS_ZOMBIE):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def pytest_sessionfinish(session, exitstatus):
    """Stop the private mongod; a process that a test left running fails the session (after it is
    killed), so an orphan-leaving regression cannot pass unnoticed."""
    _MONGOD.close()
    deadline = time.monotonic() + 15  # a killed command's workers take a moment to notice
    while (strays := _strays()) and time.monotonic() < deadline:
        time.sleep(0.2)
    if strays:
        names = []
        for p in strays:
            try:
                names.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
                p.kill()
            except psutil.Error:
                pass
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", f"tests left {len(names)} processes running (killed now)", red=True)
            for name in names:
                reporter.write_line(f"  {name}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def ccp_dir() -> Path:
    """The real CCP release (read only; never copied into the project)."""
    if not (CCP_DIR / "label_list.mat").exists():
        pytest.fail(f"CCP not found at {CCP_DIR}; set CLOTHCURATE_TEST_CCP or put ../shared beside the repo")
    return CCP_DIR


@pytest.fixture(scope="session")
def ccp_dataset(ccp_dir):
    """The full real CCP (1,004 pixel-annotated and 994 tag-only photos) ingested once for the
    session into dataset ``ccp-session`` (read only: tests that modify samples clone it)."""
    from clothcurate.curation.ingest import ingest

    ingest(ccp=ccp_dir, dataset="ccp-session", progress=False)
    import fiftyone as fo

    return fo.load_dataset("ccp-session")


@pytest.fixture(scope="session")
def ccp_pixel(ccp_dataset):
    """The 1,004 pixel-annotated samples of ``ccp_dataset`` (a view; the other 994 CCP photos
    have image-level tags only and no mask)."""
    from fiftyone import ViewField as F

    return ccp_dataset.match(F("annotation") == "pixel")


@pytest.fixture
def tmp_home(tmp_path, monkeypatch) -> Path:
    """A private CLOTHCURATE_HOME for one test."""
    home = tmp_path / "home"
    monkeypatch.setenv("CLOTHCURATE_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module's models: on a shared 2-core machine two spinning OpenMP
    threads are many times slower than one. Restored after the module."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def ccp_slice(ccp_pixel, request):
    """Factory of private datasets: ``ccp_slice(n, seed=s, prefix=p)`` clones n pixel-annotated
    session samples into a persistent dataset named after the test (tests may edit it); each is
    deleted after the test."""
    import fiftyone as fo

    made: list[str] = []

    def make(n: int, *, seed: int, prefix: str):
        name = f"{prefix}-{request.node.name}".replace("[", "-").replace("]", "")
        ds = ccp_pixel.take(n, seed=seed).clone(name)
        ds.persistent = True
        made.append(name)
        return ds

    yield make
    for name in made:
        fo.delete_dataset(name)
