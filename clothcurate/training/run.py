"""``clothcurate train-eval``: k-fold training and evaluation of one architecture.

For each requested fold k: the export's samples outside fold k are split (stratified, 10 %) into
training and validation parts, the model is trained (:func:`clothcurate.training.loop.fit_fold`,
resumable) and fold k is predicted (:func:`clothcurate.training.loop.predict_fold`). The run
folder follows docs/contracts.md; besides it, each fold keeps ``folds/<k>/scores.json`` (its
metrics.json entry plus training facts) and ``folds/<k>/per_sample.csv``, so ``metrics.json``
and ``per_sample.csv`` are rebuilt from every finished fold, including folds run by earlier
invocations (``--folds 0,1`` today, ``--folds 2,3,4`` tomorrow) or on other machines.

The options are one :class:`clothcurate.training.config.TrainConfig`, saved in ``config.json``
with the recipe it started from and the names of the options that bind the folder.
Re-running the same command skips finished folds (``folds/<k>/done``) and resumes an unfinished
one from ``last.pt``. Once a fold has started, the run folder refuses options that would change
its results (``TrainConfig.binding()``: arch, encoder, weights, image size, loss, learning rate,
monitor, schedule, TTA and its scales, augmentation, sampling, weight averaging, seed, and epochs / warm-up under
the cosine schedule; and the export);
the others (patience, batch size, workers, device ...) may change between invocations (a resumed
fold keeps the plateau scheduler's patience of its first session). Under ``torchrun`` every rank
runs this function; only rank 0 writes the shared files, and an error there stops every rank.

Example::

    config = TrainConfig.from_recipe("default", arch="fpn", data_dir="folds/", epochs=50)
    result = train_eval(config, run_dir="runs/fpn")
    print(result.summary())
    # or, keyword options straight away (the recipe "default" fills the rest):
    result = train_eval(arch="fpn", data_dir="folds/", run_dir="runs/fpn", fold_spec="0,1")
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from clothcurate.atomic import write_bytes, write_json
from clothcurate.errors import BadInputError, ClothcurateError
from clothcurate.folders.run import RunFolder
from clothcurate.training.augment import build_transform
from clothcurate.training.config import LEGACY_VALUES, RECIPES, WEIGHTED_LOSSES, TrainConfig
from clothcurate.training.data import (
    ExportFolder,
    SegmentationDataset,
    decode_samples,
    read_export,
)
from clothcurate.training.distributed import DistContext, setup
from clothcurate.training.loop import (
    FoldPrediction,
    class_weights,
    fit_fold,
    predict_fold,
)
from clothcurate.training.metrics import scores_from_confusion, summarize_folds
from clothcurate.training.models import (
    ARCHITECTURES,
    FlipTTA,
    InputNormalizer,
    ModelSpec,
    create_model,
    encoder_normalization,
)
from clothcurate.training.paste import GarmentPaste
from clothcurate.training.pseudo_data import PseudoSet
from clothcurate.training.sampling import sampling_weights
from clothcurate.training.split import split_validation
from clothcurate.timestamps import utc_now

__all__ = ["train_eval", "TrainEvalResult", "parse_folds", "VALIDATION_FRACTION"]

VALIDATION_FRACTION = TrainConfig.validation_fraction
_VERSIONS = ("torch", "torchvision", "segmentation-models-pytorch", "timm", "albumentations", "numpy",
             "opencv-python-headless", "clothcurate")


@dataclass
class TrainEvalResult:
    """What :func:`train_eval` did.

    Attributes:
        run_dir: the run folder.
        arch: the architecture.
        folds: metrics.json fold entries of every finished fold, by fold.
        metrics: the whole metrics.json (``summary`` included).
        trained: folds trained or resumed by this call.
        skipped: requested folds already done before this call.
        writeback: one line on the FiftyOne write-back (done, or how to do it later).
        is_main: False on the other ranks of a torchrun job (their summary is empty).
    """

    run_dir: Path
    arch: str
    folds: list[dict[str, Any]]
    metrics: dict[str, Any]
    trained: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    writeback: str = ""
    is_main: bool = True

    def summary(self) -> str:
        """Per-fold and mean (± std) P/R/F1/IoU, raw vs opened, in percent, as a text table
        (empty on ranks other than 0, so a torchrun job prints it once)."""
        if not self.is_main:
            return ""
        names = " ".join(f"{h:>6}" for h in ("P", "R", "F1", "IoU"))
        head = f"{'fold':>6} {'images':>6} | {names} | {names}"
        lines = [f"train-eval {self.arch}: {self.run_dir}  (percent; raw argmax | opened)",
                 f"{'':>13} | {'raw':^27} | {'opened':^27}", head, "-" * len(head)]

        def cells(means: dict[str, Any], pick=lambda v: v) -> str:
            return " ".join(f"{_pct(pick(means[s])):>6}" for s in ("precision", "recall", "f1", "iou"))

        def row(label: str, n: Any, raw: dict[str, Any], opened: dict[str, Any], pick=lambda v: v) -> str:
            return f"{label:>6} {n:>6} | {cells(raw, pick)} | {cells(opened, pick)}"

        for f in self.folds:
            lines.append(row(str(f["fold"]), f["n_images"], f["raw"]["mean"], f["opened"]["mean"]))
        summ = self.metrics.get("summary", {})
        if summ:
            n = sum(f["n_images"] for f in self.folds)
            for label, count, key in (("mean", n, "mean"), ("std", "", "std")):
                lines.append(row(label, count, summ["raw"]["mean"], summ["opened"]["mean"], lambda v, k=key: v[k]))
        done = ", ".join(map(str, self.trained)) or "none"
        lines.append(f"trained now: {done}; already done: {', '.join(map(str, self.skipped)) or 'none'}")
        lines.append(f"metrics: {self.run_dir / 'metrics.json'}")
        if self.writeback:
            lines.append(self.writeback)
        return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def parse_folds(spec: str, k: int) -> list[int]:
    """``all`` -> 0..k-1; ``0,2`` -> [0, 2].

    Raises:
        BadInputError: not a comma-separated list of folds in 0..k-1.
    """
    text = str(spec).strip().lower()
    if text in ("all", ""):
        return list(range(k))
    try:
        folds = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise BadInputError(f"--folds {spec!r}: expected 'all' or a list like 0,1") from None
    bad = [f for f in folds if not 0 <= f < k]
    if bad or not folds:
        raise BadInputError(f"--folds {spec!r}: the export has folds 0..{k - 1}")
    return folds


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in _VERSIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _machine(ctx: DistContext) -> dict[str, Any]:
    gpu = torch.cuda.get_device_name(ctx.device) if ctx.device.type == "cuda" else None
    return {"platform": platform.platform(), "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "gpu": gpu,
            "device": str(ctx.device), "world_size": ctx.world_size}


def _start_config(run_dir: Path, cfg: TrainConfig, export: ExportFolder, ctx: DistContext, *,
                  training: bool) -> dict[str, Any]:
    """Write (or update) config.json; refuse a run folder whose folds were started with other
    results-changing options (or from another export).

    ``machine`` and ``versions`` describe the last invocation that trained a fold: an invocation
    that only collects finished folds (e.g. on the workstation, after training on a GPU machine)
    keeps them. Each fold's ``scores.json`` records its own machine too."""
    path = run_dir / "config.json"
    previous: dict[str, Any] = {}
    started = any((run_dir / "folds").glob("*/last.pt")) or any((run_dir / "folds").glob("*/done"))
    if path.exists():
        try:
            previous = json.loads(path.read_text())
        except ValueError as e:
            raise BadInputError(f"{path}: unreadable ({e}); delete it or use another --out") from e
    options = cfg.to_json()
    if previous and started:  # before any fold has started, a failed first attempt binds nothing
        old = previous.get("options", {})
        for name in cfg.binding():
            was = old.get(name, LEGACY_VALUES.get(name, options[name]))
            if was != options[name]:
                raise BadInputError(f"{path}: this run folder was made with {name}={was!r}, not "
                                    f"{options[name]!r}; use another --out or the same options")
        if previous.get("export", {}).get("created") != export.meta.get("created"):
            raise BadInputError(f"{path}: this run folder was made from another export (created "
                                f"{previous.get('export', {}).get('created')}); use another --out")
    keep = not training and "machine" in previous
    config = {"arch": cfg.arch, "encoder": cfg.encoder, "options": options, "binds": list(cfg.binding()),
              "recipe": {"name": cfg.recipe, "preset": RECIPES[cfg.recipe]},
              "model": ModelSpec.of(arch=cfg.arch, encoder=cfg.encoder, classes=export.classes,
                                    input_size=cfg.input_size).to_dict(),
              "export": export.meta, "export_dir": str(export.root),
              "versions": previous["versions"] if keep else _versions(),
              "machine": previous["machine"] if keep else _machine(ctx),
              "started": previous.get("started", utc_now()), "resumed": previous.get("resumed", -1) + 1,
              "finished": previous.get("finished") if keep else None}
    write_json(path, config)
    return config


def _fold_entry(k: int, pred: FoldPrediction) -> dict[str, Any]:
    return {"fold": k, "n_images": pred.n_images, "raw": scores_from_confusion(pred.confusion_raw),
            "opened": scores_from_confusion(pred.confusion_opened)}


def _per_sample_csv(rows: list[tuple[str, int, float, float]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("key", "fold", "iou", "pixel_acc"))
    writer.writerows((key, fold, f"{iou:.6f}", f"{acc:.6f}") for key, fold, iou, acc in rows)
    return buf.getvalue().encode()


def _collect(run_dir: Path, arch: str, encoder: str, classes: list[str]) -> tuple[dict[str, Any], list[dict]]:
    """Rebuild metrics.json and per_sample.csv from every finished fold of the run folder."""
    run = RunFolder(run_dir)
    entries, rows = [], []
    for k in run.finished_folds():
        entries.append(run.fold_scores(k)["entry"])
        rows += [(r["key"], int(r["fold"]), float(r["iou"]), float(r["pixel_acc"])) for r in run.fold_per_sample(k)]
    metrics = {"classes": classes, "arch": arch, "encoder": encoder, "primary": "opened", "folds": entries,
               "summary": summarize_folds(entries) if entries else {}}
    write_json(run.metrics_path, metrics)
    write_bytes(run.per_sample_path, _per_sample_csv(sorted(rows, key=lambda r: (r[1], r[0]))))
    return metrics, entries


def _write_back(run_dir: Path, *, dataset: str | None, arch: str) -> str:
    """Write predictions to FiftyOne when asked and possible; else say how to do it later."""
    later = f"write-back: run `clothcurate import-predictions {run_dir} --dataset NAME` where FiftyOne is reachable"
    if not dataset:
        return later
    try:
        from clothcurate.curation.db import fiftyone
        from clothcurate.training.writeback import write_back

        # checks the database within seconds (an unreachable URI must not hold a finished run)
        fo = fiftyone()
    except (ImportError, ClothcurateError) as e:  # no FiftyOne (a GPU machine) or no database here
        return f"write-back skipped ({e}); {later.split(': ', 1)[1]}"
    try:
        reachable = fo.dataset_exists(dataset)
    except Exception as e:  # noqa: BLE001 - no database server here: training results stay valid
        return f"write-back skipped (FiftyOne database unreachable: {e}); {later.split(': ', 1)[1]}"
    if not reachable:
        return f"write-back skipped (no FiftyOne dataset {dataset!r} here); {later.split(': ', 1)[1]}"
    report = write_back(run_dir, dataset=dataset, arch=arch)
    return getattr(report, "summary", lambda: str(report))()


def _default_workers(ctx: DistContext) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(16, cpus // ctx.local_world_size))


def _run_fold(k: int, *, export: ExportFolder, cache, cfg: TrainConfig, run_dir: Path,
              ctx: DistContext, normalizer: InputNormalizer, workers: int, pseudo: PseudoSet | None = None) -> None:
    """Train (or resume) and evaluate fold k; rank 0 writes its scores and the done marker.
    With ``pseudo`` (its crops appended to ``cache``), fold k's pseudo-masks join the training part."""
    fold_dir = run_dir / "folds" / str(k)
    train_pos, test_pos = export.fold_parts(k)
    fit_idx, val_idx = split_validation(export.presence(train_pos), fraction=cfg.validation_fraction,
                                        seed=cfg.seed)
    size, num_classes = cfg.input_size, len(export.classes)
    fit_pos = [train_pos[i] for i in fit_idx]
    extra = pseudo.fill(cache, k) if pseudo is not None else []  # fold k's pseudo-masks: training part only
    # donors of pasted garments: the labelled training crops (not the pseudo-masks, not validation)
    paste = GarmentPaste(cache, donors=fit_pos, classes=export.classes, p=cfg.paste) if cfg.paste else None
    fit_pos = fit_pos + extra

    def dataset(positions, *, train: bool) -> SegmentationDataset:
        return SegmentationDataset(cache, positions, paste=paste if train else None,
                                   transform=build_transform(size=size, train=train, policy=cfg.augment))

    torch.manual_seed(cfg.seed + k)  # same decoder init on every rank (DDP broadcasts rank 0's anyway)
    weights = None if str(cfg.encoder_weights).lower() == "none" else cfg.encoder_weights
    model = create_model(cfg.arch, encoder=cfg.encoder, encoder_weights=weights, num_classes=num_classes)
    spec = ModelSpec.of(arch=cfg.arch, encoder=cfg.encoder, classes=export.classes, input_size=size)
    loss_weights = class_weights(cache.masks[fit_pos], num_classes) if cfg.loss in WEIGHTED_LOSSES else None
    train_set = dataset(fit_pos, train=True)
    fit = fit_fold(model, cfg.replace(workers=workers), train_set=train_set,
                   val_set=dataset(ctx.shard([train_pos[i] for i in val_idx]), train=False),
                   fold_dir=fold_dir, ctx=ctx, num_classes=num_classes, normalizer=normalizer,
                   seed=cfg.seed + 1000 * k, loss_weights=loss_weights,
                   sample_weights=sampling_weights(cfg.sampling, train_set, classes=export.classes),
                   spec=spec.to_dict())
    net = FlipTTA(model, scales=cfg.tta_scales) if cfg.tta else model
    pred = predict_fold(net, test_set=dataset(ctx.shard(test_pos), train=False),
                        samples=export.samples, run_dir=run_dir, ctx=ctx, batch_size=2 * cfg.batch_size,
                        workers=workers, num_classes=num_classes, normalizer=normalizer)
    if ctx.is_main:
        entry = _fold_entry(k, pred)
        facts = {"n_train": len(fit_idx), "n_val": len(val_idx), "n_test": len(test_pos),
                 "best_epoch": fit.best_epoch, "best_val_loss": fit.best_val_loss, "epochs_run": fit.epochs_run,
                 "stopped_early": fit.stopped_early, "machine": _machine(ctx), "finished": utc_now()}
        if fit.averaged_epochs:
            facts["averaged_epochs"] = fit.averaged_epochs
        if pseudo is not None:
            facts.update(n_pseudo=len(extra), pseudo=pseudo.describe())
        write_json(fold_dir / "scores.json", {"entry": entry, "fit": facts})
        write_bytes(fold_dir / "per_sample.csv",
                     _per_sample_csv([(key, k, iou, acc) for key, iou, acc in pred.per_sample]))
        write_bytes(fold_dir / "done", (utc_now() + "\n").encode())
    ctx.barrier()


def train_eval(config: TrainConfig | None = None, *, run_dir: str | Path, **options: Any) -> TrainEvalResult:
    """Train and evaluate one architecture by k-fold cross-validation on an export folder.

    Args:
        config: every option (:class:`TrainConfig`); when None, it is built from ``options``
            with :meth:`TrainConfig.from_recipe` (``recipe`` picks the preset, default ``default``).
        run_dir: the run folder (created; re-running resumes it).
        **options: fields of :class:`TrainConfig` (only without ``config``): ``arch``, ``data_dir``,
            ``encoder``, ``encoder_weights``, ``fold_spec``, ``epochs``, ``patience``,
            ``image_size``, ``batch_size``, ``lr``, ``loss``, ``monitor``, ``schedule``,
            ``warmup_epochs``, ``tta``, ``augment``, ``sampling``, ``average_last``, ``recipe``,
            ``workers``, ``device``, ``dataset``, ``seed``.

    Returns:
        The run's result (every finished fold, metrics, what was trained now).

    Raises:
        BadInputError: a missing/incomplete export, bad folds or options, or a run folder made
            with other options.
    """
    if config is None:
        config = TrainConfig.from_recipe(options.pop("recipe", None) or "default", **options)
    elif options:
        raise BadInputError(f"pass either a TrainConfig or options, not both ({', '.join(options)})")
    cfg = config
    if cfg.arch not in ARCHITECTURES:
        raise BadInputError(f"--arch {cfg.arch!r}: unknown architecture; use one of {', '.join(ARCHITECTURES)}")
    if not cfg.data_dir:
        raise BadInputError("no export folder given; pass --data DIR (an export-folds folder)")
    data_dir, fold_spec, input_size, encoder = cfg.data_dir, cfg.fold_spec, cfg.input_size, cfg.encoder
    arch, device, workers, dataset = cfg.arch, cfg.device, cfg.workers, cfg.dataset
    export = read_export(data_dir)
    export.check_input_size(input_size)
    folds = parse_folds(fold_spec, export.k)
    run_dir = Path(run_dir).expanduser().resolve()
    cfg = cfg.replace(data_dir=str(export.root),
                      pseudo=str(Path(cfg.pseudo).expanduser().resolve()) if cfg.pseudo else None)
    ctx = setup(device)
    try:
        normalizer = InputNormalizer(*encoder_normalization(encoder), device=ctx.device)  # checks the name
        if ctx.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
        todo = [k for k in folds if not (run_dir / "folds" / str(k) / "done").exists()]
        # checked before anything is written: masks of a teacher with other test folds would leak
        pseudo = PseudoSet.open(cfg.pseudo, export=export, folds=todo) if cfg.pseudo and todo else None
        config = ctx.on_main(lambda: _start_config(run_dir, cfg, export, ctx, training=bool(todo)))
        skipped = [k for k in folds if k not in todo]
        if todo:
            cache = decode_samples(export.samples, size=input_size, num_classes=len(export.classes),
                                   progress=ctx.is_main)
            if pseudo is not None:
                cache = pseudo.extend(cache)
            n_workers = _default_workers(ctx) if workers is None else workers
            for k in todo:
                _run_fold(k, export=export, cache=cache, cfg=cfg, run_dir=run_dir, ctx=ctx,
                          normalizer=normalizer, workers=n_workers, pseudo=pseudo)

        def finish() -> tuple[dict[str, Any], list[dict[str, Any]], str]:
            metrics, entries = _collect(run_dir, arch, encoder, export.classes)
            write_json(run_dir / "config.json", {**config, "finished": utc_now() if todo else config["finished"] or utc_now()})
            return metrics, entries, _write_back(run_dir, dataset=dataset, arch=arch)

        metrics, entries, writeback = ctx.on_main(finish) or ({}, [], "")
    finally:
        ctx.close()
    return TrainEvalResult(run_dir=run_dir, arch=arch, folds=entries, metrics=metrics, trained=todo,
                           skipped=skipped, writeback=writeback,
                           is_main=ctx.is_main)
