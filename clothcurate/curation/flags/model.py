"""Model-assisted checks: confident learning on a train-eval run's out-of-fold softmax.

A cross-validated model never saw the sample it predicts, so where it confidently sees another
class than the annotation says, the annotation is suspect (:mod:`.internal.confident`). Per-class
thresholds (the model's mean self-confidence per class) are learned over the whole run; flagged
pixels are aggregated per connected region of the annotation into findings a reviewer can act
on (``region labelled dress (12,400 px) looks like coat, p=0.93``, ``bag missing? ...``).

The check ``model_disagreement`` (``needs={"model"}``) ranks every judged sample by how little the
model believes its given labels: the surprise ``-log q`` of the softmin-pooled self-confidence
``q`` of its pixels (:func:`~.internal.confident.pooled_self_confidence`), each pixel's
``p(given)`` taken relative to its class's threshold (``min(1, p / t_given)``: a rare class the
model is seldom sure of, such as romper, is not suspect merely for being rare), scored against
the run's own distribution (:mod:`.calibration`; on the log scale the tail of ``q`` near 0 is not
squeezed against 1 as ``1 - q`` would be). Pooling every pixel (not only the findings' pixels)
keeps subtle errors, a dilated or shifted garment that leaves no finding, in the ranking; the
findings say where to look. Only samples with a confidence map (the run's test folds) are judged; the others score 0.

Why confidence maps and not the dataset's ``pred_<arch>`` masks: confident learning needs
probabilities (the thresholds and the margin); a hard prediction cannot tell a confident
disagreement from a guess, so ``--model`` requires a run folder with ``confidence/``.

Shapes: K = classes; h, w = confidence map; H, W = photo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from clothcurate.geometry import paste_back
from clothcurate.curation.flags.calibration import Tail, fit_tail
from clothcurate.curation.flags.internal.confident import (
    SHOULD_BE_BACKGROUND,
    Finding,
    ModelEvidence,
    class_thresholds,
    findings,
    issue_map,
    issue_pixels,
    pooled_self_confidence,
    relative_self_confidence,
    self_confidence,
)
from clothcurate.curation.flags.registry import Check, register
from clothcurate.curation.flags.sample import SampleMasks
from clothcurate.labelmaps import NUM_CLASSES, TARGET_CLASSES
from clothcurate.workspace import mask_dir

__all__ = [
    "FINDINGS_FIELD",
    "MASK_FIELD",
    "ModelStats",
    "Verdict",
    "clear_findings",
    "describe",
    "fit_model",
    "judge",
    "model_disagreement",
    "suspicion",
    "write_findings",
]

#: list[str] field with one line per finding
FINDINGS_FIELD = "label_findings"
#: Segmentation field: finding pixels carry the suggested class id
MASK_FIELD = "label_issues"
#: smallest robust scale of the statistic (-log pooled self-confidence)
_FLOOR = 0.02
#: pooled self-confidences below half a quantisation step (0.5 / 255) are taken as that
_Q_MIN = 0.5 / 255


@dataclass(frozen=True)
class ModelStats:
    """What the check learns from the whole run.

    Attributes:
        thresholds: (K,) per-class mean self-confidence.
        tail: the fitted tail of :attr:`Verdict.statistic` over the judged samples.
    """

    thresholds: np.ndarray
    tail: Tail


@dataclass(frozen=True)
class Verdict:
    """One sample judged: its findings (largest first) and its statistic, ``-log`` of the pooled
    class-relative self-confidence (0 = every pixel's given label is at least as probable as its
    class's threshold; larger = more suspect)."""

    findings: list[Finding]
    statistic: float


def judge(ev: ModelEvidence, thresholds: np.ndarray) -> Verdict:
    """Flag pixels, aggregate them into findings and measure how suspect one sample is.

    Args:
        ev: the sample's evidence.
        thresholds: (K,) per-class thresholds.

    Returns:
        The verdict.
    """
    return Verdict(findings(ev, issue_pixels(ev, thresholds)), suspicion(ev, thresholds))


def suspicion(ev: ModelEvidence, thresholds: np.ndarray) -> float:
    """:attr:`Verdict.statistic` alone (no findings: what fitting and scoring need).

    Args:
        ev: the sample's evidence.
        thresholds: (K,) per-class thresholds.

    Returns:
        ``-log`` of the softmin-pooled class-relative self-confidence, >= 0.
    """
    return -float(np.log(max(pooled_self_confidence(relative_self_confidence(ev, thresholds)), _Q_MIN)))


def fit_model(evidence: list[ModelEvidence | None]) -> ModelStats:
    """Learn the per-class thresholds and the tail of :func:`suspicion` from every judged sample.

    Args:
        evidence: one entry per sample, None for samples without a confidence map.

    Returns:
        The run's statistics.
    """
    sums, counts = np.zeros(NUM_CLASSES), np.zeros(NUM_CLASSES, np.int64)
    present = [ev for ev in evidence if ev is not None]
    for ev in present:
        s, c = self_confidence(ev)
        sums += s
        counts += c
    thresholds = class_thresholds(sums, counts)
    return ModelStats(thresholds, fit_tail([suspicion(ev, thresholds) for ev in present], floor=_FLOOR))


def _score(ev: ModelEvidence | None, stats: ModelStats) -> float:
    return 0.0 if ev is None else stats.tail.score(suspicion(ev, stats.thresholds))


def _measure(s: SampleMasks) -> ModelEvidence | None:
    return s.model


model_disagreement = register(Check(
    name="model_disagreement",
    description="A cross-validated model that never saw this photo confidently sees other classes "
                "than the annotation (confident learning: per-class thresholds = the model's mean "
                "self-confidence): a garment labelled as another, a missed garment, a stray region. "
                "See label_findings and the label_issues mask.",
    measure=_measure,
    fit=fit_model,
    score=_score,
    weight=0.9,
    needs=frozenset({"model"}),
    family="model",
))


def describe(f: Finding, *, pixel_area: float) -> str:
    """One line a reviewer can act on.

    Args:
        f: the finding.
        pixel_area: photo pixels per map pixel (:attr:`ModelEvidence.pixel_area`).

    Returns:
        e.g. ``region labelled dress (12,400 px) looks like coat, p=0.93`` or
        ``bag missing? 3,200 px labelled background look like bag, p=0.88``.
    """
    given, suggested = TARGET_CLASSES[f.given], TARGET_CLASSES[f.suggested]
    if f.missing:
        return f"{suggested} missing? {_px(f.pixels * pixel_area)} px labelled background look like {suggested}, p={f.p:.2f}"
    return f"region labelled {given} ({_px(f.region_pixels * pixel_area)} px) looks like {suggested}, p={f.p:.2f}"


def _px(n: float) -> str:
    return f"{round(n):,}"


def _write_png(path: Path, mask: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    if not cv2.imwrite(str(tmp), mask):
        raise OSError(f"cannot write {tmp}")
    os.replace(tmp, path)


def write_findings(ds, *, dataset: str, ids: list[str], evidence: list[ModelEvidence | None], stats: ModelStats,
                   keys: list[str], progress: bool = True) -> int:
    """Write ``label_findings`` and the ``label_issues`` masks of every sample.

    ``label_findings`` is a list of lines (:func:`describe`) for each judged sample (None for
    samples without a confidence map); ``label_issues`` is a Segmentation (PNG under
    ``mask_dir(dataset, "label_issues")``, full photo frame) for samples with a finding: the
    findings' pixels carry the suggested class id (255 = should be background), 0 elsewhere.
    Masks of an earlier run that no longer apply are deleted.

    Args:
        ds: the FiftyOne dataset.
        dataset: its name (the mask folder).
        ids: the N sample ids, in the order of ``evidence`` and ``keys``.
        evidence: N entries, None where the run has no map.
        stats: the fitted :class:`ModelStats`.
        keys: the N sample keys (file names).
        progress: show a progress bar.

    Returns:
        Number of samples with at least one finding.
    """
    import fiftyone as fo

    out_dir = mask_dir(dataset, MASK_FIELD)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines: list[list[str] | None] = []
    masks: list[fo.Segmentation | None] = []
    for key, ev in tqdm(list(zip(keys, evidence)), desc="model findings", unit="sample", disable=not progress):
        if ev is None:
            lines.append(None)
            masks.append(None)
            continue
        found = judge(ev, stats.thresholds).findings
        lines.append([describe(f, pixel_area=ev.pixel_area) for f in found])
        if not found:
            masks.append(None)
            continue
        path = out_dir / f"{key}.png"
        _write_png(path, paste_back(issue_map(found, ev.labels.shape), crop_box=ev.frame_box, orig_size=ev.orig_size))
        masks.append(fo.Segmentation(mask_path=str(path.resolve())))
    _declare_fields(ds, fo)
    written = {k for k, m in zip(keys, masks) if m is not None}
    for stale in out_dir.glob("*.png"):
        if stale.stem not in written:
            stale.unlink(missing_ok=True)
    ds.set_values(FINDINGS_FIELD, dict(zip(ids, lines)), key_field="id")
    ds.set_values(MASK_FIELD, dict(zip(ids, masks)), key_field="id")
    targets = {i: n for i, n in enumerate(TARGET_CLASSES) if i}
    ds.mask_targets = {**ds.mask_targets, MASK_FIELD: {**targets, SHOULD_BE_BACKGROUND: "background"}}
    ds.info["model_findings"] = {"thresholds": dict(zip(TARGET_CLASSES, np.round(stats.thresholds, 4).tolist())),
                                 "judged": int(sum(ev is not None for ev in evidence)),
                                 "with_findings": len(written)}
    field = ds.get_field(FINDINGS_FIELD)
    field.description = "flag-errors --model: " + model_disagreement.description
    field.save()
    ds.save()
    return len(written)


def _declare_fields(ds, fo) -> None:
    """Create the two fields with their types (values may all be None or empty)."""
    schema = ds.get_field_schema()
    if FINDINGS_FIELD not in schema:
        ds.add_sample_field(FINDINGS_FIELD, fo.ListField, subfield=fo.StringField)
    if MASK_FIELD not in schema:
        ds.add_sample_field(MASK_FIELD, fo.EmbeddedDocumentField, embedded_doc_type=fo.Segmentation)


def clear_findings(ds, *, dataset: str) -> None:
    """Remove a previous ``--model`` run's ``label_findings`` / ``label_issues`` (flag-errors
    without a model replaces its own results)."""
    schema = ds.get_field_schema()
    for name in (FINDINGS_FIELD, MASK_FIELD):
        if name in schema:
            ds.set_values(name, [None] * len(ds))
    for stale in mask_dir(dataset, MASK_FIELD).glob("*.png"):
        stale.unlink(missing_ok=True)
    ds.info.pop("model_findings", None)
    ds.save()
