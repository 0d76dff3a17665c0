"""Garment colours: each garment's dominant colour, named from CFPD's colour vocabulary.

CFPD (Liu et al. 2014) labels garments with 13 colour names, id = position in
:data:`CFPD_COLORS`: ``bk`` (its background, no colour) and beige, black, blue, brown, gray,
green, orange, pink, purple, red, white, yellow. A garment is named by its pixels' votes:

* every pixel is taken to CIELAB (OpenCV's conversion of 8-bit sRGB, D65; L in 0..100);
* the darkest 10 % and brightest 5 % of the garment's pixels (deep folds and cast shadows,
  specular highlights) do not vote;
* a pixel of low chroma (a*b* radius below 10, or 15 for bluish pixels:
  shade lit by blue skylight tints grays blue) is black, gray or white by its lightness; any
  other is the name of the nearest prototype of a fixed palette, compared shade-invariantly:
  shade scales a colour's lightness L and its chroma about together, so a* and b* are compared
  as if lit to L = 50 (a* 50 / L, b* 50 / L: hue and saturation) and lightness counts a third;
* the garment's colour is the name most of its voting pixels get, so a patterned garment is named
  by its main colour and a shadowed one keeps its hue.

Shapes: H, W = photo rows and columns; N = pixels.

Example::

    garment_colors(photo_rgb, mask)
    # [{"class": "pants", "pixel_share": 0.081, "color": "blue"}, {"class": "shirt", ...}]
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from clothcurate.labelmaps import TARGET_CLASSES

__all__ = ["CFPD_COLORS", "COLOR_NAMES", "NOT_GARMENTS", "garment_colors", "name_color", "pixel_names"]

#: CFPD's colour names; the position is CFPD's colour id (0 = ``bk``, no colour)
CFPD_COLORS: tuple[str, ...] = ("bk", "beige", "black", "blue", "brown", "gray", "green", "orange", "pink",
                                "purple", "red", "white", "yellow")
#: the names a garment can get (CFPD's without ``bk``)
COLOR_NAMES: tuple[str, ...] = CFPD_COLORS[1:]
#: classes of the 15-class mask that are the person or the scene, not a garment
NOT_GARMENTS: tuple[str, ...] = ("background", "skin", "hair")

# sRGB prototypes of the chromatic names, several where garments commonly differ (navy, denim,
# olive, maroon, burgundy, ...). Black, gray and white are decided by chroma and lightness instead.
_PALETTE: dict[str, tuple[tuple[int, int, int], ...]] = {
    "beige": ((225, 198, 153), (200, 180, 140), (235, 220, 190)),
    "blue": ((30, 60, 180), (35, 40, 100), (100, 150, 220), (70, 90, 130), (20, 30, 60)),
    "brown": ((110, 70, 40), (150, 100, 60), (80, 50, 35), (60, 40, 30)),
    "green": ((40, 140, 60), (90, 110, 50), (30, 80, 50), (130, 200, 120)),
    "orange": ((240, 130, 30), (220, 100, 40)),
    "pink": ((240, 150, 180), (220, 80, 140), (250, 200, 210)),
    "purple": ((120, 50, 150), (80, 40, 100), (170, 130, 200)),
    "red": ((200, 30, 30), (130, 20, 30), (230, 60, 50), (128, 20, 60)),
    "yellow": ((240, 220, 40), (230, 200, 80)),
}
# below this a*b* radius a pixel is black, gray or white; wider for cool (b* < 0) pixels because
# outdoor shade is lit by blue skylight, which tints neutral garments blue
_ACHROMATIC_CHROMA, _ACHROMATIC_CHROMA_COOL = 10.0, 15.0
_BLACK_L, _WHITE_L = 30.0, 78.0
_L_WEIGHT = 1.0 / 3.0           # lightness weight in the distance to a chromatic prototype
_REF_L, _MIN_L = 50.0, 10.0     # a*, b* compared as if lit to L = 50 (L floored: near-black is noise)
_DARK_Q, _BRIGHT_Q = 10.0, 95.0  # lightness percentiles outside which pixels do not vote
_MAX_PIXELS = 20_000            # a larger region votes with an even sample of its pixels


def _lab(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 sRGB -> (N, 3) float32 CIELAB."""
    return cv2.cvtColor(rgb.reshape(-1, 1, 3).astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB).reshape(-1, 3)


def _shade_invariant(lab: np.ndarray) -> np.ndarray:
    """(N, 3) CIELAB -> (N, 3) ``(L / 3, a* 50 / L, b* 50 / L)``: hue and saturation as if lit to L = 50."""
    scale = _REF_L / np.maximum(lab[:, :1], _MIN_L)
    return np.concatenate([lab[:, :1] * _L_WEIGHT, lab[:, 1:] * scale], axis=1)


_PROTO_NAMES = np.array([name for name, protos in _PALETTE.items() for _ in protos])
_PROTO_KEYS = _shade_invariant(_lab(np.array([p for protos in _PALETTE.values() for p in protos], dtype=np.uint8)))


def pixel_names(rgb: np.ndarray) -> np.ndarray:
    """The colour name of each pixel, by the rule in the module docstring.

    Args:
        rgb: (N, 3) uint8 sRGB pixels.

    Returns:
        (N,) array of names from :data:`COLOR_NAMES`.
    """
    lab = _lab(np.ascontiguousarray(rgb, dtype=np.uint8))
    diff = _shade_invariant(lab)[:, None, :] - _PROTO_KEYS[None, :, :]    # (N, P, 3)
    names = _PROTO_NAMES[np.argmin((diff ** 2).sum(-1), axis=1)].astype(object)
    light, chroma = lab[:, 0], np.hypot(lab[:, 1], lab[:, 2])
    grey = chroma < np.where(lab[:, 2] < 0, _ACHROMATIC_CHROMA_COOL, _ACHROMATIC_CHROMA)
    names[grey] = np.where(light[grey] < _BLACK_L, "black", np.where(light[grey] > _WHITE_L, "white", "gray"))
    return names


def name_color(image: np.ndarray, region: np.ndarray) -> str | None:
    """The CFPD colour name of a region's dominant colour.

    Args:
        image: (H, W, 3) uint8 RGB photo.
        region: (H, W) bool, the garment's pixels.

    Returns:
        A name from :data:`COLOR_NAMES`, or None for an empty region.
    """
    pixels = image[region]                                                # (N, 3)
    if len(pixels) == 0:
        return None
    if len(pixels) > _MAX_PIXELS:
        pixels = pixels[np.linspace(0, len(pixels) - 1, _MAX_PIXELS).astype(np.int64)]
    light = _lab(pixels)[:, 0]
    lo, hi = np.percentile(light, (_DARK_Q, _BRIGHT_Q))
    voters = pixels[(light >= lo) & (light <= hi)]
    names, votes = np.unique(pixel_names(voters if len(voters) else pixels), return_counts=True)
    return str(names[np.argmax(votes)])


def garment_colors(image: np.ndarray, mask: np.ndarray, *,
                   classes: Sequence[str] = TARGET_CLASSES) -> list[dict]:
    """Each garment in a class mask with its share of the photo and its colour name.

    Args:
        image: (H, W, 3) uint8 RGB photo.
        mask: (H, W) uint8 class ids into ``classes`` (the 15 target classes by default).
        classes: the class names, by id.

    Returns:
        ``[{"class", "pixel_share", "color"}]`` for every class present except
        :data:`NOT_GARMENTS`, largest first; ``pixel_share`` is the class's fraction of the photo's
        pixels (6 decimals), ``color`` a name from :data:`COLOR_NAMES`.

    Raises:
        ValueError: the photo and mask differ in size, or the mask holds an id outside ``classes``.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or mask.shape != image.shape[:2]:
        raise ValueError(f"need an (H, W, 3) uint8 photo and an (H, W) mask, got {image.dtype} {image.shape} "
                         f"and {mask.shape}")
    counts = np.bincount(mask.ravel(), minlength=len(classes))
    if len(counts) > len(classes):
        raise ValueError(f"mask id {len(counts) - 1} is outside the {len(classes)} classes")
    return [{"class": classes[c], "pixel_share": round(float(counts[c]) / mask.size, 6),
             "color": name_color(image, mask == c)}
            for c in np.argsort(-counts, kind="stable") if counts[c] and classes[c] not in NOT_GARMENTS]
