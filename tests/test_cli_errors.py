"""Operating-system failures reach the user as one ``error:`` line and exit code 2 (or 1), never
as a traceback unless ``clothcurate --debug``.

The conditions are real, not mocks: a path under a regular file, ``/proc``, a read-only or full
file system (a tmpfs mounted in a private mount namespace of the CLI subprocess with
``unshare --mount --map-root-user``: tests run as root, which ignores file permissions, and the
mount vanishes with the process), a photo deleted after ingest, an empty dataset, a malformed
``folds.json``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from clothcurate.cli import main
from ccp_layout import make_ccp_subset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def small(ccp_slice):
    """A private 12-sample slice of the session's CCP dataset (tests may edit it)."""
    return ccp_slice(12, seed=1, prefix="errors")


_PROGRESS = re.compile(r"\d+%\|")   # a tqdm progress line (stderr, before the error)


def _lines(text: str) -> list[str]:
    return [line for line in text.strip().splitlines() if line.strip() and not _PROGRESS.search(line)]


def _one_error_line(res, code: int = 2) -> str:
    """The CliRunner result is exit ``code`` with a single ``error:`` line and no traceback."""
    assert res.exit_code == code, (res.output, res.exception)
    assert isinstance(res.exception, SystemExit), res.exception   # handled, not a crash
    lines = _lines(res.output)
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "Traceback" not in res.output
    return lines[0]


def _unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "--mount", "--map-root-user", "true"], capture_output=True,
                              timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_mount = pytest.mark.skipif(not shutil.which("unshare") or not _unshare_works(),
                                 reason="needs unshare --mount --map-root-user to mount a private tmpfs")


def _cli_on_tmpfs(mount: Path, options: str, args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m clothcurate ARGS`` with a tmpfs (``-o OPTIONS``) mounted on ``mount`` that only
    this process sees."""
    mount.mkdir(parents=True, exist_ok=True)
    script = 'mount -t tmpfs -o "$1" tmpfs "$2" || exit 99; shift 2; exec "$@"'
    cmd = ["unshare", "--mount", "--map-root-user", "sh", "-c", script, "sh", options, str(mount),
           sys.executable, "-m", "clothcurate", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    assert res.returncode != 99, res.stderr
    return res


def _one_error_line_sub(res: subprocess.CompletedProcess, code: int = 2) -> str:
    assert res.returncode == code, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and _lines(res.stderr)[-1] == errors[0], res.stderr
    return errors[0]


# ----------------------------------------------------------------------------- paths the user gives
def test_out_under_a_regular_file(small, tmp_path):
    (tmp_path / "file.txt").write_text("a file, not a folder")
    out = tmp_path / "file.txt" / "folds"
    line = _one_error_line(CliRunner().invoke(main, ["export-folds", "--dataset", small.name, "--out", str(out)]))
    assert f"{tmp_path / 'file.txt'} is a file, not a folder" in line
    # the same mistake in a run folder's path (train-eval reads it as an export): the OS error, one line
    line = _one_error_line(CliRunner().invoke(main, ["import-predictions", str(out / "run"), "--dataset", small.name]))
    assert str(tmp_path / "file.txt") in line


def test_out_under_proc(small):
    line = _one_error_line(CliRunner().invoke(main, ["export-folds", "--dataset", small.name,
                                                     "--out", "/proc/clothcurate-test/folds"]))
    assert "/proc/clothcurate-test" in line and "No such file or directory" in line


def test_debug_shows_the_traceback(small):
    res = subprocess.run([sys.executable, "-m", "clothcurate", "--debug", "export-folds", "--dataset", small.name,
                          "--out", "/proc/clothcurate-test/folds"], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert res.returncode == 2 and "Traceback" in res.stderr and "FileNotFoundError" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("error: ")


def test_photo_deleted_after_ingest(small, tmp_path):
    """Export copies (no crop) or re-encodes (crop) a photo that is gone: one line naming it."""
    sample = small.first()
    photo = tmp_path / "photo.jpg"
    shutil.copyfile(sample.filepath, photo)
    sample.filepath = str(photo)
    sample.save()
    photo.unlink()
    for crop in ([], ["--crop", "person"]):
        res = CliRunner().invoke(main, ["export-folds", "--dataset", small.name, "--out", str(tmp_path / "x"),
                                        "--folds", "2", *crop])
        assert str(photo) in _one_error_line(res)
        assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("command", [["ingest", "--ccp", "CCP"], ["status"], ["flag-errors"],
                                     ["export-folds", "--out", "OUT"], ["import-predictions", "RUN"]])
def test_empty_dataset_name(command, ccp_dir, tmp_path):
    args = [{"CCP": str(ccp_dir), "OUT": str(tmp_path / "o"), "RUN": str(tmp_path)}.get(a, a) for a in command]
    line = _one_error_line(CliRunner().invoke(main, [*args, "--dataset", ""]))
    assert "--dataset" in line


def test_empty_dataset(tmp_path):
    import fiftyone as fo

    ds = fo.Dataset("errors-empty", persistent=True)
    try:
        for args in (["flag-errors"], ["export-folds", "--out", str(tmp_path / "o")]):
            line = _one_error_line(CliRunner().invoke(main, [*args, "--dataset", ds.name]))
            assert "'errors-empty'" in line and "no samples" in line and "ingest" in line
    finally:
        ds.delete()
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("damage", ["truncated", "samples_not_a_list", "sample_not_an_object", "k_not_a_number",
                                    "classes_not_a_list"])
def test_malformed_export_read_by_train_eval(small, tmp_path, damage):
    from clothcurate.curation.export import export_folds

    export = tmp_path / "export"
    export_folds(dataset=small.name, out=export, folds=2, progress=False)
    folds = json.loads((export / "folds.json").read_text())
    target = "folds.json"
    if damage == "truncated":
        text = (export / "folds.json").read_text()
        (export / "folds.json").write_text(text[: len(text) // 2])
    else:
        if damage == "samples_not_a_list":
            folds["samples"] = {"ccp_0001": 0}
        elif damage == "sample_not_an_object":
            folds["samples"][3] = "ccp_0001"
        elif damage == "k_not_a_number":
            folds["k"] = "five"
        elif damage == "classes_not_a_list":
            target = "classes.json"
            (export / "classes.json").write_text(json.dumps({"classes": 15}))
        (export / "folds.json").write_text(json.dumps(folds))
    res = CliRunner().invoke(main, ["train-eval", "--arch", "fpn", "--encoder-weights", "none", "--data", str(export),
                                    "--out", str(tmp_path / "run"), "--dataset", "", "--epochs", "1"])
    assert str(export / target) in _one_error_line(res)


# ----------------------------------------------------------------------------- read-only and full file systems
@needs_mount
def test_read_only_file_system_out(small, tmp_path):
    mount = tmp_path / "ro"
    res = _cli_on_tmpfs(mount, "ro,size=1m", ["export-folds", "--dataset", small.name, "--out", str(mount / "folds")])
    line = _one_error_line_sub(res)
    assert "Read-only file system" in line and str(mount) in line


@needs_mount
def test_read_only_clothcurate_home(ccp_dir, tmp_path):
    ccp = make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0001", "0002", "0003"])
    home = tmp_path / "home"
    res = _cli_on_tmpfs(home, "ro,size=1m", ["ingest", "--ccp", str(ccp), "--dataset", "errors-ro-home",
                                             "--workers", "1"], env={"CLOTHCURATE_HOME": str(home)})
    line = _one_error_line_sub(res)
    assert "Read-only file system" in line and str(home) in line and "CLOTHCURATE_HOME" in line
    import fiftyone as fo

    if "errors-ro-home" in fo.list_datasets():
        fo.delete_dataset("errors-ro-home")


@needs_mount
@pytest.mark.parametrize("crop", [[], ["--crop", "person"]])
def test_disk_full_during_export(small, tmp_path, crop):
    """A 256 KiB tmpfs holds a few of the 12 photos: the export fails part way with ENOSPC."""
    mount = tmp_path / "full"
    res = _cli_on_tmpfs(mount, "size=256k", ["export-folds", "--dataset", small.name, "--out", str(mount / "folds"),
                                             "--folds", "2", *crop])
    line = _one_error_line_sub(res)
    assert "No space left on device" in line and str(mount) in line


@needs_mount
def test_disk_full_during_ingest(ccp_dir, tmp_path):
    ccp = make_ccp_subset(tmp_path / "ccp", ccp_dir, [f"{i:04d}" for i in range(1, 31)])
    home = tmp_path / "home"
    res = _cli_on_tmpfs(home, "size=64k", ["ingest", "--ccp", str(ccp), "--dataset", "errors-full-home",
                                           "--workers", "1"], env={"CLOTHCURATE_HOME": str(home)})
    line = _one_error_line_sub(res)
    assert "No space left on device" in line and str(home) in line
    import fiftyone as fo

    if "errors-full-home" in fo.list_datasets():
        fo.delete_dataset("errors-full-home")
