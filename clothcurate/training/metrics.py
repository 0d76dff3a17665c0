"""Pixel metrics of the paper (Sec. IV-D, eq. 1-4) from a confusion matrix, per fold and over folds.

Shapes: ``N`` images, ``K`` classes, ``H x W`` pixels. ``cm[i, j]`` counts pixels of true class
``i`` predicted as ``j``. Pixels whose target lies outside ``0..K-1`` (an ignore index such as 255)
are not counted, nor are pixels whose prediction does (an argmax never produces one).

Conventions (``docs/contracts.md``, metrics.json):

* a class with no ground truth and no prediction is *absent*: every score is ``None`` (JSON null)
  and the class is left out of the means (nan-mean);
* a class that is present on one side only gets 0 for the undefined ratio: predicted but never
  true → precision 0 and recall 0 (nothing was found); true but never predicted → recall 0 and
  precision 0 (0/0 read as 0, as scikit-learn's ``zero_division=0``). F1 and IoU are 0 too.
  Such a class is counted in the means, so a hallucinated or missed class lowers them.

Example::

    cm = ConfusionMatrix(15, device="cuda")
    for logits, target in batches:
        cm.update(logits.argmax(1), target)
    cm.all_reduce()                      # under DDP
    block = scores_from_confusion(cm.compute())   # one variant of one fold in metrics.json
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from clothcurate.errors import BadInputError

__all__ = ["ConfusionMatrix", "scores_from_confusion", "per_sample_scores", "summarize_folds"]

_SCORES = ("precision", "recall", "f1", "iou")
_CHUNK_PIXELS = 1 << 24  # per_sample_scores works on at most this many pixels at a time


def _check_label_maps(pred: torch.Tensor, target: torch.Tensor) -> None:
    """Raise BadInputError unless both are integer (N, H, W) maps of the same shape."""
    if pred.shape != target.shape or pred.dim() != 3:
        raise BadInputError(f"metrics: prediction {tuple(pred.shape)} and target {tuple(target.shape)} "
                            "must both be (N, H, W) label maps of the same shape")
    if pred.is_floating_point() or target.is_floating_point():
        raise BadInputError("metrics: expected integer label maps (N, H, W); take argmax over the class axis first")


def _pair_index(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Flat confusion-cell index ``target * K + pred``; ignored pixels go to the extra bin ``K*K``.

    Args:
        pred: (N, H, W) integer predictions in ``0..K-1``.
        target: (N, H, W) integer ground truth; values outside ``0..K-1`` are ignored.
        num_classes: K.

    Returns:
        (N, H*W) int64 indices in ``0..K*K``.
    """
    _check_label_maps(pred, target)
    k = num_classes
    idx = target.long() * k + pred
    invalid = (target >= k) | (pred >= k)
    if target.is_signed():
        invalid |= target < 0
    if pred.is_signed():
        invalid |= pred < 0
    return idx.masked_fill_(invalid, k * k).flatten(1)


class ConfusionMatrix:
    """A K x K pixel confusion matrix accumulated on the device of the predictions.

    ``update`` is one ``torch.bincount`` per batch and never synchronises with the host; only
    ``compute`` copies the K x K counts back.

    Args:
        num_classes: K.
        device: where the counts live (the device of the tensors passed to ``update``).
    """

    def __init__(self, num_classes: int = 15, *, device: str | torch.device = "cpu"):
        self.num_classes = num_classes
        self._counts = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch.

        Args:
            pred: (N, H, W) integer predicted classes (e.g. ``logits.argmax(1)``).
            target: (N, H, W) integer true classes; values outside ``0..K-1`` are ignored.
        """
        k = self.num_classes
        idx = _pair_index(pred, target, k).to(self._counts.device)
        self._counts += torch.bincount(idx.reshape(-1), minlength=k * k + 1)[: k * k]

    def compute(self) -> np.ndarray:
        """Returns: (K, K) int64 array, ``cm[i, j]`` = pixels of true class i predicted as j."""
        k = self.num_classes
        return self._counts.view(k, k).cpu().numpy().copy()

    def reset(self) -> None:
        """Set every count back to zero."""
        self._counts.zero_()

    def all_reduce(self) -> None:
        """Sum the counts over all DDP ranks (no-op unless ``torch.distributed`` is initialised)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self._counts, op=torch.distributed.ReduceOp.SUM)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den == 0."""
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _json_float(x: float) -> float | None:
    """A Python float, or None for NaN (JSON null)."""
    x = float(x)
    return None if math.isnan(x) else x


def _json_list(a: np.ndarray) -> list[float | None]:
    return [_json_float(v) for v in a]


def _from_json(values: list) -> np.ndarray:
    """Nested lists of floats / None → float64 array with NaN for None."""
    return np.array(values, dtype=object).astype(np.float64)


def _nanmean(a: np.ndarray, axis: int | None = None) -> np.ndarray:
    """np.nanmean without the 'mean of empty slice' warning (all-NaN → NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=axis)


def _nanstd(a: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Population standard deviation (ddof=0) ignoring NaN (all-NaN → NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanstd(a, axis=axis)


def _class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1, IoU (K,) float64 with NaN for absent classes."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    gt = cm.sum(axis=1)      # TP + FN
    pred = cm.sum(axis=0)    # TP + FP
    fp, fn = pred - tp, gt - tp
    scores = {
        "precision": _ratio(tp, pred),
        "recall": _ratio(tp, gt),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),   # = 2PR / (P + R), 0 when P + R = 0
        "iou": _ratio(tp, tp + fp + fn),
    }
    absent = (gt == 0) & (pred == 0)
    for v in scores.values():
        v[absent] = np.nan
    return scores


def scores_from_confusion(cm: np.ndarray) -> dict[str, Any]:
    """One variant block of a fold in metrics.json (see module docstring for the conventions).

    Args:
        cm: (K, K) integer confusion matrix, ``cm[i, j]`` = pixels of true class i predicted as j.

    Returns:
        ``{"per_class": {"precision": [K], "recall": [K], "f1": [K], "iou": [K]},
        "mean": {"precision", "recall", "f1", "iou", "pixel_accuracy"}, "confusion": [[K x K]]}``;
        fractions in [0, 1], ``None`` for an absent class (and for every mean when cm is empty).
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise BadInputError(f"metrics: confusion matrix must be square (K, K), got shape {cm.shape}")
    per_class = _class_scores(cm)
    total = cm.sum()
    mean = {name: _json_float(_nanmean(v)) for name, v in per_class.items()}
    mean["pixel_accuracy"] = _json_float(np.trace(cm) / total) if total > 0 else None
    return {
        "per_class": {name: _json_list(v) for name, v in per_class.items()},
        "mean": mean,
        "confusion": np.asarray(cm, dtype=np.int64).tolist(),
    }


def per_sample_scores(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, *,
                      num_classes: int = 15) -> tuple[np.ndarray, np.ndarray]:
    """Per-image mean IoU and pixel accuracy, vectorised (one bincount per chunk of images).

    The mean IoU of an image averages over the classes present in its ground truth or its
    prediction (DESIGN.md), so absent classes neither help nor hurt.

    Args:
        pred: (N, H, W) integer predictions, torch (CPU or GPU) or numpy.
        target: (N, H, W) integer ground truth, same type; values outside ``0..K-1`` are ignored.
        num_classes: K.

    Returns:
        ``(iou, pixel_acc)``, each (N,) float64 numpy; NaN for an image without a valid pixel.
    """
    p = torch.as_tensor(pred)
    t = torch.as_tensor(target).to(p.device)
    _check_label_maps(p, t)
    k = num_classes
    bins = k * k + 1
    per_chunk = max(1, _CHUNK_PIXELS // max(1, p[0].numel())) if len(p) else 1
    counts = [torch.zeros(0, k, k, dtype=torch.int64, device=p.device)]
    for start in range(0, len(p), per_chunk):
        idx = _pair_index(p[start:start + per_chunk], t[start:start + per_chunk], k)     # (n, H*W)
        offsets = torch.arange(idx.shape[0], device=idx.device).unsqueeze(1) * bins   # one bin range per image
        c = torch.bincount((idx + offsets).reshape(-1), minlength=idx.shape[0] * bins)
        counts.append(c.view(-1, bins)[:, : k * k].view(-1, k, k))
    cm = torch.cat(counts).double()                      # (N, K, K)
    tp = cm.diagonal(dim1=1, dim2=2)                     # (N, K)
    union = cm.sum(2) + cm.sum(1) - tp                   # (N, K): GT + pred - TP
    present = union > 0
    iou = (torch.where(present, tp / union.clamp(min=1), 0).sum(1) / present.sum(1)).cpu().numpy()
    total = cm.sum((1, 2))
    acc = (tp.sum(1) / total).cpu().numpy()
    return iou, acc


def summarize_folds(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``summary`` block of metrics.json: mean and std over folds, per variant.

    Args:
        folds: fold entries of metrics.json, each with one block per variant (``"raw"``,
            ``"opened"``) as returned by :func:`scores_from_confusion`.

    Returns:
        ``{variant: {"per_class": {score: {"mean": [K], "std": [K]}}, "mean": {score: {"mean": x,
        "std": x}}, "confusion": [[K x K]] summed over folds}}``. Means and (population, ddof=0)
        standard deviations ignore folds where a value is null; a value null in every fold is
        null. The mean of a fold-level mean is the mean of the per-fold means (as the paper).
    """
    if not folds:
        raise BadInputError("metrics: no fold to summarise; evaluate at least one fold first")
    variants = [name for name, block in folds[0].items() if isinstance(block, dict) and "per_class" in block]
    summary: dict[str, Any] = {}
    for variant in variants:
        blocks = [f[variant] for f in folds]
        per_class = {}
        for score in _SCORES:
            a = _from_json([b["per_class"][score] for b in blocks])          # (folds, K)
            per_class[score] = {"mean": _json_list(_nanmean(a, axis=0)), "std": _json_list(_nanstd(a, axis=0))}
        means = {}
        for score in (*_SCORES, "pixel_accuracy"):
            a = _from_json([b["mean"][score] for b in blocks])               # (folds,)
            means[score] = {"mean": _json_float(_nanmean(a)), "std": _json_float(_nanstd(a))}
        confusion = np.sum([np.asarray(b["confusion"], dtype=np.int64) for b in blocks], axis=0)
        summary[variant] = {"per_class": per_class, "mean": means, "confusion": confusion.tolist()}
    return summary
