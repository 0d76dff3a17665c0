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
end to end as ``clothcurate predict`` does (the first of ``--detectors``, its box rule, crops, the run's
ensemble, the run's own flip TTA setting, paste back). A class counts as predicted in a photo when
its pixels make at least ``--min-share`` of the photo's pixels (default 0.5 %, fixed before the
measure: a 64-px mask pasted back onto a photo turns a few stray crop pixels into hundreds);
per class (background left out): photos tagged, photos predicted, precision and recall of
"predicted" against "tagged", then the macro means at other shares. None of these photos can have
trained the run (they have no mask). Tag noise included: a tag names a garment CCP's annotators
listed, which may be hidden or tiny in the photo.

Boxes against the annotation (the first of ``--detectors``, its top box): per side (left, top,
right, bottom) the median and mean offset of the detector's side from the annotation box's, as a
fraction of the annotation box's width (left/right) or height (top/bottom), positive when the
detector's box is the larger there; the share of photos whose box leaves annotated person pixels
outside, and how many; and the same for the crops ``predict`` segments (after the detector's
:class:`~clothcurate.detection.calibration.BoxRule`: subject rule + widening, then crop_box), by
side of the crop. End to end then compares "detector crops, every box as found" (predict before
the box rules) with "detector crops, box rule" (predict now).

Fitting the box calibration (``--fit-calibration --run RUN_DIR [--aspect 1.0]``, instead of the
parts above): the widening per side of the first detector's boxes that maximises the mean IoU of
the crop around the widened box with the crop around the annotation box
(:func:`~clothcurate.detection.calibration.fit_calibration`), on the photos of the folds that have
NO checkpoint in RUN_DIR (so never on the photos the end-to-end part then scores), boxes chosen
by the detector's subject rule (the box overlapping the annotation most), photos where the
detector missed the person (IoU < 0.5) left out. Prints the calibration to write into the
detector's ``BoxRule``.

Throughput (``--throughput --run RUN_DIR [--photos 100]``, instead of the parts above): the same
photos (the first ``--photos`` of the scored folds) through ``clothcurate predict`` in one process
and under ``torchrun --nproc_per_node=2``, one thread per process, each a fresh command (loading
included), photos/s by wall clock; outputs to a temporary folder, deleted after.

Run: ``.venv/bin/python bench/predict.py [--every 1] [--detectors ssdlite-pedestrian,hog,ssd]``, or
``.venv/bin/python bench/predict.py --presence --run RUN_DIR [--min-share 0.005]``, or
``--fit-calibration --run RUN_DIR``, or ``--throughput --run RUN_DIR``.
It prints the machine, one table per part, and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import subprocess
import sys
import tempfile

import cv2
import numpy as np
import scipy.io
from tqdm import tqdm

from clothcurate.detection import DEFAULT_DETECTOR, DETECTORS, PersonBox, create_detector
from clothcurate.detection.calibration import box_rule, crop_iou, fit_calibration, people_to_crop
from clothcurate.geometry import crop_box
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
    ap.add_argument("--fit-calibration", action="store_true",
                    help="instead: fit the first detector's box calibration on the folds without a checkpoint "
                         "in --run")
    ap.add_argument("--aspect", type=float, default=1.0,
                    help="--fit-calibration: crop height / width the crops are compared at (1.0: square)")
    ap.add_argument("--throughput", action="store_true",
                    help="instead: photos/s of `clothcurate predict` in 1 process vs torchrun with 2 (needs --run)")
    ap.add_argument("--photos", type=int, default=100, help="--throughput: how many photos")
    args = ap.parse_args()
    for mode in ("presence", "fit_calibration", "throughput"):
        if getattr(args, mode) and args.run is None:
            ap.error(f"--{mode.replace('_', '-')} needs --run RUN_DIR")
    if args.presence:
        presence(args)
        return
    if args.fit_calibration:
        fit(args)
        return
    if args.throughput:
        throughput(args)
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
    sides = _Sides()
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
        if detectors:
            sides.add(stem, gt, truth, people[next(iter(detectors))])
        if e2e is not None:
            e2e.add(stem, photo, gt, people[next(iter(detectors))] if detectors else [], truth)

    print(f"machine: {_machine()} (torch device for torch detectors: {args.device}); OpenCV {cv2.__version__} "
          f"with {cv2.getNumThreads()} threads")
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
    if detectors:
        sides.report(next(iter(detectors)))
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
        self.size = tuple(self.ensemble.input_size)
        self.judged = 0
        self.cms = {v: np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
                    for v in ("detector crops, every box as found", "detector crops, box rule", "annotation crops",
                              "whole photo")}

    def add(self, stem: str, photo: np.ndarray, gt: np.ndarray, people: list[PersonBox], truth) -> None:
        from clothcurate.inference.predict import segment_people

        key = self.sample_key("ccp", stem)
        if self.fold_of.get(key) not in self.per_fold:
            return
        self.judged += 1
        seg = self.per_fold[self.fold_of[key]]
        height, width = gt.shape
        variants = {"detector crops, every box as found": people,
                    "detector crops, box rule": [p for _, p in people_to_crop(people, width=width, height=height)],
                    "annotation crops": [PersonBox(box=truth, score=1.0, detector="annotation")] if truth[2] else [],
                    "whole photo": []}
        for variant, boxes in variants.items():
            pred, _ = segment_people(photo, boxes, seg, self.size)
            self.cms[variant] += np.bincount(gt.astype(np.int64).ravel() * NUM_CLASSES + pred.ravel(),
                                             minlength=NUM_CLASSES ** 2).reshape(NUM_CLASSES, NUM_CLASSES)

    def report(self, detector: str) -> None:
        from clothcurate.training.metrics import scores_from_confusion

        print(f"full-frame mIoU over {self.judged} photos, out-of-fold models (detector crops: {detector}, "
              f"box rule: {box_rule(detector)}):")
        for variant, cm in self.cms.items():
            print(f"  {variant:<36} {100 * scores_from_confusion(cm)['mean']['iou']:.2f}")


def _machine() -> str:
    """CPU model, cores and load average (the benches share the machine)."""
    info = Path("/proc/cpuinfo")
    cpu = next((line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
                if line.startswith("model name")), "") if info.exists() else ""
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return f"{cpu or platform.machine()} CPU, {os.cpu_count()} cores, load average {load}"


def _corners(box) -> tuple[int, int, int, int]:
    x, y, w, h = box
    return x, y, x + w, y + h


class _Sides:
    """How the first detector's boxes differ from the annotation box, side by side, and which
    annotated person pixels fall outside the box / outside every crop predict segments."""

    def __init__(self):
        self.offsets: list[list[float]] = []           # (left, top, right, bottom) per photo with a box
        self.box_cut: list[tuple[int, int]] = []        # (person px outside the top box, person px)
        self.crop_cut: dict[str, list[int]] = {"every box as found": [], "box rule": []}
        self.crop_side: list[np.ndarray] = []            # person px above / below / left / right of the crop
        self.worst: list[tuple[float, str]] = []
        self.no_box = 0

    def add(self, stem: str, gt: np.ndarray, truth, people: list[PersonBox]) -> None:
        person = gt > 0
        tx0, ty0, tx1, ty1 = _corners(truth)
        if tx1 == tx0:  # no person pixel
            return
        if not people:
            self.no_box += 1
            return
        height, width = gt.shape
        x0, y0, x1, y1 = _corners(people[0].box)
        tw, th = tx1 - tx0, ty1 - ty0
        self.offsets.append([(tx0 - x0) / tw, (ty0 - y0) / th, (x1 - tx1) / tw, (y1 - ty1) / th])
        total = int(person.sum())
        self.box_cut.append((total - int(person[y0:y1, x0:x1].sum()), total))
        variants = {"every box as found": people,
                    "box rule": [p for _, p in people_to_crop(people, width=width, height=height)]}
        for variant, chosen in variants.items():
            inside = np.zeros_like(person)
            crops = [crop_box(p.relative(width=width, height=height), width=width, height=height) for p in chosen]
            for cx0, cy0, cx1, cy1 in crops:
                inside[cy0:cy1, cx0:cx1] = True
            lost = int((person & ~inside).sum())
            self.crop_cut[variant].append(lost)
        # by side of the kept crop that overlaps the annotation most
        cx0, cy0, cx1, cy1 = max(crops, key=lambda c: iou((c[0], c[1], c[2] - c[0], c[3] - c[1]), truth))
        self.crop_side.append(np.array([person[:cy0].sum(), person[cy1:].sum(), person[cy0:cy1, :cx0].sum(),
                                        person[cy0:cy1, cx1:].sum()]))
        self.worst.append((lost / total, stem))

    def report(self, detector: str) -> None:
        off = np.array(self.offsets)
        cut = np.array(self.box_cut)
        print(f"{detector}: top box vs annotation box over {len(off)} photos with a box ({self.no_box} without); "
              "offset of each side as a fraction of the annotation box's width / height, positive = the "
              "detector's box is larger there:")
        print(f"{'':>8} {'left':>7} {'top':>7} {'right':>7} {'bottom':>7}")
        for label, f in (("median", np.median), ("mean", np.mean), ("p10", lambda a, axis: np.percentile(a, 10, axis)),
                         ("p90", lambda a, axis: np.percentile(a, 90, axis))):
            print(f"{label:>8} " + " ".join(f"{v:>+7.3f}" for v in f(off, axis=0)))
        print("share of photos with the side inside the annotation box by more than 5 %: "
              + ", ".join(f"{s} {100 * v:.1f} %" for s, v in zip(("left", "top", "right", "bottom"),
                                                                    (off < -0.05).mean(0))))
        cut_any = cut[:, 0] > 0
        print(f"annotated person pixels outside the top box: {100 * cut_any.mean():.1f} % of photos; among them "
              f"median {np.median(cut[cut_any, 0]):.0f} px ({100 * np.median(cut[cut_any, 0] / cut[cut_any, 1]):.1f} %"
              f" of the person), mean {100 * np.mean(cut[:, 0] / cut[:, 1]):.2f} % of the person over all photos")
        for variant, lost in self.crop_cut.items():
            lost = np.array(lost)
            share = lost / cut[:, 1]
            print(f"person pixels outside every crop predict segments ({variant}; crop_box, square): "
                  f"{100 * (lost > 0).mean():.1f} % of photos, > 1 % of the person in {100 * (share > 0.01).mean():.1f} %,"
                  f" mean {100 * share.mean():.2f} % of the person")
        side = np.sum(self.crop_side, axis=0)
        print("  (box rule) where the lost pixels are, relative to the subject's crop: "
              + ", ".join(f"{s} {100 * v / max(1, side.sum()):.0f} %" for s, v in zip(("above", "below", "left", "right"),
                                                                                        side)))
        print("  worst photos (box rule, share of the person lost): "
              + ", ".join(f"{stem} {100 * share:.0f} %" for share, stem in sorted(self.worst, reverse=True)[:8]))


def fit(args) -> None:
    """Fit the first detector's box calibration on the folds without a checkpoint in ``args.run``."""
    from clothcurate.folders import RunFolder
    from clothcurate.workspace import sample_key

    run = RunFolder.open(args.run)
    fold_of = {s.key: s.fold for s in run.export().samples}
    scored = set(run.checkpoints())
    name = args.detectors.split(",")[0]
    detector, rule = create_detector(name, device=args.device), box_rule(name)
    pairs, missed, used_folds = [], [], set()
    for stem, photo, gt in tqdm(ccp_photos(args.ccp, args.every), total=len(range(0, 1004, args.every)),
                                desc="photos", unit="photo"):
        fold = fold_of.get(sample_key("ccp", stem))
        truth = tuple(cv2.boundingRect(gt))
        if fold is None or fold in scored or not truth[2]:
            continue
        used_folds.add(fold)
        people = detector.detect(photo)
        kept = [people[i] for i in rule.subjects.select(people)]
        best = max(kept, key=lambda p: iou(p.box, truth), default=None)
        if best is None or iou(best.box, truth) < 0.5:
            missed.append(stem)
            continue
        pairs.append((best.box, truth, (photo.shape[1], photo.shape[0])))
    if not pairs:
        raise SystemExit(f"error: {args.run}: every fold has a checkpoint (or no CCP photo is in its export): "
                         "no photo to fit on that the run does not score")
    calibration = fit_calibration(pairs, aspect=args.aspect)
    print(f"machine: {_machine()}")
    print(f"{name}: fitted on {len(pairs)} CCP photos of folds {sorted(used_folds)} of {run.root} (folds "
          f"{sorted(scored)} have checkpoints and are left out); {len(missed)} photos where the kept boxes miss "
          f"the person (IoU < 0.5) left out; crops compared at aspect {args.aspect}")
    for label, cal in (("as found", type(calibration)()), ("current rule", rule.calibration), ("fitted", calibration)):
        print(f"  {label:<13} {cal.as_list()}  mean crop IoU with the annotation crop "
              f"{crop_iou(cal, pairs, aspect=args.aspect).mean():.4f}")
    print(f"BoxCalibration(left={calibration.left}, top={calibration.top}, right={calibration.right}, "
          f"bottom={calibration.bottom})")


def throughput(args) -> None:
    """Photos/s of ``clothcurate predict`` in one process vs under torchrun with two."""
    paths = [str(p) for p in sorted((args.ccp / "photos").glob("*.jpg"))[:args.photos]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    tail = ["predict", "--run", str(args.run), "--device", args.device, "--detector", args.detectors.split(",")[0]]
    commands = {"1 process": [sys.executable, "-m", "clothcurate", *tail],
                "torchrun, 2 processes": [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                          "--nproc_per_node=2", "-m", "clothcurate", "--", *tail]}
    print(f"machine: {_machine()} (before)")
    rates = {}
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        for label, cmd in commands.items():
            out = Path(tmp) / label.replace(" ", "_").replace(",", "")
            t0 = time.perf_counter()
            done = subprocess.run([*cmd, "--out", str(out), *paths], env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - t0
            if done.returncode:
                raise SystemExit(f"error: {label} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
            written = len(list(out.glob("*.png")))
            rates[label] = written / seconds
            print(f"  {label:<22} {written} photos in {seconds:.1f} s: {rates[label]:.2f} photos/s "
                  f"(load average now {os.getloadavg()[0]:.1f})")
    print(f"torchrun 2 / 1 process: x{rates['torchrun, 2 processes'] / rates['1 process']:.2f}; "
          f"run {args.run}, {len(paths)} CCP photos, OMP_NUM_THREADS=1, wall clock including start-up and loading")


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
    size = tuple(seg.input_size)
    shares, tagged, stems = [], [], []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for stem, path, tags in tqdm(list(tag_only_photos(args.ccp, args.every)), desc="tag-only photos",
                                     unit="photo"):
            photo = read_photo(path)
            if isinstance(photo, str):
                print(f"skipped {path}: {photo}")
                continue
            people = detector.detect(photo)
            chosen = [p for _, p in people_to_crop(people, width=photo.shape[1], height=photo.shape[0])]
            mask, _ = segment_people(photo, chosen, seg, size)
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
