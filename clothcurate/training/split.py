"""The validation split of a fold's training part, stratified on class presence (no FiftyOne).

Shapes: N = samples of the training part, K = classes.

``train-eval`` holds out a share of each fold's training part to validate on (early stopping,
the kept checkpoint); the split is multilabel-stratified (iterative-stratification's
``MultilabelStratifiedShuffleSplit``) so that every class keeps about its share in both parts.

Example::

    presence = export.presence(train_positions)                  # (N, K) bool
    train_idx, val_idx = split_validation(presence, fraction=0.1, seed=0)
"""

from __future__ import annotations

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

from clothcurate.errors import BadInputError

__all__ = ["split_validation"]


def split_validation(presence: np.ndarray, *, fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of a training part into train and validation samples.

    Args:
        presence: (N, K) bool class presence of the training part's samples.
        fraction: share of samples that go to validation (0 < fraction < 1).
        seed: random state; the same seed gives the same split.

    Returns:
        ``(train_idx, val_idx)``: sorted int64 indices into ``presence``, disjoint, covering 0..N-1.

    Raises:
        BadInputError: fraction outside (0, 1), or too few samples for a non-empty split.
    """
    p = np.asarray(presence, dtype=bool)
    if not 0.0 < fraction < 1.0:
        raise BadInputError(f"validation fraction must be between 0 and 1, got {fraction}")
    if p.ndim != 2 or len(p) < 2:
        raise BadInputError(f"need an (N, K) presence array with N >= 2 to split off validation, got {p.shape}")
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    train, val = next(splitter.split(np.zeros((len(p), 1)), p))
    return np.sort(train).astype(np.int64), np.sort(val).astype(np.int64)
