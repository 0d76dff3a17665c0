"""Combining per-check scores into ``label_quality`` and ``issues``.

``label_quality = prod_i (1 - w_i * s_i)`` (one minus a weighted noisy-OR): each check's score
``s_i`` in [0, 1] is read as the chance that it found a real error, discounted by the check's
``weight`` ``w_i`` (how often such a finding is a real error: 1.0 for ``background_only``, lower
for statistical outliers, which also catch unusual but correct annotations). Independent findings
compound: two half-sure findings give 0.25, not 0.5.

With a model check (``flag-errors --model``), the mask heuristics count only where they fire
(score >= their threshold): below it their scores are tail noise that would blur the model's
ranking of the unflagged bulk, while a fired heuristic (an empty annotation, a stray blob) is
strong evidence on its own. On the label-noise benchmark this fusion ranks corrupted samples
better than either part alone (docs/results.md). ``issues`` lists each check whose score
reaches its ``threshold``; a sample is *suspicious* when it has an issue or its label quality is
below :data:`SUSPICIOUS_BELOW`.

Shapes: N = samples, C = checks.
"""

from __future__ import annotations

import numpy as np

from clothcurate.curation.flags.registry import Check

SUSPICIOUS_BELOW = 0.5


def label_quality(scores: np.ndarray, checks: list[Check]) -> np.ndarray:
    """Label quality of every sample.

    Args:
        scores: (N, C) check scores in [0, 1], columns in the order of ``checks``.
        checks: the C checks.

    Returns:
        (N,) float64 in [0, 1]: 1 = clean, 0 = surely wrong.
    """
    w = np.array([c.weight for c in checks], dtype=np.float64)
    s = np.clip(np.asarray(scores, np.float64), 0.0, 1.0)
    if any(c.family == "model" for c in checks):
        counted = np.array([c.family == "model" for c in checks]) | (s >= np.array([c.threshold for c in checks]))
        s = np.where(counted, s, 0.0)
    return np.prod(1.0 - s * w, axis=1)


def issues(scores: np.ndarray, checks: list[Check]) -> list[list[str]]:
    """Names of the checks whose score reaches their threshold, per sample (worst first).

    Args:
        scores: (N, C) check scores.
        checks: the C checks.

    Returns:
        N lists of check names, ordered by decreasing score.
    """
    thr = np.array([c.threshold for c in checks])
    out = []
    for row in scores:
        hit = np.flatnonzero(row >= thr)
        out.append([checks[i].name for i in hit[np.argsort(-row[hit], kind="stable")]])
    return out


def suspicious(quality: np.ndarray, found: list[list[str]]) -> np.ndarray:
    """(N,) bool: the sample has an issue or a label quality below :data:`SUSPICIOUS_BELOW`."""
    return (quality < SUSPICIOUS_BELOW) | np.array([bool(f) for f in found])
