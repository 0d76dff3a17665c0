"""``hog``: OpenCV's built-in HOG + linear SVM people detector (Dalal & Triggs; 64 x 128 windows).

No weights to fetch, but a weak baseline on fashion photos (issue 14 measured 49 % recall at
IoU >= 0.5 on CCP): the default detector is :mod:`.ssdlite_pedestrian`.
"""

from __future__ import annotations

import cv2
import numpy as np

from clothcurate.detection.registry import PersonBox, best_first, check_image, clip_corners, register_detector

__all__ = ["HogDetector"]


@register_detector("hog")
class HogDetector:
    """OpenCV's default HOG people detector, run on the photo scaled to ``height`` rows.

    Args:
        height: rows the photo is scaled to first (the speed/recall trade-off; 400 as measured).
        min_score: people scoring below this are dropped. The score is the SVM margin squashed by
            a logistic, so 0.5 is the SVM's own decision boundary.
    """

    name = "hog"

    def __init__(self, *, height: int = 400, min_score: float = 0.5):
        self.height, self.min_score = height, min_score
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(self, image: np.ndarray) -> list[PersonBox]:
        """The people in one (H, W, 3) uint8 RGB photo, best first."""
        check_image(image)
        rows, cols = image.shape[:2]
        scale = self.height / rows
        small = cv2.resize(image, (max(64, round(cols * scale)), self.height),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        rects, margins = self.hog.detectMultiScale(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), winStride=(8, 8))
        found = []
        for (x, y, w, h), margin in zip(np.asarray(rects).reshape(-1, 4), np.asarray(margins).ravel()):
            score = float(1.0 / (1.0 + np.exp(-margin)))
            if score >= self.min_score:
                box = clip_corners(x / scale, y / scale, (x + w) / scale, (y + h) / scale, width=cols, height=rows)
                found.append(PersonBox(box=box, score=score, detector=self.name))
        return best_first(found)
