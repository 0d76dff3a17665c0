"""The online augmentation with albumentations: the paper's (Sec. IV-B), scale-jitter or rotation.

Policy ``paper`` (the default): horizontal flip, rotation (+-15 degrees, background fill), random
crop resized back to the ``H x W`` input (RandomResizedCrop, 60-100 % of the area), Gaussian noise,
brightness and contrast. Policy ``scale``: horizontal flip, one affine step scaling the person by
+-25 % (zoom out as well as in, so the model also sees smaller people), rotating +-15 degrees and
shifting up to 10 %, then the same noise and photometric steps. Policy ``rotate``: horizontal
flip and a rotation of +-10 degrees as the only geometric steps (no crop, no scaling), then the
same noise and photometric steps: it measures rotation on its own (``scale`` rotates too). A
flip keeps every label: the 15 classes have no left/right pairs.
Masks follow every geometric step with nearest-neighbour interpolation, so only the original
class ids appear; pixels rotated in from outside become background (0). Validation and test get
no augmentation. Both end by converting to tensors that stay uint8 (image (3, H, W), mask (H, W)):
scaling to [0, 1] and the encoder's normalisation happen on the device
(:class:`clothcurate.training.models.InputNormalizer`), so loader workers, pinning and the copy
to the GPU move a quarter of the bytes of float32 images.

Example::

    tf = build_transform(size=320, train=True)
    out = tf(image=image, mask=mask)      # out["image"]: (3, H, W) uint8, out["mask"]: (H, W) uint8
"""

from __future__ import annotations

import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2

from clothcurate.errors import BadInputError
from clothcurate.geometry import Size, as_size
from clothcurate.training.config import AUGMENTATIONS

__all__ = ["build_transform", "AUGMENTATIONS"]


def _paper_augmentation(size: Size) -> list[A.BasicTransform]:
    """Flip, rotation, random crop, Gaussian noise, brightness/contrast (geometric first). The
    random crop's width:height stays within 0.8-1.25x the input's own, so a portrait input is
    not squashed when the crop is resized back."""
    h, w = size
    return [
        A.HorizontalFlip(p=0.5),
        A.Rotate(limit=15, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                 border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=0.5),
        A.RandomResizedCrop(size=(h, w), scale=(0.6, 1.0), ratio=(0.8 * w / h, 1.25 * w / h),
                            interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST, p=0.5),
        A.GaussNoise(std_range=(0.02, 0.08), p=0.3),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
    ]


def _scale_augmentation() -> list[A.BasicTransform]:
    """Flip, then scale +-25 % / rotation +-15 degrees / shift +-10 % in one affine step."""
    return [
        A.HorizontalFlip(p=0.5),
        A.Affine(scale=(0.75, 1.25), rotate=(-15, 15), translate_percent=(-0.1, 0.1),
                 interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                 border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=0.8),
        A.GaussNoise(std_range=(0.02, 0.08), p=0.3),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
    ]


def _rotate_augmentation() -> list[A.BasicTransform]:
    """Flip, then a rotation of +-10 degrees (masks: nearest neighbour, rotated-in pixels: background)."""
    return [
        A.HorizontalFlip(p=0.5),
        A.Rotate(limit=10, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                 border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=0.8),
        A.GaussNoise(std_range=(0.02, 0.08), p=0.3),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
    ]


_POLICIES = {"paper": _paper_augmentation, "scale": lambda size: _scale_augmentation(),
             "rotate": lambda size: _rotate_augmentation()}


def build_transform(*, size: int | Size, train: bool, policy: str = "paper") -> A.Compose:
    """The transform of one split.

    Args:
        size: ``(H, W)`` of the input the transform receives and returns (``S``: square).
        train: add the online augmentation (training split only).
        policy: a name of :data:`AUGMENTATIONS` (training split only).

    Returns:
        A callable ``tf(image=(H, W, 3) uint8, mask=(H, W) uint8) -> {"image": (3, H, W) uint8
        tensor, "mask": (H, W) uint8 tensor}`` (normalise on the device with
        :class:`clothcurate.training.models.InputNormalizer`).
    """
    if policy not in AUGMENTATIONS:
        raise BadInputError(f"--augment {policy!r}: use one of {', '.join(AUGMENTATIONS)}")
    steps = _POLICIES[policy](as_size(size)) if train else []
    steps.append(ToTensorV2())
    return A.Compose(steps)
