"""An ingest that adds no sample creates no dataset and exits 2 with one line (real CCP files,
real FiftyOne database)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ccp_layout import add_bad_samples, make_ccp_subset
from clothcurate.cli import main


def _empty(root, ccp_dir):
    return make_ccp_subset(root, ccp_dir, [])


def _all_bad(root, ccp_dir):
    root = make_ccp_subset(root, ccp_dir, [])
    add_bad_samples(root, ccp_dir)
    return root


def _one_line_error(result, *words) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    line = result.output.strip().splitlines()[-1]  # after a progress bar, if any
    assert line.startswith("error: ") and result.output.count("error") == 1, result.output
    for w in words:
        assert w in line, line
    return line


@pytest.mark.parametrize("make, extra, words", [
    (_empty, [], ["no annotated sample"]),
    (_all_bad, [], ["all 6 samples", "are bad", "9005"]),
])
def test_nothing_added_creates_no_dataset(tmp_path, ccp_dir, tmp_home, make, extra, words):
    import fiftyone as fo

    root = make(tmp_path / "ccp", ccp_dir)
    name = f"empty-{make.__name__}"
    result = CliRunner().invoke(main, ["ingest", "--ccp", str(root), "--dataset", name, *extra])
    _one_line_error(result, name, *words)
    assert name not in fo.list_datasets()
    # the commands that crashed on the empty dataset now say there is none
    for cmd in (["flag-errors"], ["export-folds", "--out", str(tmp_path / "folds")]):
        follow = CliRunner().invoke(main, [*cmd, "--dataset", name])
        _one_line_error(follow, name)


def test_strict_failure_in_decoding_creates_no_dataset(tmp_path, ccp_dir, tmp_home):
    """A bad sample found while decoding (not by the scan) stops --strict before any insert."""
    import fiftyone as fo

    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0002"])
    add_bad_samples(root, ccp_dir)
    (root / "annotations" / "pixel-level" / "9005.mat").unlink()  # the only scan problem
    result = CliRunner().invoke(main, ["ingest", "--ccp", str(root), "--dataset", "empty-strict", "--strict"])
    _one_line_error(result, "--strict")
    assert "empty-strict" not in fo.list_datasets()


def test_unwritable_home_creates_no_dataset(tmp_path, ccp_dir, monkeypatch):
    """A home that cannot hold folders (under a regular file: a read-only home acts the same, but
    the tests may run as root, who writes through permissions)."""
    import fiftyone as fo

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("CLOTHCURATE_HOME", str(blocker / "home"))
    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0002", "0003"])
    result = CliRunner().invoke(main, ["ingest", "--ccp", str(root), "--dataset", "empty-home"])
    _one_line_error(result, str(blocker), "CLOTHCURATE_HOME")
    assert "empty-home" not in fo.list_datasets()
