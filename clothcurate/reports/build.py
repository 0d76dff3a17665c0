"""``clothcurate report``: our runs beside the paper's Tables II/III and Figs. 4, 6, 7, 9.

Reads run folders (and the export each was trained on), writes into ``out``:

* ``table2.csv``, ``table3.csv``, ``fold_stats_<export>.csv`` - the numbers, full precision;
* ``fig6_class_iou.png``, ``fig7_confusion_<run>.png``, ``fig9_samples_<run>.png``,
  ``fig4_class_frequency_<export>.png``;
* ``report.md`` (links the PNGs beside it) and ``report.html`` (self-contained: the PNGs are
  embedded, so the one file opens offline);
* ``report.json`` - the runs and files of the report; it marks the folder as a report.

Everything is read before the first file is written (bad input changes nothing). The report is
written into a hidden sibling folder that replaces ``out`` when complete
(:mod:`clothcurate.outdir`): ``out`` must be missing, empty or an earlier report, a failed run
leaves the earlier report as it was, and re-running replaces it whole. Photos missing from a
run's export only leave its Fig. 9 out, with a note.

Example::

    result = build_report([Path("runs/fpn"), Path("runs/unet")], Path("report"))
    print(result.summary())
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clothcurate.atomic import write_bytes, write_json
from clothcurate.errors import BadInputError
from clothcurate.outdir import FolderKind, check_replaceable, replacing, target
from clothcurate.reports import figures
from clothcurate.reports.html import render_html
from clothcurate.reports.markdown import render_markdown
from clothcurate.reports.paper import PaperFigures, load_paper
from clothcurate.reports.runs import Run, load_run
from clothcurate.reports.samples import best_and_worst, sample_views
from clothcurate.reports.stats import ExportStats, export_stats
from clothcurate.reports.tables import (
    TABLE_II_COLUMNS,
    TABLE_III_COLUMNS,
    fold_table,
    table_ii,
    table_iii,
    write_csv,
)
from clothcurate.timestamps import utc_now

__all__ = ["REPORT_FOLDER", "ExportSection", "ReportData", "ReportResult", "build_report"]

#: a report folder is recognised (and replaced by a re-run) by its report.json
REPORT_FOLDER = FolderKind(what="report folder", marker="report.json", keys=("report", "runs", "files"))
REPORT_VERSION = 1


@dataclass
class ExportSection:
    """The curated data behind one or more runs.

    Attributes:
        label: the export folder's name (unique in the report).
        stats: its class and fold statistics.
        fold_rows: :func:`~clothcurate.reports.tables.fold_table` rows.
        fold_columns: their columns.
        table: the fold statistics CSV.
        figure: the class-frequency PNG (Fig. 4).
        runs: labels of the runs trained on it.
    """

    label: str
    stats: ExportStats
    fold_rows: list[dict[str, Any]]
    fold_columns: tuple[str, ...]
    table: Path
    figure: Path
    runs: list[str]


@dataclass
class ReportData:
    """Everything the HTML and Markdown renderers show (they format, never compute).

    Attributes:
        out: the report folder.
        created: ISO time the report was made.
        paper: the paper's figures.
        runs: the runs, in command-line order.
        table2: Table II rows; table3: Table III rows.
        iou_figure: Fig. 6 PNG.
        confusion_figures: ``{run label: Fig. 7 PNG}``.
        sample_figures: ``{run label: Fig. 9 PNG}`` (runs whose photos were found).
        exports: the exports behind the runs.
        dataset: the FiftyOne dataset given with ``--dataset``, and ``dataset_summary`` its
            sample count and tags.
        notes: what could not be shown, one line each.
    """

    out: Path
    created: str
    paper: PaperFigures
    runs: list[Run]
    table2: list[dict[str, Any]]
    table3: list[dict[str, Any]]
    iou_figure: Path
    confusion_figures: dict[str, Path]
    sample_figures: dict[str, Path]
    exports: list[ExportSection]
    dataset: str | None = None
    dataset_summary: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ReportResult:
    """What ``build_report`` wrote.

    Attributes:
        out: the report folder.
        files: every file written, ``report.html`` first.
        notes: what could not be shown.
    """

    out: Path
    files: list[Path]
    notes: list[str]

    def summary(self) -> str:
        """The lines the CLI prints: the files written, then any notes."""
        lines = [f"report written to {self.out}/ ({len(self.files)} files):"]
        lines += [f"  {p.name}" for p in self.files]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def _unique_labels(paths: list[Path]) -> list[str]:
    """Folder names, widened to ``parent/name`` (then numbered) where two runs share a name."""
    resolved = [p.resolve() for p in paths]
    labels = [p.name for p in resolved]
    counts = Counter(labels)
    labels = [f"{p.parent.name}/{p.name}" if counts[n] > 1 else n for p, n in zip(resolved, labels)]
    seen: Counter = Counter()
    out = []
    for label in labels:
        seen[label] += 1
        out.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return out


def _dataset_summary(name: str) -> dict[str, Any]:
    from clothcurate.curation.db import load_dataset

    ds = load_dataset(name)
    sources = ds.count_values("source") if ds.has_field("source") else {}
    return {"samples": len(ds), "sources": sources, "tags": ds.count_sample_tags()}


def _export_stats(runs: list[Run]) -> list[tuple[Path, str, ExportStats, list[Run]]]:
    """The statistics of every export the runs were trained on (read before anything is written)."""
    by_dir: dict[Path, list[Run]] = {}
    for run in runs:
        if run.export_dir is not None:
            by_dir.setdefault(run.export_dir, []).append(run)
    labels = _unique_labels(list(by_dir))
    return [(export_dir, label, export_stats(export_dir), its_runs)
            for (export_dir, its_runs), label in zip(by_dir.items(), labels)]


def _write_exports(read: list[tuple[Path, str, ExportStats, list[Run]]], out: Path) -> list[ExportSection]:
    sections = []
    for _, label, stats, its_runs in read:
        rows, columns = fold_table(stats)
        slug = _slug(label)
        table = write_csv(rows, columns, out / f"fold_stats_{slug}.csv")
        fig = out / f"fig4_class_frequency_{slug}.png"
        figures.class_frequency(stats, fig, title=f"Class frequency in export '{label}' "
                                                  f"({stats.n_samples} images, cf. paper Fig. 4)")
        sections.append(ExportSection(label, stats, rows, columns, table, fig, [r.label for r in its_runs]))
    return sections


def _views(run: Run, *, samples: int, dataset: str | None, notes: list[str]) -> tuple[int, list]:
    """Best and worst samples of a run for Fig. 9: ``(number of best, views)``. From the run's
    export, missing photos or masks only leave the figure out (with a note); from a dataset the
    user named, they are an error."""
    best, worst = best_and_worst(run.per_sample, samples)
    try:
        return len(best), sample_views(run, best + worst, dataset=dataset)
    except BadInputError as exc:
        if dataset is not None:
            raise
        notes.append(f"{run.label}: Fig. 9 left out ({exc}); pass --dataset NAME to take the photos from FiftyOne")
        return 0, []


def build_report(runs: list[Path], out: Path, *, dataset: str | None = None, samples: int = 3) -> ReportResult:
    """Write the report of one or more train-eval runs beside the paper's figures.

    Args:
        runs: run folders (``train-eval --out``); several are shown side by side.
        out: the report folder (created; must be missing, empty or an earlier report, which is
            replaced whole).
        dataset: a FiftyOne dataset for the curation summary (samples, tags) and for the
            photos of Fig. 9 in the full photo frame; default: the run's export folder.
        samples: best and worst samples per run in Fig. 9.

    Returns:
        The files written and notes on what could not be shown.

    Raises:
        BadInputError: no run given, a run folder missing or half-written (names the file), or
            ``out`` a non-empty folder that is not a report (or being written by another report).
        OSError: ``out`` cannot be written (read-only, disk full ...).
    """
    if not runs:
        raise BadInputError("no run folder given; pass --runs RUN_DIR (repeatable)")
    out = target(out)
    check_replaceable(out, REPORT_FOLDER, overwrite=True)
    loaded = [load_run(Path(p), label=label) for p, label in zip(runs, _unique_labels([Path(p) for p in runs]))]
    dataset_summary = _dataset_summary(dataset) if dataset else None   # a wrong name fails before any write
    paper = load_paper()
    notes = [n for r in loaded for n in r.notes]

    # read everything first, so that bad input fails before any file is replaced
    t2, t3 = table_ii(loaded, paper), table_iii(loaded, paper)
    views = {run.label: _views(run, samples=samples, dataset=dataset, notes=notes) for run in loaded}
    exports = _export_stats(loaded)

    with replacing(out, REPORT_FOLDER, overwrite=True) as tmp:
        write_csv(t2, TABLE_II_COLUMNS, tmp / "table2.csv")
        write_csv(t3, TABLE_III_COLUMNS, tmp / "table3.csv")
        iou_fig = tmp / "fig6_class_iou.png"
        figures.iou_bars(loaded, paper, iou_fig)
        confusion, grids = {}, {}
        for run in loaded:
            slug = _slug(run.label)
            confusion[run.label] = tmp / f"fig7_confusion_{slug}.png"
            figures.confusion_heatmap(run, confusion[run.label])
            n_best, its_views = views[run.label]
            if its_views:
                grids[run.label] = tmp / f"fig9_samples_{slug}.png"
                figures.sample_grid(its_views[:n_best], its_views[n_best:], grids[run.label],
                                    title=f"{run.title}: out-of-fold predictions, "
                                          "highest and lowest IoU (cf. paper Fig. 9)")
        data = ReportData(out=out, created=utc_now(), paper=paper,
                          runs=loaded, table2=t2, table3=t3, iou_figure=iou_fig, confusion_figures=confusion,
                          sample_figures=grids, exports=_write_exports(exports, tmp), dataset=dataset,
                          dataset_summary=dataset_summary, notes=notes)

        md, html = tmp / "report.md", tmp / "report.html"
        write_bytes(md, render_markdown(data).encode("utf-8"))
        write_bytes(html, render_html(data).encode("utf-8"))
        files = [html, md, tmp / "table2.csv", tmp / "table3.csv",
                 *(e.table for e in data.exports),
                 iou_fig, *confusion.values(), *grids.values(), *(e.figure for e in data.exports),
                 tmp / "report.json"]
        write_json(tmp / "report.json", {
            "report": "clothcurate report", "version": REPORT_VERSION, "created": data.created,
            "runs": [str(run.path.resolve()) for run in loaded], "dataset": dataset,
            "files": [p.name for p in files], "notes": notes})
    return ReportResult(out=out, files=[out / p.name for p in files], notes=notes)
