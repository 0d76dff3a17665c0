"""Connected regions of a 15-class mask and relabelling them (array work only, no FiftyOne).

A region is an 8-connected component of one class (as the model findings of ``flag-errors
--model`` group pixels). Regions of a class are numbered from 1, largest first (ties: topmost,
then leftmost), so ``clothcurate fix --list-regions`` and ``--relabel FROM:TO --region N`` agree.
Shapes: H, W = mask rows and columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from clothcurate.labelmaps import TARGET_CLASSES

__all__ = ["CONNECTIVITY", "Region", "class_regions", "all_regions", "region_of_pixels"]

#: regions are 8-connected, as flag-errors' findings (clothcurate.curation.flags.internal.confident)
CONNECTIVITY = 8


@dataclass(frozen=True)
class Region:
    """One numbered region of one class.

    Attributes:
        cls: the class id.
        number: 1 = the largest region of that class.
        pixels: its area.
        box: ``(x, y, width, height)`` in pixels.
    """

    cls: int
    number: int
    pixels: int
    box: tuple[int, int, int, int]

    def describe(self) -> str:
        """e.g. ``dress region 2: 12,400 px at x=120 y=310 (85x140)``."""
        x, y, w, h = self.box
        return f"{TARGET_CLASSES[self.cls]} region {self.number}: {self.pixels:,} px at x={x} y={y} ({w}x{h})"


def class_regions(mask: np.ndarray, cls: int) -> tuple[np.ndarray, list[Region]]:
    """The numbered regions of one class.

    Args:
        mask: (H, W) uint8 class ids.
        cls: the class.

    Returns:
        ``(numbers, regions)``: (H, W) int32 region number of each pixel of ``cls`` (0 elsewhere)
        and the regions, in number order.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats((mask == cls).view(np.uint8), connectivity=CONNECTIVITY)
    comps = range(1, n)
    order = sorted(comps, key=lambda c: (-stats[c, cv2.CC_STAT_AREA], stats[c, cv2.CC_STAT_TOP],
                                         stats[c, cv2.CC_STAT_LEFT]))
    lut = np.zeros(n, np.int32)
    regions = []
    for number, c in enumerate(order, start=1):
        lut[c] = number
        x, y, w, h, area = (int(v) for v in stats[c])
        regions.append(Region(cls, number, area, (x, y, w, h)))
    return lut[labels], regions


def all_regions(mask: np.ndarray) -> list[Region]:
    """Every region of every class present, by class id then number.

    Args:
        mask: (H, W) uint8 class ids.
    """
    return [r for cls in np.unique(mask) for r in class_regions(mask, int(cls))[1]]


def region_of_pixels(mask: np.ndarray, cls: int, pixels: np.ndarray) -> np.ndarray | None:
    """The region of ``cls`` that holds most of ``pixels``.

    Args:
        mask: (H, W) uint8 class ids.
        cls: the class.
        pixels: (H, W) bool.

    Returns:
        (H, W) bool, that region; None when no pixel of ``pixels`` is of ``cls``.
    """
    numbers, _ = class_regions(mask, cls)
    hits = np.bincount(numbers[pixels], minlength=1)
    hits[0] = 0
    if not hits.any():
        return None
    return numbers == int(hits.argmax())
