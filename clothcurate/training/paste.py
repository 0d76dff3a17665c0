"""Garment paste: copy-paste augmentation of the rare garments between training person crops.

Shapes: N training images, K classes, H x W = the model input.

Simple copy-paste (Ghiasi et al., CVPR 2021) pastes the pixels of an object from one training
image onto another; on LVIS it helps the rare classes most. Our training images are person crops
resized to one frame, so a garment of one crop sits roughly where the same garment would sit on
the person of any other crop: :class:`GarmentPaste` pastes it *at its own place*, no shift or
rescale (the augmentation that follows moves the composite as a whole). With probability ``p``
a training item gets one garment: a class drawn uniformly among the :data:`REPEAT_CLASSES` that
some donor's mask holds, then a donor crop holding it, drawn uniformly; the donor's pixels of that
class replace the item's image and mask there. The rare garments then appear on other people, over
other clothes and backgrounds, against the models' learning the few training photos of a romper
by heart. Measured at 160 px (docs/results.md) it did not help (romper stays at 0, mIoU -0.8 to
-1.7), so both recipes leave it off.

Donors are labelled crops only (a pseudo-mask's classes are a teacher's guess); the item receiving
the paste may be any training item.

Example::

    paste = GarmentPaste(cache, donors=fit_positions, classes=export.classes, p=0.5)
    image, mask = paste(image, mask, position=pos)      # (H, W, 3) uint8, (H, W) uint8, changed in place
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clothcurate.training.config import REPEAT_CLASSES
from clothcurate.training.data import DecodedCache
from clothcurate.training.sampling import mask_presence

__all__ = ["GarmentPaste"]


class GarmentPaste:
    """Pastes one rare garment of another training crop onto an item, with probability ``p``.

    Args:
        cache: the decoded crops (donor pixels are read from it, never written).
        donors: cache positions that may give a garment (the labelled training crops).
        classes: the K class names (cache mask value = index).
        p: probability that an item gets a garment (0: never).
        rare: the classes that are pasted (those that no donor holds are skipped).

    Raises:
        ValueError: ``p`` outside [0, 1].
    """

    def __init__(self, cache: DecodedCache, *, donors: Sequence[int], classes: Sequence[str], p: float,
                 rare: Sequence[str] = REPEAT_CLASSES):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"paste probability {p} outside [0, 1]")
        self.cache, self.p = cache, float(p)
        donors = np.asarray(sorted({int(d) for d in donors}), dtype=np.int64)
        presence = mask_presence(cache.masks[donors.tolist()], len(classes))         # (D, K); (0, K): no donor
        #: class id -> the donor positions whose mask holds it
        self.donors: dict[int, np.ndarray] = {}
        for name in rare:
            if name in classes:
                c = list(classes).index(name)
                if presence[:, c].any():
                    self.donors[c] = donors[presence[:, c]]

    def __call__(self, image: np.ndarray, mask: np.ndarray, *, position: int,
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Maybe paste a garment onto one item.

        Args:
            image: (H, W, 3) uint8, modified in place when a garment is pasted.
            mask: (H, W) uint8 class ids, likewise.
            position: the item's own cache position (never its own donor).
            rng: random source; None: numpy's global one (seeded per loader worker).

        Returns:
            ``(image, mask)``.
        """
        draw = rng.random if rng is not None else np.random.random
        if not self.donors or draw() >= self.p:
            return image, mask
        pick = rng.integers if rng is not None else np.random.randint
        c = list(self.donors)[int(pick(len(self.donors)))]
        candidates = self.donors[c][self.donors[c] != position]
        if not len(candidates):
            return image, mask
        donor = int(candidates[int(pick(len(candidates)))])
        region = self.cache.masks[donor].numpy() == c                                  # (H, W) bool
        image[region] = self.cache.images[donor].numpy()[region]
        mask[region] = c
        return image, mask
