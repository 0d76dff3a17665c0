"""Crop geometry shared by export, training and inference: the person crop box, crop + resize,
and pasting a crop's prediction back into the full photo (NumPy and OpenCV only).

Shapes: H, W = photo rows and columns; h x w = the crop after resizing (the model input, a
:data:`Size`); C = channels.

The crop box is the person box (relative ``[x, y, w, h]``, as FiftyOne stores a Detection)
widened by a margin on every side, then given the model input's aspect ratio as far as the
photo allows: the side that is short for that ratio is grown, centred, and shifted to stay
inside the photo. For a square input (``S x S``, the paper's) a standing person fills the
middle third of the crop; a portrait input (e.g. 384 x 256, as human parsers use) spends more of
its pixels on the person for the same pixel count. A box that still does not fit (a person filling the full height of a portrait
photo) is clipped to the photo, so the resize then stretches it a little. Boxes are in photo
pixels, ``(x0, y0, x1, y1)`` with x1/y1 exclusive, always inside the photo.

Example::

    size = parse_size("384x256")                                  # (384, 256) = (h, w)
    box = crop_box(person.bounding_box, width=W, height=H, aspect=aspect_of(size))
    img_c, mask_c = crop_resize(image, mask, box=box, size=size)  # (384, 256, 3), (384, 256)
    full = paste_back(pred_c, crop_box=box, orig_size=(W, H))     # (H, W)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["Size", "parse_size", "format_size", "as_size", "aspect_of", "crop_box", "crop_image", "crop_resize",
           "resize_image", "resize_mask", "paste_back"]

_EPS = 1e-6  # relative-coordinate rounding slack

#: ``(h, w)``: rows and columns of a crop after resizing (the model input)
Size = tuple[int, int]


def as_size(size: int | Sequence[int] | None) -> Size | None:
    """``S`` -> ``(S, S)``; ``(h, w)`` as it is; None stays None."""
    if size is None:
        return None
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = (int(v) for v in size)
    return h, w


def parse_size(text: str | int, *, option: str = "--size") -> Size:
    """Read a size option: ``"320"`` (square) or ``"384x256"`` (height x width).

    Raises:
        ValueError: not one positive number or two joined by ``x`` (the message names ``option``).
    """
    parts = str(text).strip().lower().replace(" ", "").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 1:
        raise ValueError(f"{option} {text!r}: expected a side S (e.g. 320) or HEIGHTxWIDTH (e.g. 384x256)")
    return as_size(values[0] if len(values) == 1 else values)


def format_size(size: int | Sequence[int]) -> str:
    """``(h, w)`` -> ``"hxw"`` (``"SxS"`` for a square)."""
    h, w = as_size(size)
    return f"{h}x{w}"


def aspect_of(size: int | Sequence[int] | None) -> float:
    """Height / width of a size (1.0 for a square or None)."""
    hw = as_size(size)
    return 1.0 if hw is None else hw[0] / hw[1]


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
             aspect: float | None = 1.0) -> tuple[int, int, int, int]:
    """The pixel crop box around a person.

    Args:
        bbox: relative ``[x, y, w, h]`` of the person (FiftyOne Detection), or None for the
            whole photo (a sample without a person, e.g. background only).
        width: photo width W in pixels.
        height: photo height H in pixels.
        margin: added on each side, as a fraction of the box's width (left/right) and height
            (top/bottom).
        aspect: height / width the box is grown to, as far as the photo allows (1.0: square;
            1.5: a 384 x 256 portrait input, :func:`aspect_of`); None: the margined box as it is.

    Returns:
        ``(x0, y0, x1, y1)`` in photo pixels, x1/y1 exclusive, ``0 <= x0 < x1 <= W`` and
        ``0 <= y0 < y1 <= H``.
    """
    if bbox is None:
        return 0, 0, width, height
    x, y, w, h = (float(v) for v in bbox)
    x0, x1 = _span(x, w, width, margin)
    y0, y1 = _span(y, h, height, margin)
    if aspect is not None:
        if aspect <= 0:
            raise ValueError(f"aspect {aspect}: must be positive (height / width)")
        w_px, h_px = x1 - x0, y1 - y0
        if h_px < aspect * w_px:
            y0, y1 = _grow(y0, y1, round(aspect * w_px), height)
        else:
            x0, x1 = _grow(x0, x1, round(h_px / aspect), width)
    return int(x0), int(y0), int(x1), int(y1)


def resize_image(image: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """Resize a photo (or crop) to ``size``: area interpolation when shrinking, linear when enlarging.

    Args:
        image: (H, W, 3) or (H, W).
        size: ``(h, w)``, or ``S`` for ``(S, S)``.

    Returns:
        (h, w, 3) (or (h, w)); ``image`` itself when it already has that size.
    """
    h, w = as_size(size)
    if image.shape[:2] == (h, w):
        return image
    shrink = h * w <= image.shape[0] * image.shape[1]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def resize_mask(mask: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """Resize a label mask to ``size`` with nearest neighbour (only its own ids appear).

    Args:
        mask: (H, W) class ids.
        size: ``(h, w)``, or ``S`` for ``(S, S)``.

    Returns:
        (h, w) of the mask's dtype; ``mask`` itself when it already has that size.
    """
    h, w = as_size(size)
    if mask.shape[:2] == (h, w):
        return mask
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)


def crop_image(image: np.ndarray, *, box: Sequence[int], size: int | Sequence[int] | None) -> np.ndarray:
    """Crop a photo to ``box`` and resize it to ``size``.

    Args:
        image: (H, W, 3) or (H, W) photo.
        box: ``(x0, y0, x1, y1)`` from :func:`crop_box`.
        size: ``(h, w)`` of the output, ``S`` for ``(S, S)``, or None to keep the box's own size.

    Returns:
        (h, w, 3) (or (h, w)) photo: area interpolation when shrinking, linear when enlarging.
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    img = np.ascontiguousarray(image[y0:y1, x0:x1])
    return img if size is None else resize_image(img, size)


def crop_resize(image: np.ndarray, mask: np.ndarray, *, box: Sequence[int],
                size: int | Sequence[int] | None) -> tuple[np.ndarray, np.ndarray]:
    """Crop a photo and its mask to ``box`` and resize both to ``size``.

    Args:
        image: (H, W, 3) or (H, W) photo.
        mask: (H, W) uint8 class ids.
        box: ``(x0, y0, x1, y1)`` from :func:`crop_box`.
        size: ``(h, w)`` of the output, ``S`` for ``(S, S)``, or None to keep the box's own size.

    Returns:
        ``(image_crop, mask_crop)``: (h, w, 3) photo (as :func:`crop_image`) and (h, w) mask
        (nearest neighbour, so only original ids appear).
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    msk = np.ascontiguousarray(mask[y0:y1, x0:x1])
    img = crop_image(image, box=box, size=size)
    return img, msk if size is None else resize_mask(msk, size)


def paste_back(pred_crop: np.ndarray, *, crop_box: Sequence[int], orig_size: Sequence[int],
               fill: float = 0) -> np.ndarray:
    """Paste a prediction made on a crop back into the full photo frame.

    Args:
        pred_crop: (h, w) class ids (or (h, w, C) per-class maps) predicted on the crop.
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
