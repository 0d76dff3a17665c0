"""The registry of annotation checks.

A check is a small named unit in three steps, so that the pixel work runs once per sample (in
worker processes) and the dataset-level learning sees only compact measurements:

1. ``measure(sample) -> m``: a small, picklable summary of one :class:`SampleMasks`;
2. ``fit([m, ...]) -> stats`` (optional): dataset statistics learned from every sample's
   measurement (class positions, areas, co-occurrence ...), never fixed thresholds;
3. ``score(m, stats) -> float`` in [0, 1]: 1 = the annotation is surely wrong in this respect.

Checks register themselves with :func:`register` in their family module (``content``,
``shape``, ``statistics``, ``raw``); :func:`all_checks` imports the families. A later family
(model-assisted findings from a training run) plugs in the same way, with ``needs={"model"}``.

Example::

    from clothcurate.curation.flags.registry import register, Check

    register(Check(name="my_check", description="...", measure=f, score=g))
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from clothcurate.curation.flags.sample import SampleMasks

#: the modules whose import registers the built-in checks
FAMILIES = ("content", "shape", "statistics", "raw", "model")


@dataclass(frozen=True)
class Check:
    """One named check.

    Attributes:
        name: machine-readable reason written to ``issues`` (``background_only`` ...).
        description: one or two sentences a reviewer reads in the App.
        measure: ``SampleMasks -> measurement`` (picklable, small).
        score: ``(measurement, stats) -> float`` in [0, 1].
        fit: ``list[measurement] -> stats``, or None when the check needs no dataset statistics.
        weight: how much a certain finding lowers ``label_quality`` (see :mod:`.scoring`).
        threshold: the score at which the check's name goes into ``issues``.
        needs: inputs beyond the 15-class mask: ``"raw"`` (source mask), ``"image"`` (photo),
            ``"model"`` (a training run).
        family: the module that defines it.
    """

    name: str
    description: str
    measure: Callable[[SampleMasks], Any]
    score: Callable[[Any, Any], float]
    fit: Callable[[list[Any]], Any] | None = None
    weight: float = 1.0
    threshold: float = 0.5
    needs: frozenset[str] = field(default_factory=frozenset)
    family: str = ""


_REGISTRY: dict[str, Check] = {}


def register(check: Check) -> Check:
    """Add a check (its name must be new) and return it."""
    if check.name in _REGISTRY and _REGISTRY[check.name] is not check:
        raise ValueError(f"a check named {check.name!r} is already registered")
    _REGISTRY[check.name] = check
    return check


def all_checks() -> list[Check]:
    """Every registered check, built-in families first, in registration order."""
    for fam in FAMILIES:
        importlib.import_module(f"{__package__}.{fam}")
    rank = {fam: i for i, fam in enumerate(FAMILIES)}
    return sorted(_REGISTRY.values(), key=lambda c: rank.get(c.family, len(FAMILIES)))  # stable


def get_check(name: str) -> Check:
    """The check called ``name`` (``KeyError`` if none)."""
    all_checks()
    return _REGISTRY[name]
