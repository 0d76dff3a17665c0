"""Turning a raw anomaly measure into a score in [0, 1] against the dataset's own distribution.

A statistic ``a`` (larger = more anomalous) is judged by how far it sits in the dataset's upper
tail: ``z = (a - median) / scale`` with a robust scale (MAD, or the 50-95 % quantile spread when
most samples share one value, never below a floor in the statistic's own units), and
``score = sigmoid(SLOPE * (z - Z_FLAG))``: 0.5 (the usual flag threshold) at ``Z_FLAG`` robust
standard deviations above the median. How many samples get flagged therefore depends on the
data's tails, not on a fixed rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Z_FLAG = 4.0
SLOPE = 1.5


@dataclass(frozen=True)
class Tail:
    """The fitted centre and robust scale of one statistic."""

    median: float
    scale: float

    def z(self, value: float) -> float:
        """Robust z-score of ``value``."""
        return (value - self.median) / self.scale

    def score(self, value: float) -> float:
        """Score in [0, 1]: 0.5 at ``Z_FLAG`` robust standard deviations above the median."""
        return float(1.0 / (1.0 + np.exp(-SLOPE * (self.z(value) - Z_FLAG))))


def fit_tail(values, *, floor: float) -> Tail:
    """Fit :class:`Tail` to a sample of the statistic.

    Args:
        values: (N,) the statistic over the dataset's samples.
        floor: smallest scale allowed, in the statistic's units (keeps a statistic that is 0 for
            almost every sample from flagging the first non-zero value).

    Returns:
        The fitted tail (median 0, scale ``floor`` for an empty sample).
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Tail(0.0, floor)
    med = float(np.median(v))
    mad = 1.4826 * float(np.median(np.abs(v - med)))
    spread = (float(np.quantile(v, 0.95)) - med) / 1.645
    return Tail(med, max(mad, spread, floor))
