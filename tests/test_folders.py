"""The folder modules (``clothcurate.folders``): one reader per on-disk folder, one rule for
finding a run's export, and "not a run folder" told apart from "an incomplete run"."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from clothcurate.cli import main
from clothcurate.errors import BadInputError
from clothcurate.folders import RunFolder, read_export

REPO = Path(__file__).resolve().parents[1]
GPU_RUNS = REPO / "docs" / "gpu-2026-11-24" / "runs"


def _export(root: Path, n: int = 3, *, with_files: bool = False) -> Path:
    """A small export folder in the contract's layout (folds.json, and optionally the rest)."""
    root.mkdir(parents=True)
    samples = [{"key": f"ccp_{i:04d}", "fold": i % 2, "image": f"images/ccp_{i:04d}.jpg",
                "mask": f"masks/ccp_{i:04d}.png", "orig_size": [400, 600],
                "crop_box": [10 * i, 20, 10 * i + 300, 320] if i else None, "classes": ["background", "skin"]}
               for i in range(n)]
    (root / "folds.json").write_text(json.dumps({"k": 2, "seed": 0, "samples": samples}))
    if with_files:
        (root / "export.json").write_text(json.dumps({"version": 1, "folds": 2, "created": "x"}))
        (root / "classes.json").write_text(json.dumps({"classes": ["background", "skin"]}))
        for sub in ("images", "masks"):
            (root / sub).mkdir()
        for s in samples:
            (root / s["image"]).write_bytes(b"x")
            (root / s["mask"]).write_bytes(b"x")
    return root


def test_report_on_a_folder_that_is_not_a_run_says_so(tmp_path):
    """Issue 12 item 9b: a folder without config.json is not a run at all; "the run is
    incomplete" (and its advice to re-run train-eval there) would be wrong."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "0001.jpg").write_bytes(b"not really a photo")
    res = CliRunner().invoke(main, ["report", "--runs", str(photos), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    assert "not a run folder" in res.output and "incomplete" not in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
    # a run folder (config.json) without metrics.json is an incomplete run
    (photos / "config.json").write_text(json.dumps({"arch": "fpn"}))
    res = CliRunner().invoke(main, ["report", "--runs", str(photos), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "metrics.json: missing" in res.output and "incomplete" in res.output, res.output


def test_run_folder_open_tells_no_folder_from_no_run(tmp_path):
    with pytest.raises(BadInputError, match="no such run folder"):
        RunFolder.open(tmp_path / "nowhere")
    with pytest.raises(BadInputError, match=r"not a run folder \(no config.json\)"):
        RunFolder.open(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(BadInputError, match="config.json: the run's config is not a JSON object"):
        _ = RunFolder.open(tmp_path).config


@pytest.mark.parametrize("how", ["export_dir", "options.data_dir", "relative to the run"])
def test_one_rule_finds_the_export_for_every_reader(tmp_path, how):
    """The report, the model-assisted checks and inference find a run's export the same way."""
    from clothcurate.curation.flags.internal.run_folder import confidence_refs
    from clothcurate.reports.runs import load_run

    export = _export(tmp_path / "run" / "export" if how == "relative to the run" else tmp_path / "export")
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    config = {"arch": "fpn", "encoder": "tf_efficientnet_lite0", "options": {"image_size": 320}}
    if how == "export_dir":
        config["export_dir"] = str(export)
    elif how == "options.data_dir":
        config["options"]["data_dir"] = str(export)
    else:
        config["export_dir"] = "export"
    (run / "config.json").write_text(json.dumps(config))
    folder = RunFolder.open(run)
    assert folder.export_dir == export.resolve()
    assert [s.key for s in folder.export().samples] == ["ccp_0000", "ccp_0001", "ccp_0002"]
    assert folder.arch == "fpn" and folder.input_size == (320, 320)

    # flag-errors --model: the confidence maps are placed in the frames of that export
    (run / "confidence").mkdir()
    (run / "confidence" / "ccp_0001.npz").write_bytes(b"")
    refs = confidence_refs(run)
    assert refs["ccp_0001"].frame_box == (10, 20, 310, 320) and refs["ccp_0001"].orig_size == (400, 600)

    # the report: same folder (it needs a complete run: borrow a real metrics.json)
    shutil.copy(GPU_RUNS / "fpn" / "metrics.json", run / "metrics.json")
    (run / "per_sample.csv").write_text("key,fold,iou,pixel_acc\nccp_0001,1,0.5,0.9\n")
    (run / "predictions").mkdir()
    (run / "predictions" / "ccp_0001.png").write_bytes(b"")
    assert load_run(run).export_dir == export.resolve()


def test_missing_export_is_named_with_the_recorded_path(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"export_dir": str(tmp_path / "gone")}))
    folder = RunFolder.open(run)
    assert folder.export_dir is None and folder.recorded_export == str(tmp_path / "gone")
    with pytest.raises(BadInputError, match=r"gone/folds.json: missing; the run's export folder"):
        folder.export()
    (run / "config.json").write_text(json.dumps({"arch": "fpn"}))
    with pytest.raises(BadInputError, match="names no export folder"):
        RunFolder.open(run).export()


def test_read_export_complete_or_folds_only(tmp_path):
    only_folds = _export(tmp_path / "a")
    with pytest.raises(BadInputError, match="export.json: missing"):
        read_export(only_folds)
    export = read_export(only_folds, complete=False)
    assert export.k == 2 and len(export.classes) == 15 and export.meta == {}
    assert export.get("ccp_0000").frame_box == (0, 0, 400, 600)
    assert export.get("nope") is None
    full = read_export(_export(tmp_path / "b", with_files=True))
    assert full.classes == ["background", "skin"] and full.meta["created"] == "x"
    (full.root / "masks" / "ccp_0002.png").unlink()
    with pytest.raises(BadInputError, match="ccp_0002.png: missing"):
        read_export(full.root)
    (tmp_path / "a" / "folds.json").write_text('{"samples": [{"key": "ccp_0000"}]}')
    with pytest.raises(BadInputError, match="sample 'ccp_0000' lacks or has a bad 'fold'"):
        read_export(tmp_path / "a", complete=False)


@pytest.mark.parametrize("arch", ["fpn", "unet", "linknet", "pspnet"])
def test_real_older_run_folders_read(arch):
    """The H100 run folders of docs/ (no checkpoints, no predictions, export not here)."""
    run = RunFolder.open(GPU_RUNS / arch)
    assert run.arch == arch and run.encoder == "tf_efficientnet_lite0" and run.input_size == (320, 320)
    assert run.export_dir is None and run.recorded_export.endswith("export320")
    assert run.checkpoints() == {} and run.finished_folds() == []
    assert run.fold_scores(0)["entry"]["fold"] == 0


def test_folder_modules_import_neither_torch_nor_fiftyone():
    code = ("import sys, clothcurate.folders, clothcurate.geometry; "
            "print(sorted(m for m in ('torch', 'fiftyone') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
