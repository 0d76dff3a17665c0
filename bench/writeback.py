"""Benchmark: write-back of predictions + per-sample metrics vs FiftyOne's evaluate_segmentations.

On the full real CCP (1,004 annotated photos), ingested into a private temporary FiftyOne
database, with **synthetic predictions** made from the ground truth (label map dilated or eroded,
one garment region relabelled to another class, some small classes dropped), side by side:

* ours: ``clothcurate.training.writeback.write_back`` (decode, per-sample IoU and pixel accuracy,
  copy the PNGs to the workspace, ``pred_fpn`` / ``iou_fpn`` / ``pixel_acc_fpn`` and both saved
  views);
* FiftyOne: ``dataset.evaluate_segmentations("pred_fpn", gt_field="ground_truth", eval_key=...)``
  on the same PNGs, given the 15 mask targets (its faster path: without them it first decodes every
  mask once more to find the values). It writes per-sample accuracy/precision/recall, no IoU.

Sanity check: FiftyOne's per-sample ``accuracy`` leaves out the pixels where both ground truth and
prediction are background (class 0 is its "missing" label), so ours is converted to that definition
with independently counted both-background pixels, and the two must agree; its summed confusion
matrix must also give our pixel-weighted overall pixel accuracy.

Run: ``.venv/bin/python bench/writeback.py`` (about 3-5 minutes on 2 busy cores).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
CCP = Path(os.environ.get("CLOTHCURATE_TEST_CCP", REPO.parent / "shared" / "datasets" / "ccp"))
DATASET = "bench-writeback"
TMP = Path(tempfile.mkdtemp(prefix="clothcurate-bench-wb-"))
os.environ["CLOTHCURATE_HOME"] = str(TMP / "home")
os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
os.environ["FIFTYONE_SHOW_PROGRESS_BARS"] = "false"
sys.path.insert(0, str(REPO))

from clothcurate.curation.mongod import use_private_database  # noqa: E402

_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]  # as ingest writes masks (OpenCV's default decodes 2x slower)
# confusable garments: a relabelled region takes the partner's class
_SWAP = {2: 11, 11: 2, 3: 9, 9: 3, 8: 12, 12: 8, 4: 14, 14: 4, 6: 7, 7: 6, 1: 2, 10: 11, 5: 13, 13: 6}


def _synthetic_prediction(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible model output from a (H, W) uint8 ground truth: boundaries moved by 1-4 px
    (grey-level dilation or erosion of the label map), a band of one garment relabelled to a
    confusable class, and half the time one small class (<2% of the pixels) dropped."""
    r = int(rng.integers(1, 5))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    pred = cv2.dilate(gt, kernel) if rng.random() < 0.5 else cv2.erode(gt, kernel)
    present = [int(c) for c in np.unique(gt) if c]
    if present:
        c = int(rng.choice(present))
        rows = np.flatnonzero((gt == c).any(axis=1))
        y0 = int(rng.integers(rows[0], rows[-1] + 1))
        band = pred[y0:y0 + max(1, (rows[-1] - rows[0]) // 3)]
        band[band == c] = _SWAP.get(c, 0)
        small = [c for c in present if (gt == c).mean() < 0.02]
        if small and rng.random() < 0.5:
            pred[pred == int(rng.choice(small))] = 0
    return pred


def _make_run(ds, run_dir: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Write config.json and predictions/<key>.png; returns per key the pixel count and the
    both-background pixel count (independent inputs of the sanity check)."""
    (run_dir / "predictions").mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"arch": "fpn", "note": "synthetic predictions"}))
    rng = np.random.default_rng(0)
    total, both_bg = {}, {}
    for key, gt_path in zip(*ds.values(["key", "ground_truth.mask_path"])):
        gt = cv2.imread(gt_path, cv2.IMREAD_UNCHANGED)
        pred = _synthetic_prediction(gt, rng)
        cv2.imwrite(str(run_dir / "predictions" / f"{key}.png"), pred, _PNG)
        total[key] = gt.size
        both_bg[key] = int(((gt == 0) & (pred == 0)).sum())
    return total, both_bg


def _compare_scoring(run: Path, ds, n: int = 100) -> None:
    """Per-image scoring: the write-back's OpenCV histogram vs ``metrics.per_sample_scores``."""
    import torch

    from clothcurate.training.metrics import per_sample_scores
    from clothcurate.training.writeback import _scores

    torch.set_num_threads(1)
    keys, gt_paths = ds.values(["key", "ground_truth.mask_path"])
    pairs = [(cv2.imread(str(run / "predictions" / f"{k}.png"), cv2.IMREAD_UNCHANGED),
              cv2.imread(g, cv2.IMREAD_UNCHANGED)) for k, g in list(zip(keys, gt_paths))[:n]]
    t = time.perf_counter()
    ours = [_scores(p, g) for p, g in pairs]
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    theirs = [per_sample_scores(p[None], g[None]) for p, g in pairs]
    t_theirs = time.perf_counter() - t
    diff = max(abs(a[0] - b[0][0]) + abs(a[1] - b[1][0]) for a, b in zip(ours, theirs))
    print(f"scoring one image ({n} images, 1 thread): histogram + scores_from_confusion "
          f"{1000 * t_ours / n:.2f} ms, per_sample_scores (torch) {1000 * t_theirs / n:.2f} ms; "
          f"max difference {diff:.1e}")


def main() -> None:
    mongod = use_private_database(TMP / "mongo-private")
    try:
        from clothcurate.curation.ingest import ingest
        from clothcurate.labelmaps import mask_targets
        from clothcurate.training.writeback import write_back

        print(f"machine: CPU, 2 cores (shared; load average at start {os.getloadavg()[0]:.1f})")
        t = time.perf_counter()
        ingest(ccp=CCP, dataset=DATASET, progress=False)
        import fiftyone as fo

        from clothcurate.curation.annotation import pixel_annotated

        ds = pixel_annotated(fo.load_dataset(DATASET))  # the tag-only photos have no mask to predict
        print(f"ingested {len(ds)} pixel-annotated CCP samples in {time.perf_counter() - t:.1f} s")

        run = TMP / "run"
        t = time.perf_counter()
        total, both_bg = _make_run(ds, run)
        print(f"synthetic predictions for {len(total)} samples written in {time.perf_counter() - t:.1f} s "
              "(GT label map dilated/eroded 1-4 px, a garment band relabelled, small classes dropped)")

        load = [os.getloadavg()[0]]
        ours = [write_back(run, dataset=DATASET, progress=False)]
        rep = ours[0]
        print(f"\nours:     write_back (metrics + copy + fields + views): {rep.seconds:6.2f} s  {rep.timings}")
        print(f"          written {rep.written}, mean IoU {rep.mean_iou:.3f}, mean pixel acc {rep.mean_pixel_acc:.3f}")

        load.append(os.getloadavg()[0])
        t = time.perf_counter()
        results = ds.evaluate_segmentations("pred_fpn", gt_field="ground_truth", eval_key="bench_fpn",
                                            mask_targets=mask_targets(), progress=False)
        t_fo = time.perf_counter() - t
        print(f"FiftyOne: evaluate_segmentations (accuracy/precision/recall, no IoU): {t_fo:6.2f} s")

        for _ in range(2):
            load.append(os.getloadavg()[0])
            ours.append(write_back(run, dataset=DATASET, progress=False))
            print(f"ours, re-run (idempotent): {ours[-1].seconds:6.2f} s  {ours[-1].timings}")
        median = float(np.median([r.seconds for r in ours]))
        print(f"\nratio FiftyOne / ours: {t_fo / median:.1f}x (median of our 3 runs, {median:.2f} s), "
              f"{t_fo / rep.seconds:.1f}x (our first run); target >= 10x")
        print(f"load average (1 min) before each timed run: {', '.join(f'{x:.1f}' for x in load)} "
              "(ours, FiftyOne, ours, ours)")

        keys, acc, fo_acc = ds.values(["key", "pixel_acc_fpn", "bench_fpn_accuracy"])
        diffs = []
        for k, a, f in zip(keys, acc, fo_acc):
            fg = total[k] - both_bg[k]
            ours_fg = (a * total[k] - both_bg[k]) / fg if fg else None
            if f is not None and ours_fg is not None:
                diffs.append(abs(ours_fg - f))
        print(f"check 1: per-sample accuracy (FiftyOne's definition, both-background pixels left out), "
              f"{len(diffs)} samples: max |ours - FiftyOne| = {max(diffs):.2e}")
        cm = results.pixel_confusion_matrix
        weighted = sum(a * total[k] for k, a in zip(keys, acc)) / sum(total.values())
        print(f"check 2: overall pixel accuracy, FiftyOne confusion {np.trace(cm) / cm.sum():.6f} "
              f"vs ours pixel-weighted {weighted:.6f}")
        _compare_scoring(run, ds)
    finally:
        mongod.close()
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
