"""Photo, ground truth and out-of-fold prediction of chosen samples (the paper's Fig. 9).

Two places hold the photo and ground truth of a sample key:

* the export folder the run was trained on (``config.json`` ``export_dir``): the photo and mask
  as trained (the person crop when the export cropped); the prediction, which the run stores in
  the full photo frame, is cut to the recorded ``crop_box`` and resized to the crop (nearest),
  so all three panels share the frame in which ``per_sample.csv`` scored the sample;
* a FiftyOne dataset (``--dataset``): the original photo and ``ground_truth`` in the full frame.

Shapes: H, W = panel rows and columns.

Example::

    best, worst = best_and_worst(run.per_sample, 3)
    views = sample_views(run, best + worst)
    views[0].photo.shape, views[0].gt.shape, views[0].pred.shape   # (H, W, 3), (H, W), (H, W)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from clothcurate.errors import BadInputError
from clothcurate.folders.export import read_export
from clothcurate.images import read_image
from clothcurate.masks import read_mask
from clothcurate.reports.runs import Run, SampleScore

__all__ = ["SampleView", "best_and_worst", "sample_views"]


@dataclass(frozen=True)
class SampleView:
    """One row of Fig. 9.

    Attributes:
        key: the sample key.
        iou: its out-of-fold mean IoU (``per_sample.csv``).
        photo: (H, W, 3) uint8 RGB.
        gt: (H, W) uint8 class ids.
        pred: (H, W) uint8 class ids.
    """

    key: str
    iou: float
    photo: np.ndarray
    gt: np.ndarray
    pred: np.ndarray


def best_and_worst(rows: list[SampleScore], n: int) -> tuple[list[SampleScore], list[SampleScore]]:
    """The ``n`` samples with the highest and the ``n`` with the lowest IoU (NaN left out).

    Args:
        rows: a run's ``per_sample.csv`` rows.
        n: samples per side; with fewer than ``2 n`` scored samples the two lists share none.

    Returns:
        ``(best, worst)``, best first / worst first, ties broken by key.
    """
    scored = sorted((r for r in rows if not math.isnan(r.iou)), key=lambda r: (-r.iou, r.key))
    n_best = min(n, (len(scored) + 1) // 2)
    n_worst = min(n, len(scored) - n_best)
    return scored[:n_best], scored[::-1][:n_worst]


def _read_mask(path: Path, key: str, what: str) -> np.ndarray:
    return read_mask(path, sample=key, hint=f"the {what} of the run or its export is damaged; re-create it")


def _read_photo(path: Path) -> np.ndarray:
    try:  # stored pixels, as the masks (an EXIF orientation would turn the photo against its mask)
        return read_image(path)
    except BadInputError:
        raise BadInputError(f"{path}: missing or unreadable photo") from None


def _to_frame(pred: np.ndarray, *, crop_box: list[int] | None, shape: tuple[int, int]) -> np.ndarray:
    """A full-frame prediction cut to the export's crop box and resized (nearest) to ``shape``."""
    if crop_box is not None:
        x0, y0, x1, y1 = (int(v) for v in crop_box)
        pred = pred[y0:y1, x0:x1]
    if pred.shape != shape:
        pred = cv2.resize(pred, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return pred


def _from_export(run: Run, rows: list[SampleScore]) -> list[SampleView]:
    export = read_export(run.export_dir, complete=False, hint="re-run export-folds")
    views = []
    for r in rows:
        entry = export.get(r.key)
        if entry is None:
            raise BadInputError(f"{export.folds_path}: no sample {r.key} of {run.folder.per_sample_path}; "
                                "the run was trained on another export (fix export_dir in config.json)")
        gt = _read_mask(entry.mask, r.key, "export mask")
        pred = _read_mask(run.prediction_path(r.key), r.key, "out-of-fold prediction")
        views.append(SampleView(r.key, r.iou, _read_photo(entry.image), gt,
                                _to_frame(pred, crop_box=entry.crop_box, shape=gt.shape)))
    return views


def _from_dataset(run: Run, rows: list[SampleScore], dataset: str) -> list[SampleView]:
    from fiftyone import ViewField as F

    from clothcurate.curation.db import load_dataset

    ds = load_dataset(dataset)
    if not (ds.has_field("key") and ds.has_field("ground_truth")):
        raise BadInputError(f"dataset {dataset!r}: no 'key' and 'ground_truth' fields (not made by clothcurate "
                            "ingest); pass the dataset the run's export came from")
    view = ds.match(F("key").is_in([r.key for r in rows]))
    keys, photos, masks = view.values(["key", "filepath", "ground_truth.mask_path"])
    where = dict(zip(keys, zip(photos, masks)))
    views = []
    for r in rows:
        if r.key not in where or where[r.key][1] is None:
            raise BadInputError(f"dataset {dataset!r}: no sample with key {r.key} and a ground_truth mask; "
                                "pass the dataset the run's export came from")
        photo, mask = where[r.key]
        gt = _read_mask(Path(mask), r.key, "ground_truth mask")
        pred = _read_mask(run.prediction_path(r.key), r.key, "out-of-fold prediction")
        views.append(SampleView(r.key, r.iou, _read_photo(Path(photo)), gt,
                                _to_frame(pred, crop_box=None, shape=gt.shape)))
    return views


def sample_views(run: Run, rows: list[SampleScore], *, dataset: str | None = None) -> list[SampleView]:
    """Photo, ground truth and prediction of the given samples, in one frame per sample.

    Args:
        run: the run whose out-of-fold predictions are shown.
        rows: the samples (e.g. from :func:`best_and_worst`).
        dataset: a FiftyOne dataset to take photos and ground truth from (full photo frame);
            default: the run's export folder (the frame it was trained in).

    Returns:
        One view per row, in order; ``[]`` when neither source is available.

    Raises:
        BadInputError: a listed sample, photo or mask is missing.
    """
    if dataset is not None:
        return _from_dataset(run, rows, dataset)
    if run.export_dir is not None:
        return _from_export(run, rows)
    return []
