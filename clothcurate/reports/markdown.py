"""``report.md``: the same report as Markdown, linking the PNG files beside it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clothcurate.labelmaps import TARGET_CLASSES
from clothcurate.reports._format import duration, left_out, pct, pm, signed
from clothcurate.reports.paper import METRICS
from clothcurate.reports.tables import ARCH_NAMES

if TYPE_CHECKING:
    from clothcurate.reports.build import ReportData

__all__ = ["render_markdown"]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = [[c.replace("|", "\\|") for c in row] for row in [header, *rows]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in esc[1:]] + [""]


def _runs(data: ReportData) -> list[str]:
    rows = [[r.label, ARCH_NAMES.get(r.arch, r.arch), r.encoder, str(r.n_folds), ", ".join(r.variants), r.machine,
             duration(r.duration_s), r.export_dir.name if r.export_dir else f"{r.recorded_export} (not found)"]
            for r in data.runs]
    out = ["## Runs", ""] + _table(["Run", "Arch", "Encoder", "Folds", "Metrics", "Machine", "Training", "Export"], rows)
    for r in data.runs:
        opts = ", ".join(f"`{k}={v}`" for k, v in r.options.items())
        out += [f"- **{r.label}** (`{r.path}`): {opts}", ""]
    return out


def _curation(data: ReportData) -> list[str]:
    out = ["## Curated data", ""]
    for e in data.exports:
        m = e.stats.meta
        crop = f"crop {m.get('crop')}, {m.get('size')} px" if m.get("crop") else "full photos"
        out += [f"- Export **{e.label}** (runs: {', '.join(e.runs)}): {e.stats.n_samples} samples from "
                f"`{m.get('dataset', '?')}`, {e.stats.k} folds (seed {m.get('seed', '?')}), {crop}; "
                f"left out: {left_out(e.stats.left_out)}."]
    for r in (r for r in data.runs if r.export_dir is None and r.export):
        out += [f"- Run **{r.label}**: export folder not found here; config.json records {r.export.get('folds', '?')} "
                f"folds of `{r.export.get('dataset', '?')}`, left out: {left_out(r.export.get('left_out') or {})}."]
    if data.dataset_summary is not None:
        s = data.dataset_summary
        tags = ", ".join(f"{k} {v}" for k, v in sorted(s["tags"].items())) or "none"
        out += [f"- FiftyOne dataset `{data.dataset}`: {s['samples']} samples; tags: {tags}."]
    return out + [""]


def _table2(data: ReportData) -> list[str]:
    metrics = (*METRICS, "pixel_accuracy")
    rows = []
    for arch in list(ARCH_NAMES) + sorted({r["arch"] for r in data.table2} - set(ARCH_NAMES)):
        for r in (r for r in data.table2 if r["arch"] == arch):
            if r["source"] == "paper":
                rows.append([ARCH_NAMES.get(arch, arch), "paper", *(pct(r[f"{m}_mean"]) for m in metrics)])
            else:
                rows.append([ARCH_NAMES.get(arch, arch), f"{r['run']} · {r['variant']}",
                             *(pm(r[f"{m}_mean"], r[f"{m}_std"]) for m in metrics)])
                if r["primary"] and r["paper_f1"] is not None:
                    rows.append(["", f"Δ {r['run']} − paper", *(signed(r[f"diff_{m}"]) for m in METRICS), ""])
    return (["## Table II: mean over classes (%, mean ± std over folds)", ""]
            + _table(["Model", "Source", "Precision", "Recall", "F1", "mIoU", "Pixel acc."], rows))


def _table3(data: ReportData) -> list[str]:
    paper = data.paper
    header = ["Class", "paper P", "paper R", "paper F1"]
    for r in data.runs:
        header += [f"{r.label} P", f"{r.label} R", f"{r.label} F1", f"{r.label} IoU", f"{r.label} ΔF1"]
    rows3 = {(r["run"], r["class_id"]): r for r in data.table3 if r["primary"]}
    rows = []
    for c, name in enumerate(TARGET_CLASSES):
        row = [name, *(pct(paper.table_iii[name][m]) for m in ("precision", "recall", "f1"))]
        for run in data.runs:
            r = rows3[(run.label, c)]
            row += [*(pm(r[f"{m}_mean"], r[f"{m}_std"]) for m in METRICS), signed(r["diff_f1"])]
        rows.append(row)
    return ([f"## Table III: per class (%, primary metrics; paper = {ARCH_NAMES.get(paper.table_iii_arch)})", ""]
            + _table(header, rows))


def render_markdown(data: ReportData) -> str:
    """The report as Markdown; figures are linked by file name (they lie beside report.md).

    Args:
        data: what to show.

    Returns:
        The Markdown text.
    """
    lines = [f"# clothcurate report: {', '.join(r.label for r in data.runs)}", "",
             f"Compared with: {data.paper.source}. Generated {data.created}. "
             "A self-contained version with the same content is `report.html`.", ""]
    lines += [f"> note: {n}" for n in data.notes] + ([""] if data.notes else [])
    lines += _runs(data) + _curation(data) + _table2(data) + _table3(data)
    lines += ["## Per-class IoU (Fig. 6)", "", f"![Per-class IoU]({data.iou_figure.name})", "",
              "## Confusion matrices (Fig. 7)", ""]
    lines += [f"![{label} confusion]({p.name})" for label, p in data.confusion_figures.items()] + [""]
    lines += ["## Best and worst samples (Fig. 9)", ""]
    lines += [f"![{label} samples]({p.name})" for label, p in data.sample_figures.items()] + [""]
    lines += ["## Class frequency and folds (Fig. 4)", ""]
    for e in data.exports:
        lines += [f"![{e.label} class frequency]({e.figure.name})", "", f"Per fold: [{e.table.name}]({e.table.name})", ""]
    lines += ["Numbers at full precision: [table2.csv](table2.csv), [table3.csv](table3.csv).", ""]
    return "\n".join(lines)

