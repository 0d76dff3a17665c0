"""``clothcurate status``: what a dataset holds, as one JSON-able dict (DESIGN.md's contract)."""

from __future__ import annotations

import json

from clothcurate.curation.annotation import IMAGE, PIXEL, tag_only
from clothcurate.curation.db import load_dataset
from clothcurate.workspace import dataset_dir

_PRED = "pred_"


def dataset_status(dataset: str) -> dict:
    """Summary of dataset ``dataset``.

    Returns:
        ``{"dataset", "samples", "sources": {source: n}, "tags": {tag: n}, "fields": [names],
        "folds": {fold: n}, "corrected": n (samples with a corrected
        mask: clothcurate fix), "annotation": {source: {"pixel": n, "image": n}} (pixel-annotated
        vs image-level tags only), "runs": [{"arch", "samples", "mean_iou"}], "ingest": last ingest report}``.

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
    sources = dict(sorted(ds.count_values("source").items())) if "source" in schema else {}
    tagged = tag_only(ds).count_values("source") if "annotation" in schema and sources else {}
    return {
        "dataset": dataset,
        "samples": len(ds),
        "sources": sources,
        "annotation": {src: {PIXEL: n - tagged.get(src, 0), IMAGE: tagged.get(src, 0)} for src, n in sources.items()},
        "tags": dict(sorted(ds.count_sample_tags().items())),
        "fields": sorted(schema),
        "folds": folds,
        "corrected": ds.exists("ground_truth_original").count() if "ground_truth_original" in schema else 0,
        "runs": runs,
        "ingest": json.loads(report.read_text()) if report.exists() else None,
    }


def format_status(st: dict) -> str:
    """Human-readable form of :func:`dataset_status`."""
    lines = [f"dataset {st['dataset']!r}: {st['samples']} samples"]
    kinds = st.get("annotation") or {}

    def _kinds(src: str) -> str:
        k = kinds.get(src) or {}
        return f" ({k[PIXEL]} pixel-annotated, {k[IMAGE]} image-level tags only)" if k.get(IMAGE) else ""

    lines.append("  sources: " + (", ".join(f"{k} {v}{_kinds(k)}" for k, v in st["sources"].items()) or "none"))
    lines.append("  tags:    " + (", ".join(f"{k} {v}" for k, v in st["tags"].items()) or "none"))
    if st["folds"]:
        lines.append("  folds:   " + ", ".join(f"{k}: {v}" for k, v in st["folds"].items()))
    if st.get("corrected"):
        n = st["corrected"]
        lines.append(f"  corrected masks: {n} sample{'' if n == 1 else 's'} (clothcurate fix; log: corrections.jsonl)")
    for r in st["runs"]:
        iou = f", mean IoU {r['mean_iou']:.3f}" if r["mean_iou"] is not None else ""
        lines.append(f"  run {r['arch']}: {r['samples']} predictions{iou}")
    if st.get("ingest") and st["ingest"].get("bad"):
        lines.append(f"  last ingest skipped {len(st['ingest']['bad'])} bad sample(s); see ingest_report.json")
    lines.append("  fields:  " + ", ".join(st["fields"]))
    return "\n".join(lines)
