"""Benchmark of ``clothcurate predict`` on CCP: person detection, and (with ``--run``) end-to-end
full-frame accuracy.

Reads CCP in place (``--ccp``, default ../shared/datasets/ccp; no FiftyOne, no database).

Detection, every detector side by side on the same photos in the same run: each of the 1,004
pixel-annotated photos (every ``--every``-th) against its annotation person box, the extent of the
non-background pixels of its 15-class mask exactly as ingest computes it (the .mat read with
scipy, remapped with the built-in CCP label map). Per detector:

* recall@0.5: the top-scoring box has IoU >= 0.5 with the annotation box; any@0.5: some box
  does (``predict`` crops every person found, so this is its recall of the annotated person);
  largest@0.5: the largest box does (CCP's subject is the photo's largest person);
* mean IoU of the top-scoring box (0 when nothing is found); found: photos with any box;
* ms/photo: wall-clock of ``detect`` alone (the photo decoded beforehand), mean over photos.

A torchvision detector (``ssd``, ``ssdlite``) whose weights are not in the torch hub cache is
listed as "not measured: no cached weights" (clothcurate never downloads them).

End to end (``--run RUN_DIR`` with ``folds/<k>/best.pt``; needs the run's model detector
registered by :mod:`clothcurate.inference`): each photo predicted by the fold model that did not
train on it, mIoU (15 classes, confusion summed over photos) with detector crops (the first of
``--detectors``), annotation crops and the whole photo.

Run: ``.venv/bin/python bench/predict.py [--every 1] [--detectors ssdlite-pedestrian,hog,ssd]``.
It prints the machine, one table per part, and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import scipy.io
from tqdm import tqdm

from clothcurate.detection import DEFAULT_DETECTOR, DETECTORS, PersonBox, create_detector
from clothcurate.errors import BadInputError
from clothcurate.labelmaps import NUM_CLASSES, load_labelmap

REPO = Path(__file__).resolve().parents[1]
CCP = Path(os.environ.get("CLOTHCURATE_TEST_CCP", REPO.parent / "shared" / "datasets" / "ccp"))


def iou(a, b) -> float:
    """IoU of two ``(x, y, w, h)`` pixel boxes."""
    iw = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / max(1, a[2] * a[3] + b[2] * b[3] - inter)


def ccp_photos(ccp: Path, every: int):
    """``(stem, (H, W, 3) uint8 RGB photo, (H, W) uint8 15-class annotation)`` of every ``every``-th
    pixel-annotated CCP photo, in name order."""
    labelmap = load_labelmap("ccp")
    mats = sorted((ccp / "annotations" / "pixel-level").glob("*.mat"))[::every]
    for mat in mats:
        stem = mat.stem
        # masks follow the stored pixels: never apply an EXIF orientation (as ingest)
        bgr = cv2.imread(str(ccp / "photos" / f"{stem}.jpg"), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        gt = labelmap.remap(scipy.io.loadmat(mat)["groundtruth"], source_id=stem)
        yield stem, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), gt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ccp", type=Path, default=CCP)
    ap.add_argument("--every", type=int, default=1, help="every N-th annotated CCP photo (1 = all 1,004)")
    ap.add_argument("--detectors", default=",".join([DEFAULT_DETECTOR] + sorted(set(DETECTORS) - {DEFAULT_DETECTOR})),
                    help="comma-separated registry names")
    ap.add_argument("--device", default="cpu", help="for the torch detectors (and --run)")
    ap.add_argument("--run", type=Path, default=None, help="also measure end-to-end accuracy with this run")
    args = ap.parse_args()

    e2e = _EndToEnd(args.run, args.device) if args.run else None
    detectors, missing = {}, {}
    for name in args.detectors.split(","):
        try:
            detectors[name] = create_detector(name, device=args.device,
                                              segmenter=e2e.ensemble if e2e else None)
        except BadInputError as e:
            missing[name] = "no cached weights" if "no cached" in str(e) else str(e)
    top = {n: [] for n in detectors}
    best = {n: [] for n in detectors}
    largest = {n: [] for n in detectors}
    found = {n: [] for n in detectors}
    ms = {n: [] for n in detectors}
    n = 0
    for stem, photo, gt in tqdm(ccp_photos(args.ccp, args.every), total=len(range(0, 1004, args.every)),
                                desc="photos", unit="photo"):
        n += 1
        truth = tuple(cv2.boundingRect(gt))  # extent of the non-background pixels, as ingest
        people = {}
        for name, det in detectors.items():
            t0 = time.perf_counter()
            boxes = det.detect(photo)
            ms[name].append(1000 * (time.perf_counter() - t0))
            people[name] = boxes
            top[name].append(iou(boxes[0].box, truth) if boxes else 0.0)
            best[name].append(max((iou(b.box, truth) for b in boxes), default=0.0))
            big = max(boxes, key=lambda b: b.box[2] * b.box[3], default=None)
            largest[name].append(iou(big.box, truth) if big else 0.0)
            found[name].append(bool(boxes))
        if e2e is not None:
            e2e.add(stem, photo, gt, people[next(iter(detectors))] if detectors else [], truth)

    print(f"machine: {platform.machine()} CPU, {os.cpu_count()} cores (torch device for torch detectors: "
          f"{args.device}); OpenCV {cv2.__version__} with {cv2.getNumThreads()} threads")
    print(f"{n} CCP photos (every {args.every}{'st' if args.every == 1 else 'th'} of the 1,004 pixel-annotated), "
          "annotation person box = extent of the non-background mask")
    print(f"{'detector':<20} {'recall@0.5':>10} {'any@0.5':>8} {'largest@0.5':>11} {'mean IoU':>9} {'found':>7} "
          f"{'ms/photo':>9}")
    for name in detectors:
        t, b, g = np.array(top[name]), np.array(best[name]), np.array(largest[name])
        print(f"{name:<20} {100 * (t >= 0.5).mean():>9.1f}% {100 * (b >= 0.5).mean():>7.1f}% "
              f"{100 * (g >= 0.5).mean():>10.1f}% {t.mean():>9.3f} {100 * np.mean(found[name]):>6.1f}% "
              f"{np.mean(ms[name]):>9.1f}")
    for name, why in missing.items():
        print(f"{name:<20} not measured: {why}")
    if e2e is not None:
        e2e.report(next(iter(detectors)) if detectors else "none")


class _EndToEnd:
    """Full-frame mIoU of out-of-fold predictions: detector crops vs annotation crops vs whole photo."""

    def __init__(self, run_dir: Path, device: str):
        from clothcurate.folders import RunFolder
        from clothcurate.inference.segmenter import Segmenter
        from clothcurate.workspace import sample_key

        self.sample_key = sample_key
        run = RunFolder.open(run_dir)
        self.fold_of = {s.key: s.fold for s in run.export().samples}
        self.per_fold = {k: Segmenter.from_run(run.root, fold=k, device=device) for k in sorted(run.checkpoints())}
        self.ensemble = Segmenter.from_run(run.root, fold="all", device=device)
        self.size = self.ensemble.input_size[0]
        self.judged = 0
        self.cms = {v: np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
                    for v in ("detector crops", "annotation crops", "whole photo")}

    def add(self, stem: str, photo: np.ndarray, gt: np.ndarray, people: list[PersonBox], truth) -> None:
        from clothcurate.inference.predict import segment_people

        key = self.sample_key("ccp", stem)
        if self.fold_of.get(key) not in self.per_fold:
            return
        self.judged += 1
        seg = self.per_fold[self.fold_of[key]]
        variants = {"detector crops": people,
                    "annotation crops": [PersonBox(box=truth, score=1.0, detector="annotation")] if truth[2] else [],
                    "whole photo": []}
        for variant, boxes in variants.items():
            pred, _ = segment_people(photo, boxes, seg, self.size)
            self.cms[variant] += np.bincount(gt.astype(np.int64).ravel() * NUM_CLASSES + pred.ravel(),
                                             minlength=NUM_CLASSES ** 2).reshape(NUM_CLASSES, NUM_CLASSES)

    def report(self, detector: str) -> None:
        from clothcurate.training.metrics import scores_from_confusion

        print(f"full-frame mIoU over {self.judged} photos, out-of-fold models (detector crops: {detector}):")
        for variant, cm in self.cms.items():
            print(f"  {variant:<17} {100 * scores_from_confusion(cm)['mean']['iou']:.1f}")


if __name__ == "__main__":
    main()
