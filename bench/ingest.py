"""Benchmark: full CCP ingest (both masks per sample, database included) versus a naive serial loop.

Runs both side by side on the same machine in one process, each into its own dataset of a private
MongoDB, and prints images/s, the ratio and our time split (decode, remap, PNG write, database).

    .venv/bin/python bench/ingest.py [--ccp ../shared/datasets/ccp] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def naive_ingest(fo, ccp: Path, dataset: str, out: Path) -> float:
    """The plain serial loop: loadmat -> lookup table -> PIL PNG (both masks) -> add_sample."""
    import numpy as np
    import scipy.io
    from PIL import Image

    from clothcurate.labelmaps import load_labelmap

    lut = load_labelmap("ccp").lut
    ds = fo.Dataset(dataset)
    out.mkdir(parents=True)
    t = time.perf_counter()
    for mat in sorted((ccp / "annotations" / "pixel-level").glob("*.mat")):
        raw = scipy.io.loadmat(mat)["groundtruth"]
        gt = lut[raw]
        Image.fromarray(gt).save(out / f"{mat.stem}.png")
        Image.fromarray(raw).save(out / f"{mat.stem}-raw.png")
        photo = ccp / "photos" / f"{mat.stem}.jpg"
        with Image.open(photo) as im:
            w, h = im.size
        classes = [int(c) for c in np.unique(gt)]
        ds.add_sample(fo.Sample(filepath=str(photo), ground_truth=fo.Segmentation(mask_path=str(out / f"{mat.stem}.png")),
                                raw_ccp=fo.Segmentation(mask_path=str(out / f"{mat.stem}-raw.png")),
                                classes=classes, metadata=fo.ImageMetadata(width=w, height=h)))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ccp", type=Path, default=REPO.parent / "shared" / "datasets" / "ccp")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    os.environ["CLOTHCURATE_HOME"] = str(tmp / "home")
    from clothcurate.curation.mongod import use_private_database

    with use_private_database(tmp / "mongo"):
        t = time.perf_counter()
        import fiftyone as fo

        fo.list_datasets()
        t_import = time.perf_counter() - t
        from clothcurate.curation.ingest import ingest

        t_naive = naive_ingest(fo, args.ccp, "naive", tmp / "naive")
        t = time.perf_counter()
        report = ingest(ccp=args.ccp, dataset="bench", workers=args.workers, progress=False)
        t_ours = time.perf_counter() - t
        # ours also adds the 994 tag-only photos (tags read, photo checked, no mask); the rate below
        # counts only the 1,004 pixel-annotated ones the naive loop does, so it is conservative
        n, tag_only = report.added["ccp"] - report.tag_only["ccp"], report.tag_only["ccp"]
        assert n == 1004 and tag_only == 994 and len(fo.load_dataset("bench")) == 1998
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {sys.version.split()[0]}")
        print(f"fiftyone import + database start (not counted below): {t_import:.1f} s")
        print(f"naive serial loop (loadmat, PIL save x2, add_sample): {t_naive:6.1f} s  {n / t_naive:6.1f} images/s")
        print(f"clothcurate ingest (workers={args.workers or os.cpu_count()}):            "
              f"{t_ours:6.1f} s  {n / t_ours:6.1f} images/s (pixel-annotated; {tag_only} tag-only ones added too)")
        print(f"speed-up: {t_naive / t_ours:.2f}x   (targets: >= 100 images/s, >= 2x)")
        tm = report.timings
        print("ours, time split (decode/remap/png summed over workers; database in the main process):")
        for k in ("decode", "remap", "png", "database"):
            print(f"  {k:9s} {tm[k]:6.2f} s")


if __name__ == "__main__":
    main()
