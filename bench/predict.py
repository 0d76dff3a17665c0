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

Garment presence (``--presence --run RUN_DIR``, instead of the parts above): the 994 CCP photos
annotated with image-level tags only (ids 1005-1998, ``annotations/image-level/*.mat``, variable
``tags``; read by the CCP source reader and remapped to Table I as ingest does), each predicted
end to end as ``clothcurate predict`` does (the first of ``--detectors``, crops, the run's
ensemble, the run's own flip TTA setting, paste back). A class counts as predicted in a photo when
its pixels make at least ``--min-share`` of the photo's pixels (default 0.5 %, fixed before the
measure: a 64-px mask pasted back onto a photo turns a few stray crop pixels into hundreds);
per class (background left out): photos tagged, photos predicted, precision and recall of
"predicted" against "tagged", then the macro means at other shares. None of these photos can have
trained the run (they have no mask). Tag noise included: a tag names a garment CCP's annotators
listed, which may be hidden or tiny in the photo.

Run: ``.venv/bin/python bench/predict.py [--every 1] [--detectors ssdlite-pedestrian,hog,ssd]``, or
``.venv/bin/python bench/predict.py --presence --run RUN_DIR [--min-share 0.005]``.
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
    ap.add_argument("--presence", action="store_true",
                    help="instead: garment presence on the 994 tag-only CCP photos (needs --run)")
    ap.add_argument("--min-share", type=float, default=0.005,
                    help="--presence: a class is predicted when it covers at least this share of the photo")
    args = ap.parse_args()
    if args.presence:
        if args.run is None:
            ap.error("--presence needs --run RUN_DIR")
        presence(args)
        return

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


def tag_only_photos(ccp: Path, every: int):
    """``(stem, photo path, Table I classes its tags name)`` of every ``every``-th CCP photo that
    has image-level tags only, in name order (the CCP reader and ingest's remap: background
    dropped; a bad tag file is skipped and named)."""
    from clothcurate.curation.sources.ccp import CCPSource
    from clothcurate.errors import BadSampleError
    from clothcurate.labelmaps import BACKGROUND, TARGET_CLASSES

    source, labelmap = CCPSource(ccp), load_labelmap("ccp")
    targets = np.asarray(labelmap.targets, dtype=np.int64)                      # source id -> Table I id
    refs = [r for r in source.scan()[0] if r.annotation == "image"][::every]
    for ref in refs:
        try:
            ids = source.read_tags(ref)
        except BadSampleError as e:
            print(f"skipped: {e}")
            continue
        if ((ids < 0) | (ids >= len(targets))).any():
            print(f"skipped {ref.source_id}: a tag id outside the CCP vocabulary")
            continue
        yield ref.source_id, Path(ref.image_path), {TARGET_CLASSES[c] for c in np.unique(targets[ids]) if c != BACKGROUND}


def presence(args) -> None:
    """Per-class precision / recall of "class predicted" against the image tags of the tag-only photos."""
    import torch

    from clothcurate.folders import RunFolder
    from clothcurate.inference.predict import read_photo, segment_people
    from clothcurate.inference.segmenter import Segmenter
    from clothcurate.labelmaps import TARGET_CLASSES

    run = RunFolder.open(args.run)
    tta = bool(run.options.get("tta"))
    seg = Segmenter.from_run(run.root, fold="all", device=args.device, tta=tta)
    name = args.detectors.split(",")[0]
    detector = create_detector(name, device=args.device, segmenter=seg)
    size = seg.input_size[0]
    shares, tagged, stems = [], [], []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for stem, path, tags in tqdm(list(tag_only_photos(args.ccp, args.every)), desc="tag-only photos",
                                     unit="photo"):
            photo = read_photo(path)
            if isinstance(photo, str):
                print(f"skipped {path}: {photo}")
                continue
            mask, _ = segment_people(photo, detector.detect(photo), seg, size)
            shares.append(np.bincount(mask.ravel(), minlength=NUM_CLASSES) / mask.size)
            tagged.append([c in tags for c in TARGET_CLASSES])
            stems.append(stem)
    seconds = time.perf_counter() - t0
    share, truth = np.array(shares), np.array(tagged, bool)                   # (P, K), (P, K)
    classes = range(1, NUM_CLASSES)                                             # background left out
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine()) if Path("/proc/cpuinfo").exists() else ""
    print(f"machine: {cpu or platform.machine()} CPU, {os.cpu_count()} cores (load {os.getloadavg()[0]:.1f}), "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), device {args.device}")
    print(f"run {run.root} ({run.arch}/{run.encoder}, {size} px, folds {', '.join(map(str, run.checkpoints()))}, "
          f"flip TTA {'on' if tta else 'off'}); detector {name}")
    print(f"{len(stems)} tag-only CCP photos ({stems[0]}..{stems[-1]}, every {args.every}), "
          f"{seconds:.0f} s ({len(stems) / seconds:.2f} photos/s)")
    print(f"predicted = class pixels >= {100 * args.min_share:g} % of the photo")
    print(f"{'class':<10} {'tagged':>6} {'predicted':>9} {'both':>5} {'precision':>9} {'recall':>7}")

    def pr(predicted: np.ndarray, k: int) -> tuple[float, float, int]:
        both = int((predicted[:, k] & truth[:, k]).sum())
        p = both / predicted[:, k].sum() if predicted[:, k].any() else float("nan")
        r = both / truth[:, k].sum() if truth[:, k].any() else float("nan")
        return p, r, both

    predicted = share >= args.min_share
    for k in classes:
        p, r, both = pr(predicted, k)
        print(f"{TARGET_CLASSES[k]:<10} {int(truth[:, k].sum()):>6} {int(predicted[:, k].sum()):>9} {both:>5} "
              f"{_pct(p):>9} {_pct(r):>7}")
    print("macro means over classes (a class never predicted / never tagged left out of precision / recall), "
          "micro over all (photo, class) pairs:")
    print(f"{'min share':>9} {'macro P':>8} {'macro R':>8} {'micro P':>8} {'micro R':>8}")
    for cut in sorted({0.0, 0.001, 0.002, args.min_share, 0.01, 0.02, 0.05}):
        predicted = share > 0 if cut == 0 else share >= cut
        ps, rs = zip(*(pr(predicted, k)[:2] for k in classes))
        tp = (predicted[:, 1:] & truth[:, 1:]).sum()
        label = "any px" if cut == 0 else f"{100 * cut:g} %"
        print(f"{label:>9} {_pct(np.nanmean(ps)):>8} {_pct(np.nanmean(rs)):>8} "
              f"{_pct(tp / max(1, predicted[:, 1:].sum())):>8} {_pct(tp / max(1, truth[:, 1:].sum())):>8}")


def _pct(x: float) -> str:
    return "-" if x != x else f"{100 * x:.1f}"


if __name__ == "__main__":
    main()
