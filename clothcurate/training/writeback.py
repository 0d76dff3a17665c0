"""Write a run's out-of-fold predictions back to FiftyOne: ``pred_<arch>``, ``iou_<arch>``,
``pixel_acc_<arch>`` and the saved views ``best-<arch>`` / ``worst-<arch>``.

Reads ``RUN_DIR/config.json`` (for ``arch``) and ``RUN_DIR/predictions/<key>.png`` (15-class uint8
in the full photo frame), matches samples by their ``key`` field, scores each prediction against
the sample's ``ground_truth`` mask (mean IoU over the classes present in either, and pixel
accuracy, by :func:`clothcurate.training.metrics.scores_from_confusion`), and writes every field
with one ``set_values`` call each.

Where the masks live: each prediction PNG is **copied** to the workspace
(``clothcurate.workspace.mask_dir(dataset, "pred_<arch>")/<key>.png``, written to a temporary name
then renamed) and ``pred_<arch>.mask_path`` points at the copy. The dataset then survives the run
folder being moved or deleted, and every mask of the dataset lives under ``$CLOTHCURATE_HOME`` as
the contracts say. The copy costs one file write of bytes that are read for scoring anyway.

Decoding and histograms (OpenCV) release the GIL, so a small thread pool overlaps them
without forking a process that may hold CUDA or OpenMP state (write-back runs at the end of
train-eval). FiftyOne is imported only when writing, so this module imports without it.

Example::

    from clothcurate.training.writeback import write_back
    print(write_back(Path("runs/fpn"), dataset="clothcurate").summary())
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from clothcurate.atomic import write_bytes
from clothcurate.errors import BadInputError
from clothcurate.folders.run import RunFolder
from clothcurate.labelmaps import NUM_CLASSES, mask_targets
from clothcurate.training.metrics import scores_from_confusion
from clothcurate.workspace import mask_dir

__all__ = ["WriteBackReport", "write_back", "import_predictions"]

_ARCH = re.compile(r"^[a-z0-9_]+$")  # becomes part of field names
_THREADS = 2
_Score = tuple[float | None, float | None]  # (iou, pixel_acc) of one sample


@dataclass
class WriteBackReport:
    """What a write-back did.

    Attributes:
        dataset: the FiftyOne dataset name.
        arch: the architecture (field suffix).
        run_dir: the run folder read.
        written: samples that got ``pred_<arch>``, ``iou_<arch>`` and ``pixel_acc_<arch>``.
        without_prediction: samples of the dataset left with None (no usable prediction).
        unknown_keys: prediction files whose key is no sample of the dataset (not written).
        rejected: one line per prediction that could not be scored (size differs from the ground
            truth, unreadable PNG, class id outside 0..14, sample without ground truth).
        mean_iou / mean_pixel_acc: means over the written samples (None when none was written).
        views: the saved views written.
        seconds: wall time of the write-back.
        timings: seconds per phase: ``score`` (read keys, decode, score, copy PNGs), ``database``
            (bulk field writes, saved views).
    """

    dataset: str
    arch: str
    run_dir: str
    written: int = 0
    without_prediction: int = 0
    unknown_keys: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    mean_iou: float | None = None
    mean_pixel_acc: float | None = None
    views: tuple[str, ...] = ()
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """A few lines for the terminal: counts, mean IoU / pixel accuracy, views, problems."""
        pct = (lambda x: "n/a" if x is None else f"{100 * x:.1f}%")
        lines = [f"dataset {self.dataset!r}, run {self.run_dir}: pred_{self.arch} written for {self.written} "
                 f"sample(s), {self.without_prediction} without prediction ({self.seconds:.1f} s)",
                 f"  mean IoU {pct(self.mean_iou)}, mean pixel accuracy {pct(self.mean_pixel_acc)}"]
        if self.views:
            lines.append(f"  saved views: {', '.join(self.views)}")
        if self.unknown_keys:
            shown = ", ".join(self.unknown_keys[:10]) + (" ..." if len(self.unknown_keys) > 10 else "")
            lines.append(f"  {len(self.unknown_keys)} prediction(s) for keys not in the dataset, skipped: {shown}")
        if self.rejected:
            lines.append(f"  {len(self.rejected)} prediction(s) rejected:")
            lines += [f"    {r}" for r in self.rejected[:20]]
            if len(self.rejected) > 20:
                lines.append(f"    ... and {len(self.rejected) - 20} more")
        return "\n".join(lines)


def _read_run(run_dir: Path, arch: str | None) -> tuple[str, dict[str, Path]]:
    """The architecture and ``{key: prediction PNG}`` of a run folder.

    Raises:
        BadInputError: missing folder, not a run folder (no ``config.json``), unreadable config,
            no ``predictions/``, no ``arch``, or an arch that cannot be a field name.
    """
    run = RunFolder.open(run_dir, hint="pass the --out folder of a train-eval run")
    recorded = run.arch  # reads config.json, so an unreadable one is named first
    if not run.predictions_dir.is_dir():
        raise BadInputError(f"{run.root}: no predictions; pass a finished train-eval run folder")
    arch = arch or recorded
    if not arch:
        raise BadInputError(f"{run.config_path}: no 'arch' entry; pass arch= explicitly")
    if not isinstance(arch, str) or not _ARCH.match(arch):
        raise BadInputError(f"{run.config_path}: arch {arch!r} cannot name a field; use lower-case letters, digits, _")
    preds = run.predictions()
    if not preds:
        raise BadInputError(f"{run.predictions_dir}: no <key>.png predictions; did the run finish its folds?")
    return arch, preds


def _scores(pred: np.ndarray, gt: np.ndarray) -> _Score:
    """Mean IoU over the classes present in GT or prediction, and pixel accuracy, of one image.

    The (K, K) confusion matrix is one OpenCV histogram of ``gt * K + pred``, which fits uint8
    (K*K = 225 <= 256); the scores are :func:`~clothcurate.training.metrics.scores_from_confusion`'s,
    so they follow metrics.json's conventions exactly. They equal ``per_sample_scores``'s, which
    takes about five times longer per image on the CPU (bench/writeback.py).

    Args:
        pred: (H, W) uint8 predicted class ids in 0..K-1.
        gt: (H, W) uint8 true class ids in 0..K-1.

    Returns:
        ``(iou, pixel_acc)``; None when no pixel counts (an empty mask).
    """
    k = NUM_CLASSES
    hist = cv2.calcHist([gt * np.uint8(k) + pred], [0], None, [256], [0, 256])  # 256 bins: OpenCV's fast path
    mean = scores_from_confusion(hist[: k * k].reshape(k, k).astype(np.int64))["mean"]
    return mean["iou"], mean["pixel_accuracy"]


def _score_one(pred_path: Path, gt_path: str | None, out_path: Path) -> _Score | str:
    """Decode one prediction and its ground truth, score it, and copy the PNG to ``out_path``.

    Returns:
        ``(iou, pixel_acc)``, or a one-line reason why the prediction was rejected.
    """
    if not gt_path:
        return "the sample has no ground_truth mask"
    data = pred_path.read_bytes()
    pred = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    gt = cv2.imread(gt_path, cv2.IMREAD_UNCHANGED)
    if pred is None or pred.ndim != 2 or pred.dtype != np.uint8:
        return "not a single-channel uint8 PNG"
    if gt is None:
        return f"ground truth {gt_path} is unreadable"
    if pred.shape != gt.shape:
        return (f"prediction is {pred.shape[1]}x{pred.shape[0]} but the ground truth is {gt.shape[1]}x{gt.shape[0]}"
                " (predictions must be pasted back into the full photo frame)")
    for name, mask in (("prediction", pred), ("ground truth", gt)):
        top = int(mask.max())
        if top >= NUM_CLASSES:
            return f"{name} has class id {top}, outside 0..{NUM_CLASSES - 1}"
    iou, acc = _scores(pred, gt)
    write_bytes(out_path, data)
    return iou, acc


def _score_all(preds: dict[str, Path], gt_of: dict[str, str | None], out_dir: Path, report: WriteBackReport,
               *, progress: bool) -> dict[str, _Score]:
    """Score and copy every prediction whose key is a sample (two threads); rejects go to ``report``.

    Returns:
        ``{key: (iou, pixel_acc)}`` of the written predictions.
    """
    todo = [k for k in preds if k in gt_of]
    out_dir.mkdir(parents=True, exist_ok=True)
    scores: dict[str, _Score] = {}
    with ThreadPoolExecutor(_THREADS) as pool:
        results = pool.map(lambda k: _score_one(preds[k], gt_of[k], out_dir / f"{k}.png"), todo)
        for key, res in tqdm(zip(todo, results), total=len(todo), desc=f"write-back {out_dir.name}",
                             unit="img", disable=not progress):
            if isinstance(res, str):
                report.rejected.append(f"{key} ({preds[key]}): {res}")
            else:
                scores[key] = res
    return scores


def _write_fields(ds, keys: list[str], scores: dict[str, _Score], out_dir: Path, arch: str) -> None:
    """Bulk-write ``pred_/iou_/pixel_acc_<arch>`` (None where no score), drop stale copies, save views."""
    from clothcurate.curation.db import fiftyone

    fo = fiftyone()
    pred_field, iou_field = f"pred_{arch}", f"iou_{arch}"
    none = (None, None)
    ds.set_values(pred_field, [fo.Segmentation(mask_path=str(out_dir / f"{k}.png")) if k in scores else None
                               for k in keys])
    ds.set_values(iou_field, [scores.get(k, none)[0] for k in keys])
    ds.set_values(f"pixel_acc_{arch}", [scores.get(k, none)[1] for k in keys])
    for stale in out_dir.glob("*.png"):  # an earlier write-back's copies (or temp files) without a score now
        if stale.stem not in scores:
            stale.unlink(missing_ok=True)
    if not ds.default_mask_targets and pred_field not in ds.mask_targets:
        ds.mask_targets = {**ds.mask_targets, pred_field: mask_targets()}
        ds.save()
    scored = ds.exists(iou_field)
    ds.save_view(f"best-{arch}", scored.sort_by(iou_field, reverse=True), overwrite=True)
    ds.save_view(f"worst-{arch}", scored.sort_by(iou_field), overwrite=True)


def _write_back(ds, run_dir: Path, arch: str, preds: dict[str, Path], *, progress: bool) -> WriteBackReport:
    """The write-back proper, on an open dataset and a checked run folder."""
    t0 = time.perf_counter()
    report = WriteBackReport(dataset=ds.name, arch=arch, run_dir=str(run_dir))
    keys, gt_paths = ds.values(["key", "ground_truth.mask_path"])
    gt_of = dict(zip(keys, gt_paths))
    report.unknown_keys = [k for k in preds if k not in gt_of]
    out_dir = mask_dir(ds.name, f"pred_{arch}").resolve()  # absolute mask paths in the dataset
    scores = _score_all(preds, gt_of, out_dir, report, progress=progress)
    t_db = time.perf_counter()
    _write_fields(ds, keys, scores, out_dir, arch)
    report.views = (f"best-{arch}", f"worst-{arch}")
    report.written = len(scores)
    report.without_prediction = len(keys) - len(scores)
    ious = [s[0] for s in scores.values() if s[0] is not None]
    accs = [s[1] for s in scores.values() if s[1] is not None]
    report.mean_iou = float(np.mean(ious)) if ious else None
    report.mean_pixel_acc = float(np.mean(accs)) if accs else None
    report.seconds = time.perf_counter() - t0
    report.timings = {"score": round(t_db - t0, 3), "database": round(time.perf_counter() - t_db, 3)}
    return report


def write_back(run_dir: Path, *, dataset: str, arch: str | None = None, progress: bool = True) -> WriteBackReport:
    """Write a run's predictions and per-sample scores into the FiftyOne dataset ``dataset``.

    Every sample gets ``pred_<arch>`` (a Segmentation whose ``mask_path`` is the copy under the
    workspace), ``iou_<arch>`` (mean IoU over the classes present in ground truth or prediction)
    and ``pixel_acc_<arch>``; samples without a usable prediction get None (a re-run with another
    run replaces the previous values). The saved views ``best-<arch>`` (IoU descending) and
    ``worst-<arch>`` (ascending) hold the samples that have a prediction. Re-running is
    idempotent, and an interrupted write-back is completed by re-running it.

    Args:
        run_dir: train-eval run folder with ``config.json`` and ``predictions/<key>.png``
            ((H, W) uint8 class ids, the photo's size).
        dataset: FiftyOne dataset name.
        arch: field suffix; default ``config.json``'s ``arch``.
        progress: show a progress bar.

    Returns:
        The report; unknown keys and rejected predictions are listed there, not raised.

    Raises:
        BadInputError: the run folder lacks ``config.json`` or ``predictions/``, or the dataset
            does not exist.
    """
    from clothcurate.curation.db import load_dataset

    arch, preds = _read_run(run_dir, arch)
    return _write_back(load_dataset(dataset), run_dir, arch, preds, progress=progress)


def import_predictions(run_dir: Path, *, dataset: str) -> WriteBackReport:
    """:func:`write_back` for a run trained on another machine (``clothcurate import-predictions``).

    Checks first that the run belongs to this dataset: at least one prediction key must be a
    sample key of ``dataset`` (keys that are not are listed in the report).

    Args:
        run_dir: train-eval run folder (``config.json``, ``predictions/<key>.png``).
        dataset: FiftyOne dataset name.

    Returns:
        The write-back report.

    Raises:
        BadInputError: bad run folder, missing dataset, or no prediction key in the dataset.
    """
    from clothcurate.curation.db import load_dataset

    arch, preds = _read_run(run_dir, None)
    ds = load_dataset(dataset)
    if not set(ds.values("key")).intersection(preds):
        raise BadInputError(f"{Path(run_dir) / 'predictions'}: none of the {len(preds)} prediction keys "
                            f"(e.g. {next(iter(preds))!r}) is a sample of dataset {dataset!r}; pass the "
                            "--dataset the run was exported from")
    return _write_back(ds, run_dir, arch, preds, progress=True)
