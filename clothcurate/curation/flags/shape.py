"""Checks of a mask's shape: speckle, holes inside a garment, a person broken into pieces.

Connected components come from OpenCV and scikit-image (all classes in one pass); every statistic is
judged against the dataset's own distribution (:mod:`.calibration`).
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.measure import label as label_regions

from clothcurate.curation.flags.calibration import Tail, fit_tail
from clothcurate.curation.flags.registry import Check, register
from clothcurate.curation.flags.sample import SampleMasks, components
from clothcurate.labelmaps import TARGET_CLASSES

#: a component below this share of the foreground counts as a fragment (speckle)
FRAGMENT_SHARE = 0.001
#: classes that hold a hole only if something was erased (skin, hair and bags enclose background
#: naturally: an arm on the hip, a bag's handle)
GARMENTS = tuple(i for i, c in enumerate(TARGET_CLASSES)
                 if c not in ("background", "skin", "hair", "bag", "glasses"))
_RING = np.ones((3, 3), np.uint8)


# -- tiny fragments -----------------------------------------------------------------------------

def _measure_fragments(s: SampleMasks) -> float:
    """log(1 + number of fragments of any class smaller than FRAGMENT_SHARE of the foreground)."""
    if s.foreground_pixels == 0:
        return 0.0
    small = max(4.0, FRAGMENT_SHARE * s.foreground_pixels)
    areas = np.bincount(label_regions(s.gt, background=0, connectivity=2).ravel())[1:]
    return float(np.log1p(int((areas < small).sum())))


tiny_fragments = register(Check(
    name="tiny_fragments",
    description="Many tiny disconnected pieces of some class (speckle): careless brushing or a "
                "noisy automatic label. Fragments are pieces under 0.1 % of the person's pixels; "
                "judged against the dataset's usual count.",
    measure=_measure_fragments,
    fit=lambda ms: fit_tail(ms, floor=0.5),
    score=lambda m, tail: tail.score(m),
    weight=0.6,
    family="shape",
))


# -- holes --------------------------------------------------------------------------------------

def _measure_holes(s: SampleMasks) -> tuple[float, float]:
    """Background islands that do not reach the image border.

    Returns:
        ``(one_garment, all_holes)``: their area as a share of the foreground, counting only the
        islands whose whole rim is one garment class, and counting all of them.
    """
    if s.foreground_pixels == 0:
        return 0.0, 0.0
    labels, stats = components(~s.foreground, connectivity=4)
    areas = stats[:, cv2.CC_STAT_AREA]
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    enclosed = np.ones(len(areas), bool)
    enclosed[border] = False
    enclosed[0] = False
    total = int(areas[enclosed].sum())
    one = 0
    # only islands big enough to matter get their rim examined (tiny ones are speckle)
    big = enclosed & (areas >= FRAGMENT_SHARE * s.foreground_pixels)
    for h in np.flatnonzero(big):
        x, y, w, hh, _ = stats[h]
        ys, xs = slice(max(y - 1, 0), y + hh + 1), slice(max(x - 1, 0), x + w + 1)
        win = labels[ys, xs] == h
        rim = cv2.dilate(win.view(np.uint8), _RING).astype(bool) & ~win
        rim_classes = np.unique(s.gt[ys, xs][rim])
        if len(rim_classes) == 1 and int(rim_classes[0]) in GARMENTS:
            one += int(areas[h])
    return one / s.foreground_pixels, total / s.foreground_pixels


def _fit_holes(ms: list[tuple[float, float]]) -> tuple[Tail, Tail]:
    a = np.asarray(ms, dtype=np.float64).reshape(-1, 2)
    return fit_tail(a[:, 0], floor=0.002), fit_tail(a[:, 1], floor=0.01)


def _score_holes(m: tuple[float, float], tails: tuple[Tail, Tail]) -> float:
    return max(tails[0].score(m[0]), tails[1].score(m[1]))


holes = register(Check(
    name="holes",
    description="Unlabelled (background) islands inside the person, especially ones enclosed by a "
                "single garment: a garment or the body under it was not (or no longer) labelled.",
    measure=_measure_holes,
    fit=_fit_holes,
    score=_score_holes,
    weight=0.8,
    family="shape",
))


# -- detached parts -----------------------------------------------------------------------------

def _measure_detached(s: SampleMasks) -> tuple[float, float]:
    """How broken the labelled person is.

    Returns:
        ``(detached, gap)``: the share of foreground pixels outside the largest foreground
        component, and the share of the person box's rows that hold no foreground at all (a
        band erased across the body: shoes floating under an unlabelled pair of trousers).
    """
    if s.foreground_pixels == 0:
        return 0.0, 0.0
    _, stats = s.foreground_components
    detached = 1.0 - stats[1:, cv2.CC_STAT_AREA].max() / s.foreground_pixels
    y0, y1, _, _ = s.person_box
    rows = s.foreground[y0:y1].any(axis=1)
    return float(detached), float(1.0 - rows.mean())


def _fit_detached(ms: list[tuple[float, float]]) -> tuple[Tail, Tail]:
    a = np.asarray(ms, dtype=np.float64).reshape(-1, 2)
    return fit_tail(a[:, 0], floor=0.01), fit_tail(a[:, 1], floor=0.01)


detached_parts = register(Check(
    name="detached_parts",
    description="The labelled person falls apart: a large share of the labels lies away from the "
                "main body, or a band of rows across the body has no label (an erased garment, a "
                "stray blob in the background).",
    measure=_measure_detached,
    fit=_fit_detached,
    score=lambda m, tails: max(tails[0].score(m[0]), tails[1].score(m[1])),
    weight=0.8,
    family="shape",
))

