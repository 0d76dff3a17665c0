"""The model registry: the paper's four architectures (segmentation-models-pytorch) with an
EfficientNet encoder, by ``--arch`` name.

:data:`ARCHITECTURES` is the one place the names live (the CLI's ``--arch`` choices read it);
:func:`create_model` builds one. LinkNet uses our decoder with a channel floor
(:mod:`clothcurate.training.linknet`): smp's squeezes Lite0's features to 4-6 channels and
cannot fit even a handful of images. :class:`ModelSpec` is what a checkpoint records so that
inference can rebuild the model from the file alone.

Example::

    model = create_model("fpn", encoder="tf_efficientnet_lite0")     # ImageNet encoder, offline
    norm = InputNormalizer(*encoder_normalization("tf_efficientnet_lite0"), device="cuda")
    logits = model(norm(images_uint8.cuda()))                        # (N, 15, H, W)

H and W must be multiples of 32 (the encoder's output stride); 320 x 320 as in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F

from clothcurate.errors import BadInputError
from clothcurate.labelmaps import NUM_CLASSES
from clothcurate.training.config import check_tta_scales
from clothcurate.training.linknet import wide_linknet
from clothcurate.training.weights import (
    LITE_ENCODERS,
    SMP_HUB_ENCODERS,
    load_imagenet_encoder,
)

__all__ = ["Architecture", "ARCHITECTURES", "ENCODERS", "register_architecture", "create_model", "build_model",
           "ModelSpec", "FlipTTA", "tta_view_size", "encoder_normalization", "InputNormalizer"]


@dataclass(frozen=True)
class Architecture:
    """One entry of the model registry.

    Attributes:
        name: the ``--arch`` value.
        summary: one line for ``--help`` and reports.
        make: ``make(encoder_name=<smp encoder name>, classes=K)`` -> a randomly initialised
            ``nn.Module`` mapping (N, 3, H, W) to (N, K, H, W) logits whose encoder is ``.encoder``.
    """

    name: str
    summary: str
    make: Callable[..., torch.nn.Module]


#: the registry: every architecture the project trains, by ``--arch`` name (the CLI reads it)
ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(name: str, summary: str) -> Callable[[Callable[..., torch.nn.Module]], Callable[..., torch.nn.Module]]:
    """Decorator adding a model maker to :data:`ARCHITECTURES` under ``name``."""

    def add(make: Callable[..., torch.nn.Module]) -> Callable[..., torch.nn.Module]:
        if name in ARCHITECTURES:
            raise ValueError(f"architecture {name!r} is registered twice")
        ARCHITECTURES[name] = Architecture(name=name, summary=summary, make=make)
        return make

    return add


@register_architecture("fpn", "Feature Pyramid Network (smp.FPN)")
def _fpn(*, encoder_name: str, classes: int) -> torch.nn.Module:
    return smp.FPN(encoder_name=encoder_name, encoder_weights=None, classes=classes)


@register_architecture("unet", "U-Net (smp.Unet)")
def _unet(*, encoder_name: str, classes: int) -> torch.nn.Module:
    return smp.Unet(encoder_name=encoder_name, encoder_weights=None, classes=classes)


@register_architecture("linknet", "LinkNet with a channel floor in its decoder (smp.Linknet's squeezes "
                                  "a thin encoder to 4-6 channels)")
def _linknet(*, encoder_name: str, classes: int) -> torch.nn.Module:
    return wide_linknet(encoder_name=encoder_name, classes=classes)


@register_architecture("pspnet", "Pyramid Scene Parsing Network (smp.PSPNet)")
def _pspnet(*, encoder_name: str, classes: int) -> torch.nn.Module:
    return smp.PSPNet(encoder_name=encoder_name, encoder_weights=None, classes=classes)


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
        """images: (N, 3, H, W) uint8 on ``device`` -> (N, 3, H, W) float32, memory format kept."""
        return images.float().mul_(self.scale).sub_(self.shift)


def create_model(arch: str, *, encoder: str = "tf_efficientnet_lite0", encoder_weights: str | None = "imagenet",
                 num_classes: int = NUM_CLASSES) -> torch.nn.Module:
    """Build a registered segmentation network.

    Args:
        arch: a key of :data:`ARCHITECTURES` (``fpn``, ``unet``, ``linknet``, ``pspnet``).
        encoder: a key of :data:`ENCODERS`.
        encoder_weights: ``"imagenet"`` (offline, see :mod:`clothcurate.training.weights`) or
            ``None`` / ``"none"`` for a random initialisation.
        num_classes: K, the output channels.

    Returns:
        An ``nn.Module`` mapping (N, 3, H, W) normalised images to (N, K, H, W) logits.

    Raises:
        BadInputError: an unknown architecture, encoder or weights name.
    """
    if arch not in ARCHITECTURES:
        raise BadInputError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    _check_encoder(encoder)
    if isinstance(encoder_weights, str) and encoder_weights.lower() == "none":
        encoder_weights = None
    if encoder_weights not in (None, "imagenet"):
        raise BadInputError(f"unknown encoder weights {encoder_weights!r}; use 'imagenet' or 'none'")
    model = ARCHITECTURES[arch].make(encoder_name=ENCODERS[encoder], classes=num_classes)
    if encoder_weights == "imagenet":
        load_imagenet_encoder(model.encoder, encoder)
    return model


#: the former name of :func:`create_model`
build_model = create_model


@dataclass(frozen=True)
class ModelSpec:
    """What a checkpoint needs to say so that inference can rebuild its model from the file alone.

    Attributes:
        arch: a key of :data:`ARCHITECTURES`.
        encoder: a key of :data:`ENCODERS`.
        classes: the K class names (index = output channel = mask value).
        input_size: ``(H, W)`` of the model input the weights were trained on.
        mean: per-channel mean applied to RGB in [0, 1] (:func:`encoder_normalization`).
        std: per-channel std, same convention.
    """

    arch: str
    encoder: str
    classes: tuple[str, ...]
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def of(cls, *, arch: str, encoder: str, classes: list[str] | tuple[str, ...],
           input_size: tuple[int, int]) -> ModelSpec:
        """The spec of a model trained with ``encoder``'s own normalisation."""
        mean, std = encoder_normalization(encoder)
        return cls(arch=arch, encoder=encoder, classes=tuple(classes), input_size=tuple(input_size),
                   mean=tuple(mean), std=tuple(std))

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and strings (what checkpoints and JSON files hold)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """The inverse of :meth:`to_dict`.

        Raises:
            BadInputError: a key is missing.
        """
        try:
            return cls(arch=str(data["arch"]), encoder=str(data["encoder"]), classes=tuple(data["classes"]),
                       input_size=tuple(int(v) for v in data["input_size"]),
                       mean=tuple(float(v) for v in data["mean"]), std=tuple(float(v) for v in data["std"]))
        except (KeyError, TypeError) as e:
            raise BadInputError(f"model description lacks {e}; expected keys arch, encoder, classes, "
                                "input_size, mean, std") from e

    def build(self) -> torch.nn.Module:
        """The architecture with random weights (load the checkpoint's ``state_dict`` into it)."""
        return create_model(self.arch, encoder=self.encoder, encoder_weights=None, num_classes=len(self.classes))


def tta_view_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The input size of one test-time scale: ``(H * scale, W * scale)``, each side rounded to the
    nearest multiple of 32 (the encoders' output stride; a tie goes up: 80 -> 96), at least 32.
    Small inputs have few sizes: at 64 px, 1.25 gives 96 and 0.75 gives 64 (the input's own).

    Args:
        height: H of the model input.
        width: W of the model input (H and W may differ: portrait crops).
        scale: the view's scale factor (> 0).

    Returns:
        ``(h, w)``, multiples of 32; ``(H, W)`` itself for ``scale == 1`` when H and W are
        multiples of 32.
    """
    return (max(32, 32 * math.floor(height * scale / 32 + 0.5)), max(32, 32 * math.floor(width * scale / 32 + 0.5)))


class FlipTTA(torch.nn.Module):
    """Test-time augmentation: horizontal flip at one or more scales, the mean of every view's
    logits. Our classes have no left/right pairs, so a flip keeps every label.

    For each scale s the input is resized (bilinear, ``align_corners=False``) to
    :func:`tta_view_size` of (H, W), the model runs on it and on its flip (flipped back), and
    the logits are resized back to (H, W) (bilinear); the output is the mean of the
    ``2 * len(scales)`` views. A view at the input's own size is not resized, so
    ``scales=(1.0,)`` is exactly the plain flip TTA: ``0.5 * (model(x) + model(x.flip(-1)).flip(-1))``.
    The loop over the scales unrolls when traced (``export-model``): the sizes are fixed there.

    Shapes: N images, K classes, H x W the input (multiples of 32; not necessarily square).

    Args:
        model: maps (N, 3, h, w) to (N, K, h, w) logits for any multiple-of-32 h, w.
        scales: the scale factors, e.g. ``(1.0, 1.25)``
            (:func:`clothcurate.training.config.check_tta_scales`: positive, 1.0 among them, at
            most 3).

    Raises:
        BadInputError: bad ``scales``.
    """

    def __init__(self, model: torch.nn.Module, scales: Sequence[float] = (1.0,)):
        super().__init__()
        self.model = model
        self.scales = check_tta_scales(scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, H, W) normalised images -> (N, K, H, W) mean logits of the views."""
        height, width = int(x.shape[-2]), int(x.shape[-1])
        total: torch.Tensor | None = None
        for scale in self.scales:
            size = tta_view_size(height, width, scale)
            view = x if size == (height, width) else F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            logits = self.model(view) + self.model(view.flip(-1)).flip(-1)  # (N, K, h, w)
            if size != (height, width):
                logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            total = logits if total is None else total + logits
        return 0.5 * total if len(self.scales) == 1 else total * (0.5 / len(self.scales))
