"""Benchmark of flag-errors on the full CCP: time, flags per check, the 20 worst as overlays, and
a self-check on synthetic corruptions (AUROC of label_quality).

Runs on a private FiftyOne database and workspace in a temporary folder (never the user's)::

    python bench/flag.py [--ccp ../shared/datasets/ccp] [--out DIR] [--seeds 3]

Prints figures; writes ``worst_NN_<key>.png`` (photo | mask in the class colours) into --out.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ccp", type=Path, default=_REPO.parent / "shared" / "datasets" / "ccp")
    ap.add_argument("--out", type=Path, default=None, help="folder for the overlays (default: a temp dir)")
    ap.add_argument("--seeds", type=int, default=3, help="corruption seeds of the self-check")
    ap.add_argument("--corrupt", type=int, default=20, help="samples corrupted per seed")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="clothcurate-bench-flag-"))
    sys.path.insert(0, str(_REPO))
    from clothcurate.curation.mongod import use_private_workspace

    stack = use_private_workspace(tmp)
    try:
        _run(args, out=args.out or tmp / "overlays")
    finally:
        stack.close()


def _run(args, *, out: Path) -> None:
    from clothcurate.curation.db import load_dataset
    from clothcurate.curation.flags import flag_errors
    from clothcurate.curation.ingest import ingest

    t = time.perf_counter()
    ingest(ccp=args.ccp, dataset="bench-flag", progress=False)
    print(f"ingest: {time.perf_counter() - t:.1f} s")
    report = flag_errors("bench-flag", progress=False)
    print(report.summary())
    print(f"\nflag-errors time on {report.samples} samples: {report.seconds:.1f} s "
          f"(CPU, {os.cpu_count()} cores)")

    ds = load_dataset("bench-flag")
    out.mkdir(parents=True, exist_ok=True)
    for rank, w in enumerate(report.worst, start=1):
        sample = ds.match({"key": w["key"]}).first()
        path = out / f"worst_{rank:02d}_{w['key']}.png"
        _overlay(sample.filepath, sample.ground_truth.mask_path, path,
                 f"{w['key']} q={w['label_quality']:.2f} {','.join(w['issues'])}")
    print(f"overlays of the {len(report.worst)} worst: {out}")

    _self_check(ds, seeds=args.seeds, n_corrupt=args.corrupt)


def _overlay(photo: str, mask_path: str, out: Path, title: str) -> None:
    """Write photo | mask colours | blend side by side, with a title line."""
    import cv2

    from clothcurate.reports.colors import colorize

    img = cv2.imread(photo, cv2.IMREAD_COLOR)
    mask = cv2.imread(mask_path, cv2.IMREAD_UNCHANGED)
    colors = cv2.cvtColor(colorize(mask), cv2.COLOR_RGB2BGR)
    blend = cv2.addWeighted(img, 0.5, colors, 0.5, 0)
    panel = np.concatenate([img, colors, blend], axis=1)
    bar = np.full((28, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(out), np.concatenate([bar, panel], axis=0))


# -- self-check on synthetic corruptions ---------------------------------------------------------

#: confusable garment pairs for label swaps
_SWAPS = [("pants", "shorts"), ("shirt", "coat"), ("dress", "romper"), ("pants", "dress"),
          ("coat", "dress"), ("shirt", "dress"), ("footwear", "socks"), ("hair", "hat")]
_GARMENTS = ("coat", "dress", "pants", "shirt", "shorts", "romper", "scarf/tie", "hat", "footwear")


def _corrupt(gt: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One synthetic error of ``kind`` (swap, erase, dilate, shift, blob) in a (H, W) mask."""
    import cv2

    from clothcurate.labelmaps import TARGET_CLASSES

    c = {n: i for i, n in enumerate(TARGET_CLASSES)}
    present = [g for g in _GARMENTS if (gt == c[g]).sum() > 300]
    out = gt.copy()
    if kind == "swap":
        pairs = [(a, b) for a, b in _SWAPS if a in present] + [(b, a) for a, b in _SWAPS if b in present]
        a, b = pairs[rng.integers(len(pairs))]
        out[gt == c[a]] = c[b]
    elif kind == "erase":
        out[gt == c[present[rng.integers(len(present))]]] = 0
    elif kind == "dilate":
        g = c[present[rng.integers(len(present))]]
        grown = cv2.dilate((gt == g).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)  # ~7 px at full size
        out[grown] = g
    elif kind == "shift":
        dy, dx = rng.integers(-12, 13, 2)
        out = np.roll(np.roll(gt, dy, axis=0), dx, axis=1)
    else:  # blob: an ellipse of a random class somewhere in the frame
        h, w = gt.shape
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        cv2.ellipse(out, (int(cx), int(cy)), (int(rng.integers(8, 30)), int(rng.integers(8, 30))), 0, 0, 360,
                    int(rng.integers(1, len(TARGET_CLASSES))), -1)
    return out


def _self_check(ds, *, seeds: int, n_corrupt: int) -> None:
    """Corrupt ``n_corrupt`` samples per kind and seed; AUROC of 1 - label_quality (corrupted vs clean)."""
    from sklearn.metrics import roc_auc_score

    from clothcurate.curation.annotation import pixel_annotated
    from clothcurate.curation.flags import scoring
    from clothcurate.curation.flags.engine import fit_and_score, measure
    from clothcurate.curation.flags.registry import all_checks
    from clothcurate.curation.flags.sample import SampleMasks, read_sample

    checks = [c for c in all_checks() if not c.needs & {"model", "image"}]
    keys, gts, raws = pixel_annotated(ds).values(["key", "ground_truth.mask_path", "raw_ccp.mask_path"])
    samples = [read_sample(k, g, r) for k, g, r in zip(keys, gts, raws)]
    base = [measure(s, checks) for s in samples]
    usable = [i for i, s in enumerate(samples) if s.foreground_pixels > 0]
    print("\nself-check: AUROC of 1 - label_quality, corrupted vs clean "
          f"({n_corrupt} corrupted samples per kind and seed, {len(samples)} in all)")
    for kind in ("swap", "erase", "dilate", "shift", "blob", "all"):
        aucs = []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            picked = rng.choice(usable, n_corrupt, replace=False)
            meas = list(base)
            for n, i in enumerate(picked):
                k = kind if kind != "all" else ("swap", "erase", "dilate", "blob")[n % 4]
                s = samples[i]
                bad = SampleMasks(s.key, _corrupt(s.gt, k, rng), s.raw, s.raw_background_ids)
                meas[i] = measure(bad, checks)
            q = scoring.label_quality(fit_and_score(meas, checks), checks)
            y = np.zeros(len(samples), bool)
            y[picked] = True
            aucs.append(roc_auc_score(y, 1.0 - q))
        print(f"  {kind:7s} AUROC {np.mean(aucs):.3f} (min {np.min(aucs):.3f}, max {np.max(aucs):.3f}, {seeds} seeds)")


if __name__ == "__main__":
    main()
