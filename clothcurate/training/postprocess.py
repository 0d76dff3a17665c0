"""The paper's post-processing (Sec. IV-C): per-class morphological opening, then argmax.

The paper: "the opening morphological operation is applied to each channel of the predicted output
to reduce predicted noises, then the binary feature maps are merged using argmax". Two readings:

``mode="paper"`` (literal): threshold every class's probability map at ``threshold``, open each
binary map with a ``kernel_size`` square, take the most probable class among those whose opened map
covers the pixel, and keep the raw argmax where none does. With ``threshold >= 0.5`` this is exactly
the raw argmax (at most one class exceeds 0.5 at a pixel, and it is the argmax; a pixel the opening
removes falls back to that same argmax), which is what MEASURED.md saw (0 pixels changed). It only
acts with ``threshold < 0.5``.

``mode="label"`` (default, the useful version): open the one-hot map of the raw argmax, class by
class, so every region narrower than the kernel (speckles, one-pixel lines, ragged edges) vanishes;
refill each removed pixel with the most probable class among those that *survived* the opening within
a ``2 * kernel_size + 1`` square around it (usually the surrounding region), and keep the raw argmax
where nothing survived nearby. Large regions are unchanged. The refill window is wider than the
kernel because the opening of *every* class, background included, also removes thin gaps between
regions: a removed pixel may then have no survivor among its immediate neighbours, and a window of
the kernel's size would hand it to whichever class happened to be there, whatever its probability.

Opening = erosion then dilation with a square structuring element, done with separable
``max_pool2d`` (erosion is ``-max_pool(-x)``); outside the image counts as "don't care", so regions
touching the border are not eroded from it. Runs on whatever device the probabilities are on.
In ``label`` mode the K per-class openings need no K-channel work: a pixel survives the opening of
its own class exactly when some k x k window containing it holds a single class (such a window can
only hold the pixel's class), which is two pools of the label map and one of a mask; only the
refill pools K channels.

Shapes: N images, K classes, H x W pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clothcurate.errors import BadInputError

__all__ = ["MODES", "open_predictions"]

MODES = ("label", "paper")


def _dilate(x: torch.Tensor, k: int) -> torch.Tensor:
    """Dilation (max over a k x k square, separably) of (N, C, H, W), per channel."""
    x = F.max_pool2d(x, kernel_size=(1, k), stride=1, padding=(0, k // 2))
    return F.max_pool2d(x, kernel_size=(k, 1), stride=1, padding=(k // 2, 0))


def _open(x: torch.Tensor, k: int) -> torch.Tensor:
    """Opening (erosion then dilation) of (N, C, H, W) with a k x k square, per channel."""
    return _dilate(-_dilate(-x, k), k)


def _argmax_where(probs: torch.Tensor, allowed: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """Most probable class among ``allowed`` ones per pixel, ``fallback`` where none is allowed.

    Args:
        probs: (N, K, H, W) probabilities.
        allowed: (N, K, H, W) bool.
        fallback: (N, H, W) long.

    Returns:
        (N, H, W) long.
    """
    scored = torch.where(allowed, probs, torch.full_like(probs, -1.0))
    best = scored.argmax(1)
    return torch.where(allowed.any(1), best, fallback)


def open_predictions(probs: torch.Tensor, *, kernel_size: int = 3, threshold: float = 0.5,
                     mode: str = "label") -> torch.Tensor:
    """Post-process softmax maps into a label map with per-class opening (see module docstring).

    Args:
        probs: (N, K, H, W) softmax probabilities (any float dtype, any device).
        kernel_size: odd side of the square structuring element, in pixels; 1 disables the opening.
        threshold: ``mode="paper"`` only: a class map is "on" where its probability exceeds this.
        mode: ``"label"`` (opening of the argmax map, refill from surviving neighbours) or
            ``"paper"`` (the literal thresholded version).

    Returns:
        (N, H, W) long labels in ``0..K-1``, on the device of ``probs``.
    """
    if probs.dim() != 4 or not probs.is_floating_point():
        raise BadInputError(f"open_predictions: expected (N, K, H, W) float probabilities, got "
                            f"{tuple(probs.shape)} {probs.dtype}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise BadInputError(f"open_predictions: kernel_size must be an odd number >= 1, got {kernel_size}")
    if mode not in MODES:
        raise BadInputError(f"open_predictions: unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    raw = probs.argmax(1)
    if kernel_size == 1:
        return raw
    k = probs.shape[1]
    if mode == "paper":
        opened = _open((probs > threshold).to(probs.dtype), kernel_size) > 0
        return _argmax_where(probs, opened, raw)
    labels = raw.unsqueeze(1).to(probs.dtype)                                  # (N, 1, H, W)
    uniform = _dilate(labels, kernel_size) == -_dilate(-labels, kernel_size)    # window of one class
    kept = (_dilate(uniform.to(probs.dtype), kernel_size) > 0).squeeze(1)       # (N, H, W)
    survivors = F.one_hot(raw, k).permute(0, 3, 1, 2).to(probs.dtype) * kept.unsqueeze(1).to(probs.dtype)
    nearby = _dilate(survivors, 2 * kernel_size + 1) > 0                      # surviving classes near each pixel
    return torch.where(kept, raw, _argmax_where(probs, nearby, raw))
