"""LinkNet (Chaurasia & Culurciello 2017) whose decoder keeps enough channels for a thin encoder.

smp's LinkNet decoder block squeezes its input to ``in_channels // 4`` channels, upsamples x2 with
a transposed convolution and expands to the skip's width, which it adds. That suits ResNet
encoders (64-512 channels). EfficientNet-Lite's early features are thin (16 / 24 channels), so the
last two blocks run through 6 and 4 channels: the decoder cannot carry 15 classes, and the model
cannot even fit a handful of training images (tests/test_models_fit.py).

This decoder is the same LinkNet (1x1 squeeze, transposed-conv x2, 1x1 expand, additive skips,
no concatenation) with floors: each block squeezes to ``max(in_channels // 4, min_channels)`` and
carries at least ``min_stream`` channels to the next block; a skip narrower than the stream is
widened by a 1x1 convolution (+ BatchNorm) before the sum.

Shapes: N images, C channels, H x W the input (multiples of 32).
"""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch
from segmentation_models_pytorch.base import modules
from segmentation_models_pytorch.decoders.linknet.decoder import TransposeX2
from torch import nn

__all__ = ["WideLinknetDecoder", "wide_linknet", "MIN_DECODER_CHANNELS"]

#: narrowest width inside the decoder, squeezed or carried between blocks (smp's rule squeezes
#: EfficientNet-Lite0's features to 6 and 4 channels; a floor of 32 on the squeeze alone fitted 8
#: crops to 13 % train mIoU in 40 steps, 64 on both the squeeze and the stream to 28 %, U-Net 31 %)
MIN_DECODER_CHANNELS = 64


class _Block(nn.Module):
    """1x1 squeeze to ``mid``, transposed-conv x2, 1x1 to ``out``; then ``+ skip`` when given
    (a skip narrower than ``out`` is first widened by a 1x1 convolution)."""

    def __init__(self, in_channels: int, mid: int, out: int, skip_channels: int | None):
        super().__init__()
        self.block = nn.Sequential(
            modules.Conv2dReLU(in_channels, mid, kernel_size=1, use_norm="batchnorm"),
            TransposeX2(mid, mid, use_norm="batchnorm"),
            modules.Conv2dReLU(mid, out, kernel_size=1, use_norm="batchnorm"),
        )
        self.lateral = (nn.Sequential(nn.Conv2d(skip_channels, out, kernel_size=1, bias=False), nn.BatchNorm2d(out))
                        if skip_channels is not None and skip_channels != out else nn.Identity())

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = self.block(x)
        return x if skip is None else x + self.lateral(skip)


class WideLinknetDecoder(nn.Module):
    """LinkNet's decoder with a floor on every block's squeezed width.

    Args:
        encoder_channels: the encoder's ``out_channels`` (input first, deepest last), e.g.
            ``(3, 16, 24, 40, 112, 320)`` for Lite0.
        prefinal_channels: width of the last block's output (the segmentation head's input).
        min_channels: floor of the squeezed width ``in_channels // 4``.
        min_stream: floor of the width a block passes on (a narrower skip is widened to it).

    Input: the encoder's feature list (N, C_i, H / 2^i, W / 2^i); output (N, prefinal, H, W).
    """

    def __init__(self, encoder_channels: list[int], *, prefinal_channels: int = 32,
                 min_channels: int = MIN_DECODER_CHANNELS, min_stream: int = MIN_DECODER_CHANNELS):
        super().__init__()
        skips = list(encoder_channels[1:][::-1])                 # deepest first; skips[0] is the input
        widths = [skips[0]] + [max(c, min_stream) for c in skips[1:]] + [prefinal_channels]
        self.blocks = nn.ModuleList(
            _Block(widths[i], max(widths[i] // 4, min_channels), widths[i + 1],
                   skips[i + 1] if i + 1 < len(skips) else None) for i in range(len(widths) - 1))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        feats = features[1:][::-1]
        x, skips = feats[0], feats[1:]
        for i, block in enumerate(self.blocks):
            x = block(x, skips[i] if i < len(skips) else None)
        return x


def wide_linknet(*, encoder_name: str, classes: int, min_channels: int = MIN_DECODER_CHANNELS,
                 min_stream: int = MIN_DECODER_CHANNELS) -> smp.Linknet:
    """An smp LinkNet (its encoder, head and forward) with :class:`WideLinknetDecoder`.

    Args:
        encoder_name: smp's encoder name (``tu-tf_efficientnet_lite0``); random weights.
        classes: K, the output channels.
        min_channels: floor of the decoder's squeezed widths.
        min_stream: floor of the widths carried between decoder blocks.

    Returns:
        A model mapping (N, 3, H, W) to (N, K, H, W) logits.
    """
    model = smp.Linknet(encoder_name=encoder_name, encoder_weights=None, classes=classes)
    model.decoder = WideLinknetDecoder(list(model.encoder.out_channels), min_channels=min_channels,
                                       min_stream=min_stream)
    model.initialize()  # smp's initialisation of the (new) decoder and the head
    return model
