"""``clothcurate predict``: segment new photos end to end (the paper's Fig. 5 pipeline).

For each photo: detect the people (:mod:`clothcurate.detection`, or the run's own model:
:mod:`.model_detector`), keep and widen their boxes by the detector's box rule
(:mod:`clothcurate.detection.calibration`: ``ssdlite-pedestrian`` keeps the people at least 0.7 as
tall as the tallest, passers-by behind the subject left out, and widens each box as fitted on
CCP), crop each person as the export does (:func:`clothcurate.geometry.crop_box`: the box plus
a 5 % margin, grown to the model input's aspect ratio), resize the crop to the model's input,
segment it (:class:`.segmenter.Segmenter`: one fold or the run's ensemble, the evaluation's
post-processing, optional flip TTA), paste the labels back into the
photo frame and, where two people's crops overlap, keep at each pixel the label of the more
confident crop. A photo where no person is found is segmented whole (as an export without
crop). Photos are read as stored (EXIF orientation not applied), as the training masks are.

Outputs, per photo ``<stem>.<ext>``, in ``OUT_DIR`` (each written atomically):

* ``<stem>.png``: (H, W) uint8 15-class mask at the photo's own size;
* ``<stem>.json``: ``{"photo", "size": [w, h], "persons": [{"box": [x, y, w, h], "score",
  "detector", "crop": [x0, y0, x1, y1] | null}], "garments": [{"class", "pixel_share", "color"}]}``;
  ``box`` is the detector's box as found, ``crop`` the pixel box segmented for that person (x1/y1
  exclusive; null: left out by the box rule); garments are the predicted
  classes other than background, skin and hair, largest first, ``pixel_share`` their fraction of
  the photo's pixels, ``color`` the CFPD colour name of the region's dominant colour
  (:mod:`clothcurate.garment_colors`);
* ``<stem>_overlay.jpg`` with ``overlay=True``: the photo blended with the class colours.

With ``dataset``, the photos are also added to (or updated in) a FiftyOne dataset with ``pred``,
``persons`` and ``garments`` (:mod:`.to_dataset`).

A photo that cannot be read is skipped and named in the report (the others are still done);
``strict=True`` stops at the first. Re-running rewrites the same files.

Under ``torchrun --nproc_per_node=N`` (the process group of training,
:mod:`clothcurate.training.distributed`) the photos are shared out: rank r takes every N-th photo
of the list from r on, writes their files, and rank 0 gathers the per-photo results, writes the
dataset alone and returns the report of all photos (skipped ones included). An error on any rank
stops every rank at its next batch with one error line (:mod:`.scale_out`). Masks do not depend on
N: each photo's crops are segmented on their own (the ``model`` detector batches photos in its
first pass, where the batch can change the float rounding of its boxes).

Example::

    report = predict_photos(run_dir="runs/fpn", out_dir="pred/", paths=["photos/"])
    print(report.summary())
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from clothcurate.atomic import atomic_path, write_json
from clothcurate.errors import BadInputError, StoppedWithOtherRank
from clothcurate.geometry import Size, aspect_of, crop_box, crop_image, paste_back
from clothcurate.detection import DEFAULT_DETECTOR, DETECTORS, PersonBox, create_detector, people_to_crop
from clothcurate.garment_colors import garment_colors
from clothcurate.inference.scale_out import agree
from clothcurate.inference.segmenter import Segmenter
from clothcurate.inference.to_dataset import PhotoPrediction
from clothcurate.masks import write_mask_png
from clothcurate.training.distributed import DistContext, setup

__all__ = ["PHOTO_SUFFIXES", "PredictReport", "find_photos", "predict_photos", "segment_people", "read_photo"]

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass
class PredictReport:
    """What :func:`predict_photos` did.

    Attributes:
        out_dir: where the outputs are.
        written: photos segmented (their stems).
        skipped: ``(photo, reason)`` of photos that could not be read.
        persons: people found over all photos.
        whole_photo: photos where no person was found (segmented whole).
        models: models applied per crop (folds of the ensemble).
        tta_scales: the flip TTA's scales (``(1.0,)``: flip only); None: no TTA.
        dataset: ``(name, samples in it)`` when the photos were added to a FiftyOne dataset.
        seconds: wall time.
        ranks: processes that shared the photos (``torchrun --nproc_per_node``; 1 alone).
        is_main: False on torchrun ranks other than 0, whose report is empty (rank 0's holds
            every rank's photos).
    """

    out_dir: Path
    written: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    persons: int = 0
    whole_photo: list[str] = field(default_factory=list)
    models: int = 1
    tta_scales: tuple[float, ...] | None = None
    dataset: tuple[str, int] | None = None
    seconds: float = 0.0
    ranks: int = 1
    is_main: bool = True

    def summary(self) -> str:
        """A few lines for the terminal (empty on torchrun ranks other than 0, so a job prints it once)."""
        if not self.is_main:
            return ""
        n = len(self.written)
        ranks = f"{self.ranks} processes, " if self.ranks > 1 else ""
        if self.tta_scales is not None:
            ranks = f"flip TTA at scale(s) {','.join(f'{v:g}' for v in self.tta_scales)}, " + ranks
        lines = [f"predict: {n} photo(s) segmented into {self.out_dir} ({self.persons} person(s), "
                 f"{self.models} model(s), {ranks}{self.seconds:.1f} s, {n / max(self.seconds, 1e-9):.2f} photos/s)"]
        if self.dataset:
            lines.append(f"  FiftyOne dataset {self.dataset[0]!r}: pred, persons, garments ({self.dataset[1]} samples)")
        if self.whole_photo:
            lines.append(f"  no person found in {len(self.whole_photo)} photo(s), segmented whole: "
                         + ", ".join(self.whole_photo[:10]) + (" ..." if len(self.whole_photo) > 10 else ""))
        if self.skipped:
            lines.append(f"  {len(self.skipped)} photo(s) skipped:")
            lines += [f"    {p}: {why}" for p, why in self.skipped[:20]]
            if len(self.skipped) > 20:
                lines.append(f"    ... and {len(self.skipped) - 20} more")
        return "\n".join(lines)


def find_photos(paths: Sequence[str | Path]) -> list[Path]:
    """The photos named by files, folders (their photos, not recursively) and glob patterns.

    Raises:
        BadInputError: a path that is neither a file, a folder nor a matching pattern; no photo
            at all; or two photos with the same stem (their outputs would collide).
    """
    found: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            found += sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in PHOTO_SUFFIXES)
        elif p.is_file():
            found.append(p)
        elif glob.has_magic(str(raw)):
            matches = sorted(Path(m) for m in glob.glob(str(p)))
            if not matches:
                raise BadInputError(f"{raw}: no file matches this pattern; pass photos, folders or globs")
            found += [m for m in matches if m.is_file()]
        else:
            raise BadInputError(f"{raw}: no such photo or folder; pass photos, folders or globs")
    if not found:
        raise BadInputError(f"{', '.join(map(str, paths)) or 'no path'}: no photos found "
                            f"({', '.join(PHOTO_SUFFIXES)}); pass photos, folders or globs")
    seen: dict[str, Path] = {}
    unique = []
    for p in found:
        if p.stem in seen and seen[p.stem].resolve() == p.resolve():
            continue  # the same file named twice
        if p.stem in seen:
            raise BadInputError(f"{seen[p.stem]} and {p}: same name {p.stem!r}, so their outputs would "
                                "overwrite each other; predict them into different --out folders")
        seen[p.stem] = p
        unique.append(p)
    return unique


def read_photo(path: Path) -> np.ndarray | str:
    """A photo as (H, W, 3) uint8 RGB as stored (EXIF orientation not applied), or the reason it
    cannot be read."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        return f"cannot read ({e.strerror or e})"
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if image is None:
        return "not a readable image (empty, truncated or not a photo format OpenCV decodes)"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def segment_people(photo: np.ndarray, people: Sequence[PersonBox], segmenter: Segmenter,
                   size: int | Size) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Crop, segment and paste back every person of one photo (the whole photo when none).

    Args:
        photo: (H, W, 3) uint8 RGB.
        people: the detected persons (pixel boxes).
        segmenter: the run's model(s).
        size: ``(h, w)`` of the model input (``S``: square); each person's crop box is grown to its
            aspect ratio, as the export grew the training crops.

    Returns:
        ``((H, W) uint8 labels, the crop boxes used)``; where crops overlap, the more confident
        crop's label wins.
    """
    height, width = photo.shape[:2]
    aspect = aspect_of(size)
    boxes = [crop_box(p.relative(width=width, height=height), width=width, height=height, aspect=aspect)
             for p in people]
    boxes = boxes or [(0, 0, width, height)]
    crops = np.stack([crop_image(photo, box=b, size=size) for b in boxes])
    out = segmenter(torch.from_numpy(crops).permute(0, 3, 1, 2).contiguous())
    labels = out.labels.to(torch.uint8).cpu().numpy()                            # (P, h, w)
    confidence = out.probs.max(1).values.cpu().numpy()                           # (P, h, w)
    mask = np.zeros((height, width), np.uint8)
    best = np.full((height, width), -1.0, np.float32)
    for b, lab, conf in zip(boxes, labels, confidence):
        lab_full = paste_back(lab, crop_box=b, orig_size=(width, height))
        conf_full = paste_back(conf, crop_box=b, orig_size=(width, height), fill=-1.0)
        better = conf_full > best
        mask[better], best[better] = lab_full[better], conf_full[better]
    return mask, boxes


def _write_overlay(path: Path, photo: np.ndarray, mask: np.ndarray) -> None:
    from clothcurate.reports.colors import colorize

    blend = np.where(mask[..., None] > 0, (0.45 * photo + 0.55 * colorize(mask)).astype(np.uint8), photo)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(blend, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]):
            raise OSError(f"cannot write {path}")


def predict_photos(*, run_dir: str | Path, out_dir: str | Path, paths: Sequence[str | Path],
                   detector: str = DEFAULT_DETECTOR, fold: int | str = "all", tta: bool | None = None,
                   tta_scales: Sequence[float] | None = None,
                   device: str = "auto", batch_size: int = 8, strict: bool = False, overlay: bool = False,
                   dataset: str | None = None, progress: bool = True, backend: str = "torch") -> PredictReport:
    """Segment photos with a trained run (see the module docstring for the outputs).

    Under ``torchrun --nproc_per_node=N`` every rank runs this function: rank r segments the
    photos r, r + N, r + 2N ... of the photo list (as :func:`find_photos` orders it) on its own
    device (``cuda:LOCAL_RANK`` on a GPU machine, else the CPU), writing their files; rank 0
    gathers the per-photo results, alone writes the FiftyOne dataset and returns the whole report
    (the other ranks' reports have ``is_main`` False). The ranks meet after each batch: an error
    on any rank stops every rank there, rank 0 raising it (:mod:`.scale_out`).

    Args:
        run_dir: a train-eval run folder with ``folds/<k>/best.pt``.
        out_dir: where ``<stem>.png`` / ``<stem>.json`` (/ ``<stem>_overlay.jpg``) go (created).
        paths: photos, folders and glob patterns.
        detector: a key of :data:`clothcurate.detection.DETECTORS` (``model``: a first pass of the
            run's model, :mod:`.model_detector`).
        fold: a fold number or ``"all"`` (the ensemble of the run's folds, mean softmax).
        tta: horizontal-flip test-time augmentation; None: as the run evaluated its test folds.
        tta_scales: the TTA's scales (1.0 among them, at most 3; only with TTA); None: the run's
            when TTA is on.
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: photos per detection batch per rank (their crops form one segmentation batch).
        strict: stop at the first unreadable photo instead of skipping it.
        overlay: also write ``<stem>_overlay.jpg``.
        dataset: also add the photos to this FiftyOne dataset (``pred``, ``persons``,
            ``garments``; :mod:`.to_dataset`), created when missing.
        progress: a tqdm bar (rank 0; it counts the photos of every rank).
        backend: ``torch``, or ``onnx``: the models' forward pass on ONNX Runtime (CPU;
            :mod:`.onnx_backend`), the rest of the pipeline unchanged.

    Returns:
        The report (skipped photos are listed there unless ``strict``).

    Raises:
        BadInputError: no photos, a bad run folder / fold / detector / device, an unreadable
            photo with ``strict``, or an output folder that cannot be written.
        StoppedWithOtherRank: under torchrun, on ranks other than 0 when some rank failed.
    """
    t0 = time.perf_counter()
    # the ONNX Runtime backend runs on the CPU: its ranks meet over gloo, even on a GPU machine
    # (Segmenter.from_run refuses it another device, with the reason)
    onnx = str(backend).strip().lower() == "onnx"
    try:
        ctx = setup("cpu" if onnx else device)
    except BadInputError as e:  # before the ranks are joined: every rank fails alike, rank 0 says it
        rank = int(os.environ.get("RANK", "0"))
        if rank == 0:
            raise
        raise StoppedWithOtherRank(2, f"rank 0: {e}") from e
    try:
        return _predict(ctx, t0=t0, run_dir=run_dir, out_dir=out_dir, paths=paths, detector=detector, fold=fold,
                        tta=tta, tta_scales=tta_scales, device=device if onnx else ctx.device,
                        batch_size=batch_size, strict=strict,
                        overlay=overlay, dataset=dataset, progress=progress, backend=backend)
    finally:
        ctx.close()


@dataclass
class _Shard:
    """What one rank did (gathered on rank 0)."""

    written: list[tuple[int, PhotoPrediction, bool]] = field(default_factory=list)  # (index, record, no person)
    skipped: list[tuple[int, str, str]] = field(default_factory=list)               # (index, photo, reason)


def _predict(ctx: DistContext, *, t0: float, run_dir, out_dir, paths, detector, fold, tta, tta_scales, device,
             batch_size, strict, overlay, dataset, progress, backend) -> PredictReport:
    """:func:`predict_photos` on one rank (``device``: this rank's)."""
    error: Exception | None = None
    try:  # the preparation: every rank does it (the same inputs), rank 0 alone checks the dataset
        if batch_size < 1:
            raise BadInputError(f"--batch-size {batch_size}: must be at least 1")
        if detector not in DETECTORS:  # before loading any model
            raise BadInputError(f"--detector {detector!r}: unknown; choose one of {', '.join(sorted(DETECTORS))}")
        photos = find_photos(paths)
        if dataset is not None and ctx.is_main:  # before any work: a dataset predictions cannot go to
            from clothcurate.inference.to_dataset import check_dataset

            check_dataset(dataset)
        segmenter = Segmenter.from_run(run_dir, fold=fold, device=device, tta=tta, tta_scales=tta_scales,
                                       backend=backend)
        finder = create_detector(detector, segmenter=segmenter, device=segmenter.device)
        out = Path(out_dir).expanduser()
        inputs = {p.resolve() for p in photos}
        for p in photos:  # e.g. --out photos/ with PNG photos: never overwrite an input
            for name in (f"{p.stem}.png", f"{p.stem}.json", f"{p.stem}_overlay.jpg"):
                if (out / name).resolve() in inputs:
                    raise BadInputError(f"{out / name}: is one of the photos to segment and would be overwritten "
                                        f"by {p.name}'s output; pass another --out")
    except Exception as e:  # noqa: BLE001 - every rank hears of it at agree()
        error = e
    agree(ctx, error=error)
    try:  # after the dataset check: a refused dataset leaves no output folder
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BadInputError(f"{out}: cannot create the output folder ({e.strerror or e}); "
                                "pass another --out") from e
    except BadInputError as e:
        error = e
    agree(ctx, error=error)

    find_people = getattr(finder, "detect_many", None) or (lambda images: [finder.detect(i) for i in images])
    size = tuple(segmenter.input_size)
    classes = list(segmenter.spec.classes)
    mine = ctx.shard(list(enumerate(photos)))
    # the same number of meetings on every rank: the largest shard's batches
    steps = -(-len(photos[::ctx.world_size]) // batch_size)
    shard = _Shard()
    with tqdm(total=len(photos), desc="predict", unit="photo", disable=not (progress and ctx.is_main),
              leave=False) as bar:
        for step in range(steps):
            batch = mine[step * batch_size:(step + 1) * batch_size]
            try:
                _predict_batch(batch, shard, find_people=find_people, segmenter=segmenter, size=size,
                               classes=classes, out=out, strict=strict, overlay=overlay)
            except Exception as e:  # noqa: BLE001 - every rank hears of it at agree()
                error = e
            bar.update(agree(ctx, error=error, done=len(batch)))

    shards: list[_Shard] = ctx.gather(shard)
    report = PredictReport(out_dir=out, models=len(segmenter.models), ranks=ctx.world_size, is_main=ctx.is_main,
                           tta_scales=segmenter.tta_scales if segmenter.tta else None)
    if not ctx.is_main:
        report.seconds = time.perf_counter() - t0
        return report
    written = sorted((item for s in shards for item in s.written), key=lambda item: item[0])
    report.written = [record.photo.stem for _, record, _ in written]
    report.persons = sum(len(record.persons) for _, record, _ in written)
    report.whole_photo = [record.photo.name for _, record, whole in written if whole]
    report.skipped = [(photo, why) for _, photo, why in sorted(item for s in shards for item in s.skipped)]
    if dataset is not None and written:
        from clothcurate.inference.to_dataset import add_to_dataset

        report.dataset = (dataset, add_to_dataset(dataset, [record for _, record, _ in written]))
    report.seconds = time.perf_counter() - t0
    return report


def _predict_batch(batch: Sequence[tuple[int, Path]], shard: _Shard, *, find_people, segmenter: Segmenter,
                   size: Size, classes: list[str], out: Path, strict: bool, overlay: bool) -> None:
    """Read, detect, segment and write one batch of ``(index in the photo list, photo)``."""
    chunk, images = [], []
    for index, path in batch:
        image = read_photo(path)
        if isinstance(image, str):
            if strict:
                raise BadInputError(f"{path}: {image}; fix or remove it, or run without --strict")
            shard.skipped.append((index, str(path), image))
            continue
        chunk.append((index, path))
        images.append(image)
    for (index, path), image, people in zip(chunk, images, find_people(images)):
        # the detector's box rule: which people to segment, each box widened (clothcurate.detection.calibration)
        chosen = people_to_crop(people, width=image.shape[1], height=image.shape[0])
        mask, crops = segment_people(image, [p for _, p in chosen], segmenter, size)
        height, width = mask.shape
        persons = [{**p.to_dict(), "crop": None} for p in people]  # "box": as the detector found it
        for (i, _), crop in zip(chosen, crops):
            persons[i]["crop"] = list(crop)
        record = PhotoPrediction(photo=path, mask=out / f"{path.stem}.png", size=(width, height),
                                 persons=persons, garments=garment_colors(image, mask, classes=classes))
        try:
            write_mask_png(record.mask, mask)
            write_json(out / f"{path.stem}.json",
                       {"photo": str(path.resolve()), "size": [width, height],
                        "persons": record.persons, "garments": record.garments})
            if overlay:
                _write_overlay(out / f"{path.stem}_overlay.jpg", image, mask)
        except OSError as e:
            raise BadInputError(f"{out}: cannot write the outputs of {path.name} ({e}); "
                                "pass a writable --out") from e
        shard.written.append((index, record, not chosen))
