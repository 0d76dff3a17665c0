"""Fold assignment and validation split on the real CCP class presence."""

from __future__ import annotations

import numpy as np
import pytest

from clothcurate.curation.folds import (
    assign_folds,
    fold_deviation,
    fold_stats,
    split_validation,
)
from clothcurate.errors import BadInputError
from clothcurate.labelmaps import TARGET_CLASSES


@pytest.fixture(scope="module")
def presence(ccp_pixel) -> np.ndarray:
    """(N, 15) bool class presence of the full pixel-annotated CCP, from the ingested ``classes`` field."""
    classes = ccp_pixel.values("classes")
    return np.array([[c in set(cl) for c in TARGET_CLASSES] for cl in classes])


def _max_share_deviation(presence: np.ndarray, folds: np.ndarray, min_images: int) -> float:
    """The issue's figure, written out independently of the library."""
    worst = 0.0
    for c in range(presence.shape[1]):
        column = presence[:, c]
        if column.sum() < min_images:
            continue
        overall = column.sum() / len(column)
        for f in set(folds.tolist()):
            in_fold = folds == f
            worst = max(worst, abs(column[in_fold].sum() / in_fold.sum() - overall))
    return worst


def test_presence_is_ccp(presence):
    assert presence.shape == (1004, 15)
    assert presence[:, TARGET_CLASSES.index("romper")].sum() == 34


def test_folds_cover_disjoint_balanced_and_deterministic(presence):
    folds = assign_folds(presence, k=5, seed=0)
    assert folds.shape == (1004,)
    assert set(folds.tolist()) == set(range(5))  # every sample in exactly one of the 5 folds
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 1
    assert np.array_equal(folds, assign_folds(presence, k=5, seed=0))
    assert not np.array_equal(folds, assign_folds(presence, k=5, seed=1))
    assert np.array_equal(assign_folds(presence, k=3, seed=7, refine=False),
                          assign_folds(presence, k=3, seed=7, refine=False))


@pytest.mark.parametrize("seed", range(5))
def test_deviation_target_on_ccp(presence, seed):
    folds = assign_folds(presence, k=5, seed=seed)
    dev = _max_share_deviation(presence, folds, min_images=20)
    assert dev <= 0.02
    assert fold_deviation(presence, folds, min_images=20) == pytest.approx(dev)
    # the rarest class (34 rompers) is in every test fold
    romper = presence[:, TARGET_CLASSES.index("romper")]
    assert np.bincount(folds[romper], minlength=5).min() >= 5


def test_fold_deviation_by_hand():
    # class 0 in 4 of 8 samples (share 0.5); fold 0 holds 3 of its 4 samples: 0.75 -> 0.25 off
    presence = np.array([[1], [1], [1], [0], [1], [0], [0], [0]], bool)
    folds = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert fold_deviation(presence, folds, min_images=1) == pytest.approx(0.25)
    assert fold_deviation(presence, folds, min_images=5) == 0.0


def test_fold_stats_counts():
    pixels = np.array([[10, 0], [5, 5], [0, 10], [8, 2]])
    stats = fold_stats(pixels, np.array([0, 0, 1, 1]), k=2, classes=["a", "b"], min_images=1)
    assert stats["folds"][0]["images"] == [2, 1] and stats["folds"][1]["images"] == [1, 2]
    assert stats["folds"][0]["pixel_share"] == [0.75, 0.25]
    assert stats["all"]["n_images"] == 4 and stats["all"]["pixel_share"] == [0.575, 0.425]


def test_split_validation_is_stratified_and_deterministic(presence):
    train, val = split_validation(presence, fraction=0.1, seed=3)
    assert len(np.intersect1d(train, val)) == 0
    assert np.array_equal(np.union1d(train, val), np.arange(len(presence)))
    assert abs(len(val) - 100) <= 2
    t2, v2 = split_validation(presence, fraction=0.1, seed=3)
    assert np.array_equal(train, t2) and np.array_equal(val, v2)
    overall = presence.mean(0)
    common = presence.sum(0) >= 100
    assert np.abs(presence[val].mean(0) - overall)[common].max() < 0.05


def test_bad_input():
    with pytest.raises(BadInputError):
        assign_folds(np.ones((3, 2), bool), k=5)
    with pytest.raises(BadInputError):
        assign_folds(np.ones(10, bool), k=2)
    with pytest.raises(BadInputError):
        split_validation(np.ones((10, 2), bool), fraction=1.5)
