"""Benchmark of ``clothcurate annotate``: send N real CCP samples to a real Label Studio, submit an
annotation for each through Label Studio's REST API (every tenth with a block of its largest class
painted as another class), load, and check the round trip pixel for pixel.

Runs on a private FiftyOne database, workspace and Label Studio server (``.venv-labelstudio``,
``make install``) in a temporary folder, never the user's::

    python bench/annotate.py [--ccp ../shared/datasets/ccp] [--samples 100]

Prints: server start, send, annotate-by-API and load times; samples changed; pixels that differ
from what is expected (must be 0).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ccp", type=Path, default=_REPO.parent / "shared" / "datasets" / "ccp")
    ap.add_argument("--samples", type=int, default=100)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="clothcurate-bench-annotate-"))
    sys.path.insert(0, str(_REPO))
    from clothcurate.curation.annotate.local_server import private_label_studio
    from clothcurate.curation.mongod import use_private_workspace

    stack = use_private_workspace(tmp)
    try:
        t = time.perf_counter()
        with private_label_studio(tmp / "labelstudio") as (url, key):
            print(f"Label Studio start (fresh SQLite, migrations): {time.perf_counter() - t:.1f} s")
            _run(args, tmp, url, key)
    finally:
        stack.close()


def _subset(ccp: Path, root: Path, n: int) -> Path:
    """A CCP folder of the first n pixel-annotated samples (symlinks to the real files), made by
    the tests' own helper so bench and tests read the same layout."""
    sys.path.insert(0, str(_REPO / "tests"))
    from ccp_layout import make_ccp_subset

    ids = sorted(p.stem for p in (ccp / "annotations" / "pixel-level").glob("*.mat"))[:n]
    return make_ccp_subset(root, ccp, ids)


def _run(args, tmp: Path, url: str, key: str) -> None:
    import cv2
    import requests
    from label_studio_sdk.converter.brush import decode_rle, mask2rle

    from clothcurate.curation.annotate import load, send
    from clothcurate.curation.db import load_dataset
    from clothcurate.curation.ingest import ingest
    from clothcurate.labelmaps import TARGET_CLASSES

    ingest(ccp=_subset(args.ccp, tmp / "ccp", args.samples), dataset="bench-annotate", progress=False)
    ds = load_dataset("bench-annotate")
    before = {k: cv2.imread(p, cv2.IMREAD_UNCHANGED) for k, p in zip(*ds.values(["key", "ground_truth.mask_path"]))}

    t = time.perf_counter()
    report = send("bench-annotate", anno_key="bench", url=url, api_key=key)
    t_send = time.perf_counter() - t
    print(report.summary().splitlines()[0])

    headers = {"Authorization": f"Token {key}"}
    tasks = ds.load_annotation_results("bench").uploaded_tasks
    key_of = dict(zip(*ds.values(["id", "key"])))
    expected = {k: m.copy() for k, m in before.items()}
    t = time.perf_counter()
    for i, (task, sample_id) in enumerate(sorted(tasks.items())):
        result = requests.get(f"{url}/api/predictions", params={"task": task}, headers=headers,
                              timeout=60).json()[0]["result"]
        k = key_of[sample_id]
        if i % 10 == 0:  # paint a 40 x 40 block of the largest class as a class the photo lacks
            gt = before[k]
            big = int(np.argmax(np.bincount(gt.ravel(), minlength=len(TARGET_CLASSES))[1:])) + 1
            new = next(c for c in range(1, len(TARGET_CLASSES)) if not (gt == c).any())
            ys, xs = np.nonzero(gt == big)
            cy, cx = int(np.median(ys)), int(np.median(xs))
            block = np.zeros(gt.shape, bool)
            block[max(cy - 20, 0):cy + 20, max(cx - 20, 0):cx + 20] = True
            block &= gt == big
            for r in result:
                if r["value"]["brushlabels"] == [TARGET_CLASSES[big]]:
                    h, w = r["original_height"], r["original_width"]
                    painted = decode_rle(r["value"]["rle"]).reshape(h, w, 4)[:, :, 3] > 0
                    r["value"]["rle"] = mask2rle((painted & ~block).astype(np.uint8) * 255)
            result.append({**result[0], "id": f"bench{i:05d}",
                           "value": {"format": "rle", "rle": mask2rle(block.astype(np.uint8) * 255),
                                     "brushlabels": [TARGET_CLASSES[new]]}})
            expected[k][block] = new
        r = requests.post(f"{url}/api/tasks/{task}/annotations", headers=headers, timeout=60,
                          json={"result": result, "was_cancelled": False})
        r.raise_for_status()
    t_annotate = time.perf_counter() - t

    t = time.perf_counter()
    loaded = load("bench-annotate", anno_key="bench", api_key=key)
    t_load = time.perf_counter() - t
    print(loaded.summary().splitlines()[0])
    ds.reload()
    after = {k: cv2.imread(p, cv2.IMREAD_UNCHANGED) for k, p in zip(*ds.values(["key", "ground_truth.mask_path"]))}
    wrong = sum(int((after[k] != expected[k]).sum()) for k in before)
    unchanged_identical = all(np.array_equal(after[k], before[k]) for k in before
                              if np.array_equal(expected[k], before[k]))
    print(f"\nsamples: {len(before)}; send {t_send:.1f} s; annotator submits by REST {t_annotate:.1f} s; "
          f"load {t_load:.1f} s; changed {len(loaded.lines)} samples")
    print(f"pixels differing from the expected masks: {wrong}; unchanged masks identical: {unchanged_identical}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (CPU only)")


if __name__ == "__main__":
    main()
