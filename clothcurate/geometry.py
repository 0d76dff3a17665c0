"""Crop geometry shared by export, training and inference: the person crop box, crop + resize,
and pasting a crop's prediction back into the full photo (NumPy and OpenCV only).

Shapes: H, W = photo rows and columns; S = crop side after resizing; C = channels.

The crop box is the person box (relative ``[x, y, w, h]``, as FiftyOne stores a Detection)
widened by a margin on every side, then made as square as the photo allows: its shorter side is
grown, centred, towards the longer one and shifted to stay inside the photo. A box that still
does not fit (a person filling the full height of a portrait photo) is clipped to the photo,
so the resize to ``S x S`` then stretches it a little. Boxes are in photo pixels,
``(x0, y0, x1, y1)`` with x1/y1 exclusive, always inside the photo.

Example::

    box = crop_box(person.bounding_box, width=W, height=H)
    img_c, mask_c = crop_resize(image, mask, box=box, size=320)
    full = paste_back(pred_c, crop_box=box, orig_size=(W, H))   # (H, W)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["crop_box", "crop_image", "crop_resize", "paste_back"]

_EPS = 1e-6  # relative-coordinate rounding slack


def _grow(lo: int, hi: int, want: int, limit: int) -> tuple[int, int]:
    """Grow [lo, hi) to length ``want`` around its centre, shifted to stay in [0, limit)."""
    want = min(want, limit)
    if hi - lo >= want:
        return lo, hi
    lo = (lo + hi - want) // 2
    lo = min(max(lo, 0), limit - want)
    return lo, lo + want


def _span(start: float, extent: float, limit: int, margin: float) -> tuple[int, int]:
    """Pixel interval [lo, hi) covering the relative interval, widened by ``margin`` of its
    length on each side, inside [0, limit) and at least one pixel long."""
    lo = math.floor(start * limit + _EPS)
    hi = math.ceil((start + extent) * limit - _EPS)
    lo = min(max(lo, 0), limit - 1)
    hi = max(min(hi, limit), lo + 1)
    m = round(margin * (hi - lo))
    return max(0, lo - m), min(limit, hi + m)


def crop_box(bbox: Sequence[float] | None, *, width: int, height: int, margin: float = 0.05,
             square: bool = True) -> tuple[int, int, int, int]:
    """The pixel crop box around a person.

    Args:
        bbox: relative ``[x, y, w, h]`` of the person (FiftyOne Detection), or None for the
            whole photo (a sample without a person, e.g. background only).
        width: photo width W in pixels.
        height: photo height H in pixels.
        margin: added on each side, as a fraction of the box's width (left/right) and height
            (top/bottom).
        square: grow the shorter side towards the longer one, as far as the photo allows.

    Returns:
        ``(x0, y0, x1, y1)`` in photo pixels, x1/y1 exclusive, ``0 <= x0 < x1 <= W`` and
        ``0 <= y0 < y1 <= H``.
    """
    if bbox is None:
        return 0, 0, width, height
    x, y, w, h = (float(v) for v in bbox)
    x0, x1 = _span(x, w, width, margin)
    y0, y1 = _span(y, h, height, margin)
    if square:
        side = max(x1 - x0, y1 - y0)
        x0, x1 = _grow(x0, x1, side, width)
        y0, y1 = _grow(y0, y1, side, height)
    return int(x0), int(y0), int(x1), int(y1)


def crop_image(image: np.ndarray, *, box: Sequence[int], size: int | None) -> np.ndarray:
    """Crop a photo to ``box`` and resize it to ``size x size``.

    Args:
        image: (H, W, 3) or (H, W) photo.
        box: ``(x0, y0, x1, y1)`` from :func:`crop_box`.
        size: side S of the output, or None to keep the box's own size.

    Returns:
        (S, S, 3) (or (S, S)) photo: area interpolation when shrinking, linear when enlarging.
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    img = image[y0:y1, x0:x1]
    if size is None or (img.shape[0] == size and img.shape[1] == size):
        return np.ascontiguousarray(img)
    shrink = size * size <= img.shape[0] * img.shape[1]
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def crop_resize(image: np.ndarray, mask: np.ndarray, *, box: Sequence[int],
                size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Crop a photo and its mask to ``box`` and resize both to ``size x size``.

    Args:
        image: (H, W, 3) or (H, W) photo.
        mask: (H, W) uint8 class ids.
        box: ``(x0, y0, x1, y1)`` from :func:`crop_box`.
        size: side S of the output, or None to keep the box's own size.

    Returns:
        ``(image_crop, mask_crop)``: (S, S, 3) photo (as :func:`crop_image`) and (S, S) mask
        (nearest neighbour, so only original ids appear).
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    msk = mask[y0:y1, x0:x1]
    img = crop_image(image, box=box, size=size)
    if size is None or (msk.shape[0] == size and msk.shape[1] == size):
        return img, np.ascontiguousarray(msk)
    return img, cv2.resize(msk, (size, size), interpolation=cv2.INTER_NEAREST)


def paste_back(pred_crop: np.ndarray, *, crop_box: Sequence[int], orig_size: Sequence[int],
               fill: float = 0) -> np.ndarray:
    """Paste a prediction made on a crop back into the full photo frame.

    Args:
        pred_crop: (S, S) class ids (or (S, S, C) per-class maps) predicted on the crop.
        crop_box: ``(x0, y0, x1, y1)`` recorded by the export (photo pixels, x1/y1 exclusive).
        orig_size: ``(W, H)`` of the photo, as recorded in ``folds.json``.
        fill: value outside the box (0 = background).

    Returns:
        (H, W) (or (H, W, C)) array of ``pred_crop``'s dtype: the prediction resized to the box
        with nearest neighbour, ``fill`` elsewhere.
    """
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    width, height = (int(v) for v in orig_size)
    pred = np.asarray(pred_crop)
    if pred.shape[:2] != (y1 - y0, x1 - x0):
        pred = cv2.resize(pred, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        if pred.ndim == 2 and pred_crop.ndim == 3:  # cv2 drops a single channel
            pred = pred[..., None]
    canvas = np.full((height, width, *pred.shape[2:]), fill, dtype=pred.dtype)
    canvas[y0:y1, x0:x1] = pred
    return canvas
