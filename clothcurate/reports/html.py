"""``report.html``: one self-contained page (inline CSS, PNGs embedded as base64 data URIs).

Numbers are shown in percent with one decimal; every number cell carries ``data-*`` attributes
(run, variant, class, metric) so a script can read the table back.
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clothcurate.labelmaps import TARGET_CLASSES
from clothcurate.reports._format import duration, left_out, pct, signed
from clothcurate.reports.colors import hex_color
from clothcurate.reports.paper import METRICS
from clothcurate.reports.tables import ARCH_NAMES

if TYPE_CHECKING:
    from clothcurate.reports.build import ExportSection, ReportData
    from clothcurate.reports.runs import Run

__all__ = ["render_html"]

_METRIC_NAMES = {"precision": "Precision", "recall": "Recall", "f1": "F1", "iou": "mIoU",
                 "pixel_accuracy": "Pixel acc."}

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:20px 28px 60px;background:#fff}
h1{font-size:24px;margin:8px 0 2px}h2{font-size:19px;margin:32px 0 8px;border-bottom:2px solid #e5e5e5;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}.sub{color:#666;margin:0 0 12px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 7px}th{background:#f3f3f3;font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.paper td{background:#fff8e6}tr.diff td{color:#555;font-style:italic}tr.secondary td{color:#777}
td.pos{color:#1a7f37}td.neg{color:#b42318}.std{color:#888;font-size:11px}
.sw{display:inline-block;width:11px;height:11px;border:1px solid #888;margin-right:5px;vertical-align:-1px}
img{max-width:100%;height:auto;border:1px solid #eee}.grid{display:flex;flex-wrap:wrap;gap:12px}
.grid figure{flex:1 1 520px;margin:0}figcaption{color:#555;font-size:12px;margin:2px 0 10px}
pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px;max-height:360px}
.note{background:#fff4f4;border-left:3px solid #d33;padding:6px 10px;margin:6px 0}
.nw{white-space:nowrap}details{margin:6px 0}summary{cursor:pointer;font-weight:600}
"""


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _figure(path: Path, caption: str) -> str:
    return (f'<figure><img src="{_data_uri(path)}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)} ({escape(path.name)})</figcaption></figure>")


def _attrs(**data: Any) -> str:
    return "".join(f' data-{k.strip("_").replace("_", "-")}="{escape(str(v))}"' for k, v in data.items() if v is not None)


def _num(text: str, *, cls: str = "n", **data: Any) -> str:
    return f'<td class="{cls}"{_attrs(**data)}>{text}</td>'


def _pm_cell(mean: float | None, std: float | None, **data: Any) -> str:
    std_html = f' <span class="std">± {pct(std)}</span>' if std is not None and mean is not None else ""
    return _num(pct(mean) + std_html, **data)


def _diff_cell(x: float | None, **data: Any) -> str:
    cls = "n" if x is None else ("n pos" if x >= 0 else "n neg")
    return _num(signed(x), cls=cls, **data)


def _class_name(c: int) -> str:
    return f'<span class="sw" style="background:{hex_color(c)}"></span>{escape(TARGET_CLASSES[c])}'


def _runs_section(data: ReportData) -> str:
    head = ("<tr><th>Run</th><th>Arch</th><th>Encoder</th><th>Folds</th><th>Metrics shown</th>"
            "<th>Machine</th><th>Training</th><th>Export</th><th>Folder</th></tr>")
    rows = []
    for r in data.runs:
        export = r.export_dir.name if r.export_dir else f"{r.recorded_export} (not found)"
        rows.append(f"<tr><td>{escape(r.label)}</td><td>{escape(ARCH_NAMES.get(r.arch, r.arch))}</td>"
                    f"<td>{escape(r.encoder)}</td><td>{r.n_folds}</td><td>{escape(', '.join(r.variants))}</td>"
                    f"<td>{escape(r.machine)}</td><td class='nw'>{duration(r.duration_s)}</td>"
                    f"<td>{escape(export)}</td><td><code>{escape(str(r.path))}</code></td></tr>")
    details = "".join(_run_config(r) for r in data.runs)
    return f"<h2>Runs</h2><table>{head}{''.join(rows)}</table>{details}"


def _run_config(run: Run) -> str:
    opts = "".join(f"<tr><th>{escape(k)}</th><td><code>{escape(str(v))}</code></td></tr>"
                   for k, v in run.options.items())
    versions = run.config.get("versions")
    vline = (f"<p><b>Versions:</b> {escape(', '.join(f'{k} {v}' for k, v in versions.items()))}</p>"
             if isinstance(versions, dict) else "")
    return (f"<details><summary>Configuration of {escape(run.label)} (to reproduce it)</summary>"
            f"<table>{opts}</table>{vline}<pre>{escape(json.dumps(run.config, indent=2, default=str))}</pre>"
            "</details>")


def _curation_section(data: ReportData) -> str:
    parts = ["<h2>Curated data</h2>"]
    for e in data.exports:
        m = e.stats.meta
        crop = f"crop {m.get('crop')}, {m.get('size')} px" if m.get("crop") else "full photos"
        parts.append(f"<h3>Export folder <code>{escape(e.label)}</code> (runs: {escape(', '.join(e.runs))})</h3><ul>"
                     f"<li>{e.stats.n_samples} samples from dataset <code>{escape(str(m.get('dataset', '?')))}</code>, "
                     f"{e.stats.k} folds (seed {escape(str(m.get('seed', '?')))}), {escape(crop)}, "
                     f"format {escape(str(m.get('format', '?')))}, created {escape(str(m.get('created', '?')))}</li>"
                     f"<li>Left out before the folds: {escape(left_out(e.stats.left_out))} "
                     f"(<code>reject</code>: people's review; <code>bg_only</code>: background-only annotations "
                     f"flagged by flag-errors)</li></ul>")
    for r in (r for r in data.runs if r.export_dir is None and r.export):
        parts.append(f"<p>Run {escape(r.label)}: export folder not found here; its config.json records "
                     f"{escape(str(r.export.get('folds', '?')))} folds of dataset "
                     f"<code>{escape(str(r.export.get('dataset', '?')))}</code>, left out: "
                     f"{escape(left_out(r.export.get('left_out') or {}))}.</p>")
    if data.dataset_summary is not None:
        s = data.dataset_summary
        tags = ", ".join(f"{escape(k)} {v}" for k, v in sorted(s["tags"].items())) or "none"
        sources = ", ".join(f"{escape(str(k))} {v}" for k, v in sorted(s["sources"].items(), key=str))
        parts.append(f"<p>FiftyOne dataset <code>{escape(data.dataset)}</code>: {s['samples']} samples "
                     f"({sources}); sample tags: {tags}.</p>")
    if len(parts) == 1:
        parts.append("<p>No export folder or dataset available (see notes).</p>")
    return "".join(parts)


def _table2(data: ReportData) -> str:
    metrics = (*METRICS, "pixel_accuracy")
    head = "<tr><th>Model</th><th>Source</th>" + "".join(f"<th>{_METRIC_NAMES[m]}</th>" for m in metrics) + "</tr>"
    archs = list(ARCH_NAMES) + sorted({r["arch"] for r in data.table2} - set(ARCH_NAMES))
    body = []
    for arch in archs:
        ours = [r for r in data.table2 if r["source"] == "ours" and r["arch"] == arch]
        paper = [r for r in data.table2 if r["source"] == "paper" and r["arch"] == arch]
        group = []
        for r in ours:
            cells = "".join(_pm_cell(r[f"{m}_mean"], r[f"{m}_std"], run=r["run"], variant=r["variant"], metric=m)
                            for m in metrics)
            cls = "ours" if r["primary"] else "ours secondary"
            group.append(f'<tr class="{cls}"><td>{escape(r["run"])} · {escape(r["variant"])} · '
                         f'{r["folds"]} folds</td>{cells}</tr>')
        for r in paper:
            cells = "".join(_num(pct(r[f"{m}_mean"]), run="paper", arch=arch, metric=m) for m in metrics)
            group.append(f'<tr class="paper"><td>paper (Table II)</td>{cells}</tr>')
        if paper:
            for r in (r for r in ours if r["primary"]):
                cells = "".join(_diff_cell(r.get(f"diff_{m}"), run=r["run"], variant=r["variant"], metric=m, kind="diff")
                                for m in METRICS)
                group.append(f'<tr class="diff"><td>Δ {escape(r["run"])} − paper (points)</td>{cells}'
                             f"<td></td></tr>")
        if group:
            group[0] = group[0].replace("<tr", f'<tr data-arch="{arch}"', 1).replace(
                "><td>", f'><td rowspan="{len(group)}"><b>{escape(ARCH_NAMES.get(arch, arch))}</b></td><td>', 1)
            body += group
    return (f"<h2>Table II: mean over classes, mean ± std over folds</h2>"
            f"<p class='sub'>Ours: mean of the per-fold class means (classes absent from a fold left out), "
            f"± std over folds, in %. Paper: {escape(data.paper.dataset)}; it gives mIoU for FPN only.</p>"
            f'<table id="table2">{head}{"".join(body)}</table>')


def _table3(data: ReportData) -> str:
    runs = data.runs
    paper = data.paper
    ref = paper.table_ii.get(paper.table_iii_arch, {})
    head1 = (f'<tr><th rowspan="2">Class</th><th colspan="3">paper ({ARCH_NAMES.get(paper.table_iii_arch)}, '
             "Table III)</th>"
             + "".join(f'<th colspan="5">{escape(r.label)} ({escape(ARCH_NAMES.get(r.arch, r.arch))}, '
                       f"{escape(r.primary)})</th>" for r in runs) + "</tr>")
    head2 = "<tr>" + "<th>P</th><th>R</th><th>F1</th>" + "<th>P</th><th>R</th><th>F1</th><th>IoU</th><th>ΔF1</th>" * len(runs) + "</tr>"
    rows3 = {(r["run"], r["class_id"]): r for r in data.table3 if r["primary"]}
    body = []
    for c, name in enumerate(TARGET_CLASSES):
        cells = "".join(_num(pct(paper.table_iii[name][m]), run="paper", class_=name, metric=m)
                        for m in ("precision", "recall", "f1"))
        for run in runs:
            r = rows3[(run.label, c)]
            cells += "".join(_pm_cell(r[f"{m}_mean"], r[f"{m}_std"], run=run.label, class_=name, metric=m)
                             for m in METRICS)
            cells += _diff_cell(r["diff_f1"], run=run.label, class_=name, metric="f1", kind="diff")
        body.append(f"<tr><td>{_class_name(c)}</td>{cells}</tr>")
    cells = "".join(_num(pct(ref.get(m)), run="paper", class_="mean", metric=m) for m in ("precision", "recall", "f1"))
    for run in runs:
        means = run.summary["mean"]
        cells += "".join(_pm_cell(means[m]["mean"], means[m]["std"], run=run.label, class_="mean", metric=m)
                         for m in METRICS)
        cells += _diff_cell(_sub(means["f1"]["mean"], ref.get("f1")), run=run.label, class_="mean", metric="f1",
                            kind="diff")
    body.append(f'<tr class="paper"><td><b>mean</b> (Table II)</td>{cells}</tr>')
    return ("<h2>Table III: per class, mean ± std over folds</h2>"
            "<p class='sub'>P = precision, R = recall, in %; ΔF1 = ours − paper in points. "
            "The paper prints no per-class IoU. '—' = class absent from every fold.</p>"
            f'<table id="table3">{head1}{head2}{"".join(body)}</table>')


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _fold_table(e: ExportSection) -> str:
    k = e.stats.k
    head = ('<tr><th rowspan="2">Class</th><th colspan="%d">images</th><th colspan="%d">pixel share (%%)</th></tr>'
            % (k + 1, k + 1))
    head += "<tr>" + ("<th>all</th>" + "".join(f"<th>fold {f}</th>" for f in range(k))) * 2 + "</tr>"
    body = []
    for r in e.fold_rows:
        cells = _num(str(r["images"]), export=e.label, class_=r["class"], metric="images")
        cells += "".join(_num(str(r[f"images_fold{f}"])) for f in range(k))
        cells += _num(pct(r["pixel_share"], digits=2), export=e.label, class_=r["class"], metric="pixel_share")
        cells += "".join(_num(pct(r[f"pixel_share_fold{f}"], digits=2)) for f in range(k))
        body.append(f"<tr><td>{_class_name(r['class_id'])}</td>{cells}</tr>")
    sizes = "".join(f"<td class='n'>{int(n)}</td>" for n in e.stats.fold_sizes)
    body.append(f"<tr><td><b>samples</b></td><td class='n'>{e.stats.n_samples}</td>{sizes}"
                f"<td colspan='{k + 1}'></td></tr>")
    return f'<table id="folds-{escape(e.label)}">{head}{"".join(body)}</table>'


def _figures(data: ReportData) -> str:
    parts = ["<h2>Per-class IoU (Fig. 6)</h2>", _figure(data.iou_figure, "Per-class IoU, mean ± std over folds")]
    parts.append("<h2>Confusion matrices (Fig. 7)</h2><div class='grid'>")
    parts += [_figure(p, f"{label}: row-normalised pixel confusion, summed over folds")
              for label, p in data.confusion_figures.items()]
    parts.append("</div><h2>Best and worst samples (Fig. 9)</h2>")
    parts += [_figure(p, f"{label}: out-of-fold predictions with the highest and lowest IoU")
              for label, p in data.sample_figures.items()]
    if not data.sample_figures:
        parts.append("<p>No photos found (see notes).</p>")
    parts.append("<h2>Class frequency and folds (Fig. 4)</h2>")
    for e in data.exports:
        parts += [f"<h3>Export folder <code>{escape(e.label)}</code></h3>",
                  _figure(e.figure, f"Pixels and images per class in export folder '{e.label}'"), _fold_table(e)]
    return "".join(parts)


def render_html(data: ReportData) -> str:
    """The report page.

    Args:
        data: what to show.

    Returns:
        A complete HTML document with every figure embedded.
    """
    title = "clothcurate report: " + ", ".join(r.label for r in data.runs)
    notes = "".join(f'<div class="note">{escape(n)}</div>' for n in data.notes)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{_CSS}</style></head><body><main><h1>{escape(title)}</h1>"
            f"<p class='sub'>Compared with: {escape(data.paper.source)}. Generated {escape(data.created)}.</p>"
            f"{notes}{_runs_section(data)}{_curation_section(data)}{_table2(data)}{_table3(data)}"
            f"{_figures(data)}</main></body></html>")

