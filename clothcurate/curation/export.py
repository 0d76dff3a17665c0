"""Export cleaned, multilabel-stratified k folds into a folder that training reads without FiftyOne.

The folder layout is the "Export folder" of ``docs/contracts.md``. Eligible samples are the
pixel-annotated ones (tag-only samples, which have no mask, never enter folds) but those tagged
``reject`` and, unless ``keep_flagged``, ``bg_only`` (a sample tagged both counts as ``reject``).
Folds come from :func:`clothcurate.curation.folds.assign_folds` on the class presence
of the samples sorted by key, so they depend only on the eligible set and the seed. Photos and
masks are written by two threads into a hidden sibling folder (``.<out>.partial``), which
is renamed onto ``out`` only when everything is written: a failed export leaves nothing that
looks complete. ``out`` is replaced only when it is missing, empty or an earlier export
(:mod:`clothcurate.outdir`). Only then is each sample's ``fold`` written back to FiftyOne (None
for the samples left out); ``out`` stays locked until then, so a concurrent export to the same
folder is refused and the dataset's folds always match the folder published.

Example::

    from clothcurate.curation.export import export_folds
    report = export_folds(dataset="clothcurate", out=Path("folds"), crop="person", size=320)
    print(report.summary())
"""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from tqdm import tqdm

from clothcurate.atomic import write_json
from clothcurate.curation.coco import coco_document, mask_to_annotations
from clothcurate.geometry import Size, aspect_of, as_size, crop_box, crop_resize, format_size
from clothcurate.folders.export import size_to_json
from clothcurate.curation.annotation import pixel_annotated, tag_only
from clothcurate.curation.db import load_dataset
from clothcurate.curation.folds import assign_folds, fold_stats
from clothcurate.errors import BadInputError
from clothcurate.images import is_plain_jpeg, read_image
from clothcurate.labelmaps import NUM_CLASSES, TARGET_CLASSES, mask_targets
from clothcurate.masks import MASK_PNG_PARAMS, read_mask
from clothcurate.outdir import FolderKind, check_replaceable, folder_lock, replacing, target
from clothcurate.workspace import remember_export
from clothcurate.timestamps import utc_now

__all__ = ["CROP_MARGIN", "FORMATS", "ExportReport", "export_folds"]

FORMATS = ("png", "coco", "both")
CROPS = ("person",)
CROP_MARGIN = 0.05  # of the person box's width/height, on each side
EXPORT_VERSION = 1
JPEG_QUALITY = 95  # default quality of re-encoded (cropped) photos
#: an export folder is recognised (and may be replaced with --overwrite) by its export.json
EXPORT_FOLDER = FolderKind(what="export folder", marker="export.json", keys=("version", "dataset", "folds"))
_FIELDS = ["id", "key", "source", "source_id", "filepath", "ground_truth.mask_path", "classes",
           "person.bounding_box", "tags"]


@dataclass
class ExportReport:
    """What an export wrote.

    Attributes:
        out: the export folder.
        dataset: the FiftyOne dataset exported.
        k, seed, fmt, crop, size: the options used.
        n_exported: samples written.
        left_out: ``{"reject": n, "bg_only": n, "tag_only": n}`` (tag-only: image-level tags, no mask).
        stats: the content of ``fold_stats.json``.
        seconds: wall time of the export.
    """

    out: Path
    dataset: str
    k: int
    seed: int
    fmt: str
    crop: str | None
    size: Size | None
    n_exported: int
    left_out: dict[str, int] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        """Human-readable summary: what was left out and why, and the fold/class table."""
        crop = f", crop {self.crop}" + (f" {format_size(self.size)}" if self.size else "") if self.crop else ""
        keep_hint = " (--keep-flagged keeps them)" if self.left_out.get("bg_only") else ""
        lines = [
            (f"exported {self.n_exported} samples of {self.dataset!r} to {self.out} "
             f"({self.fmt}{crop}; {self.k} folds, seed {self.seed}; {self.seconds:.1f} s)"),
            (f"left out: {self.left_out.get('reject', 0)} tagged reject, "
             f"{self.left_out.get('bg_only', 0)} tagged bg_only{keep_hint}, "
             f"{self.left_out.get('tag_only', 0)} with image-level tags only (no mask)"),
            (f"largest deviation of a class's image share in a fold from the whole set: "
             f"{self.stats['max_deviation']:.4f} (classes with >= {self.stats['min_images']} images)"),
            "images with the class (pixel share):",
            _fold_table(self.stats),
        ]
        return "\n".join(lines)


def _fold_table(stats: dict) -> str:
    parts = [*stats["folds"], stats["all"]]
    heads = [f"fold {p['fold']} ({p['n_images']})" for p in stats["folds"]] + [f"all ({stats['all']['n_images']})"]
    width = max(15, *(len(h) for h in heads))
    rows = ["class".ljust(10) + "".join(h.rjust(width) for h in heads)]
    for c, name in enumerate(stats["classes"]):
        cells = [f"{p['images'][c]} ({100 * p['pixel_share'][c]:.2f}%)" for p in parts]
        rows.append(name.ljust(10) + "".join(cell.rjust(width) for cell in cells))
    return "\n".join(rows)


class _Row(NamedTuple):
    """One sample's values, read from FiftyOne in bulk (order of ``_FIELDS``)."""

    id: str
    key: str
    source: str
    source_id: str
    filepath: str
    mask_path: str | None
    classes: list[str] | None
    bbox: list[float] | None
    tags: list[str] | None


@dataclass(frozen=True)
class _Job:
    """One sample to write."""

    key: str
    photo: str
    mask: str
    out: str
    bbox: tuple[float, ...] | None
    crop: str | None
    size: Size | None
    coco: bool
    jpeg_quality: int = JPEG_QUALITY



def _write(path: str, array: np.ndarray, params: list[int]) -> None:
    """Encode with OpenCV, write with Python: a failed write keeps its errno (disk full, read-only)."""
    ok, data = cv2.imencode(os.path.splitext(path)[1], array, params)
    if not ok:
        raise OSError(f"cannot encode {path}")
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        e.filename = e.filename or path  # a failed write() names no file
        raise


def _copy(src: str, dst: str) -> None:
    try:
        shutil.copyfile(src, dst)
    except OSError as e:
        if e.filename is None:  # a failed write() names no file
            e.filename, e.filename2 = src, dst
        raise


# A lost mask is written again by a plain re-run of ingest (which keeps review work).
_LOST_MASK = ("delete the mask file if it is still there and re-run `clothcurate ingest` with the sample's source "
              "folder: it writes missing masks again and keeps tags and predictions")


def _export_sample(job: _Job) -> dict:
    """Write one sample's photo and mask; returns what the JSON files need."""
    mask = read_mask(job.mask, sample=job.key, hint=_LOST_MASK, num_classes=NUM_CLASSES)
    height, width = mask.shape
    image_out = os.path.join(job.out, "images", f"{job.key}.jpg")
    mask_out = os.path.join(job.out, "masks", f"{job.key}.png")
    box = None
    if job.crop or not is_plain_jpeg(job.photo):  # a tagged photo is re-encoded without its orientation
        image = cv2.cvtColor(read_image(job.photo, sample=job.key, hint="restore the photo ingested"),
                             cv2.COLOR_RGB2BGR)
        if image.shape[:2] != (height, width):
            raise BadInputError(f"sample {job.key}: photo {job.photo} is {image.shape[1]}x{image.shape[0]} but its "
                                f"mask is {width}x{height} (the photo changed after ingest); restore it, or rebuild "
                                "its source with `clothcurate ingest --overwrite` (this deletes that source's "
                                "reject/ok tags and predictions)")
        if job.crop:
            box = crop_box(job.bbox, width=width, height=height, margin=CROP_MARGIN, aspect=aspect_of(job.size))
            image, mask = crop_resize(image, mask, box=box, size=job.size)
        _write(image_out, image, [cv2.IMWRITE_JPEG_QUALITY, job.jpeg_quality])
        _write(mask_out, mask, MASK_PNG_PARAMS)
    else:
        _copy(job.photo, image_out)
        _copy(job.mask, mask_out)
    return {"key": job.key, "orig_size": [width, height], "crop_box": list(box) if box else None,
            "size": [int(mask.shape[1]), int(mask.shape[0])],
            "pixels": np.bincount(mask.ravel(), minlength=NUM_CLASSES).tolist(),
            "annotations": mask_to_annotations(mask) if job.coco else []}


def _check_options(out: Path, *, folds: int, fmt: str, crop: str | None, size: Size | None, overwrite: bool,
                   jpeg_quality: int = JPEG_QUALITY) -> None:
    if not 1 <= jpeg_quality <= 100:
        raise BadInputError(f"--jpeg-quality {jpeg_quality}: use 1..100")
    if fmt not in FORMATS:
        raise BadInputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if crop is not None and crop not in CROPS:
        raise BadInputError(f"unknown crop {crop!r}; use 'person' or none")
    if size is not None and (crop is None or min(size) < 1):
        raise BadInputError(f"--size {format_size(size)} needs --crop person and positive sides (e.g. --crop person "
                            "--size 320, or --size 384x256 for portrait crops)")
    if folds < 2:
        raise BadInputError(f"--folds must be at least 2, got {folds}")
    check_replaceable(out, EXPORT_FOLDER, overwrite=overwrite)


def _select(rows: list[_Row], keep_flagged: bool) -> tuple[list[_Row], dict[str, int]]:
    """Eligible rows sorted by key, and how many were left out per reason."""
    left_out = {"reject": 0, "bg_only": 0}
    keep = []
    for row in rows:
        tags = set(row.tags or ())
        if "reject" in tags:
            left_out["reject"] += 1
        elif "bg_only" in tags and not keep_flagged:
            left_out["bg_only"] += 1
        else:
            keep.append(row)
    return sorted(keep, key=lambda r: r.key), left_out


def _run_jobs(jobs: list[_Job], *, workers: int, progress: bool) -> list[dict]:
    """Run the jobs in order on ``workers`` threads (OpenCV and file copies release the GIL; threads
    need no fork of a process that holds pymongo's threads and no re-import of ``__main__``)."""
    results = []
    pool = ThreadPoolExecutor(max(1, workers))
    try:
        with tqdm(total=len(jobs), desc="export", unit="img", disable=not progress) as bar:
            for res in pool.map(_export_sample, jobs):
                results.append(res)
                bar.update()
        return results
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on failure: no job left writing


def _sample_index(rows: list[_Row], fold_of: np.ndarray, results: list[dict]) -> list[dict]:
    """The ``samples`` list of ``folds.json``."""
    return [{"key": r.key, "id": r.id, "source": r.source, "source_id": r.source_id, "fold": int(f),
             "image": f"images/{r.key}.jpg", "mask": f"masks/{r.key}.png",
             "orig_size": res["orig_size"], "crop_box": res["crop_box"],
             "classes": [TARGET_CLASSES[c] for c in np.flatnonzero(res["pixels"])]}
            for r, f, res in zip(rows, fold_of, results)]


def _coco(samples: list[dict], results: list[dict], dataset: str) -> dict:
    """``coco.json``: image ids 1..N in the order of ``folds.json``; file names relative to images/."""
    images = [{"id": i, "file_name": f"{s['key']}.jpg", "width": res["size"][0], "height": res["size"][1],
               "key": s["key"], "fold": s["fold"]} for i, (s, res) in enumerate(zip(samples, results), start=1)]
    anns = [{"image_id": i, **a} for i, res in enumerate(results, start=1) for a in res["annotations"]]
    return coco_document(images=images, annotations=anns, description=f"clothcurate export of {dataset}")


def export_folds(*, dataset: str, out: Path, folds: int = 5, seed: int = 0, fmt: str = "png",
                 crop: str | None = None, size: int | Size | None = None, keep_flagged: bool = False,
                 overwrite: bool = False, progress: bool = True, workers: int | None = None,
                 jpeg_quality: int = JPEG_QUALITY) -> ExportReport:
    """Export the eligible samples of a dataset as k multilabel-stratified folds.

    Args:
        dataset: FiftyOne dataset name.
        out: export folder (created; must be missing, empty, or an earlier export with ``overwrite``:
            see :mod:`clothcurate.outdir`).
        folds: number of folds k.
        seed: seed of the stratification (same seed and eligible set -> same folds).
        fmt: ``png`` (images/ + masks/), ``coco`` (also coco.json) or ``both`` (same as coco:
            the PNG masks are always written, training reads them).
        crop: ``person`` to crop each photo to its person box plus a margin (see
            :mod:`clothcurate.geometry`), or None for the full photo.
        size: with ``crop``, resize crops to ``(H, W)`` (``S``: square; mask nearest neighbour);
            the crop box is first grown to that aspect ratio (:mod:`clothcurate.geometry`), so a
            portrait size such as ``(384, 256)`` keeps the person's proportions.
        keep_flagged: keep ``bg_only``-tagged samples (``reject`` ones are always left out).
        overwrite: replace an earlier export in ``out`` (never a folder this tool did not make).
        progress: show a progress bar.
        workers: writer threads (default: 2, or fewer CPUs).
        jpeg_quality: JPEG quality of re-encoded photos (cropped, or not JPEG to begin with);
            uncropped JPEG photos are copied as they are.

    Returns:
        The report (``summary()`` prints what was left out and the fold/class table).

    Raises:
        BadInputError: bad option, ``out`` not replaceable or being written by another export, unknown or
            empty dataset, too few eligible samples, or a sample whose files are missing or inconsistent.
        OSError: ``out`` cannot be written (read-only, disk full ...) or a photo cannot be read.
    """
    t0 = time.perf_counter()
    out, size = target(out), as_size(size)
    _check_options(out, folds=folds, fmt=fmt, crop=crop, size=size, overwrite=overwrite,
                   jpeg_quality=jpeg_quality)
    ds = load_dataset(dataset)
    if not len(ds) or not ds.has_field("key"):
        raise BadInputError(f"dataset {dataset!r} has no samples made by clothcurate ingest; run "
                            f"`clothcurate ingest --ccp DIR --dataset {dataset}` first or pass another --dataset")
    pixel = pixel_annotated(ds)
    # a dataset of tag-only samples has no ground_truth field to read
    values = zip(*pixel.values(_FIELDS)) if ds.has_field("ground_truth") else ()
    rows, left_out = _select([_Row(*v) for v in values], keep_flagged)
    left_out["tag_only"] = tag_only(ds).count()
    if len(rows) < folds:
        raise BadInputError(f"dataset {dataset!r} has {len(rows)} eligible samples (left out: {left_out}), "
                            f"too few for {folds} folds; ingest more or untag samples")
    missing = next((r for r in rows if not r.mask_path), None)
    if missing is not None:
        raise BadInputError(f"sample {missing.key} of {dataset!r} has no ground_truth mask; {_LOST_MASK}")
    presence = np.array([[c in set(r.classes or ()) for c in TARGET_CLASSES] for r in rows])
    fold_of = assign_folds(presence, k=folds, seed=seed)

    coco = fmt in ("coco", "both")
    with folder_lock(out):  # held until the folds are written back: they match the folder published
        with replacing(out, EXPORT_FOLDER, overwrite=overwrite, locked=True) as tmp:
            (tmp / "images").mkdir()
            (tmp / "masks").mkdir()
            jobs = [_Job(key=r.key, photo=r.filepath, mask=r.mask_path, out=str(tmp),
                         bbox=tuple(r.bbox) if r.bbox else None, crop=crop, size=size, coco=coco,
                         jpeg_quality=jpeg_quality) for r in rows]
            results = _run_jobs(jobs, workers=workers or min(2, os.cpu_count() or 1), progress=progress)
            stats = fold_stats(np.array([res["pixels"] for res in results]), fold_of, k=folds,
                               classes=TARGET_CLASSES)
            samples = _sample_index(rows, fold_of, results)
            write_json(tmp / "classes.json", {"classes": list(TARGET_CLASSES),
                                              "mask_targets": {str(i): n for i, n in mask_targets().items()}})
            write_json(tmp / "folds.json", {"k": folds, "seed": seed, "samples": samples})
            write_json(tmp / "fold_stats.json", stats)
            if coco:
                write_json(tmp / "coco.json", _coco(samples, results, dataset))
            write_json(tmp / "export.json", {
                "version": EXPORT_VERSION, "dataset": dataset, "folds": folds, "seed": seed, "crop": crop,
                "size": size_to_json(size), "format": fmt, "created": utc_now(),
                "left_out": left_out, "n_samples": len(samples), "crop_margin": CROP_MARGIN if crop else None})

        assigned = {r.id: int(f) for r, f in zip(rows, fold_of)}
        ds.set_values("fold", {sid: assigned.get(sid) for sid in ds.values("id")}, key_field="id")
        remember_export(dataset, out)
    return ExportReport(out=out, dataset=dataset, k=folds, seed=seed, fmt=fmt, crop=crop, size=size,
                        n_exported=len(samples), left_out=left_out, stats=stats,
                        seconds=time.perf_counter() - t0)
