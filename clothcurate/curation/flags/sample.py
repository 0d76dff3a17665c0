"""What one check sees of one sample: its 15-class mask, optionally its raw source mask and photo.

Shapes: H, W = mask rows and columns; K = number of target classes (15). Geometry that several
checks share (the person box, the foreground components) is computed once per sample and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from clothcurate.curation.flags.internal.confident import ModelEvidence
from clothcurate.curation.flags.internal.run_folder import ConfidenceRef, load_evidence
from clothcurate.labelmaps import BACKGROUND, NUM_CLASSES
from clothcurate.masks import read_mask

#: masks are judged at a stride that brings their long side to at most this many pixels (the
#: checks look at regions, not single pixels; a 832 x 550 CCP mask is read at stride 2)
WORK_SIDE = 512

#: a foreground component smaller than this share of all foreground pixels does not define the
#: person box (stray blobs must not stretch the frame they are judged in)
_BOX_MIN_SHARE = 0.02


def histogram_u8(a: np.ndarray) -> np.ndarray:
    """(256,) int64 count of each value of a (H, W) uint8 array (OpenCV; far faster than bincount)."""
    return cv2.calcHist([np.ascontiguousarray(a)], [0], None, [256], [0, 256]).ravel().astype(np.int64)


def components(binary: np.ndarray, *, connectivity: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of a boolean mask (OpenCV).

    Args:
        binary: (H, W) bool.
        connectivity: 4 or 8.

    Returns:
        ``(labels, stats)``: (H, W) int32 component ids (0 = outside the mask) and (C+1, 5) int32
        rows ``x, y, width, height, area`` (OpenCV's ``CC_STAT_*`` order), row 0 the outside's.
    """
    _, labels, stats, _ = cv2.connectedComponentsWithStats(binary.view(np.uint8), connectivity=connectivity)
    return labels, stats


@dataclass
class SampleMasks:
    """One sample's annotation, as the checks read it.

    Attributes:
        key: the sample key (``ccp_0001``), for messages.
        gt: (H, W) uint8 target class ids ``0..K-1``.
        raw: (H, W) uint8 source label ids, or None when the sample has no raw mask.
        raw_background_ids: source ids (other than 0, the source's own background) that the label
            map sends to background, e.g. CCP ``accessories``, ``belt``.
        image_path: the photo, for checks that compare the mask with the picture (may be None).
        model: a training run's out-of-fold softmax paired with this annotation (model-assisted
            checks), or None.
    """

    key: str
    gt: np.ndarray
    raw: np.ndarray | None = None
    raw_background_ids: tuple[int, ...] = ()
    image_path: str | None = None
    model: ModelEvidence | None = None

    @cached_property
    def class_pixels(self) -> np.ndarray:
        """(K,) int64 pixel count per target class."""
        return histogram_u8(self.gt)[:NUM_CLASSES]

    @cached_property
    def foreground(self) -> np.ndarray:
        """(H, W) bool: every pixel that is not background."""
        return self.gt != BACKGROUND

    @cached_property
    def foreground_pixels(self) -> int:
        """Number of non-background pixels."""
        return int(self.class_pixels[1:].sum())

    @cached_property
    def foreground_components(self) -> tuple[np.ndarray, np.ndarray]:
        """8-connected components of the foreground.

        Returns:
            ``(labels, stats)`` as :func:`components` returns them.
        """
        return components(self.foreground)

    @cached_property
    def person_box(self) -> tuple[int, int, int, int] | None:
        """``(y0, y1, x0, x1)`` (exclusive ends) around the foreground components that hold at least
        2 % of the foreground (around every component when none does), or None when there is no
        foreground."""
        if self.foreground_pixels == 0:
            return None
        _, stats = self.foreground_components
        parts = stats[1:]
        kept = parts[parts[:, cv2.CC_STAT_AREA] >= _BOX_MIN_SHARE * self.foreground_pixels]
        if len(kept) == 0:  # only specks (over 50 of them): box them all
            kept = parts
        x, y, w, h, area = kept.T
        return int(y.min()), int((y + h).max()), int(x.min()), int((x + w).max())

    def box_coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre coordinates normalised to the person box.

        Returns:
            ``(v, u)``: (H,) row and (W,) column coordinates, 0 at the box's top/left edge and 1 at
            its bottom/right edge (outside the box they leave [0, 1]).
        """
        y0, y1, x0, x1 = self.person_box
        v = (np.arange(self.gt.shape[0]) + 0.5 - y0) / max(y1 - y0, 1)
        u = (np.arange(self.gt.shape[1]) + 0.5 - x0) / max(x1 - x0, 1)
        return v, u


def read_sample(key: str, gt_path: str, raw_path: str | None = None, raw_background_ids: tuple[int, ...] = (),
                image_path: str | None = None, model_ref: ConfidenceRef | None = None) -> SampleMasks:
    """Read one sample's mask PNGs at the working resolution.

    Args:
        key: the sample key, named in errors.
        gt_path: the 15-class PNG (``ground_truth.mask_path``).
        raw_path: the source-label PNG (``raw_<source>.mask_path``), if any.
        raw_background_ids: source ids the label map sends to background (besides 0).
        image_path: the photo.
        model_ref: the sample's confidence map in a training run, if any.

    Returns:
        The sample, both masks sampled at the stride that fits :data:`WORK_SIDE` (the model
        evidence is paired with the full-resolution annotation).

    Raises:
        BadInputError: a mask file or confidence map is missing or malformed.
    """
    gt = read_mask(gt_path, sample=key, hint=_INGEST_AGAIN)
    raw = read_mask(raw_path, sample=key, hint=_INGEST_AGAIN) if raw_path else None
    return SampleMasks(key, working_resolution(gt), None if raw is None else working_resolution(raw),
                       tuple(raw_background_ids), image_path,
                       None if model_ref is None else load_evidence(key, gt, model_ref))


def working_resolution(mask: np.ndarray) -> np.ndarray:
    """Sample a (H, W) mask at the stride that brings its long side to at most :data:`WORK_SIDE`.

    Returns:
        (ceil(H / s), ceil(W / s)) contiguous array, ``s`` the stride (nearest neighbour).
    """
    stride = max(1, -(-max(mask.shape) // WORK_SIDE))
    return np.ascontiguousarray(mask[::stride, ::stride])


# A plain re-run of ingest writes lost masks again and keeps review work (--overwrite would not).
_INGEST_AGAIN = ("delete the mask file if it is still there and re-run `clothcurate ingest` with the sample's "
                 "source folder: it writes missing masks again and keeps tags and predictions")
