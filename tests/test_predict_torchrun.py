"""``clothcurate predict`` under a real ``torchrun`` (2 CPU processes, gloo) on real CCP photos
with the tiny trained run: the same files as one process, the photos shared out, the dataset
written once by rank 0 with every photo, skipped photos counted over the ranks, and an error on
one rank stopping both with one ``error:`` line."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from clothcurate.inference.predict import predict_photos
from tiny_run import tiny  # noqa: F401 - tiny is a fixture

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STEMS = ("0004", "0016", "0022", "1005")  # 1005: a tag-only CCP photo


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --standalone --nproc_per_node=2 -m clothcurate -- ARGS``
    on the CPU, one thread per process (``--`` keeps torchrun's own parser off ``--run``)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "clothcurate", "--", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def _inputs(ccp_dir: Path, tmp_path: Path) -> list[Path]:
    """Four real photos and, second in the list (so on rank 1 of 2), a truncated one."""
    broken = tmp_path / "in" / "broken.jpg"
    broken.parent.mkdir()
    broken.write_bytes((ccp_dir / "photos" / "0004.jpg").read_bytes()[:300])
    photos = [ccp_dir / "photos" / f"{s}.jpg" for s in STEMS]
    return [photos[0], broken, *photos[1:]]


def test_two_ranks_write_the_files_of_one_process_and_the_dataset_once(tiny, ccp_dir, tmp_path, tmp_home):
    import fiftyone as fo

    _, run = tiny
    paths = _inputs(ccp_dir, tmp_path)
    alone = predict_photos(run_dir=run, out_dir=tmp_path / "alone", paths=paths, device="cpu", batch_size=2,
                           progress=False)
    assert alone.written == list(STEMS) and len(alone.skipped) == 1
    name = f"pred-ddp-{uuid.uuid4().hex[:8]}"
    try:
        done = _torchrun("predict", "--run", str(run), "--out", str(tmp_path / "ddp"), "--device", "cpu",
                         "--batch-size", "2", "--dataset", name, *map(str, paths))
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.count("predict: ") == 1 and "error" not in done.stderr   # rank 0 prints once
        assert f"predict: {len(STEMS)} photo(s) segmented" in done.stdout and "2 processes" in done.stdout
        assert "1 photo(s) skipped" in done.stdout and "broken.jpg" in done.stdout    # rank 1's, counted
        assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == sorted(
            p.name for p in (tmp_path / "alone").iterdir())
        for stem in STEMS:
            for suffix in (".png", ".json"):
                got = (tmp_path / "ddp" / f"{stem}{suffix}").read_bytes()
                assert got == (tmp_path / "alone" / f"{stem}{suffix}").read_bytes(), f"{stem}{suffix}"
        ds = fo.load_dataset(name)
        assert sorted(ds.values("key")) == sorted(f"photo_{s}" for s in STEMS)            # each photo once
        for sample in ds:
            stem = Path(sample.filepath).stem
            assert Path(sample.pred.mask_path).read_bytes() == (tmp_path / "alone" / f"{stem}.png").read_bytes()
    finally:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


def test_an_error_on_either_rank_stops_both_with_one_line(tiny, ccp_dir, tmp_path, tmp_home):
    _, run = tiny
    paths = _inputs(ccp_dir, tmp_path)
    # rank 1 meets the truncated photo under --strict; rank 0 must stop too, and say it once
    strict = _torchrun("predict", "--run", str(run), "--out", str(tmp_path / "strict"), "--device", "cpu",
                       "--batch-size", "1", "--strict", *map(str, paths))
    assert strict.returncode != 0
    errors = [line for line in strict.stderr.splitlines() if "error:" in line]
    assert errors == [f"error: rank 1: {paths[1]}: not a readable image (empty, truncated or not a photo format "
                      "OpenCV decodes); fix or remove it, or run without --strict"], strict.stderr[-3000:]
    assert "predict: " not in strict.stdout
    codes = [line.split(":")[1].split()[0] for line in strict.stderr.splitlines() if line.strip().startswith("exitcode")]
    # the first rank to exit exits 2 (bad input); torchrun then terminates a rank that has not exited
    # yet (SIGTERM: -15), and itself exits 1
    assert len(codes) == 2 and "2" in codes and set(codes) <= {"2", "-15"}, strict.stderr[-3000:]
    # a run folder without checkpoints fails on every rank: still one line
    empty = tmp_path / "run-without-checkpoints"
    empty.mkdir()
    (empty / "config.json").write_text((run / "config.json").read_text())
    missing = _torchrun("predict", "--run", str(empty), "--out", str(tmp_path / "none"), "--device", "cpu",
                        *map(str, paths))
    errors = [line for line in missing.stderr.splitlines() if "error:" in line]
    assert missing.returncode != 0 and len(errors) == 1 and "best.pt" in errors[0], missing.stderr[-3000:]
    assert not (tmp_path / "none").exists()
