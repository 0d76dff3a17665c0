"""Label-noise benchmark on CCP: does label_quality rank corrupted annotations first?

Takes a finished train-eval run on CCP (its out-of-fold ``confidence/<key>.npz`` maps) and
corrupts the GIVEN labels (never the predictions) of a share of the run's test samples:

- ``swap``: a garment's largest region relabelled to a confusable class (coat <-> dress ...);
- ``erase``: a garment's largest region set to background;
- ``dilate``: a garment grown by 7 photo pixels over its neighbours;
- ``shift``: a garment's largest region moved by 10-25 % of its size (its old place -> background);
- ``blob``: an ellipse of a random class (2-6 % of the person's area) near the person.

Corruption mixes (``all``: every kind; ``gross``: swap/erase/blob; ``subtle``: dilate/shift/swap)
and seeds vary; no threshold is tuned to any of them. Every CCP sample is scored (the dataset's
statistics are learned from all 1,004, as flag-errors does); the ranking is judged on the run's
test samples, by AUROC and precision at k = number corrupted, for:

- ``heuristics``: label_quality of the mask checks alone (flag-errors without --model);
- ``model``: label_quality with the model-assisted check (flag-errors --model RUN_DIR);
- ``model only``: the model check's score alone;
- ``cleanlab``: ``cleanlab.segmentation.rank.get_label_quality_scores`` (softmin) on the same
  out-of-fold probabilities and corrupted labels (at the confidence maps' resolution).

FiftyOne-free: reads CCP in place through clothcurate's reader and label map::

    python bench/label_noise.py --run RUN_DIR [--ccp ../shared/datasets/ccp] [--seeds 5] [--first-seed 0] [--share 0.1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

_REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO))

from clothcurate.labelmaps import TARGET_CLASSES

C = {n: i for i, n in enumerate(TARGET_CLASSES)}
MIXES = {"all": ("swap", "erase", "dilate", "shift", "blob"), "gross": ("swap", "erase", "blob"),
         "subtle": ("dilate", "shift", "swap")}
#: confusable classes for swaps (either direction)
_CONFUSABLE = {"coat": ("dress", "shirt"), "dress": ("coat", "romper", "shirt"), "shirt": ("coat", "dress"),
               "pants": ("shorts", "dress"), "shorts": ("pants", "dress"), "romper": ("dress", "shorts"),
               "footwear": ("socks",), "socks": ("footwear", "pants"), "hat": ("hair",), "hair": ("hat",),
               "bag": ("coat",), "scarf/tie": ("shirt",)}
_GARMENTS = ("coat", "dress", "shirt", "pants", "shorts", "romper", "footwear", "socks", "hat", "bag", "scarf/tie")
#: a garment counts for corruption from this many photo pixels on
_MIN_AREA = 400


def _largest_region(mask: np.ndarray) -> np.ndarray:
    _, lab, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    return lab == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def corrupt(gt: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One synthetic annotation error of ``kind`` in a full-frame (H, W) uint8 mask."""
    present = [g for g in _GARMENTS if (gt == C[g]).sum() >= _MIN_AREA]
    out = gt.copy()
    if not present:
        kind = "blob"
    else:
        g = present[rng.integers(len(present))]
        region = _largest_region(gt == C[g])
    if kind == "swap":
        options = _CONFUSABLE[g]
        out[region] = C[options[rng.integers(len(options))]]
    elif kind == "erase":
        out[region] = 0
    elif kind == "dilate":
        grown = cv2.dilate((gt == C[g]).view(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15)))
        out[grown.astype(bool)] = C[g]
    elif kind == "shift":
        ys, xs = np.nonzero(region)
        dy = int(rng.choice([-1, 1]) * rng.uniform(0.10, 0.25) * (np.ptp(ys) + 1))
        dx = int(rng.choice([-1, 1]) * rng.uniform(0.10, 0.25) * (np.ptp(xs) + 1))
        out[region] = 0
        ny, nx = np.clip(ys + dy, 0, gt.shape[0] - 1), np.clip(xs + dx, 0, gt.shape[1] - 1)
        out[ny, nx] = C[g]
    elif kind == "blob":
        fg = np.argwhere(gt > 0)
        (y0, x0), (y1, x1) = (fg.min(0), fg.max(0)) if len(fg) else ((0, 0), np.array(gt.shape) - 1)
        area = rng.uniform(0.02, 0.06) * max(len(fg), 2000)
        a = float(np.sqrt(area / np.pi) * rng.uniform(0.6, 1.6))
        b = area / (np.pi * a)
        cy = int(rng.uniform(y0 - 0.1 * (y1 - y0), y1 + 0.1 * (y1 - y0)))
        cx = int(rng.uniform(x0 - 0.3 * (x1 - x0), x1 + 0.3 * (x1 - x0)))
        cv2.ellipse(out, (cx, cy), (max(int(a), 3), max(int(b), 3)), float(rng.uniform(0, 180)), 0, 360,
                    int(rng.integers(1, len(TARGET_CLASSES))), -1)
    return out


def _load_ccp(ccp: Path) -> tuple[list[str], list[np.ndarray], list[np.ndarray], tuple[int, ...]]:
    """Keys, full-frame 15-class masks and raw masks of every CCP sample, and the raw ids sent to background."""
    from clothcurate.curation.sources.ccp import CCPSource
    from clothcurate.labelmaps import load_labelmap
    from clothcurate.workspace import sample_key

    source, lm = CCPSource(ccp), load_labelmap("ccp")
    refs, _, _ = source.scan()
    keys, gts, raws = [], [], []
    for ref in refs:
        raw = source.read(ref).masks[""].astype(np.uint8)
        keys.append(sample_key("ccp", ref.source_id))
        gts.append(lm.remap(raw, source_id=ref.source_id))
        raws.append(raw)
    return keys, gts, raws, tuple(i for i, t in enumerate(lm.targets) if t == 0 and i != 0)


def _auroc_and_precision(y: np.ndarray, badness: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import roc_auc_score

    k = int(y.sum())
    top = np.argsort(-badness, kind="stable")[:k]
    return float(roc_auc_score(y, badness)), float(y[top].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="train-eval run folder on CCP (with confidence/)")
    ap.add_argument("--ccp", type=Path, default=_REPO.parent / "shared" / "datasets" / "ccp")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="first corruption seed (use unseen seeds, e.g. 100, to check a method tuned on 0..N-1)")
    ap.add_argument("--share", type=float, default=0.1, help="share of the run's test samples corrupted")
    ap.add_argument("--mixes", default="all,gross,subtle")
    args = ap.parse_args()

    from cleanlab.segmentation.rank import get_label_quality_scores

    from clothcurate.curation.flags import scoring
    from clothcurate.curation.flags.engine import fit_and_score, measure
    from clothcurate.curation.flags.internal.confident import evidence_from_mask
    from clothcurate.curation.flags.internal.run_folder import (
        confidence_refs,
        load_evidence,
    )
    from clothcurate.curation.flags.registry import all_checks
    from clothcurate.curation.flags.sample import SampleMasks, working_resolution

    t0 = time.perf_counter()
    refs = confidence_refs(args.run)
    keys, gts, raws, bg_ids = _load_ccp(args.ccp)
    index = {k: i for i, k in enumerate(keys)}
    test = [index[k] for k in sorted(refs) if k in index]
    if not test:
        raise SystemExit(f"{args.run}: none of its confidence maps is a CCP sample key")
    checks = [c for c in all_checks() if not c.needs & {"image"}]
    heur = [j for j, c in enumerate(checks) if "model" not in c.needs]
    mcol = next(j for j, c in enumerate(checks) if "model" in c.needs)
    evidence = {i: load_evidence(keys[i], gts[i], refs[keys[i]]) for i in test}

    def sample(i: int, gt: np.ndarray) -> SampleMasks:
        ev = evidence.get(i)
        if ev is not None and gt is not gts[i]:
            ev = evidence_from_mask(gt, ev.probs, frame_box=ev.frame_box, orig_size=ev.orig_size)
        return SampleMasks(keys[i], working_resolution(gt), working_resolution(raws[i]), bg_ids, None, ev)

    base = [measure(sample(i, gts[i]), checks) for i in range(len(keys))]
    print(f"run {args.run}: {len(test)} test samples with confidence maps "
          f"({next(iter(evidence.values())).probs.shape[1:]} maps) of {len(keys)} CCP samples; "
          f"clean measurements in {time.perf_counter() - t0:.1f} s (CPU, {os.cpu_count()} cores)")
    probs = np.stack([evidence[i].probs for i in test]).astype(np.float32) / 255.0   # (N, K, h, w)
    probs /= probs.sum(1, keepdims=True)
    n_bad = max(1, round(args.share * len(test)))
    methods = ("heuristics", "model", "model only", "cleanlab")
    print(f"{n_bad} of {len(test)} test samples corrupted per seed; AUROC / precision@{n_bad} "
          f"(mean over {args.seeds} seeds from {args.first_seed}, min-max)")
    print(f"{'mix':7s} " + " ".join(f"{m:>24s}" for m in methods))
    for mix in args.mixes.split(","):
        res = {m: [] for m in methods}
        t_mix = time.perf_counter()
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rng = np.random.default_rng(1000 * seed + len(mix))
            picked = rng.choice(len(test), n_bad, replace=False)
            meas = list(base)
            labels = np.stack([evidence[i].labels for i in test])
            for n, p in enumerate(picked):
                i = test[p]
                s = sample(i, corrupt(gts[i], MIXES[mix][n % len(MIXES[mix])], rng))
                meas[i] = measure(s, checks)
                labels[p] = s.model.labels
            scores = fit_and_score(meas, checks)[test]
            q_heur = scoring.label_quality(scores[:, heur], [checks[j] for j in heur])
            q_model = scoring.label_quality(scores, checks)
            cl, _ = get_label_quality_scores(labels.astype(np.int64), probs, method="softmin", verbose=False)
            y = np.zeros(len(test), bool)
            y[picked] = True
            for m, bad in zip(methods, (1 - q_heur, 1 - q_model, scores[:, mcol], 1 - cl)):
                res[m].append(_auroc_and_precision(y, bad))
        cells = []
        for m in methods:
            a = np.array(res[m])
            cells.append(f"{a[:, 0].mean():.3f} ({a[:, 0].min():.2f}-{a[:, 0].max():.2f}) / {a[:, 1].mean():.2f}")
        print(f"{mix:7s} " + " ".join(f"{c:>24s}" for c in cells) + f"   [{time.perf_counter() - t_mix:.0f} s]")


if __name__ == "__main__":
    main()
