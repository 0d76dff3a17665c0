"""The four architectures of the paper (segmentation-models-pytorch) with an EfficientNet encoder.

Example::

    model = build_model("fpn", encoder="tf_efficientnet_lite0")      # ImageNet encoder, offline
    norm = InputNormalizer(*encoder_normalization("tf_efficientnet_lite0"), device="cuda")
    logits = model(norm(images_uint8.cuda()))                        # (N, 15, H, W)

H and W must be multiples of 32 (the encoder's output stride); 320 x 320 as in the paper.
"""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch

from clothcurate.errors import BadInputError
from clothcurate.labelmaps import NUM_CLASSES
from clothcurate.training.weights import (
    LITE_ENCODERS,
    SMP_HUB_ENCODERS,
    load_imagenet_encoder,
)

__all__ = ["ARCHITECTURES", "ENCODERS", "build_model", "encoder_normalization", "InputNormalizer"]

ARCHITECTURES: dict[str, type[torch.nn.Module]] = {
    "fpn": smp.FPN,
    "unet": smp.Unet,
    "linknet": smp.Linknet,
    "pspnet": smp.PSPNet,
}

# Our encoder name → smp's. The lite encoders are timm's (smp "tu-" = timm universal encoder).
ENCODERS: dict[str, str] = {**{name: f"tu-{name}" for name in LITE_ENCODERS},
                            **{name: name for name in SMP_HUB_ENCODERS}}

# Input normalisation of the pretrained weights, applied to RGB scaled to [0, 1]. The lite
# weights were trained on TF's (x * 255 - 127) / 128, which timm records as mean = std = 0.5;
# smp's efficientnet-bN weights use the torchvision ImageNet statistics.
_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _check_encoder(encoder: str) -> None:
    if encoder not in ENCODERS:
        raise BadInputError(f"unknown encoder {encoder!r}; choose one of {', '.join(ENCODERS)}")


def encoder_normalization(encoder: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std to apply to RGB in [0, 1] before the encoder.

    Args:
        encoder: a key of :data:`ENCODERS`.

    Returns:
        ``(mean, std)``, each three floats (R, G, B).
    """
    _check_encoder(encoder)
    return _HALF if encoder in LITE_ENCODERS else _IMAGENET


class InputNormalizer:
    """Turns uint8 RGB batches into the encoder's float input, on the device.

    The loaders carry uint8 images (a quarter of float32's bytes through worker shared memory,
    pinning and the host-to-device copy); scaling to [0, 1] and the encoder's normalisation
    happen here, in two in-place operations on the device: ``x * (1 / (255 std)) - mean / std``.

    Args:
        mean: per-channel mean for RGB in [0, 1] (:func:`encoder_normalization`).
        std: per-channel std, same convention.
        device: where the batches are normalised (the model's device).
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], *, device: torch.device | str):
        self.device = torch.device(device)
        m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.scale = (1.0 / (255.0 * s)).to(self.device)
        self.shift = (m / s).to(self.device)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, 3, S, S) uint8 on ``device`` -> (N, 3, S, S) float32, memory format kept."""
        return images.float().mul_(self.scale).sub_(self.shift)


def build_model(arch: str, *, encoder: str = "tf_efficientnet_lite0", encoder_weights: str | None = "imagenet",
                num_classes: int = NUM_CLASSES) -> torch.nn.Module:
    """Build one of the paper's segmentation networks.

    Args:
        arch: a key of :data:`ARCHITECTURES` (``fpn``, ``unet``, ``linknet``, ``pspnet``).
        encoder: a key of :data:`ENCODERS`.
        encoder_weights: ``"imagenet"`` (offline, see :mod:`clothcurate.training.weights`) or
            ``None`` / ``"none"`` for a random initialisation.
        num_classes: K, the output channels.

    Returns:
        An ``nn.Module`` mapping (N, 3, H, W) normalised images to (N, K, H, W) logits.
    """
    if arch not in ARCHITECTURES:
        raise BadInputError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    _check_encoder(encoder)
    if isinstance(encoder_weights, str) and encoder_weights.lower() == "none":
        encoder_weights = None
    if encoder_weights not in (None, "imagenet"):
        raise BadInputError(f"unknown encoder weights {encoder_weights!r}; use 'imagenet' or 'none'")
    model = ARCHITECTURES[arch](encoder_name=ENCODERS[encoder], encoder_weights=None, classes=num_classes)
    if encoder_weights == "imagenet":
        load_imagenet_encoder(model.encoder, encoder)
    return model
