"""How training images are drawn each epoch: uniformly, or repeat-factor sampling of rare classes.

Shapes: N training images, K classes, H x W = the model input.

``repeat-factor`` follows LVIS (Gupta et al. 2019, Sec. 4) restricted to the classes the
benchmark finds failing (:data:`REPEAT_CLASSES`): with ``f(c)`` the share of the fold's training
images whose mask holds class c, an image's repeat factor is

    r(image) = max(1, max over its classes c in REPEAT_CLASSES of sqrt(t / f(c))),  t = REPEAT_THRESHOLD

so an image with none of these classes keeps r = 1. On CCP's 803 training images of fold 0,
t = 0.5 gives romper (3.4 % of the images) r = 3.9, shorts 2.9, scarf/tie 2.3, hat 2.2, socks 1.8,
glasses 1.3. The other classes are left out even when rare in images because they are large in
pixels and already learnt (dress, coat). The factors become the weights of torch's
``WeightedRandomSampler`` (drawn with replacement) over an epoch of the *same* length as a uniform
one: the training budget (steps, schedule) is unchanged, only the mix of images moves. Under DDP
each rank draws its own ``ceil(N / world_size)`` images from its own RNG stream; independent draws
with replacement have the distribution of one shared draw split between ranks.

Presence is read from the masks the model is trained on (a pixel value >= K, e.g. an ignore
index, is no class), so any training set built from :class:`~clothcurate.training.data.DecodedCache`
works, whatever its source.

Example::

    presence = dataset_presence(train_set, num_classes=15)     # (N, K) bool
    weights = repeat_factors(presence, classes=export.classes)  # (N,) float64, >= 1
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from clothcurate.errors import BadInputError
from clothcurate.training.config import REPEAT_CLASSES, SAMPLINGS

__all__ = ["SAMPLINGS", "REPEAT_CLASSES", "REPEAT_THRESHOLD", "mask_presence", "dataset_presence",
           "repeat_factors", "sampling_weights"]

#: LVIS's threshold t: a class in a smaller share of the training images than t is over-sampled
REPEAT_THRESHOLD = 0.5


def mask_presence(masks: torch.Tensor, num_classes: int) -> np.ndarray:
    """Which classes each mask holds.

    Args:
        masks: (N, H, W) uint8 class ids (values >= K are no class).
        num_classes: K.

    Returns:
        (N, K) bool.
    """
    out = np.zeros((len(masks), num_classes), dtype=bool)
    for n in range(len(masks)):   # one bincount per mask: no (N, H, W) int64 temporary
        out[n] = (torch.bincount(masks[n].reshape(-1).long(), minlength=256)[:num_classes] > 0).numpy()
    return out


def dataset_presence(dataset: Dataset, num_classes: int) -> np.ndarray:
    """Class presence of every item of a training set, from its decoded masks.

    Args:
        dataset: a :class:`~clothcurate.training.data.SegmentationDataset` (``cache`` and
            ``positions``) or a ``ConcatDataset`` of them.
        num_classes: K.

    Returns:
        (len(dataset), K) bool, in item order.

    Raises:
        TypeError: a dataset that exposes no decoded masks.
    """
    if isinstance(dataset, ConcatDataset):
        return np.concatenate([dataset_presence(part, num_classes) for part in dataset.datasets])
    cache, positions = getattr(dataset, "cache", None), getattr(dataset, "positions", None)
    if cache is None or positions is None:
        raise TypeError(f"{type(dataset).__name__} exposes no decoded masks (cache, positions)")
    return mask_presence(cache.masks[list(positions)], num_classes)


def repeat_factors(presence: np.ndarray, *, classes: Sequence[str], rare: Sequence[str] = REPEAT_CLASSES,
                   threshold: float = REPEAT_THRESHOLD) -> np.ndarray:
    """LVIS repeat factors over the ``rare`` classes (module docstring).

    Args:
        presence: (N, K) bool class presence of the training images.
        classes: the K class names (a rare name missing from them is skipped).
        rare: the classes that may raise an image's factor.
        threshold: t.

    Returns:
        (N,) float64 factors, >= 1.
    """
    p = np.asarray(presence, dtype=bool)
    share = p.mean(0) if len(p) else np.zeros(p.shape[1])
    factor = np.ones(p.shape[1])
    for name in rare:
        if name in classes:
            c = list(classes).index(name)
            if share[c] > 0:
                factor[c] = max(1.0, float(np.sqrt(threshold / share[c])))
    return np.where(p, factor[None, :], 1.0).max(1) if p.shape[1] else np.ones(len(p))


def sampling_weights(sampling: str, dataset: Dataset, *, classes: Sequence[str]) -> np.ndarray | None:
    """The per-image draw weights of a sampling policy (None: uniform, no weights).

    Raises:
        BadInputError: an unknown policy.
    """
    if sampling not in SAMPLINGS:
        raise BadInputError(f"--sampling {sampling!r}: use one of {', '.join(SAMPLINGS)}")
    if sampling == "uniform":
        return None
    return repeat_factors(dataset_presence(dataset, len(classes)), classes=classes)
