"""Checks against the dataset's own statistics: where each class sits, how large it is, and which
classes appear together.

Every statistic is learned from the dataset being checked (``fit``). The layout and co-occurrence
statistics leave each sample's own contribution out when it is scored, so a rare class is not
excused by its own example; the area distributions are robust fits (median and spread of the log
share, over at least :data:`_MIN_SAMPLES` samples) that one sample barely moves, so they keep it.

Shapes: K = number of target classes, NV x NU = the layout grid over person-box coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from clothcurate.curation.flags.calibration import SLOPE, Z_FLAG, Tail, fit_tail
from clothcurate.curation.flags.registry import Check, register
from clothcurate.curation.flags.sample import SampleMasks
from clothcurate.labelmaps import NUM_CLASSES

# -- implausible layout -------------------------------------------------------------------------

#: layout grid: rows cover v in [-0.25, 1.25) of the person box's height, columns u in
#: [-0.5, 1.5) of its width (pixels beyond fall into the edge cells)
NV, NU = 24, 16
V_RANGE, U_RANGE = (-0.25, 1.25), (-0.5, 1.5)
#: a pixel whose class has a smaller posterior than this at its place is implausible there
P_REF = 0.05
#: a class's surprise is averaged over at least this share of the foreground
_CLASS_FLOOR = 0.01
#: pseudo-count (pixels) of the prior in each cell's posterior
_PRIOR_PIXELS = 50.0


def _measure_layout(s: SampleMasks) -> np.ndarray:
    """(K, NV, NU) int32 histogram of the sample's foreground pixels per class over the grid."""
    if s.foreground_pixels == 0:
        return np.zeros((NUM_CLASSES, NV, NU), np.int32)
    v, u = s.box_coordinates()
    vi = np.clip(((v - V_RANGE[0]) / (V_RANGE[1] - V_RANGE[0]) * NV).astype(int), 0, NV - 1)
    ui = np.clip(((u - U_RANGE[0]) / (U_RANGE[1] - U_RANGE[0]) * NU).astype(int), 0, NU - 1)
    idx = s.gt.astype(np.int32) * (NV * NU) + (vi[:, None] * NU + ui[None, :])
    hist = np.bincount(idx.ravel(), minlength=NUM_CLASSES * NV * NU).astype(np.int32)
    hist[: NV * NU] = 0  # background is not judged
    return hist.reshape(NUM_CLASSES, NV, NU)


@dataclass(frozen=True)
class LayoutStats:
    """Summed, smoothed class histograms of the dataset and the tail of the surprise statistic.

    Attributes:
        total: (K, NV, NU) float64 smoothed pixel counts per class and cell over all samples.
        prior: (K,) class shares of all foreground pixels.
        tail: the fitted tail of :func:`_layout_surprise`.
    """

    total: np.ndarray
    prior: np.ndarray
    tail: Tail | None = None


def _smooth(hist: np.ndarray) -> np.ndarray:
    return gaussian_filter(hist.astype(np.float64), sigma=(0, 1.0, 1.0), mode="nearest")


def _layout_surprise(hist: np.ndarray, stats: LayoutStats) -> float:
    """How implausibly the worst-placed class lies: per class, the mean over its pixels of
    ``max(0, log(P_REF / posterior))`` (the posterior of the pixel's class at its place, learned
    from all other samples: leave-one-out), the mean taken over at least :data:`_CLASS_FLOOR` of
    the foreground so a few stray pixels weigh little; the maximum over classes."""
    fg = hist[1:].sum()
    if fg == 0:
        return 0.0
    others = np.maximum(stats.total - _smooth(hist), 0.0)[1:]
    post = (others + _PRIOR_PIXELS * stats.prior[1:, None, None]) / (others.sum(0) + _PRIOR_PIXELS)
    surprise = (hist[1:] * np.maximum(0.0, np.log(P_REF / np.maximum(post, 1e-9)))).sum(axis=(1, 2))
    per_class = surprise / np.maximum(hist[1:].sum(axis=(1, 2)), _CLASS_FLOOR * fg)
    return float(per_class.max())


def _fit_layout(hists: list[np.ndarray]) -> LayoutStats:
    raw = np.sum(hists, axis=0, dtype=np.float64)
    prior = raw.sum(axis=(1, 2))
    prior[0] = 0.0
    prior = prior / max(prior.sum(), 1.0)
    stats = LayoutStats(_smooth(raw), prior)
    values = [_layout_surprise(h, stats) for h in hists]
    return LayoutStats(stats.total, prior, fit_tail(values, floor=0.1))


implausible_layout = register(Check(
    name="implausible_layout",
    description="Some class lies where the dataset almost never has it, in the person's own frame "
                "(footwear above the hair, a hat at the feet, trousers on the chest, a blob beside "
                "the person). The class map per position is learned from all other samples.",
    measure=_measure_layout,
    fit=_fit_layout,
    score=lambda m, st: st.tail.score(_layout_surprise(m, st)),
    weight=1.0,
    family="statistics",
))


# -- area outliers ------------------------------------------------------------------------------

#: classes seen in fewer samples than this have no area distribution to judge by
_MIN_SAMPLES = 8


def _measure_areas(s: SampleMasks) -> np.ndarray:
    """(K,) share of the foreground per class (0 for background and absent classes)."""
    out = np.zeros(NUM_CLASSES)
    if s.foreground_pixels:
        out[1:] = s.class_pixels[1:] / s.foreground_pixels
    return out


def _fit_areas(ms: list[np.ndarray]) -> list[Tail | None]:
    a = np.asarray(ms).reshape(-1, NUM_CLASSES)
    tails: list[Tail | None] = [None]
    for c in range(1, NUM_CLASSES):
        present = a[:, c][a[:, c] > 0]
        tails.append(fit_tail(np.log(present), floor=0.3) if len(present) >= _MIN_SAMPLES else None)
    return tails


def _score_areas(m: np.ndarray, tails: list[Tail | None]) -> float:
    worst = 0.0
    for c in np.flatnonzero(m):
        if tails[c] is not None:
            z = abs(tails[c].z(np.log(m[c])))
            worst = max(worst, float(1.0 / (1.0 + np.exp(-SLOPE * (z - Z_FLAG)))))
    return worst


area_outlier = register(Check(
    name="area_outlier",
    description="A class covers a far larger or smaller share of the person than it does in the "
                "rest of the dataset (per-class robust z-score of the log area share).",
    measure=_measure_areas,
    fit=_fit_areas,
    score=_score_areas,
    weight=0.7,
    family="statistics",
))


# -- unlikely combinations ----------------------------------------------------------------------

#: a class counts as present from this share of the foreground on (speckle does not)
_PRESENT_SHARE = 0.0005
#: observed co-occurrence this many times below independence is surprising (score 0.5)
_SURPRISE_FLAG = np.log(10.0)


def _measure_presence(s: SampleMasks) -> np.ndarray:
    """(K,) bool: target classes present (background excluded)."""
    present = s.class_pixels >= max(1.0, _PRESENT_SHARE * s.foreground_pixels)
    present[0] = False
    return present


@dataclass(frozen=True)
class CooccurrenceStats:
    """Attributes: n: number of samples; pairs: (K, K) samples holding both classes (the diagonal:
    each class alone)."""

    n: int
    pairs: np.ndarray


def _fit_presence(ms: list[np.ndarray]) -> CooccurrenceStats:
    p = np.asarray(ms, dtype=np.int64).reshape(-1, NUM_CLASSES)
    return CooccurrenceStats(len(p), p.T @ p)


def _score_presence(m: np.ndarray, st: CooccurrenceStats) -> float:
    """The most surprising present pair: log((expected + 1) / (observed + 1)) over the other
    samples, expected under independence, mapped so that 10x fewer than expected scores 0.5."""
    idx = np.flatnonzero(m)
    if len(idx) < 2 or st.n < 2:
        return 0.0
    n = st.n - 1
    single = st.pairs[idx, idx] - 1
    both = st.pairs[np.ix_(idx, idx)] - 1
    expected = np.outer(single, single) / n
    surprise = np.log((expected + 1.0) / (both + 1.0))
    np.fill_diagonal(surprise, 0.0)
    worst = float(surprise.max())
    return float(1.0 / (1.0 + np.exp(-2.0 * (worst - _SURPRISE_FLAG))))


unlikely_combination = register(Check(
    name="unlikely_combination",
    description="Two classes appear together far more rarely in the rest of the dataset than "
                "their frequencies predict (a romper with a dress, shorts with trousers): often "
                "one region carries the wrong garment label.",
    measure=_measure_presence,
    fit=_fit_presence,
    score=_score_presence,
    weight=0.7,
    family="statistics",
))
