"""The ``model`` person detector: a first pass of the run's own segmentation model on the whole
photo, and a box around each person-shaped foreground region.

The photo is resized plainly to the model's input (as an export without crop), segmented, and
its non-background pixels are closed (so that a person's garments, skin and hair form one region);
every region at least ``min_share`` of the largest gets a box, scaled back to the photo. The crop
pass of :mod:`clothcurate.inference.predict` then segments each box at the model's resolution.
It needs no other weights than the run's, so it always works offline.

Registered in :mod:`clothcurate.detection`'s registry when this module is imported (predict does).

Shapes: H, W = photo rows and columns; S = the model input side.

Example::

    det = create_detector("model", segmenter=Segmenter.from_run("runs/fpn"))
    det.detect(photo_rgb)            # [PersonBox(box=(x, y, w, h), score, "model")], best first
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from clothcurate.detection import PersonBox, register_detector
from clothcurate.detection.registry import best_first, check_image, clip_corners
from clothcurate.errors import BadInputError
from clothcurate.geometry import resize_image
from clothcurate.inference.segmenter import Segmenter

__all__ = ["ModelDetector"]


def _to_batch(photos: Sequence[np.ndarray], size: tuple[int, int]) -> torch.Tensor:
    """(N, 3, h, w) uint8: every photo resized plainly to the model input (area when shrinking)."""
    return torch.from_numpy(np.stack([resize_image(p, size) for p in photos])).permute(0, 3, 1, 2).contiguous()


@register_detector("model")
class ModelDetector:
    """People as the foreground of a first segmentation pass on the whole photo.

    Args:
        segmenter: the run's model(s).
        min_score: regions whose mean foreground probability is below this are dropped.
        min_share: a region smaller than this fraction of the largest one is not a person (bits
            of clutter the model calls a bag or a shoe).
        close: side of the closing, as a fraction of the input's longer side, that joins a person's parts into one region.
    """

    name = "model"

    def __init__(self, *, segmenter: Segmenter | None = None, min_score: float = 0.0, min_share: float = 0.25,
                 close: float = 0.06):
        if segmenter is None or segmenter.input_size is None:
            raise BadInputError("the model detector needs a trained run (predict --run RUN_DIR)")
        self.segmenter, self.min_score, self.min_share, self.close = segmenter, min_score, min_share, close

    def detect(self, image: np.ndarray) -> list[PersonBox]:
        """The people in one (H, W, 3) uint8 RGB photo, best first."""
        return self.detect_many([image])[0]

    def detect_many(self, images: Sequence[np.ndarray]) -> list[list[PersonBox]]:
        """:meth:`detect` for several photos in one batch of the model."""
        if not images:
            return []
        for image in images:
            check_image(image)
        size = self.segmenter.input_size
        probs = self.segmenter.probabilities(_to_batch(images, size))         # (N, K, h, w)
        fg_prob = (1.0 - probs[:, 0]).cpu().numpy()                           # (N, h, w)
        labels = probs.argmax(1).cpu().numpy()
        side = max(1, round(self.close * max(size))) | 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
        return [self._boxes(labels[i] != 0, fg_prob[i], image.shape[:2], kernel) for i, image in enumerate(images)]

    def _boxes(self, fg: np.ndarray, fg_prob: np.ndarray, shape: tuple[int, int],
               kernel: np.ndarray) -> list[PersonBox]:
        """Boxes of the large foreground regions of one (h, w) map, scaled to the (H, W) photo."""
        joined = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_CLOSE, kernel)
        n, comp, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
        if n <= 1:
            return []
        areas = stats[1:, cv2.CC_STAT_AREA]
        sy, sx = shape[0] / fg.shape[0], shape[1] / fg.shape[1]
        out = []
        for c in [i + 1 for i in range(n - 1) if areas[i] >= self.min_share * areas.max()]:
            x, y, w, h = (int(v) for v in stats[c, :4])
            person = (comp == c) & fg  # the closing's filler pixels are not the model's foreground
            score = float(fg_prob[person].mean()) if person.any() else 0.0
            if score >= self.min_score:
                box = clip_corners(x * sx, y * sy, (x + w) * sx, (y + h) * sy, width=shape[1], height=shape[0])
                out.append(PersonBox(box=box, score=score, detector=self.name))
        return best_first(out)
