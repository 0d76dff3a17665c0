"""The paper's figures from our runs, drawn with matplotlib's object API (Agg, no display needed).

* :func:`iou_bars` - per-class IoU of every run with the 50% line (Fig. 6);
* :func:`confusion_heatmap` - row-normalised pixel confusion matrix with class names (Fig. 7);
* :func:`sample_grid` - best and worst samples: photo | ground truth | prediction (Fig. 9);
* :func:`class_frequency` - pixels and images per class of the curated export (Fig. 4).

Shapes: K = 15 classes; H, W = panel rows and columns.
Every function writes one PNG atomically and returns its path.
"""

from __future__ import annotations

import cv2
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from clothcurate.atomic import atomic_path
from clothcurate.labelmaps import TARGET_CLASSES
from clothcurate.reports.colors import colorize, hex_color
from clothcurate.reports.paper import PaperFigures
from clothcurate.reports.runs import Run
from clothcurate.reports.samples import SampleView
from clothcurate.reports.stats import ExportStats

__all__ = ["class_frequency", "confusion_heatmap", "iou_bars", "sample_grid"]

_DPI = 110
_RUN_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _save(fig: Figure, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=_DPI, format="png", bbox_inches="tight", facecolor="white")


def _as_float(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _class_legend(fig: Figure, *, ncol: int = 8) -> None:
    handles = [Patch(facecolor=hex_color(c), edgecolor="#555555", label=name) for c, name in enumerate(TARGET_CLASSES)]
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, fontsize=9,
               bbox_to_anchor=(0.5, -0.01))


def iou_bars(runs: list[Run], paper: PaperFigures, path) -> None:
    """Per-class IoU of each run (mean over folds, std as error bar), the paper's Fig. 6.

    Args:
        runs: the runs (one bar colour each; primary metrics variant).
        paper: for the 50% "satisfactory" line and the paper's FPN mIoU.
        path: the PNG to write.
    """
    k = len(TARGET_CLASSES)
    fig = Figure(figsize=(11, 4.6))
    ax = fig.add_subplot()
    width = 0.8 / max(len(runs), 1)
    x = np.arange(k)
    for i, run in enumerate(runs):
        iou = run.summary["per_class"]["iou"]
        mean, std = _as_float(iou["mean"]) * 100, _as_float(iou["std"]) * 100
        miou = run.summary["mean"]["iou"]["mean"]
        label = f"{run.title}, mIoU {miou * 100:.1f}%" if miou is not None else run.title
        xs = x - 0.4 + width * (i + 0.5)
        ax.bar(xs, np.nan_to_num(mean), width, yerr=np.nan_to_num(std),
               color=_RUN_COLORS[i % len(_RUN_COLORS)], label=label, capsize=2, error_kw={"elinewidth": 0.8})
        for xa in xs[np.isnan(mean)]:  # class absent from every fold: no score, not a zero
            ax.text(xa, 1, "n/a", rotation=90, ha="center", va="bottom", fontsize=7, color="#666666")
    ax.axhline(paper.iou_satisfactory * 100, color="#333333", ls="--", lw=1,
               label=f"{paper.iou_satisfactory * 100:.0f}% (satisfactory, paper)")
    paper_miou = paper.table_ii.get(paper.table_iii_arch, {}).get("iou")
    if paper_miou is not None:
        ax.axhline(paper_miou * 100, color="#b22222", ls=":", lw=1.2, label=f"paper FPN mIoU {paper_miou * 100:.1f}%")
    ax.set_xticks(x, TARGET_CLASSES, rotation=35, ha="right")
    ax.set_ylim(0, 100)
    ax.set_ylabel("IoU (%)")
    ax.set_title("Per-class IoU, mean over folds (cf. paper Fig. 6)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=min(len(runs) + 2, 4),
              frameon=False)
    _save(fig, path)


def confusion_heatmap(run: Run, path) -> None:
    """Row-normalised pixel confusion matrix summed over folds, the paper's Fig. 7.

    Args:
        run: the run (primary metrics variant).
        path: the PNG to write.
    """
    cm = np.asarray(run.summary["confusion"], dtype=np.float64)   # (K, K), rows = true class
    rows = cm.sum(1, keepdims=True)
    pct = np.divide(cm, rows, out=np.full_like(cm, np.nan), where=rows > 0) * 100
    k = len(TARGET_CLASSES)
    fig = Figure(figsize=(8.6, 7.4))
    ax = fig.add_subplot()
    im = ax.imshow(np.nan_to_num(pct), cmap="Blues", vmin=0, vmax=100)
    for i in np.flatnonzero(rows[:, 0] == 0):
        ax.text((k - 1) / 2, i, "no pixels of this class", ha="center", va="center", fontsize=7, color="#888888")
    for i in range(k):
        for j in range(k):
            v = pct[i, j]
            if np.isnan(v) or v < 0.5:
                continue
            ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if v > 55 else "#222222", fontweight="bold" if i == j else "normal")
    ax.set_xticks(range(k), TARGET_CLASSES, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), TARGET_CLASSES, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{run.title}: pixels per true class (%), {run.primary} (cf. paper Fig. 7)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="% of the true class's pixels")
    _save(fig, path)


_PANEL = 240  # Fig. 9 panel height in pixels
_GAP = 12


def _panels(v: SampleView) -> np.ndarray:
    """(PANEL, 3 w + 2 gap, 3) uint8: photo | ground truth | prediction at a common height."""
    h, w = v.gt.shape
    pw = max(1, round(w * _PANEL / h))
    photo = cv2.resize(v.photo, (pw, _PANEL), interpolation=cv2.INTER_AREA)
    masks = [cv2.resize(colorize(m), (pw, _PANEL), interpolation=cv2.INTER_NEAREST) for m in (v.gt, v.pred)]
    gap = np.full((_PANEL, _GAP, 3), 255, np.uint8)
    return np.hstack([photo, gap, masks[0], gap, masks[1]])


def sample_grid(best: list[SampleView], worst: list[SampleView], path, *, title: str) -> None:
    """Best and worst samples side by side: photo | ground truth | prediction, the paper's Fig. 9.

    The panels are composed into one image (a single axes draws much faster than 3 n x 2).

    Args:
        best: highest-IoU samples (left block, "a)").
        worst: lowest-IoU samples (right block, "b)").
        path: the PNG to write.
        title: the figure's title.
    """
    blocks = [[_panels(v) for v in views] for views in (best, worst)]
    n = max(len(best), len(worst), 1)
    width = max((p.shape[1] for b in blocks for p in b), default=3 * _PANEL)
    row_h = _PANEL + 3 * _GAP
    canvas = np.full((n * row_h, 2 * width + 4 * _GAP, 3), 255, np.uint8)
    top, bottom = 0.75, 0.7  # inches for the title and headers / the class legend (1 canvas px = 0.01 in)
    fig_h = canvas.shape[0] / 100 + top + bottom
    fig = Figure(figsize=(canvas.shape[1] / 100, fig_h))
    ax = fig.add_axes((0, bottom / fig_h, 1, canvas.shape[0] / 100 / fig_h))
    for b, (views, panels, name) in enumerate(zip((best, worst), blocks, ("a) highest IoU", "b) lowest IoU"))):
        x0 = b * (width + 4 * _GAP)
        for r, (v, p) in enumerate(zip(views, panels)):
            y0 = r * row_h
            canvas[y0:y0 + _PANEL, x0:x0 + p.shape[1]] = p
            ax.text(x0, y0 + _PANEL + 4, f"{v.key}   IoU {v.iou * 100:.1f}%", fontsize=8, va="top")
        pw = (width - 2 * _GAP) / 3
        for c, caption in enumerate(("photo", "ground truth", "prediction")):
            ax.text(x0 + c * (pw + _GAP) + pw / 2, -6, caption, fontsize=9, ha="center", va="bottom")
        ax.text(x0, -30, name, fontsize=10, fontweight="bold", va="bottom")
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    fig.suptitle(title, fontsize=11, y=1 - 0.06 / fig_h, va="top")
    _class_legend(fig)
    _save(fig, path)


def class_frequency(stats: ExportStats, path, *, title: str) -> None:
    """Pixel share and images per class in the curated export, the paper's Fig. 4.

    Args:
        stats: the export's statistics.
        path: the PNG to write.
        title: the figure's title.
    """
    k = len(TARGET_CLASSES)
    colors = [hex_color(c) for c in range(k)]
    fig = Figure(figsize=(11, 4.4))
    ax_px, ax_img = fig.subplots(1, 2)
    share = stats.pixel_share * 100
    ax_px.bar(range(k), share, color=colors, edgecolor="#555555", linewidth=0.5)
    ax_px.set_yscale("log")
    ax_px.set_ylabel("share of pixels (%, log scale)")
    ax_px.set_title("pixels per class")
    for x, v in enumerate(share):
        if v > 0:
            ax_px.text(x, v * 1.15, f"{v:.2g}", ha="center", va="bottom", fontsize=7)
    images = stats.images_per_class
    ax_img.bar(range(k), images, color=colors, edgecolor="#555555", linewidth=0.5)
    ax_img.set_ylabel(f"images (of {stats.n_samples})")
    ax_img.set_title("images per class")
    ax_img.yaxis.set_major_locator(MaxNLocator(integer=True))
    for x, v in enumerate(images):
        ax_img.text(x, v, str(int(v)), ha="center", va="bottom", fontsize=7)
    for ax in (ax_px, ax_img):
        ax.set_xticks(range(k), TARGET_CLASSES, rotation=45, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=11)
    _save(fig, path)
