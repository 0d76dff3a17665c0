"""The paper's online augmentation (Sec. IV-B) with albumentations, plus input normalisation.

Training: horizontal flip, rotation (+-15 degrees, background fill), random crop resized back to
``S x S`` (RandomResizedCrop, 60-100 % of the area), Gaussian noise, brightness and contrast.
Masks follow every geometric step with nearest-neighbour interpolation, so only the original
class ids appear; pixels rotated in from outside become background (0). Validation and test get
no augmentation. Both end by scaling to [0, 1], normalising with the encoder's mean and std and
converting to tensors (image (3, S, S) float32, mask (S, S) uint8).

Example::

    tf = build_transform(size=320, train=True, mean=(0.5,) * 3, std=(0.5,) * 3)
    out = tf(image=image, mask=mask)      # out["image"]: (3, S, S) float, out["mask"]: (S, S)
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2

__all__ = ["build_transform"]


def _paper_augmentation(size: int) -> list[A.BasicTransform]:
    """Flip, rotation, random crop, Gaussian noise, brightness/contrast (geometric first)."""
    return [
        A.HorizontalFlip(p=0.5),
        A.Rotate(limit=15, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                 border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=0.5),
        A.RandomResizedCrop(size=(size, size), scale=(0.6, 1.0), ratio=(0.8, 1.25),
                            interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST, p=0.5),
        A.GaussNoise(std_range=(0.02, 0.08), p=0.3),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
    ]


def build_transform(*, size: int, train: bool, mean: Sequence[float], std: Sequence[float]) -> A.Compose:
    """The transform of one split.

    Args:
        size: side S of the (square) input the transform receives and returns.
        train: add the online augmentation (training split only).
        mean: per-channel mean of the encoder's normalisation, for [0, 1]-scaled RGB.
        std: per-channel standard deviation, same convention.

    Returns:
        A callable ``tf(image=(S, S, 3) uint8, mask=(S, S) uint8) -> {"image": (3, S, S) float32
        tensor, "mask": (S, S) uint8 tensor}``.
    """
    steps = _paper_augmentation(size) if train else []
    steps += [A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0), ToTensorV2()]
    return A.Compose(steps)
