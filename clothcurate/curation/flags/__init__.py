"""flag-errors: score every annotation, write ``issues``/``label_quality``, tags and saved views.

The checks live in a registry (:mod:`.registry`), one module per family: :mod:`.content`
(background only, no person), :mod:`.shape` (fragments, holes, detached parts),
:mod:`.statistics` (layout, area outliers, class combinations; learned from the dataset) and
:mod:`.raw` (source labels the label map sent to background), and, given a training run,
:mod:`.model` (confident learning on out-of-fold softmax). :mod:`.scoring` combines their scores
into ``label_quality``.

Example::

    from clothcurate.curation.flags import flag_errors
    print(flag_errors("clothcurate").summary())
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from clothcurate.curation.annotation import pixel_annotated, tag_only
from clothcurate.curation.flags import model, scoring
from clothcurate.curation.flags.engine import fit_and_score, measure_files
from clothcurate.curation.flags.internal.run_folder import (
    ConfidenceRef,
    confidence_refs,
)
from clothcurate.curation.flags.registry import Check, all_checks
from clothcurate.curation.flags.report import FlagReport
from clothcurate.errors import BadInputError
from clothcurate.labelmaps import load_labelmap
from clothcurate.timestamps import utc_now

__all__ = ["FLAG_TAGS", "VIEWS", "FlagReport", "flag_errors"]

#: the tags flag-errors owns (removed from every sample and set afresh on each run)
FLAG_TAGS = ("bg_only", "suspicious")
#: saved view name -> tag it shows
VIEWS = {"bg-only": "bg_only", "suspicious": "suspicious"}
WORST_SHOWN = 20


def flag_errors(dataset: str, *, model_run: Path | None = None, progress: bool = True,
                workers: int | None = None) -> FlagReport:
    """Score every pixel-annotated sample's mask and write the findings to the FiftyOne dataset
    (tag-only samples have no mask: they get no ``issues``, ``label_quality`` or flag tags).

    Writes ``issues`` (names of the checks that fired, most certain first), ``label_quality``
    (0 = surely wrong ... 1 = clean), the tags ``bg_only`` / ``suspicious`` (replacing the ones of
    an earlier run; ``reject`` / ``ok`` are never touched), the saved views ``bg-only`` and
    ``suspicious`` (worst first) and the checks' descriptions (``dataset.info["checks"]`` and the
    ``issues`` field's description, both visible in the App). With ``model_run`` also the
    model-assisted findings (:mod:`.model`): the check ``model_disagreement``, ``label_findings``
    (one line per region) and the ``label_issues`` mask; without it, those of an earlier run are
    removed.

    Args:
        dataset: FiftyOne dataset name.
        model_run: a train-eval run folder with ``confidence/<key>.npz`` out-of-fold softmax maps.
        progress: show a progress bar.
        workers: processes that read the masks (default: up to 2).

    Returns:
        The report (counts per reason, the 20 worst samples).

    Raises:
        BadInputError: unknown or empty dataset, missing mask file, a run folder without confidence maps
            or whose export folder (crop boxes) is missing.
    """
    from clothcurate.curation.db import load_dataset

    t0 = time.perf_counter()
    ds = load_dataset(dataset)
    if not len(ds) or not ds.has_field("key"):
        raise BadInputError(f"dataset {dataset!r} has no samples made by clothcurate ingest; run "
                            f"`clothcurate ingest --ccp DIR --dataset {dataset}` first or pass another --dataset")
    refs = confidence_refs(model_run) if model_run is not None else None
    skipped = {"image"} if refs is not None else {"image", "model"}
    checks = [c for c in all_checks() if not c.needs & skipped]
    if not len(pixel_annotated(ds)):
        raise BadInputError(f"dataset {dataset!r} has no pixel-annotated samples to check (its "
                            f"{len(tag_only(ds))} samples have image-level tags only); ingest a source with masks")
    ids, keys, jobs = _jobs(ds, refs or {})
    if refs is not None and not set(refs) & set(keys):
        raise BadInputError(f"{model_run}: none of its {len(refs)} confidence maps (e.g. {next(iter(refs))}) is a "
                            f"sample of dataset {dataset!r}; pass the --dataset the run was exported from")
    measurements = measure_files(jobs, checks, workers=workers, progress=progress)
    fitted: dict = {}
    scores = fit_and_score(measurements, checks, fitted=fitted)
    quality = scoring.label_quality(scores, checks)
    found = scoring.issues(scores, checks)
    bg_only = np.array(["background_only" in f for f in found])
    suspicious = scoring.suspicious(quality, found)
    _write(ds, ids, quality, found, bg_only, suspicious, checks, scores)
    if refs is not None:
        model.write_findings(ds, dataset=dataset, ids=ids, keys=keys, progress=progress,
                             evidence=[m[model.model_disagreement.name] for m in measurements],
                             stats=fitted[model.model_disagreement.name])
    else:
        model.clear_findings(ds, dataset=dataset)

    order = np.argsort(quality, kind="stable")[:WORST_SHOWN]
    return FlagReport(
        dataset=dataset, samples=len(ids), tag_only=len(ds) - len(ids),
        counts={c.name: int((scores[:, j] >= c.threshold).sum()) for j, c in enumerate(checks)},
        descriptions={c.name: c.description for c in checks},
        bg_only=int(bg_only.sum()), suspicious=int(suspicious.sum()),
        worst=[{"key": keys[i], "label_quality": round(float(quality[i]), 4), "issues": found[i]} for i in order],
        seconds=time.perf_counter() - t0)


def _jobs(ds, refs: dict[str, ConfidenceRef]) -> tuple[list[str], list[str], list[tuple]]:
    """Sample ids, keys and :func:`read_sample` arguments of the pixel-annotated samples (tag-only
    ones have no mask to check), in the dataset's order."""
    pixel = pixel_annotated(ds)
    ids, keys, sources, gt_paths, images = pixel.values(["id", "key", "source", "ground_truth.mask_path", "filepath"])
    raw_paths = {}
    background_ids = {}
    schema = ds.get_field_schema()
    for src in sorted(set(sources)):
        field = f"raw_{src}"
        if field in schema:
            raw_paths[src] = pixel.values(f"{field}.mask_path")
            background_ids[src] = _raw_background_ids(ds, src)
    jobs = []
    for i, (key, src, gt) in enumerate(zip(keys, sources, gt_paths)):
        if gt is None:
            raise BadInputError(f"sample {key or ids[i]}: no ground_truth mask; re-run `clothcurate ingest` "
                                  "with its source folder (it adds missing masks and keeps tags and predictions)")
        raw = raw_paths[src][i] if src in raw_paths else None
        jobs.append((key, gt, raw, background_ids.get(src, ()), images[i], refs.get(key)))
    return ids, keys, jobs


def _raw_background_ids(ds, source: str) -> tuple[int, ...]:
    """Source ids (besides 0) that the label map used at ingest sends to background."""
    targets = (ds.info.get("labelmap_targets") or {}).get(source)
    if targets is None:  # datasets ingested before the targets were recorded
        path = (ds.info.get("labelmaps") or {}).get(source)
        targets = (load_labelmap(path) if path and Path(path).exists() else load_labelmap(source)).targets
    return tuple(i for i, t in enumerate(targets) if t == 0 and i != 0)


def _write(ds, ids: list[str], quality: np.ndarray, found: list[list[str]], bg_only: np.ndarray,
           suspicious: np.ndarray, checks: list[Check], scores: np.ndarray) -> None:
    """Bulk-write fields, tags, saved views and check descriptions."""
    import fiftyone as fo

    ds.set_values("label_quality", dict(zip(ids, quality.astype(float).tolist())), key_field="id")
    # a list of strings: set_values alone declares an untyped list, which the App shows without values
    issues = ds.get_field("issues") if ds.has_sample_field("issues") else None
    if issues is not None and getattr(issues, "field", None) is None:
        ds.delete_sample_field("issues")  # an untyped field of an earlier run; every value is rewritten below
        issues = None
    if issues is None:
        ds.add_sample_field("issues", fo.ListField, subfield=fo.StringField)
    ds.set_values("issues", dict(zip(ids, found)), key_field="id")
    ds.untag_samples(list(FLAG_TAGS))
    ds.select([i for i, b in zip(ids, bg_only) if b]).tag_samples("bg_only")
    ds.select([i for i, s in zip(ids, suspicious) if s]).tag_samples("suspicious")
    for name, tag in VIEWS.items():
        ds.save_view(name, ds.match_tags(tag).sort_by("label_quality"), overwrite=True)

    field = ds.get_field("issues")
    field.description = "flag-errors reasons: " + " | ".join(f"{c.name}: {c.description}" for c in checks)
    field.save()
    lq = ds.get_field("label_quality")
    lq.description = ("0 = surely wrong ... 1 = clean: product of (1 - weight x score) over the checks; "
                      f"tagged suspicious below {scoring.SUSPICIOUS_BELOW} or with any issue")
    lq.save()
    ds.info["checks"] = {c.name: {"description": c.description, "weight": c.weight, "threshold": c.threshold,
                                  "flagged": int((scores[:, j] >= c.threshold).sum())}
                         for j, c in enumerate(checks)}
    ds.info["flag_errors"] = {"run": utc_now(),
                              "suspicious_below": scoring.SUSPICIOUS_BELOW}
    ds.save()
