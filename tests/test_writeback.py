"""Write-back of a run's predictions to FiftyOne (issue 5), on a slice of the real CCP.

Predictions are made from the real ground-truth masks with known perturbations; the expected IoU
and pixel accuracy are computed here with plain numpy set logic, independently of the library.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from fiftyone import ViewField as F

from clothcurate.cli import main
from clothcurate.errors import BadInputError
from clothcurate.training.writeback import import_predictions, write_back


def _expected(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """Mean IoU over the classes in GT or prediction, and pixel accuracy, by set logic."""
    ious = []
    for c in set(np.unique(gt).tolist()) | set(np.unique(pred).tolist()):
        inter = np.logical_and(gt == c, pred == c).sum()
        union = np.logical_or(gt == c, pred == c).sum()
        ious.append(inter / union)
    return float(np.mean(ious)), float((gt == pred).mean())


def _perturb(i: int, gt: np.ndarray) -> np.ndarray:
    """Known perturbations: exact copy, a garment region relabelled, all background, dilation."""
    pred = gt.copy()
    if i % 4 == 1:  # the top half of the largest garment becomes 'coat' (or 'dress' if it is coat)
        counts = np.bincount(gt.ravel(), minlength=15)
        c = int(np.argmax(counts[1:]) + 1)
        rows = np.flatnonzero((gt == c).any(axis=1))
        top = slice(0, (rows[0] + rows[-1]) // 2)
        pred[top][pred[top] == c] = 3 if c == 2 else 2
    elif i % 4 == 2:
        pred[:] = 0
    elif i % 4 == 3:
        pred = cv2.dilate(gt, np.ones((7, 7), np.uint8))
    return pred


@pytest.fixture
def wb_dataset(ccp_pixel, tmp_home):
    """A private clone of 12 real CCP samples (deleted afterwards)."""
    ds = ccp_pixel.take(12, seed=0).clone(f"wb-{uuid.uuid4().hex[:8]}", persistent=True)
    yield ds
    ds.delete()


def _make_run(run_dir: Path, ds, *, skip: int = 1, wrong_size: int = 1, unknown: bool = True) -> dict:
    """A run folder with config.json and predictions/<key>.png for the dataset's samples.

    The last ``skip`` samples get no prediction; the ``wrong_size`` before them get a prediction
    one row short; ``unknown`` adds a key that is not in the dataset.

    Returns:
        ``{"expected": {key: (iou, acc)}, "skipped": [keys], "wrong": [keys], "preds": {key: array}}``.
    """
    (run_dir / "predictions").mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"arch": "fpn", "encoder": "tf_efficientnet_lite0"}))
    keys, gt_paths = ds.values(["key", "ground_truth.mask_path"])
    n = len(keys)
    out = {"expected": {}, "skipped": keys[n - skip:], "wrong": keys[n - skip - wrong_size:n - skip], "preds": {}}
    for i, (key, gt_path) in enumerate(zip(keys, gt_paths)):
        if key in out["skipped"]:
            continue
        gt = cv2.imread(gt_path, cv2.IMREAD_UNCHANGED)
        pred = _perturb(i, gt)
        if key in out["wrong"]:
            pred = pred[:-1]
        else:
            out["expected"][key] = _expected(pred, gt)
        out["preds"][key] = pred
        cv2.imwrite(str(run_dir / "predictions" / f"{key}.png"), pred)
    if unknown:
        cv2.imwrite(str(run_dir / "predictions" / "ccp_9999.png"), np.zeros((4, 4), np.uint8))
    return out


def _fields(ds, arch: str = "fpn") -> dict:
    keys, preds, ious, accs = ds.values(["key", f"pred_{arch}.mask_path", f"iou_{arch}", f"pixel_acc_{arch}"])
    return {k: (p, i, a) for k, p, i, a in zip(keys, preds, ious, accs)}


def test_write_back_fields_values_views_and_rerun(wb_dataset, tmp_path):
    ds = wb_dataset
    run = _make_run(tmp_path / "run", ds)
    expected = run["expected"]
    assert any(v == (1.0, 1.0) for v in expected.values())        # the exact copy
    assert any(v[0] < 0.9 for v in expected.values())             # real perturbations

    rep = write_back(tmp_path / "run", dataset=ds.name, progress=False)
    assert rep.written == len(expected) == 10
    assert rep.without_prediction == 2
    assert rep.unknown_keys == ["ccp_9999"]
    assert len(rep.rejected) == 1 and run["wrong"][0] in rep.rejected[0] and "ground truth" in rep.rejected[0]
    assert rep.mean_iou == pytest.approx(np.mean([v[0] for v in expected.values()]))
    summary = rep.summary()
    assert "best-fpn" in summary and "worst-fpn" in summary and "ccp_9999" in summary

    ds.reload()
    got = _fields(ds)
    for key, (iou, acc) in expected.items():
        path, got_iou, got_acc = got[key]
        assert got_iou == pytest.approx(iou, abs=1e-12), key
        assert got_acc == pytest.approx(acc, abs=1e-12), key
        # the mask is a copy under the workspace, identical to the run's prediction
        assert Path(path).is_absolute() and tmp_path / "home" in Path(path).parents
        assert np.array_equal(cv2.imread(path, cv2.IMREAD_UNCHANGED), run["preds"][key])
    for key in run["skipped"] + run["wrong"]:
        assert got[key] == (None, None, None), key
    assert ds.get_field("pred_fpn").document_type.__name__ == "Segmentation"
    assert ds.default_mask_targets[14] == "socks"

    best, worst = ds.load_saved_view("best-fpn"), ds.load_saved_view("worst-fpn")
    want = sorted(expected, key=lambda k: expected[k][0])
    assert best.values("iou_fpn") == sorted(best.values("iou_fpn"), reverse=True)
    assert worst.values("iou_fpn") == sorted(worst.values("iou_fpn"))
    assert set(best.values("key")) == set(worst.values("key")) == set(expected)
    assert worst.values("iou_fpn") == pytest.approx([expected[k][0] for k in want])

    # re-run: same values, same files, same views
    files = sorted(p.name for p in Path(got[want[0]][0]).parent.iterdir())
    write_back(tmp_path / "run", dataset=ds.name, progress=False)
    ds.reload()
    assert _fields(ds) == got
    assert sorted(p.name for p in Path(got[want[0]][0]).parent.iterdir()) == files
    assert sorted(ds.list_saved_views()) == ["best-fpn", "worst-fpn"]

    # the dataset survives the run folder being deleted
    shutil.rmtree(tmp_path / "run")
    sample = ds.one(F("key") == want[0])
    assert sample.pred_fpn.get_mask().shape == run["preds"][want[0]].shape


def test_second_run_replaces_the_first(wb_dataset, tmp_path):
    ds = wb_dataset
    first = _make_run(tmp_path / "a", ds, skip=0, wrong_size=0, unknown=False)
    write_back(tmp_path / "a", dataset=ds.name, progress=False)
    second = _make_run(tmp_path / "b", ds, skip=3, wrong_size=0, unknown=False)
    rep = write_back(tmp_path / "b", dataset=ds.name, arch="fpn", progress=False)
    assert rep.written == len(first["expected"]) - 3
    ds.reload()
    got = _fields(ds)
    for key in second["skipped"]:
        assert got[key] == (None, None, None)
    copies = {p.stem for p in Path(got[next(iter(second["expected"]))][0]).parent.glob("*.png")}
    assert copies == set(second["expected"])                       # stale copies removed
    assert len(ds.load_saved_view("best-fpn")) == rep.written


def test_arch_argument_overrides_config(wb_dataset, tmp_path):
    ds = wb_dataset
    run = _make_run(tmp_path / "run", ds, skip=0, wrong_size=0, unknown=False)
    write_back(tmp_path / "run", dataset=ds.name, arch="unet", progress=False)
    ds.reload()
    got = _fields(ds, "unet")
    assert all(got[k][1] == pytest.approx(v[0]) for k, v in run["expected"].items())
    assert "pred_fpn" not in ds.get_field_schema()
    assert {"best-unet", "worst-unet"} <= set(ds.list_saved_views())


def test_import_predictions_cli(wb_dataset, tmp_path):
    ds = wb_dataset
    run = _make_run(tmp_path / "run", ds)
    result = CliRunner().invoke(main, ["import-predictions", str(tmp_path / "run"), "--dataset", ds.name])
    assert result.exit_code == 0, result.output
    assert "best-fpn" in result.output and "10 sample(s)" in result.output
    assert "ccp_9999" in result.output and "rejected" in result.output
    ds.reload()
    got = _fields(ds)
    assert all(got[k][1] == pytest.approx(v[0]) for k, v in run["expected"].items())


def _no_predictions(run: Path) -> None:
    shutil.rmtree(run / "predictions")


def _no_config(run: Path) -> None:
    (run / "config.json").unlink()


def _foreign_keys(run: Path) -> None:
    for p in (run / "predictions").glob("*.png"):
        p.rename(p.with_name("cfpd_" + p.name))


@pytest.mark.parametrize("damage, words", [(_no_predictions, "predictions"), (_no_config, "config.json"),
                                            (_foreign_keys, "none of the")])
def test_bad_run_folder_is_exit_2(wb_dataset, tmp_path, damage, words):
    ds = wb_dataset
    _make_run(tmp_path / "run", ds, unknown=False)
    damage(tmp_path / "run")
    result = CliRunner().invoke(main, ["import-predictions", str(tmp_path / "run"), "--dataset", ds.name])
    assert result.exit_code == 2, result.output
    assert words in result.output and len(result.output.strip().splitlines()) == 1
    assert "iou_fpn" not in ds.get_field_schema()


def test_missing_dataset_is_bad_input(tmp_path):
    run = tmp_path / "run"
    (run / "predictions").mkdir(parents=True)
    (run / "config.json").write_text('{"arch": "fpn"}')
    cv2.imwrite(str(run / "predictions" / "ccp_0001.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(BadInputError, match="not found"):
        import_predictions(run, dataset="no-such-dataset")
