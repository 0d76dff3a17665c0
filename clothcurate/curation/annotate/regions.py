"""A 15-class mask as one brush region per class, and back, pixel for pixel.

FiftyOne's annotation backends carry a Segmentation as a single class, so a sample's mask travels
as FiftyOne ``Detections``, one per class present (not background), each holding the class's
pixels as an instance mask inside a tight box; Label Studio shows each as one brush region.

Boxes are normalised floats and FiftyOne/ETA render a box by truncating ``x * width``, which for
``x = x0 / width`` can land one pixel short (``249 / 550 * 550 = 248.999...``) and then resize
the instance mask. :func:`to_regions` therefore gives every box edge half a pixel of slack
(``(x0 + 0.5) / width``): truncation lands exactly on ``x0``, the mask is never resized, and the
brush that reaches the annotation tool is the class's pixels exactly. :func:`to_mask` places each
region by its mask's own shape at the box's corner, read back by rounding that tolerates both
boxes of this module and the tight ``x0 / width`` boxes FiftyOne makes of the brushes it loads.
"""

from __future__ import annotations

import numpy as np

from clothcurate.labelmaps import TARGET_CLASSES

__all__ = ["Region", "to_mask", "to_regions"]

#: (label, [x, y, w, h] normalised, (h, w) bool mask) of one brush region
Region = tuple[str, list[float], np.ndarray]


def to_regions(mask: np.ndarray) -> list[Region]:
    """One region per class present in ``mask`` (background is no region: unpainted = background).

    Args:
        mask: (H, W) uint8 class ids (0 = background).

    Returns:
        ``[(class name, [x, y, w, h], (h, w) bool), ...]`` in class order; boxes normalised with
        the half-pixel slack described above.
    """
    height, width = mask.shape
    out: list[Region] = []
    for cls in np.unique(mask).tolist():
        if cls == 0:
            continue
        ys, xs = np.nonzero(mask == cls)
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        box = [(x0 + 0.5) / width, (y0 + 0.5) / height, (x1 - x0) / width, (y1 - y0) / height]
        out.append((TARGET_CLASSES[cls], box, mask[y0:y1, x0:x1] == cls))
    return out


def _corner(value: float, size: int) -> int:
    # boxes come as x0 / size (FiftyOne's, from loaded brushes) or (x0 + 0.5) / size (ours), each
    # with float error far below 0.25 px: floor(v * size + 0.25) is x0 for both
    return int(np.floor(value * size + 0.25))


def to_mask(regions: list[Region], *, shape: tuple[int, int], before: np.ndarray | None = None,
            sample: str = "") -> np.ndarray:
    """Rebuild the 15-class mask from brush regions (as an annotator left them).

    A pixel in no region is background. Brush regions may overlap (painting a class over another
    in Label Studio adds a region, it does not erase the one below): a pixel claimed by several
    classes takes one that it did not have in ``before`` (the mask that was sent), so a stroke
    painted over a region wins; between several new classes, the later one in the class list.

    Args:
        regions: ``[(class name, [x, y, w, h], (h, w) mask), ...]``; a class may have several.
        shape: (H, W) of the photo.
        before: (H, W) uint8, the mask that was sent; None = overlaps go to the later class.
        sample: the sample key (for error messages).

    Returns:
        (H, W) uint8 class ids.

    Raises:
        ValueError: a label outside the 15 classes, or a region that does not fit in the photo.
    """
    height, width = shape
    claims = np.zeros((len(TARGET_CLASSES), height, width), dtype=bool)
    for label, box, region_mask in regions:
        if label not in TARGET_CLASSES or label == TARGET_CLASSES[0]:
            raise ValueError(f"sample {sample}: brush label {label!r} is not one of the classes "
                             f"({', '.join(TARGET_CLASSES[1:])})")
        rm = np.asarray(region_mask).astype(bool)
        x0, y0 = _corner(box[0], width), _corner(box[1], height)
        h, w = rm.shape
        if x0 < 0 or y0 < 0 or x0 + w > width or y0 + h > height:
            raise ValueError(f"sample {sample}: {label} region at ({x0}, {y0}) size {w}x{h} does not fit in the "
                             f"{width}x{height} photo")
        claims[TARGET_CLASSES.index(label), y0:y0 + h, x0:x0 + w] |= rm
    if before is not None:
        # a class a pixel already had loses to any other class claiming it
        had = np.zeros_like(claims)
        np.put_along_axis(had, before[None].astype(np.intp), True, axis=0)
        kept = claims & had
        claims &= ~had
        claims |= kept & ~claims.any(axis=0, keepdims=True)
    # the last class claiming a pixel (argmax over the reversed stack), 0 where none does
    last = len(TARGET_CLASSES) - 1 - np.argmax(claims[::-1], axis=0)
    return np.where(claims.any(axis=0), last, 0).astype(np.uint8)
