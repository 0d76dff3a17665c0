"""What a 15-class mask says about its sample: the classes present, their pixel counts, the person box.

One function for every writer of ``ground_truth`` (ingest, corrections), so the derived fields
``classes``, ``class_pixels`` and ``person`` always agree with the mask they describe.

Example::

    from clothcurate.mask_facts import mask_facts
    facts = mask_facts(gt)          # gt: (H, W) uint8 class ids 0..14
    facts.classes, facts.class_pixels, facts.person
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from clothcurate.labelmaps import NUM_CLASSES, TARGET_CLASSES

__all__ = ["MaskFacts", "mask_facts"]


@dataclass(frozen=True)
class MaskFacts:
    """The derived fields of one sample.

    Attributes:
        classes: names of the target classes present, in class-id order (background included when present).
        class_pixels: ``{class name: pixel count}`` of the classes present.
        person: ``[x, y, w, h]`` relative to the mask's size: the extent of the non-background pixels,
            or None when there are none.
    """

    classes: list[str]
    class_pixels: dict[str, int]
    person: list[float] | None


def mask_facts(mask: np.ndarray) -> MaskFacts:
    """Measure a 15-class mask.

    Args:
        mask: (H, W) uint8 target class ids ``0..K-1`` (K = 15).

    Returns:
        Its :class:`MaskFacts`.
    """
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    counts = cv2.calcHist([mask], [0], None, [NUM_CLASSES], [0, NUM_CLASSES]).ravel().astype(np.int64)
    x0, y0, box_w, box_h = cv2.boundingRect(mask)  # extent of the non-zero (non-background) pixels
    height, width = mask.shape
    person = [x0 / width, y0 / height, box_w / width, box_h / height] if box_w else None
    present = np.flatnonzero(counts)
    return MaskFacts(classes=[TARGET_CLASSES[i] for i in present],
                     class_pixels={TARGET_CLASSES[i]: int(counts[i]) for i in present},
                     person=person)
