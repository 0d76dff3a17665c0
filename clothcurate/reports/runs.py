"""Load and check a train-eval run folder (docs/contracts.md, "Run folder" and "metrics.json").

A run folder that is missing, half-written (train-eval stopped before ``metrics.json``, or a
``metrics.json`` without folds) or lacks its out-of-fold predictions is refused with a
:class:`~clothcurate.errors.BadInputError` naming what is missing; nothing is guessed.

Example::

    run = load_run(Path("runs/fpn"))
    run.summary["mean"]["f1"]["mean"]        # mean F1 over folds, primary variant
    run.per_sample[0].key, run.per_sample[0].iou
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from clothcurate.errors import BadInputError
from clothcurate.folders.run import RunFolder
from clothcurate.labelmaps import TARGET_CLASSES

__all__ = ["Run", "SampleScore", "load_run"]

_PER_SAMPLE_COLUMNS = ("key", "fold", "iou", "pixel_acc")
_RERUN = "re-run train-eval with the same --out to complete it"


@dataclass(frozen=True)
class SampleScore:
    """One row of ``per_sample.csv``: a sample's out-of-fold scores (fractions; NaN if undefined)."""

    key: str
    fold: int
    iou: float
    pixel_acc: float


@dataclass
class Run:
    """A complete train-eval run folder.

    Attributes:
        path: the run folder.
        label: the name shown in the report (the folder's name, made unique by ``build_report``).
        config: ``config.json`` (options, export.json, versions, machine, start/end).
        metrics: ``metrics.json``.
        per_sample: rows of ``per_sample.csv``.
        export_dir: the export folder the run was trained on, when it is still reachable.
        folder: the run folder's paths (:class:`~clothcurate.folders.RunFolder`).
        notes: things the report could not show for this run, one line each.
    """

    path: Path
    label: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    per_sample: list[SampleScore]
    export_dir: Path | None
    folder: RunFolder
    notes: list[str] = field(default_factory=list)

    @property
    def options(self) -> dict[str, Any]:
        """The train-eval options (``config.json`` ``options``; else its top-level plain values)."""
        return self.folder.options

    @property
    def recorded_export(self) -> str:
        """The export folder as ``config.json`` records it (it may not exist on this machine)."""
        return self.folder.recorded_export or "?"

    @property
    def arch(self) -> str:
        """The architecture (``fpn``, ``unet``, ``linknet``, ``pspnet``)."""
        return str(self.metrics.get("arch") or self.options.get("arch") or "?")

    @property
    def encoder(self) -> str:
        """The encoder name."""
        return str(self.metrics.get("encoder") or self.options.get("encoder") or "?")

    @property
    def title(self) -> str:
        """The label, with the architecture when the label does not already say it."""
        return self.label if self.label.lower() == self.arch else f"{self.label} ({self.arch})"

    @property
    def primary(self) -> str:
        """The metrics variant the report shows first (``opened`` = the paper's post-processing)."""
        return str(self.metrics["primary"])

    @property
    def variants(self) -> list[str]:
        """The metrics variants, primary first (e.g. ``["opened", "raw"]``)."""
        names = list(self.metrics["summary"])
        return [self.primary] + [v for v in names if v != self.primary]

    @property
    def summary(self) -> dict[str, Any]:
        """The primary variant's ``summary`` block (mean/std over folds, summed confusion)."""
        return self.metrics["summary"][self.primary]

    @property
    def n_folds(self) -> int:
        """Number of evaluated folds."""
        return len(self.metrics["folds"])

    @property
    def export(self) -> dict[str, Any]:
        """The export's ``export.json`` as recorded in ``config.json`` (or read from the export)."""
        recorded = self.config.get("export")
        if isinstance(recorded, dict):
            return recorded
        if self.export_dir is not None and (self.export_dir / "export.json").exists():
            return json.loads((self.export_dir / "export.json").read_text())
        return {}

    @property
    def machine(self) -> str:
        """CPU/GPU model as one line (from ``config.json``)."""
        m = self.config.get("machine")
        if isinstance(m, dict):
            first = [k for k in ("gpu", "cpu") if k in m]   # the models first, then the rest as recorded
            return ", ".join(f"{k}: {m[k]}" for k in first + [k for k in m if k not in first]
                             if m[k] not in (None, "", []))
        return str(m) if m else "not recorded"

    @cached_property
    def duration_s(self) -> float | None:
        """Training time: the epoch seconds of every fold's ``history.csv`` summed (a run trained
        in several sittings or on another machine counts only its training); else the seconds
        from the run's start to its end, when ``config.json`` records both."""
        seconds = [float(row["seconds"]) for path in sorted(self.folder.folds_dir.glob("*/history.csv"))
                   for row in _csv_rows(path) if row.get("seconds")]
        if seconds:
            return sum(seconds)
        start, end = (_first(self.config, names) for names in (_START_KEYS, _END_KEYS))
        if isinstance(start, (int, float)) and isinstance(end, (int, float)):
            return float(end) - float(start)
        try:
            return (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds()
        except (TypeError, ValueError):
            return None

    def prediction_path(self, key: str) -> Path:
        """The out-of-fold prediction PNG of a sample (full photo frame, 15-class)."""
        return self.folder.prediction_path(key)


_START_KEYS = ("start", "started", "start_time", "started_at")
_END_KEYS = ("end", "ended", "finished", "end_time", "finished_at")


def _first(d: dict, names: tuple[str, ...]) -> Any:
    return next((d[n] for n in names if d.get(n) is not None), None)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise BadInputError(f"{path}: missing ({what}); the run is incomplete: {_RERUN}")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BadInputError(f"{path}: not valid JSON ({e}); the file is half-written: {_RERUN}") from e
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: expected a JSON object; {_RERUN}")
    return data


def _check_metrics(metrics: dict[str, Any], path: Path) -> None:
    """Refuse a metrics.json that lacks what the report reads (one line naming the key)."""
    classes = metrics.get("classes")
    if classes is not None and list(classes) != list(TARGET_CLASSES):
        raise BadInputError(f"{path}: classes {classes} are not the 15 target classes of Table I; "
                            "the report compares only runs on these classes")
    folds = metrics.get("folds")
    if not isinstance(folds, list) or not folds:
        raise BadInputError(f"{path}: no folds (metrics.json without 'folds'); the run is half-written: {_RERUN}")
    summary = metrics.get("summary")
    if not isinstance(summary, dict) or not summary:
        raise BadInputError(f"{path}: no 'summary' over folds; the run is half-written: {_RERUN}")
    primary = metrics.get("primary")
    if primary not in summary:
        raise BadInputError(f"{path}: 'primary' is {primary!r} but the summary has {sorted(summary)}; {_RERUN}")
    for variant, block in summary.items():
        for key in ("per_class", "mean", "confusion"):
            if key not in block:
                raise BadInputError(f"{path}: summary.{variant} lacks '{key}'; {_RERUN}")


def _float(text: str) -> float:
    try:
        return float(text) if text not in ("", None) else math.nan
    except ValueError:
        return math.nan


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _read_per_sample(path: Path) -> list[SampleScore]:
    if not path.is_file():
        raise BadInputError(f"{path}: missing (per-sample scores); the run is incomplete: {_RERUN}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _PER_SAMPLE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise BadInputError(f"{path}: columns {missing} missing (expected {', '.join(_PER_SAMPLE_COLUMNS)}); {_RERUN}")
        rows = [SampleScore(r["key"], int(r["fold"]), _float(r["iou"]), _float(r["pixel_acc"])) for r in reader]
    if not rows:
        raise BadInputError(f"{path}: no samples; the run is half-written: {_RERUN}")
    return rows


def _check_predictions(folder: RunFolder, rows: list[SampleScore]) -> None:
    pred_dir = folder.predictions_dir
    if not pred_dir.is_dir():
        raise BadInputError(f"{pred_dir}: missing (out-of-fold predictions); the run is incomplete: {_RERUN}")
    have = {p.stem for p in pred_dir.glob("*.png")}
    missing = [r.key for r in rows if r.key not in have]
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise BadInputError(f"{pred_dir}: {len(missing)} of {len(rows)} predictions missing ({shown}); {_RERUN}")


def load_run(run_dir: Path, *, label: str | None = None) -> Run:
    """Load a run folder and check that it is complete.

    Args:
        run_dir: a ``train-eval --out`` folder.
        label: the name shown in the report (default: the folder's name).

    Returns:
        The run; ``export_dir`` is None (with a note) when the recorded export folder is gone.

    Raises:
        BadInputError: the folder, ``config.json``, ``metrics.json`` (or its folds/summary),
            ``per_sample.csv`` or any prediction it lists is missing or unreadable.
    """
    folder = RunFolder.open(run_dir, hint="pass the --out folder of a finished train-eval run")
    run_dir = folder.root
    config = folder.config
    metrics = _read_json(folder.metrics_path, "written when every fold is evaluated")
    _check_metrics(metrics, folder.metrics_path)
    rows = _read_per_sample(folder.per_sample_path)
    _check_predictions(folder, rows)
    export_dir = folder.export_dir
    run = Run(path=run_dir, label=label or run_dir.resolve().name, config=config, metrics=metrics,
              per_sample=rows, export_dir=export_dir, folder=folder)
    if export_dir is None:
        run.notes.append(f"{run.label}: export folder {folder.recorded_export!r} (config.json) "
                         "not found here; photos and class statistics come from --dataset or are left out")
    return run
