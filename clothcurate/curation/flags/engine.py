"""Running checks: measure every sample (in worker processes), fit, score.

FiftyOne-free, so tests and benchmarks can score masks in memory. Shapes: N = samples, C = checks.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

import numpy as np
from tqdm.auto import tqdm

from clothcurate.curation.flags.registry import Check, get_check
from clothcurate.curation.flags.sample import SampleMasks, read_sample
from clothcurate.parallel import process_pool

#: below this many samples a process pool costs more than it saves
_POOL_MIN_SAMPLES = 200


def measure(sample: SampleMasks, checks: list[Check]) -> dict[str, Any]:
    """``{check name: measurement}`` of one sample."""
    return {c.name: c.measure(sample) for c in checks}


def _measure_job(job: tuple, names: tuple[str, ...]) -> dict[str, Any]:
    return measure(read_sample(*job), [get_check(n) for n in names])


def measure_files(jobs: list[tuple], checks: list[Check], *, workers: int | None = None,
                  progress: bool = True) -> list[dict[str, Any]]:
    """Read and measure many samples.

    Args:
        jobs: one tuple of :func:`~clothcurate.curation.flags.sample.read_sample` arguments per
            sample (``key, gt_path, raw_path, raw_background_ids, image_path, model_ref``).
        checks: the checks to measure for.
        workers: processes (default: up to 2, the CPU count; 1 = in this process).
        progress: show a tqdm bar.

    Returns:
        N dicts ``{check name: measurement}``, in the order of ``jobs``.
    """
    names = tuple(c.name for c in checks)
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if len(jobs) >= _POOL_MIN_SAMPLES else 1
    bar = dict(total=len(jobs), desc="checking masks", unit="sample", disable=not progress)
    if workers <= 1:
        return [_measure_job(j, names) for j in tqdm(jobs, **bar)]
    with process_pool(workers) as pool:
        return list(tqdm(pool.map(_measure_job, jobs, [names] * len(jobs), chunksize=16), **bar))


def fit_and_score(measurements: list[dict[str, Any]], checks: list[Check], *,
                  fitted: dict[str, Any] | None = None) -> np.ndarray:
    """Fit every check's dataset statistics on all measurements, then score each sample.

    Args:
        measurements: N dicts from :func:`measure` / :func:`measure_files`.
        checks: the C checks (each must have been measured).
        fitted: if given, receives ``{check name: fitted stats}`` (for writing explanations).

    Returns:
        (N, C) float64 scores in [0, 1], columns in the order of ``checks``.
    """
    scores = np.zeros((len(measurements), len(checks)))
    for j, c in enumerate(checks):
        ms = [m[c.name] for m in measurements]
        stats = c.fit(ms) if c.fit is not None else None
        if fitted is not None:
            fitted[c.name] = stats
        scores[:, j] = [c.score(m, stats) for m in ms]
    return np.clip(scores, 0.0, 1.0)


def score_samples(samples: Iterable[SampleMasks], checks: list[Check]) -> np.ndarray:
    """Measure, fit and score in-memory samples (tests, benchmarks).

    Returns:
        (N, C) scores, as :func:`fit_and_score`.
    """
    return fit_and_score([measure(s, checks) for s in samples], checks)
