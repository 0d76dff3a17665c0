"""``clothcurate status``: what a dataset holds, as one JSON-able dict (DESIGN.md's contract)."""

from __future__ import annotations

import json

from clothcurate.curation.db import load_dataset
from clothcurate.workspace import dataset_dir

_PRED = "pred_"


def dataset_status(dataset: str) -> dict:
    """Summary of dataset ``dataset``.

    Returns:
        ``{"dataset", "samples", "sources": {source: n}, "tags": {tag: n}, "fields": [names],
        "folds": {fold: n}, "runs": [{"arch", "samples", "mean_iou"}], "ingest": last ingest report}``.

    Raises:
        BadInputError: the dataset does not exist.
    """
    ds = load_dataset(dataset)
    schema = ds.get_field_schema()
    # samples left out of the export have fold None: drop them before sorting (None < int fails)
    folds = ({str(k): v for k, v in sorted((k, v) for k, v in ds.count_values("fold").items() if k is not None)}
             if "fold" in schema else {})
    runs = []
    for name in schema:
        if name.startswith(_PRED):
            arch = name[len(_PRED):]
            iou = f"iou_{arch}"
            runs.append({"arch": arch, "samples": ds.exists(name).count(),
                         "mean_iou": ds.mean(iou) if iou in schema else None})
    report = dataset_dir(dataset) / "ingest_report.json"
    return {
        "dataset": dataset,
        "samples": len(ds),
        "sources": dict(sorted(ds.count_values("source").items())) if "source" in schema else {},
        "tags": dict(sorted(ds.count_sample_tags().items())),
        "fields": sorted(schema),
        "folds": folds,
        "runs": runs,
        "ingest": json.loads(report.read_text()) if report.exists() else None,
    }


def format_status(st: dict) -> str:
    """Human-readable form of :func:`dataset_status`."""
    lines = [f"dataset {st['dataset']!r}: {st['samples']} samples"]
    lines.append("  sources: " + (", ".join(f"{k} {v}" for k, v in st["sources"].items()) or "none"))
    lines.append("  tags:    " + (", ".join(f"{k} {v}" for k, v in st["tags"].items()) or "none"))
    if st["folds"]:
        lines.append("  folds:   " + ", ".join(f"{k}: {v}" for k, v in st["folds"].items()))
    for r in st["runs"]:
        iou = f", mean IoU {r['mean_iou']:.3f}" if r["mean_iou"] is not None else ""
        lines.append(f"  run {r['arch']}: {r['samples']} predictions{iou}")
    if st.get("ingest") and st["ingest"].get("bad"):
        lines.append(f"  last ingest skipped {len(st['ingest']['bad'])} bad sample(s); see ingest_report.json")
    lines.append("  fields:  " + ", ".join(st["fields"]))
    return "\n".join(lines)
