"""The scores the accuracy benchmarks print, read from a run folder's metrics.json.

``bench/accuracy.py``, ``bench/tta.py`` and ``bench/fix_effect.py`` print the same columns: P /
R / F1 / mIoU of the opened (and raw) predictions and the opened IoU of the classes that fail
today (:data:`RARE`), in percent. Each reads them here, so the columns mean the same in every table.
"""

from __future__ import annotations

import json
from pathlib import Path

#: the classes issue 13 names as failing (their opened IoU gets a column of its own)
RARE = ("romper", "scarf/tie", "socks", "hat", "glasses")
#: the mean scores of a fold entry, in column order
MEANS = ("precision", "recall", "f1", "iou")


def pct(x: float | None, width: int = 5) -> str:
    """``x`` (a fraction) in percent with one decimal, right-aligned; ``-`` when missing."""
    return f"{'-':>{width}}" if x is None else f"{100 * x:{width}.1f}"


def _metrics(run_dir: Path) -> dict | None:
    path = Path(run_dir) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _entry_of(metrics: dict | None, fold: int) -> dict | None:
    found = [f for f in metrics["folds"] if f["fold"] == fold] if metrics else []
    return found[0] if found else None


def fold_entry(run_dir: Path, fold: int) -> dict | None:
    """The metrics.json entry of ``fold`` (None: the fold is not finished or there is no metrics.json)."""
    return _entry_of(_metrics(run_dir), fold)


def entry_scores(entry: dict, classes: list[str]) -> dict[str, float | None]:
    """``opened_<mean>`` and ``raw_<mean>`` for each of :data:`MEANS`, and each :data:`RARE` class's opened IoU."""
    out: dict[str, float | None] = {f"{variant}_{name}": entry[variant]["mean"][name]
                                    for variant in ("opened", "raw") for name in MEANS}
    iou = entry["opened"]["per_class"]["iou"]
    out.update({name: iou[classes.index(name)] for name in RARE})
    return out


def fold_scores(run_dir: Path, fold: int) -> dict[str, float | None]:
    """:func:`entry_scores` of a finished fold of a run folder.

    Raises:
        FileNotFoundError: the run has no finished entry for ``fold``.
    """
    metrics = _metrics(run_dir)
    entry = _entry_of(metrics, fold)
    if entry is None:
        raise FileNotFoundError(f"{run_dir}: fold {fold} is not finished (not in metrics.json)")
    return entry_scores(entry, metrics["classes"])


def score_cells(scores: dict[str, float | None], *, raw: bool = True) -> str:
    """``opened P R F1 mIoU | [raw P R F1 mIoU |] rare IoU`` of :func:`entry_scores`' output."""
    cells = [" ".join(pct(scores[f"opened_{k}"]) for k in MEANS)]
    if raw:
        cells.append(" ".join(pct(scores[f"raw_{k}"]) for k in MEANS))
    cells.append(" ".join(pct(scores[n], 7) for n in RARE))
    return " | ".join(cells)


def rare_header() -> str:
    """The rare classes' column heads, as wide as :func:`score_cells` prints them."""
    return " ".join(f"{n[:7]:>7}" for n in RARE)
