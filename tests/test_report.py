"""clothcurate report: tables, figures and HTML from run folders built from real CCP samples.

The fixture writes, without training, exactly what export-folds and train-eval write: an export
folder of 20 real CCP person crops, and two run folders whose "predictions" are the ground truth
with perturbations, scored with ``clothcurate.training.metrics``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import stat
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import torch
from click.testing import CliRunner

from clothcurate.cli import main
from clothcurate.geometry import crop_box, crop_resize, paste_back
from clothcurate.labelmaps import NUM_CLASSES, TARGET_CLASSES, load_labelmap
from clothcurate.reports import build_report
from clothcurate.training.metrics import ConfusionMatrix, per_sample_scores, scores_from_confusion, summarize_folds

N_SAMPLES, K_FOLDS, SIZE = 20, 2, 128
IDS = [f"{i:04d}" for i in range(1, 3 * N_SAMPLES, 3)][:N_SAMPLES]   # spread over the release

# The paper's figures, typed from PAPER.md (independent of clothcurate/reports/paper.yaml).
PAPER_FPN = {"precision": 76.6, "recall": 80.4, "f1": 77.9, "iou": 65.7}
PAPER_ROMPER = {"precision": 53.4, "recall": 30.9, "f1": 39.2}


# ----------------------------------------------------------------------------- fixture builders
def _make_export(ccp_dir: Path, out: Path) -> dict:
    """An export-folds folder (docs/contracts.md) of person crops; returns {key: (photo, gt, box, size)}."""
    lm = load_labelmap("ccp")
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir()
    samples, full = [], {}
    for i, sid in enumerate(IDS):
        raw = scipy.io.loadmat(ccp_dir / "annotations" / "pixel-level" / f"{sid}.mat")["groundtruth"]
        gt = lm.remap(raw, source_id=sid)
        photo = cv2.imread(str(ccp_dir / "photos" / f"{sid}.jpg"))
        h, w = gt.shape
        ys, xs = np.nonzero(gt)
        box = crop_box([xs.min() / w, ys.min() / h, (xs.max() + 1 - xs.min()) / w, (ys.max() + 1 - ys.min()) / h],
                       width=w, height=h)
        img_c, gt_c = crop_resize(photo, gt, box=box, size=SIZE)
        key = f"ccp_{sid}"
        cv2.imwrite(str(out / "images" / f"{key}.jpg"), img_c)
        cv2.imwrite(str(out / "masks" / f"{key}.png"), gt_c)
        samples.append({"key": key, "id": f"id{i}", "source": "ccp", "source_id": sid, "fold": i % K_FOLDS,
                        "image": f"images/{key}.jpg", "mask": f"masks/{key}.png", "orig_size": [w, h],
                        "crop_box": list(box), "classes": [TARGET_CLASSES[c] for c in np.unique(gt_c)]})
        full[key] = (gt, gt_c, box, (w, h), i % K_FOLDS)
    export = {"version": 1, "dataset": "ccp-test", "folds": K_FOLDS, "seed": 0, "crop": "person", "size": SIZE,
              "format": "png", "created": "2024-01-01T00:00:00+00:00", "left_out": {"reject": 2, "bg_only": 1}}
    (out / "export.json").write_text(json.dumps(export))
    (out / "classes.json").write_text(json.dumps({"classes": list(TARGET_CLASSES),
                                                  "mask_targets": {str(i): c for i, c in enumerate(TARGET_CLASSES)}}))
    (out / "folds.json").write_text(json.dumps({"k": K_FOLDS, "seed": 0, "samples": samples}))
    return {"export": export, "samples": full}


def _perturb(gt: np.ndarray, rng: np.random.Generator, *, shift: int, boxes: int, swap: bool) -> np.ndarray:
    """GT with the errors a model makes: shifted borders, wrong blobs, a confused class."""
    pred = np.roll(gt, (shift, -shift), axis=(0, 1))
    h, w = gt.shape
    for _ in range(boxes):
        bh, bw = int(rng.integers(h // 10, h // 4)), int(rng.integers(w // 10, w // 4))
        y, x = int(rng.integers(0, h - bh)), int(rng.integers(0, w - bw))
        pred[y:y + bh, x:x + bw] = rng.integers(0, NUM_CLASSES)
    if swap:
        pred[pred == TARGET_CLASSES.index("shirt")] = TARGET_CLASSES.index("coat")
    return pred


def _make_run(export_dir: Path, built: dict, out: Path, *, arch: str, shift: int, boxes: int, seed: int) -> None:
    """A train-eval run folder with metrics computed by clothcurate.training.metrics."""
    rng = np.random.default_rng(seed)
    (out / "predictions").mkdir(parents=True)
    cms = {f: {"raw": ConfusionMatrix(NUM_CLASSES), "opened": ConfusionMatrix(NUM_CLASSES)} for f in range(K_FOLDS)}
    counts = {f: 0 for f in range(K_FOLDS)}
    rows = []
    for key, (gt, gt_c, box, orig, fold) in built["samples"].items():
        pred_full = _perturb(gt, rng, shift=shift, boxes=boxes, swap=bool(rng.random() < 0.5))
        raw_c = crop_resize(pred_full, pred_full, box=box, size=SIZE)[1]
        opened_c = cv2.medianBlur(raw_c, 5)
        cv2.imwrite(str(out / "predictions" / f"{key}.png"), paste_back(opened_c, crop_box=box, orig_size=orig))
        t = torch.from_numpy(gt_c)[None]
        cms[fold]["raw"].update(torch.from_numpy(raw_c)[None], t)
        cms[fold]["opened"].update(torch.from_numpy(opened_c)[None], t)
        counts[fold] += 1
        iou, acc = per_sample_scores(opened_c[None], gt_c[None], num_classes=NUM_CLASSES)
        rows.append({"key": key, "fold": fold, "iou": float(iou[0]), "pixel_acc": float(acc[0])})
    folds = [{"fold": f, "n_images": counts[f], **{v: scores_from_confusion(cm.compute()) for v, cm in cms[f].items()}}
             for f in range(K_FOLDS)]
    metrics = {"classes": list(TARGET_CLASSES), "arch": arch, "encoder": "tf_efficientnet_lite0", "primary": "opened",
               "folds": folds, "summary": summarize_folds(folds)}
    (out / "metrics.json").write_text(json.dumps(metrics))
    options = {"arch": arch, "encoder": "tf_efficientnet_lite0", "encoder_weights": "imagenet",
               "data_dir": str(export_dir), "epochs": 100, "image_size": SIZE, "lr": 0.001, "seed": seed}
    config = {"options": options, "export": built["export"], "export_dir": str(export_dir),
              "versions": {"python": "3.11", "torch": torch.__version__},
              "machine": {"cpu": "Test CPU @ 2 cores", "cpu_count": 2, "gpu": "NVIDIA H100 80GB HBM3",
                          "device": "cuda:0", "world_size": 1},
              "started": "2024-01-01T10:00:00+00:00", "resumed": 0, "finished": "2024-01-01T11:02:03+00:00"}
    (out / "config.json").write_text(json.dumps(config))
    with (out / "per_sample.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["key", "fold", "iou", "pixel_acc"])
        writer.writeheader()
        writer.writerows(rows)
    for f in range(K_FOLDS):
        (out / "folds" / str(f)).mkdir(parents=True)
        (out / "folds" / str(f) / "done").write_text("")


@pytest.fixture(scope="module")
def runs(ccp_dir, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("report")
    built = _make_export(ccp_dir, root / "export")
    _make_run(root / "export", built, root / "runs" / "fpn", arch="fpn", shift=2, boxes=1, seed=1)
    _make_run(root / "export", built, root / "runs" / "unet", arch="unet", shift=6, boxes=3, seed=2)
    return {"root": root, "export": root / "export", "built": built, "ccp_dir": ccp_dir,
            "runs": [root / "runs" / "fpn", root / "runs" / "unet"]}


@pytest.fixture(scope="module")
def report(runs) -> dict:
    out = runs["root"] / "report"
    result = build_report(runs["runs"], out)
    return {"out": out, "result": result}


# ----------------------------------------------------------------------------- HTML read-back
class _Cells(HTMLParser):
    """Collects the text of every <td> that carries data-* attributes, keyed by those attributes."""

    def __init__(self):
        super().__init__()
        self.cells: dict[tuple, str] = {}
        self.images: list[str] = []
        self._key, self._text = None, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag == "td" and any(k.startswith("data-") for k in a):
            self._key = tuple(sorted((k[5:], v) for k, v in a.items() if k.startswith("data-")))
            self._text = []

    def handle_data(self, data):
        if self._key is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._key is not None:
            self.cells[self._key] = "".join(self._text).strip()
            self._key = None


def _cell(cells: dict, **attrs) -> str:
    return cells[tuple(sorted(attrs.items()))]


def _mean_std(text: str) -> tuple[float | None, float | None]:
    """'78.1 ± 2.3' -> (78.1, 2.3); '—' -> (None, None)."""
    if text == "—":
        return None, None
    parts = [p.strip() for p in text.split("±")]
    return float(parts[0]), (float(parts[1]) if len(parts) > 1 else None)


def _close(shown: float | None, value: float | None, *, digits: int = 1) -> bool:
    """A value shown in percent with ``digits`` decimals equals the fraction ``value``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return shown is None
    return shown is not None and abs(shown - 100 * value) <= 0.5 * 10 ** -digits + 1e-9


def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _f(text: str) -> float | None:
    return None if text == "" else float(text)


# ----------------------------------------------------------------------------- tests
def test_csv_numbers_equal_metrics_json(runs, report):
    out = report["out"]
    t2 = _read_csv(out / "table2.csv")
    t3 = _read_csv(out / "table3.csv")
    for run_dir in runs["runs"]:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        for variant, summary in metrics["summary"].items():
            (row,) = [r for r in t2 if r["run"] == run_dir.name and r["variant"] == variant]
            assert row["arch"] == metrics["arch"] and int(row["folds"]) == K_FOLDS
            for m in ("precision", "recall", "f1", "iou", "pixel_accuracy"):
                assert _f(row[f"{m}_mean"]) == summary["mean"][m]["mean"]
                assert _f(row[f"{m}_std"]) == summary["mean"][m]["std"]
            # the mean over folds is the mean of the per-fold means (recomputed here)
            per_fold = [f[variant]["mean"]["f1"] for f in metrics["folds"]]
            assert _f(row["f1_mean"]) == pytest.approx(np.mean(per_fold))
            if metrics["arch"] == "fpn":
                assert _f(row["paper_f1"]) == pytest.approx(PAPER_FPN["f1"] / 100)
                assert _f(row["diff_iou"]) == pytest.approx(summary["mean"]["iou"]["mean"] - PAPER_FPN["iou"] / 100)
            rows = [r for r in t3 if r["run"] == run_dir.name and r["variant"] == variant]
            assert [r["class"] for r in rows] == list(TARGET_CLASSES)
            for c, r in enumerate(rows):
                for m in ("precision", "recall", "f1", "iou"):
                    assert _f(r[f"{m}_mean"]) == summary["per_class"][m]["mean"][c]
                    assert _f(r[f"{m}_std"]) == summary["per_class"][m]["std"][c]
    romper = next(r for r in t3 if r["class"] == "romper")
    assert _f(romper["paper_recall"]) == pytest.approx(PAPER_ROMPER["recall"] / 100)
    paper_rows = {r["arch"]: r for r in t2 if r["source"] == "paper"}
    assert set(paper_rows) == {"linknet", "pspnet", "unet", "fpn"}
    assert _f(paper_rows["pspnet"]["recall_mean"]) == pytest.approx(0.697)


def test_html_numbers_equal_metrics_json(runs, report):
    parser = _Cells()
    parser.feed((report["out"] / "report.html").read_text())
    cells = parser.cells
    for run_dir in runs["runs"]:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        label = run_dir.name
        for variant, summary in metrics["summary"].items():
            for m in ("precision", "recall", "f1", "iou", "pixel_accuracy"):
                mean, std = _mean_std(_cell(cells, run=label, variant=variant, metric=m))
                assert _close(mean, summary["mean"][m]["mean"]), (label, variant, m)
                assert _close(std, summary["mean"][m]["std"]), (label, variant, m)
        primary = metrics["summary"][metrics["primary"]]
        for c, name in enumerate(TARGET_CLASSES):
            for m in ("precision", "recall", "f1", "iou"):
                mean, std = _mean_std(_cell(cells, run=label, **{"class": name}, metric=m))
                assert _close(mean, primary["per_class"][m]["mean"][c]), (label, name, m)
                assert _close(std, primary["per_class"][m]["std"][c]), (label, name, m)
    fpn = json.loads((runs["runs"][0] / "metrics.json").read_text())["summary"]["opened"]["mean"]
    diff = float(_cell(cells, run="fpn", variant="opened", metric="f1", kind="diff"))
    assert diff == pytest.approx(round(100 * fpn["f1"]["mean"] - PAPER_FPN["f1"], 1), abs=0.051)
    for m, v in PAPER_FPN.items():
        assert float(_cell(cells, run="paper", arch="fpn", metric=m)) == v
    for m, v in PAPER_ROMPER.items():
        assert float(_cell(cells, run="paper", **{"class": "romper"}, metric=m)) == v


def test_class_frequency_matches_export_masks(runs, report):
    """Images and pixel share per class, counted here from the ground truth crops."""
    (table,) = list(report["out"].glob("fold_stats_*.csv"))
    rows = {r["class"]: r for r in _read_csv(table)}
    gts = [v[1] for v in runs["built"]["samples"].values()]
    folds = [v[4] for v in runs["built"]["samples"].values()]
    total = sum(g.size for g in gts)
    for c, name in enumerate(TARGET_CLASSES):
        assert int(rows[name]["images"]) == sum(bool((g == c).any()) for g in gts)
        assert float(rows[name]["pixel_share"]) == pytest.approx(sum(int((g == c).sum()) for g in gts) / total)
        for f in range(K_FOLDS):
            assert int(rows[name][f"images_fold{f}"]) == sum(bool((g == c).any()) for g, k in zip(gts, folds) if k == f)
    html = (report["out"] / "report.html").read_text()
    assert "2 tagged reject, 1 tagged bg_only" in html
    assert "NVIDIA H100 80GB HBM3" in html and "1 h 02 min 03 s" in html


def test_every_figure_exists_and_is_not_blank(runs, report):
    out = report["out"]
    pngs = sorted(out.glob("*.png"))
    names = {p.name for p in pngs}
    assert {"fig6_class_iou.png", "fig7_confusion_fpn.png", "fig7_confusion_unet.png", "fig9_samples_fpn.png",
            "fig9_samples_unet.png", "fig4_class_frequency_export.png"} <= names
    for p in pngs:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        assert img is not None, p
        h, w = img.shape[:2]
        assert 300 <= w <= 4000 and 250 <= h <= 6000, (p.name, w, h)
        assert img.std() > 10, p.name                                     # not one colour
        packed = img.reshape(-1, 3).astype(np.int32) @ np.array([1 << 16, 1 << 8, 1], dtype=np.int32)
        assert len(np.unique(packed)) > 50, p.name                          # real content
        assert (img < 250).any(axis=2).mean() > 0.02, p.name              # not almost all white
    parser = _Cells()
    parser.feed((out / "report.html").read_text())
    assert len(parser.images) == len(pngs)
    assert all(src.startswith("data:image/png;base64,") for src in parser.images)   # opens offline
    md = (out / "report.md").read_text()
    assert all(f"]({n})" in md for n in names)
    assert {p.name for p in report["result"].files} >= names | {"report.html", "report.md"}


def test_cli_rerun_is_idempotent_and_leaves_no_temp_files(runs, report):
    before = sorted(p.name for p in report["out"].iterdir())
    args = ["report", *(a for r in runs["runs"] for a in ("--runs", str(r))), "--out", str(report["out"])]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "report.html" in res.output and "fig6_class_iou.png" in res.output
    after = sorted(p.name for p in report["out"].iterdir())
    assert before == after
    assert not [n for n in after if n.startswith(".")]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((report["out"] / "report.html").stat().st_mode) == 0o666 & ~umask   # not mkstemp's 0600


def test_photos_and_curation_summary_from_fiftyone_dataset(runs, tmp_path):
    """--dataset: Fig. 9 in the full photo frame from the dataset, and its tags in the summary."""
    import fiftyone as fo

    samples = []
    for i, (key, (gt, *_)) in enumerate(runs["built"]["samples"].items()):
        mask = tmp_path / f"{key}.png"
        cv2.imwrite(str(mask), gt)
        photo = str(runs["ccp_dir"] / "photos" / f"{key[4:]}.jpg")
        samples.append(fo.Sample(filepath=photo, key=key, source="ccp", tags=["reject"] if i < 3 else [],
                                 ground_truth=fo.Segmentation(mask_path=str(mask))))
    ds = fo.Dataset("report-test-dataset")
    ds.add_samples(samples)
    try:
        result = build_report(runs["runs"][:1], tmp_path / "r", dataset=ds.name)
    finally:
        ds.delete()
    grid = cv2.imread(str(tmp_path / "r" / "fig9_samples_fpn.png"))
    assert grid is not None and grid.std() > 10
    html = (tmp_path / "r" / "report.html").read_text()
    assert "FiftyOne dataset <code>report-test-dataset</code>: 20 samples" in html
    assert "reject 3" in html
    assert any(p.name == "fig9_samples_fpn.png" for p in result.files)


def test_run_whose_export_is_gone_still_reports_from_config(runs, tmp_path):
    """A run trained elsewhere: tables and Figs. 6/7 still come; photos and Fig. 4 are named as missing."""
    run = tmp_path / "gpu-run"
    shutil.copytree(runs["runs"][0], run)
    config = json.loads((run / "config.json").read_text())
    config["export_dir"] = config["options"]["data_dir"] = "/nonexistent/export"
    (run / "config.json").write_text(json.dumps(config))
    result = build_report([run], tmp_path / "r")
    names = {p.name for p in result.files}
    assert {"report.html", "table2.csv", "fig6_class_iou.png", "fig7_confusion_gpu-run.png"} <= names
    assert not any(n.startswith(("fig9", "fig4")) for n in names)
    assert any("/nonexistent/export" in n and "not found" in n for n in result.notes)
    html = (tmp_path / "r" / "report.html").read_text()
    assert "export folder not found here" in html and "2 tagged reject, 1 tagged bg_only" in html


def test_export_without_photos_leaves_fig9_out_and_bad_input_changes_nothing(runs, tmp_path):
    """Photos gone from the run's export: the report comes without Fig. 9 and says why; then a
    --dataset that lacks the run's samples fails before any file of that report is replaced."""
    export = tmp_path / "export"
    shutil.copytree(runs["export"], export)
    shutil.rmtree(export / "images")
    run = tmp_path / "run"
    shutil.copytree(runs["runs"][0], run)
    config = json.loads((run / "config.json").read_text())
    config["export_dir"] = config["options"]["data_dir"] = str(export)
    (run / "config.json").write_text(json.dumps(config))
    out = tmp_path / "r"
    result = build_report([run], out)
    names = {p.name for p in result.files}
    assert "fig4_class_frequency_export.png" in names and not any(n.startswith("fig9") for n in names)
    assert any("Fig. 9 left out" in n and "missing or unreadable photo" in n for n in result.notes)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    import fiftyone as fo

    ds = fo.Dataset("report-empty-dataset")
    try:
        res = CliRunner().invoke(main, ["report", "--runs", str(run), "--out", str(out), "--dataset", ds.name])
    finally:
        ds.delete()
    assert res.exit_code == 2 and "not made by clothcurate ingest" in res.output, res.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def _broken_copy(runs, tmp_path, name: str) -> Path:
    dst = tmp_path / name
    shutil.copytree(runs["runs"][0], dst)
    return dst


@pytest.mark.parametrize("damage, expected", [
    ("no_folder", "no such run folder"),
    ("no_metrics", "metrics.json: missing"),
    ("truncated_metrics", "metrics.json: not valid JSON"),
    ("metrics_without_folds", "no folds"),
    ("no_per_sample", "per_sample.csv: missing"),
    ("missing_prediction", "1 of 20 predictions missing (ccp_0004)"),
    ("no_predictions", "predictions: missing"),
])
def test_missing_or_half_written_run_is_a_clear_error(runs, tmp_path, damage, expected):
    run = _broken_copy(runs, tmp_path, "run")
    if damage == "no_folder":
        run = tmp_path / "nowhere"
    elif damage == "no_metrics":
        (run / "metrics.json").unlink()
    elif damage == "truncated_metrics":
        text = (run / "metrics.json").read_text()
        (run / "metrics.json").write_text(text[: len(text) // 2])
    elif damage == "metrics_without_folds":
        m = json.loads((run / "metrics.json").read_text())
        del m["folds"]
        (run / "metrics.json").write_text(json.dumps(m))
    elif damage == "no_per_sample":
        (run / "per_sample.csv").unlink()
    elif damage == "missing_prediction":
        (run / "predictions" / "ccp_0004.png").unlink()
    elif damage == "no_predictions":
        shutil.rmtree(run / "predictions")
    res = CliRunner().invoke(main, ["report", "--runs", str(runs["runs"][1]), "--runs", str(run),
                                    "--out", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    assert expected in res.output and str(run) in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "report.html").exists()


def test_out_replaced_only_when_made_by_report(runs, tmp_path):
    """report --out writes only into a missing, empty or earlier report folder (its report.json);
    a re-run replaces the whole folder, so figures of runs no longer asked for go."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.html").write_text("my own page")
    res = CliRunner().invoke(main, ["report", "--runs", str(runs["runs"][0]), "--out", str(mine)])
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and "not a clothcurate report folder" in res.output and str(mine) in res.output
    assert [p.name for p in mine.iterdir()] == ["report.html"] and (mine / "report.html").read_text() == "my own page"

    out = tmp_path / "r"
    build_report(runs["runs"], out)
    manifest = json.loads((out / "report.json").read_text())
    assert sorted(manifest["files"]) == sorted(p.name for p in out.iterdir())
    assert manifest["runs"] == [str(r.resolve()) for r in runs["runs"]]
    assert (out / "fig7_confusion_unet.png").exists()
    result = build_report(runs["runs"][:1], out)
    assert not (out / "fig7_confusion_unet.png").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted([p.name for p in result.files])
    assert all(p.parent == out for p in result.files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "r"]   # no temporary folder or lock left
