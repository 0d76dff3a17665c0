"""The paper's online augmentation (Sec. IV-B) with albumentations.

Training: horizontal flip, rotation (+-15 degrees, background fill), random crop resized back to
``S x S`` (RandomResizedCrop, 60-100 % of the area), Gaussian noise, brightness and contrast.
Masks follow every geometric step with nearest-neighbour interpolation, so only the original
class ids appear; pixels rotated in from outside become background (0). Validation and test get
no augmentation. Both end by converting to tensors that stay uint8 (image (3, S, S), mask (S, S)):
scaling to [0, 1] and the encoder's normalisation happen on the device
(:class:`clothcurate.training.models.InputNormalizer`), so loader workers, pinning and the copy
to the GPU move a quarter of the bytes of float32 images.

Example::

    tf = build_transform(size=320, train=True)
    out = tf(image=image, mask=mask)      # out["image"]: (3, S, S) uint8, out["mask"]: (S, S) uint8
"""

from __future__ import annotations

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


def build_transform(*, size: int, train: bool) -> A.Compose:
    """The transform of one split.

    Args:
        size: side S of the (square) input the transform receives and returns.
        train: add the online augmentation (training split only).

    Returns:
        A callable ``tf(image=(S, S, 3) uint8, mask=(S, S) uint8) -> {"image": (3, S, S) uint8
        tensor, "mask": (S, S) uint8 tensor}`` (normalise on the device with
        :class:`clothcurate.training.models.InputNormalizer`).
    """
    steps = _paper_augmentation(size) if train else []
    steps.append(ToTensorV2())
    return A.Compose(steps)
