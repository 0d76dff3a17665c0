"""Worker side of ingest: one sample at a time, no database.

Runs in the worker processes of :func:`clothcurate.parallel.process_pool` (or in the main process
for a small ingest): decode the source annotation, check the photo, remap the label mask, write
the 15-class mask and every raw mask as PNG, and measure classes, pixel counts and the person box.
A worker returns plain picklable dicts; the main process turns them into FiftyOne samples.

Shapes: H, W = photo rows and columns; T = tags of a tag-only photo.
"""

from __future__ import annotations

import os
import time

import numpy as np

from clothcurate.curation.annotation import IMAGE
from clothcurate.curation.ingest.report import bad_entry
from clothcurate.curation.photos import PhotoInfo, probe_photo
from clothcurate.curation.sources import RawSample, SampleRef, Source
from clothcurate.errors import BadSampleError
from clothcurate.images import orientation_name
from clothcurate.labelmaps import BACKGROUND, TARGET_CLASSES, LabelMap
from clothcurate.mask_facts import mask_facts
from clothcurate.masks import write_mask_png
from clothcurate.workspace import sample_key

__all__ = ["Outputs", "init_worker", "process"]

#: ``{field: (raw mask key or None for the 15-class mask, mask folder)}`` of one source
Outputs = dict[str, tuple[str | None, str]]

_W: dict = {}  # per-process context set by init_worker: the pool pickles it once, not per sample


def init_worker(source: Source, labelmap: LabelMap, outputs: Outputs) -> None:
    """Set the context every :func:`process` call of this process uses.

    Args:
        source: the reader of the source being ingested.
        labelmap: the source's label map.
        outputs: where each mask field is written (see :data:`Outputs`).
    """
    _W.update(source=source, labelmap=labelmap, outputs=outputs)


def process(ref: SampleRef) -> dict:
    """Decode, check, remap and write one sample (after :func:`init_worker`).

    Args:
        ref: the sample; a tag-only one (``annotation == "image"``) writes nothing.

    Returns:
        Its field values (``key``, ``source_id``, ``masks``: ``{field: PNG path}``, photo metadata,
        ``classes``/``class_pixels``/``person`` or ``annotation``/``image_tags``, and ``t``:
        seconds per :data:`~clothcurate.curation.ingest.report.PHASES`), or ``{"bad": entry}``.
    """
    source: Source = _W["source"]
    key = sample_key(source.name, ref.source_id)
    tag_only = ref.annotation == IMAGE
    t0 = time.perf_counter()
    try:
        annotation = source.read_tags(ref) if tag_only else source.read(ref)
        photo = probe_photo(ref.image_path, ref.source_id)
        t1 = time.perf_counter()
        fields, times = _tag_fields(annotation, ref) if tag_only else _mask_fields(annotation, photo, ref, key)
    except BadSampleError as e:
        return {"bad": bad_entry(source.name, e)}
    return {"key": key, "source_id": ref.source_id, **_photo_fields(ref, photo), **fields, "t": (t1 - t0, *times)}


def _mask_fields(raw: RawSample, photo: PhotoInfo, ref: SampleRef, key: str) -> tuple[dict, tuple[float, float]]:
    """Check and remap a pixel-annotated sample's masks, write them, and measure the 15-class one.

    Args:
        raw: the decoded annotation: (H, W) raw masks.
        photo: the photo's header.
        ref: the sample.
        key: its sample key (the masks' file name).

    Returns:
        ``({"masks", "classes", "class_pixels", "person"}, (remap seconds, PNG seconds))``.

    Raises:
        BadSampleError: a mask of another size than the photo, or an id outside the vocabulary.
    """
    t0 = time.perf_counter()
    for name, m in raw.masks.items():
        _check_mask_size(m, photo, name, ref, raw.annotation_path)
    gt = _W["labelmap"].remap(raw.masks[""], source_id=ref.source_id, where=raw.annotation_path)
    facts = mask_facts(gt)  # the derived fields, as every writer of ground_truth measures them
    t1 = time.perf_counter()
    paths = {}
    for fld, (raw_key, d) in _W["outputs"].items():
        arr = gt if raw_key is None else raw.masks[raw_key]
        paths[fld] = os.path.join(d, f"{key}.png")
        write_mask_png(paths[fld], arr.astype(np.uint8, copy=False))
    fields = {"masks": paths, "classes": facts.classes, "class_pixels": facts.class_pixels, "person": facts.person}
    return fields, (t1 - t0, time.perf_counter() - t1)


def _tag_fields(ids: np.ndarray, ref: SampleRef) -> tuple[dict, tuple[float, float]]:
    """Remap a tag-only sample's tags (no mask: nothing is written).

    Args:
        ids: (T,) its source label ids.
        ref: the sample.

    Returns:
        ``({"masks": {}, "annotation", "image_tags"}, (remap seconds, 0.0))``.

    Raises:
        BadSampleError: a tag id outside the source vocabulary.
    """
    t0 = time.perf_counter()
    tags = _remap_tags(ids, _W["labelmap"], ref, ref.locator[0] if ref.locator else ref.image_path)
    return {"masks": {}, "annotation": IMAGE, "image_tags": tags}, (time.perf_counter() - t0, 0.0)


def _photo_fields(ref: SampleRef, photo: PhotoInfo) -> dict:
    """The photo's path and metadata, as every sample records them.

    Args:
        ref: the sample.
        photo: its photo's header.

    Returns:
        ``filepath``, ``width``, ``height``, ``size_bytes``, ``mime_type``, ``num_channels`` and
        ``exif_orientation`` (None for the upright 1: nothing to record).

    Raises:
        OSError: the photo vanished since it was probed.
    """
    return {
        "filepath": ref.image_path, "width": photo.width, "height": photo.height,
        "size_bytes": os.path.getsize(ref.image_path), "mime_type": photo.mime_type,
        "num_channels": photo.num_channels,
        "exif_orientation": photo.orientation if photo.orientation != 1 else None,
    }


def _check_mask_size(mask: np.ndarray, photo: PhotoInfo, name: str, ref: SampleRef, where: str) -> None:
    """A mask must have the photo's stored size (the rule: CCP masks follow the stored pixels; an
    EXIF orientation is never applied, see :mod:`clothcurate.images`).

    Args:
        mask: (H, W) raw label ids.
        photo: the photo's header.
        name: the raw mask key (``""`` for the label mask).
        ref: the sample.
        where: the annotation file (named in the error).

    Raises:
        BadSampleError: the sizes differ; naming the EXIF orientation when the mask fits only the
            photo's rotated view.
    """
    if mask.shape == (photo.height, photo.width):
        return
    what = f"mask{' ' + name if name else ''} is {mask.shape[1]}x{mask.shape[0]}"
    if photo.orientation in (5, 6, 7, 8) and mask.shape == (photo.width, photo.height):
        raise BadSampleError(ref.source_id, f"{what}, the size of the photo only as shown by its EXIF orientation "
                             f"{photo.orientation} ({orientation_name(photo.orientation)}); masks follow the stored "
                             f"pixels ({photo.width}x{photo.height}): store the photo upright without the tag "
                             "(e.g. `exiftran -ai PHOTO`) or turn the mask to the stored pixels", ref.image_path)
    raise BadSampleError(ref.source_id, f"{what} but the photo is {photo.width}x{photo.height}", where)


def _remap_tags(ids: np.ndarray, labelmap: LabelMap, ref: SampleRef, where: str) -> list[str]:
    """The Table I classes that a photo's source tags name, in class order, background dropped.

    Args:
        ids: (T,) source label ids.
        labelmap: the source's label map.
        ref: the sample.
        where: the tag file (named in the error).

    Returns:
        Target class names.

    Raises:
        BadSampleError: an id outside the source vocabulary (never silently background).
    """
    bad = ids[(ids < 0) | (ids >= len(labelmap.names))]
    if bad.size:
        raise BadSampleError(ref.source_id, f"tag id {int(bad[0])} is outside the {labelmap.source} vocabulary "
                             f"(0..{len(labelmap.names) - 1})", where)
    present = np.unique(np.asarray(labelmap.targets, dtype=np.int64)[ids])
    return [TARGET_CLASSES[c] for c in present if c != BACKGROUND]
