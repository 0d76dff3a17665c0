"""Checks of what an annotation contains at all: anything but background, a person."""

from __future__ import annotations

import numpy as np

from clothcurate.curation.flags.calibration import Tail, fit_tail
from clothcurate.curation.flags.registry import Check, register
from clothcurate.curation.flags.sample import SampleMasks
from clothcurate.labelmaps import TARGET_CLASSES

#: classes that belong to a person's body or clothing (not carried objects)
PERSON_CLASSES = tuple(i for i, c in enumerate(TARGET_CLASSES) if c not in ("background", "bag", "glasses"))


def _foreground_share(s: SampleMasks) -> float:
    return s.foreground_pixels / s.gt.size


def _score_background_only(share: float, _stats=None) -> float:
    return 1.0 if share == 0.0 else 0.0


background_only = register(Check(
    name="background_only",
    description="The annotation has no class but background: nobody was labelled. Such a sample "
                "teaches a model that a visible person is background; reject it or relabel it.",
    measure=_foreground_share,
    score=_score_background_only,
    weight=1.0,
    family="content",
))


def _person_share(s: SampleMasks) -> float:
    return float(s.class_pixels[list(PERSON_CLASSES)].sum()) / s.gt.size


def _fit_person(shares: list[float]) -> Tail:
    # the statistic is how many times smaller than the dataset's typical person this one is
    # (log scale), so a half-size person is ordinary and a 1 % one is not
    return fit_tail([-np.log(max(v, 1e-6)) for v in shares], floor=0.25)


def _score_person(share: float, tail: Tail) -> float:
    return tail.score(-np.log(max(share, 1e-6)))


no_person = register(Check(
    name="no_person",
    description="Almost no skin, hair or clothing pixels compared with the dataset's usual person "
                "size: the person was mostly left unlabelled (or the photo shows nobody).",
    measure=_person_share,
    fit=_fit_person,
    score=_score_person,
    weight=0.9,
    family="content",
))
