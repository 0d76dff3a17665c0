"""Tables II and III of the paper, with our runs beside the published figures.

Every number is taken from ``metrics.json`` unchanged (fractions in [0, 1], ``None`` = null) and
written to CSV at full precision; the HTML and Markdown renderers format the same rows.

Example::

    rows = table_ii(runs, load_paper())
    write_csv(rows, TABLE_II_COLUMNS, out / "table2.csv")
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from clothcurate.atomic import atomic_path
from clothcurate.labelmaps import TARGET_CLASSES
from clothcurate.reports.paper import METRICS, PaperFigures
from clothcurate.reports.runs import Run
from clothcurate.reports.stats import ExportStats

__all__ = ["ARCH_NAMES", "TABLE_II_COLUMNS", "TABLE_III_COLUMNS", "fold_table", "table_ii", "table_iii",
           "write_csv"]

ARCH_NAMES: dict[str, str] = {"linknet": "LinkNet", "pspnet": "PSPNet", "unet": "U-Net", "fpn": "FPN"}
"""Architectures in the paper's Table II order, with the paper's spelling."""

_MEAN_METRICS = (*METRICS, "pixel_accuracy")
_T3_PAPER = ("precision", "recall", "f1")

TABLE_II_COLUMNS: tuple[str, ...] = (
    "source", "run", "arch", "encoder", "variant", "primary", "folds",
    *(f"{m}_{s}" for m in _MEAN_METRICS for s in ("mean", "std")),
    *(f"paper_{m}" for m in METRICS), *(f"diff_{m}" for m in METRICS))

TABLE_III_COLUMNS: tuple[str, ...] = (
    "run", "arch", "variant", "primary", "class_id", "class",
    *(f"{m}_{s}" for m in METRICS for s in ("mean", "std")),
    *(f"paper_{m}" for m in _T3_PAPER), *(f"diff_{m}" for m in _T3_PAPER))


def _diff(ours: float | None, paper: float | None) -> float | None:
    return None if ours is None or paper is None else ours - paper


def table_ii(runs: list[Run], paper: PaperFigures) -> list[dict[str, Any]]:
    """Table II: mean precision, recall, F1, IoU (and pixel accuracy) over folds, per run.

    Args:
        runs: the runs, in the order given on the command line.
        paper: the published figures.

    Returns:
        One row per run and metrics variant (primary first), then one row per architecture of
        the paper (``source`` = ``paper``). Our rows carry the mean and std over folds, the
        paper's figure for the same architecture and the difference ours - paper.
    """
    rows = []
    for run in runs:
        ref = paper.table_ii.get(run.arch, {})
        for variant in run.variants:
            means = run.metrics["summary"][variant]["mean"]
            row: dict[str, Any] = {"source": "ours", "run": run.label, "arch": run.arch, "encoder": run.encoder,
                                   "variant": variant, "primary": variant == run.primary, "folds": run.n_folds}
            for m in _MEAN_METRICS:
                row[f"{m}_mean"] = means.get(m, {}).get("mean")
                row[f"{m}_std"] = means.get(m, {}).get("std")
            for m in METRICS:
                row[f"paper_{m}"] = ref.get(m)
                row[f"diff_{m}"] = _diff(row[f"{m}_mean"], ref.get(m))
            rows.append(row)
    for arch, figures in paper.table_ii.items():
        row = dict.fromkeys(TABLE_II_COLUMNS)
        row.update({"source": "paper", "run": "paper", "arch": arch, "encoder": "EfficientNet",
                    "variant": "opened", "primary": True, "folds": 5})
        row.update({f"{m}_mean": figures.get(m) for m in METRICS})
        rows.append(row)
    return rows


def table_iii(runs: list[Run], paper: PaperFigures) -> list[dict[str, Any]]:
    """Table III: per-class precision, recall, F1 and IoU of every run beside the paper's FPN.

    Args:
        runs: the runs.
        paper: the published figures (Table III is the paper's FPN).

    Returns:
        One row per run, metrics variant and class (``TARGET_CLASSES`` order), with the mean and
        std over folds, the paper's figures for the class and the difference ours - paper.
    """
    rows = []
    for run in runs:
        for variant in run.variants:
            per_class = run.metrics["summary"][variant]["per_class"]
            for c, name in enumerate(TARGET_CLASSES):
                row: dict[str, Any] = {"run": run.label, "arch": run.arch, "variant": variant,
                                       "primary": variant == run.primary, "class_id": c, "class": name}
                for m in METRICS:
                    row[f"{m}_mean"] = per_class[m]["mean"][c]
                    row[f"{m}_std"] = per_class[m]["std"][c]
                for m in _T3_PAPER:
                    row[f"paper_{m}"] = paper.table_iii[name][m]
                    row[f"diff_{m}"] = _diff(row[f"{m}_mean"], paper.table_iii[name][m])
                rows.append(row)
    return rows


def write_csv(rows: list[dict[str, Any]], columns: tuple[str, ...], path: Path) -> Path:
    """Write rows as CSV atomically (temp file, then rename); ``None`` becomes an empty cell.

    Args:
        rows: the table rows.
        columns: the column order.
        path: the CSV file.

    Returns:
        ``path``.
    """
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows([{k: ("" if v is None else v) for k, v in r.items()} for r in rows])
    return path


def fold_table(stats: ExportStats) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """Class frequency and fold statistics of an export (the paper's Fig. 4 as numbers).

    Args:
        stats: the export's statistics.

    Returns:
        ``(rows, columns)``: one row per class with images and pixel share, overall and per fold
        (``images_fold<f>``, ``pixel_share_fold<f>``, shares as fractions of the fold's pixels).
    """
    folds = range(stats.k)
    columns = ("class_id", "class", "images", *(f"images_fold{f}" for f in folds),
               "pixels", "pixel_share", *(f"pixel_share_fold{f}" for f in folds))
    fold_totals = np.maximum(stats.fold_pixels.sum(1), 1)
    rows = []
    for c, name in enumerate(TARGET_CLASSES):
        row: dict[str, Any] = {"class_id": c, "class": name, "images": int(stats.images_per_class[c]),
                               "pixels": int(stats.pixels_per_class[c]), "pixel_share": float(stats.pixel_share[c])}
        for f in folds:
            row[f"images_fold{f}"] = int(stats.fold_images[f, c])
            row[f"pixel_share_fold{f}"] = float(stats.fold_pixels[f, c] / fold_totals[f])
        rows.append(row)
    return rows, columns
