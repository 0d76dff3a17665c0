"""Fold balance and export time on the full CCP (prints figures; not a test).

1. Class presence of the 1,004 CCP annotations, read straight from the .mat files with the CCP
   label map (no FiftyOne). For seeds 0..4, the largest deviation of a class's image share in a
   fold from its overall share (classes with >= 20 images), side by side: shuffled ``KFold``,
   plain ``MultilabelStratifiedKFold`` and ``assign_folds`` (ours).
2. Unless ``--no-export``: ingest CCP into a temporary FiftyOne database and time
   ``export_folds`` for png, coco, and crop person 320.

Usage::

    .venv/bin/python bench/folds.py [--ccp ../shared/datasets/ccp] [--no-export]
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _presence(ccp: Path):
    import numpy as np

    from clothcurate.curation.sources import get_source
    from clothcurate.labelmaps import NUM_CLASSES, load_labelmap

    source, labelmap = get_source("ccp", ccp), load_labelmap("ccp")
    refs, _, _ = source.scan()
    rows = []
    for ref in refs:
        if ref.annotation != "pixel":  # image-level tags only: no mask, never in a fold
            continue
        gt = labelmap.remap(source.read(ref).masks[""], source_id=ref.source_id)
        rows.append(np.bincount(gt.ravel(), minlength=NUM_CLASSES) > 0)
    return np.array(rows)


def _folds_table(presence) -> None:
    import numpy as np
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
    from sklearn.model_selection import KFold

    from clothcurate.curation.folds import assign_folds, fold_deviation

    def from_splitter(splitter, y=None):
        folds = np.empty(len(presence), dtype=int)
        for f, (_, test) in enumerate(splitter.split(np.zeros((len(presence), 1)), y)):
            folds[test] = f
        return folds

    print(f"largest deviation of a class's image share in a fold from its overall share "
          f"({len(presence)} samples, 5 folds, classes with >= 20 images)")
    print(f"{'seed':>4} {'KFold':>8} {'MSKF':>8} {'ours':>8} {'ours s':>7}  fold sizes (ours)")
    for seed in range(5):
        kf = fold_deviation(presence, from_splitter(KFold(5, shuffle=True, random_state=seed)))
        ms = fold_deviation(presence, from_splitter(
            MultilabelStratifiedKFold(n_splits=5, shuffle=True, random_state=seed), presence))
        t0 = time.perf_counter()
        ours = assign_folds(presence, k=5, seed=seed)
        dt = time.perf_counter() - t0
        print(f"{seed:>4} {kf:>8.4f} {ms:>8.4f} {fold_deviation(presence, ours):>8.4f} {dt:>7.2f}  "
              f"{np.bincount(ours).tolist()}")


def _export_times(ccp: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="clothcurate-bench-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    from clothcurate.curation.mongod import use_private_workspace

    atexit.register(use_private_workspace(tmp).close)  # runs before the rmtree above
    from clothcurate.curation.export import export_folds
    from clothcurate.curation.ingest import ingest

    t0 = time.perf_counter()
    ingest(ccp=ccp, dataset="bench", progress=False)
    print(f"ingest (for the export): {time.perf_counter() - t0:.1f} s")
    for label, options in (("png", {"fmt": "png"}), ("coco", {"fmt": "coco"}),
                           ("png, crop person 320", {"fmt": "png", "crop": "person", "size": 320})):
        t0 = time.perf_counter()
        report = export_folds(dataset="bench", out=tmp / label.replace(" ", "_").replace(",", ""),
                              progress=False, **options)
        print(f"export {label:<22} {report.n_exported} samples: {time.perf_counter() - t0:6.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ccp", type=Path, default=REPO.parent / "shared" / "datasets" / "ccp")
    parser.add_argument("--no-export", action="store_true", help="only the fold balance table")
    args = parser.parse_args()
    print(f"CPU: {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f})")
    t0 = time.perf_counter()
    presence = _presence(args.ccp)
    print(f"class presence from the .mat files: {time.perf_counter() - t0:.1f} s")
    _folds_table(presence)
    if not args.no_export:
        _export_times(args.ccp)


if __name__ == "__main__":
    main()
