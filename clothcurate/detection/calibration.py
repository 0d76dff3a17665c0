"""What ``predict`` crops of a detector's people: which boxes (:class:`SubjectRule`) and how far
each box is widened first (:class:`BoxCalibration`), per detector (:func:`register_box_rule`).

The segmentation models train on crops around the ANNOTATION person box (the extent of the mask's
non-background pixels); ``predict`` crops around a DETECTOR's box. Two things make those crops
differ on CCP (``bench/predict.py``, docs/results.md "Person detection"):

* passers-by: a third of the photos hold more than one box, mostly smaller people behind the
  subject, which CCP annotates as background. ``predict`` segments every box it keeps, so each of
  those paints garments onto background (and its crop may win pixels of the subject where crops
  overlap). :class:`SubjectRule` keeps only the people at least a given share as tall as the
  tallest one: a group of people of similar size stays, passers-by far behind do not;
* the box's sides: a detector's box is not the mask's extent. :class:`BoxCalibration` widens each
  side by a fixed fraction of the box, fitted (:func:`fit_calibration`, ``bench/predict.py
  --fit-calibration``) so that the crop of the widened detector box matches the crop of the
  annotation box as closely as possible (mean IoU of the two crops), on photos that are then not
  used to score it.

The detector's own boxes are never changed: ``predict`` records them as found and adds the crop
box it used (:func:`people_to_crop`).

Shapes: H, W = photo rows and columns; N = photos.

Example::

    chosen = people_to_crop(detector.detect(photo), width=W, height=H)   # [(index, widened PersonBox)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from clothcurate.detection.registry import PersonBox, clip_corners

__all__ = ["BoxCalibration", "SubjectRule", "BoxRule", "BOX_RULES", "register_box_rule", "box_rule",
           "people_to_crop", "fit_calibration", "crop_iou"]


@dataclass(frozen=True)
class BoxCalibration:
    """A fixed widening of each side of a detector's person box.

    Attributes:
        left, right: moved outwards by this fraction of the box's width (negative: inwards).
        top, bottom: moved outwards by this fraction of the box's height.
    """

    left: float = 0.0
    top: float = 0.0
    right: float = 0.0
    bottom: float = 0.0

    def apply(self, box: Sequence[int], *, width: int, height: int) -> tuple[int, int, int, int]:
        """The widened ``(x, y, w, h)`` pixel box, inside a ``width`` x ``height`` photo (outer pixels:
        a side moved by a fraction of a pixel takes the whole pixel)."""
        x, y, w, h = (float(v) for v in box)
        return clip_corners(x - self.left * w, y - self.top * h, x + w + self.right * w, y + h + self.bottom * h,
                            width=width, height=height)

    def as_list(self) -> list[float]:
        """``[left, top, right, bottom]``."""
        return [self.left, self.top, self.right, self.bottom]


@dataclass(frozen=True)
class SubjectRule:
    """Which of a photo's people ``predict`` segments.

    Attributes:
        min_height_ratio: keep a person whose box is at least this fraction as tall as the tallest
            box of the photo (0: keep everyone).
    """

    min_height_ratio: float = 0.0

    def select(self, people: Sequence[PersonBox]) -> list[int]:
        """The indices (in ``people``'s order) of the people to segment."""
        tallest = max((p.box[3] for p in people), default=0)
        return [i for i, p in enumerate(people) if p.box[3] >= self.min_height_ratio * tallest]


@dataclass(frozen=True)
class BoxRule:
    """A detector's :class:`SubjectRule` and :class:`BoxCalibration`, and where they come from."""

    subjects: SubjectRule = field(default_factory=SubjectRule)
    calibration: BoxCalibration = field(default_factory=BoxCalibration)
    source: str = "none: every box, as found"


#: per detector registry name; a detector without an entry keeps every box as found
BOX_RULES: dict[str, BoxRule] = {}


def register_box_rule(name: str, rule: BoxRule) -> None:
    """Set the :class:`BoxRule` of detector ``name`` (a key of :data:`~clothcurate.detection.DETECTORS`)."""
    BOX_RULES[name] = rule


def box_rule(name: str) -> BoxRule:
    """The :class:`BoxRule` of detector ``name`` (the identity rule when it has none)."""
    return BOX_RULES.get(name, BoxRule())


def people_to_crop(people: Sequence[PersonBox], *, width: int, height: int) -> list[tuple[int, PersonBox]]:
    """The people ``predict`` segments and the boxes it crops around, by each box's detector's rule.

    Args:
        people: one photo's detections, all of one detector (best first, as ``detect`` returns them).
        width: photo width W in pixels.
        height: photo height H in pixels.

    Returns:
        ``(index in people, PersonBox with the widened box)`` for each person kept, in ``people``'s order.
    """
    if not people:
        return []
    rule = box_rule(people[0].detector)
    return [(i, replace(people[i], box=rule.calibration.apply(people[i].box, width=width, height=height)))
            for i in rule.subjects.select(people)]


def _crop_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (N, 4) ``(x0, y0, x1, y1)`` boxes, row by row: (N,)."""
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    area = lambda c: (c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1)


def crop_iou(calibration: BoxCalibration, pairs: Sequence[tuple[Sequence[int], Sequence[int], tuple[int, int]]], *,
             aspect: float | None = 1.0, margin: float = 0.05) -> np.ndarray:
    """Per photo, the IoU of the crop around the calibrated detector box with the crop around the
    annotation box (both by :func:`clothcurate.geometry.crop_box`).

    Args:
        calibration: the widening to score.
        pairs: ``(detector box, annotation box, (W, H))`` per photo, boxes ``(x, y, w, h)`` pixels.
        aspect: the crops' height / width (1.0: square, as the default model input).
        margin: crop_box's margin.

    Returns:
        (N,) IoUs.
    """
    from clothcurate.geometry import crop_box

    def crop(box, w, h):
        return crop_box([box[0] / w, box[1] / h, box[2] / w, box[3] / h], width=w, height=h, margin=margin,
                        aspect=aspect)

    det = np.array([crop(calibration.apply(d, width=w, height=h), w, h) for d, _, (w, h) in pairs], float)
    ann = np.array([crop(t, w, h) for _, t, (w, h) in pairs], float)
    return _crop_iou(det, ann)


def fit_calibration(pairs: Sequence[tuple[Sequence[int], Sequence[int], tuple[int, int]]], *,
                    aspect: float | None = 1.0, margin: float = 0.05,
                    grid: Sequence[float] = tuple(np.round(np.arange(0.0, 0.301, 0.01), 2)),
                    rounds: int = 2) -> BoxCalibration:
    """The widening per side that maximises the mean :func:`crop_iou` over ``pairs``.

    Coordinate ascent, one side at a time over ``grid``, ``rounds`` times. Only widening is tried by
    default (the grid starts at 0): a narrower box cuts off the person, and a side whose crop does
    not depend on it (e.g. left / right when the crop is as tall as the photo allows) stays at 0,
    since a move must gain at least 1e-4.

    Args:
        pairs: ``(detector box, annotation box, (W, H))`` per photo (photos where the detector
            missed the person are better left out: no widening fixes them).
        aspect: the crops' height / width.
        margin: crop_box's margin.
        grid: the fractions tried per side.
        rounds: passes over the four sides.

    Returns:
        The fitted calibration.

    Raises:
        ValueError: no pairs.
    """
    if not pairs:
        raise ValueError("fit_calibration needs at least one (detector box, annotation box) pair")
    sides = [0.0, 0.0, 0.0, 0.0]
    score = lambda s: float(crop_iou(BoxCalibration(*s), pairs, aspect=aspect, margin=margin).mean())  # noqa: E731
    best = score(sides)
    for _ in range(rounds):
        for k in range(4):
            for v in grid:
                trial = sides[:k] + [float(v)] + sides[k + 1:]
                s = score(trial)
                if s > best + 1e-4:
                    sides, best = trial, s
    return BoxCalibration(*sides)
