"""Train one fold and predict its test part (the paper's recipe, Sec. IV-B to IV-D).

Shapes: N images in a batch, K classes, H x W = the model input (square in the paper).

Training (:func:`fit_fold`): Adam, up to ``epochs`` epochs; what happens around the epochs is a
list of small callbacks (:mod:`clothcurate.training.callbacks`) chosen by the options:

* schedule ``plateau`` (the paper's recipe): ReduceLROnPlateau (x0.1) on the validation loss,
  waiting ``max(1, patience // 2)`` epochs (the paper does not say; half the early-stop patience
  lets the lower learning rate act before training stops), and early stop after ``patience``
  epochs without a better monitored value;
* schedule ``cosine``: exactly ``epochs`` epochs, linear warm-up over ``warmup_epochs`` then
  cosine decay, stepped per batch; no early stop (81 validation images are too few to stop on);
* the kept checkpoint ``best.pt`` follows the monitor: the validation loss by default, or the
  validation mIoU (``monitor="val_miou"``: the paper stops "when the accuracy stagnates");
* ``average_last`` N (cosine only): the equal-weight average of the last N epochs' weights, with
  BatchNorm statistics recomputed on the training loader, replaces ``best.pt`` at the end;
* ``sampling`` ``repeat-factor``: images holding rare classes are drawn more often
  (:mod:`clothcurate.training.sampling`; the caller passes the per-image weights);
* ``last.pt`` after every epoch (model, optimizer, scheduler, scaler, epoch, history, best, every
  rank's RNG states), so a crashed or interrupted fold resumes where it stopped.

Both checkpoints describe their model (architecture, encoder, classes, input size, mean/std).
On CUDA: mixed precision (bf16 where supported, else fp16 with a GradScaler), channels-last,
pinned memory and non-blocking copies, ``cudnn.benchmark``; loader workers persist across epochs.

Prediction: softmax -> raw argmax and the paper's opening post-processing; both confusion
matrices accumulate on the device; per-sample IoU and pixel accuracy (opened prediction, in
the crop frame); ``predictions/<key>.png`` (opened, pasted back into the photo frame) and
``confidence/<key>.npz`` (``probs``: (K, S/4, S/4) uint8 softmax, 255 = 1.0, in the crop frame)
are written by background threads while the next batch runs.
"""

from __future__ import annotations

import io
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, WeightedRandomSampler
from tqdm.auto import tqdm

from clothcurate.atomic import write_bytes
from clothcurate.errors import BadInputError
from clothcurate.folders.pseudo import IGNORE_INDEX
from clothcurate.geometry import paste_back
from clothcurate.inference.segmenter import Segmenter
from clothcurate.masks import write_mask_png
from clothcurate.training.data import ExportSample
from clothcurate.training.distributed import DistContext, autocast_settings
from clothcurate.training.metrics import (
    ConfusionMatrix,
    per_sample_scores,
    scores_from_confusion,
)
from clothcurate.training.callbacks import (
    HISTORY_COLUMNS,
    BestCheckpoint,
    Callback,
    EarlyStopping,
    Fit,
    FitState,
    LastCheckpoint,
    PlateauSchedule,
    ProgressLog,
    WarmupCosineSchedule,
    WeightAveraging,
    resume,
)
from clothcurate.training.config import LOSSES, MONITORS, SCHEDULES, WEIGHTED_LOSSES, TrainConfig
from clothcurate.training.models import InputNormalizer

__all__ = ["LOSSES", "MONITORS", "SCHEDULES", "HISTORY_COLUMNS", "build_loss", "class_weights", "make_loader", "make_scaler", "to_device", "evaluate", "TrainStep",
           "fit_fold", "FitResult", "predict_fold", "FoldPrediction"]

CONFIDENCE_STRIDE = 4  # confidence maps are stored at S / 4


# ---------------------------------------------------------------------------------------------
# losses, loaders, device helpers

class _SumLoss(nn.Module):
    """The sum of several losses of (logits, target)."""

    def __init__(self, *parts: nn.Module):
        super().__init__()
        self.parts = nn.ModuleList(parts)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(part(logits, target) for part in self.parts)


def class_weights(masks: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Cross-entropy class weights from the training masks' pixel shares: ``w_c = f_c ** -0.5``
    (milder than inverse frequency, which gives a class of 0.1 % of the pixels 1000x the weight of
    background), normalised so that the pixel-weighted mean weight is 1 (the loss keeps its scale);
    a class absent from the masks gets the largest weight.

    Args:
        masks: (N, H, W) uint8 class ids.
        num_classes: K.

    Returns:
        (K,) float32 weights.
    """
    counts = torch.bincount(masks.reshape(-1).long(), minlength=num_classes)[:num_classes].double()
    share = counts / counts.sum().clamp_min(1)
    w = torch.where(share > 0, share.clamp_min(1e-12).rsqrt(), torch.zeros_like(share))
    w = w / (share * w).sum().clamp_min(1e-12)
    return torch.where(share > 0, w, w.max()).float()


def build_loss(name: str, *, weights: torch.Tensor | None = None) -> nn.Module:
    """The training loss.

    Args:
        name: ``ce`` (cross-entropy, the default), ``dice``, ``focal`` (smp, multiclass),
            ``ce+dice`` or ``ce+lovasz`` (their sums; Lovasz-softmax, smp), ``wce``
            (class-weighted cross-entropy, weights from :func:`class_weights`) or ``wce+lovasz``.
        weights: (K,) class weights, required by the losses in :data:`WEIGHTED_LOSSES`.

    Returns:
        A module ``loss(logits (N, K, H, W) float, target (N, H, W) int64) -> scalar``; target
        pixels equal to :data:`IGNORE_INDEX` (the unlabelled pixels of pseudo-masks) count in
        none of them.

    Raises:
        BadInputError: an unknown name, or a weighted loss without weights.
    """
    multiclass, ign = smp.losses.MULTICLASS_MODE, IGNORE_INDEX  # pseudo-masks' unlabelled pixels
    # a loss name is its terms joined by "+"; LOSSES says which combinations are offered
    terms: dict[str, Callable[[], nn.Module]] = {
        "ce": lambda: nn.CrossEntropyLoss(ignore_index=ign),
        "wce": lambda: nn.CrossEntropyLoss(weight=weights, ignore_index=ign),
        "dice": lambda: smp.losses.DiceLoss(multiclass, ignore_index=ign),
        "focal": lambda: smp.losses.FocalLoss(multiclass, ignore_index=ign),
        "lovasz": lambda: smp.losses.LovaszLoss(multiclass, ignore_index=ign),
    }
    if name not in LOSSES:
        raise BadInputError(f"--loss {name!r}: unknown loss; use one of {', '.join(LOSSES)}")
    if name in WEIGHTED_LOSSES and weights is None:
        raise BadInputError(f"--loss {name} needs class weights (computed from the training masks by train-eval)")
    parts = [terms[term]() for term in name.split("+")]
    return parts[0] if len(parts) == 1 else _SumLoss(*parts)


def make_scaler(device: torch.device) -> torch.amp.GradScaler:
    """A GradScaler, enabled only where autocast runs in fp16 (bf16 and fp32 need none)."""
    enabled, dtype = autocast_settings(device)
    return torch.amp.GradScaler(device.type, enabled=enabled and dtype == torch.float16)


def to_device(images: torch.Tensor, masks: torch.Tensor, normalizer: InputNormalizer) -> tuple[torch.Tensor, torch.Tensor]:
    """A loader batch on the model's device, ready for the model and the loss.

    Args:
        images: (N, 3, H, W) uint8 RGB (pinned on CUDA).
        masks: (N, H, W) uint8 class ids.
        normalizer: scales and normalises on its device.

    Returns:
        ``(x, y)``: x (N, 3, H, W) float32 normalised (channels-last on CUDA), y (N, H, W) int64;
        the copies are non-blocking, the uint8 -> float/int64 conversions run on the device.
    """
    device = normalizer.device
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    x = normalizer(images.to(device, non_blocking=True, memory_format=fmt))
    return x, masks.to(device, non_blocking=True).long()


def _seed_worker(worker_id: int) -> None:
    """Give each loader worker its own numpy/random/albumentations stream (forked workers
    would otherwise repeat the parent's augmentation)."""
    info = torch.utils.data.get_worker_info()
    seed = info.seed % 2**32
    np.random.seed(seed)
    random.seed(seed)
    transform = getattr(info.dataset, "transform", None)
    if hasattr(transform, "set_random_seed"):
        transform.set_random_seed(seed)


def make_loader(dataset: Dataset, *, batch_size: int, train: bool, workers: int, ctx: DistContext,
                seed: int = 0, weights: Sequence[float] | np.ndarray | None = None) -> DataLoader:
    """A data loader for one split.

    Args:
        dataset: yields ``(image (3, H, W), mask (H, W), position)``.
        batch_size: images per batch per process.
        train: shuffle (a DistributedSampler under DDP) and drop the last incomplete batch
            (BatchNorm needs more than one image); evaluation loaders keep order and every image.
        workers: loader processes (0 = in this process); they persist across epochs.
        ctx: the distributed context (samplers, pinned memory on CUDA).
        seed: shuffling seed (DistributedSampler; the plain sampler follows torch's RNG).
        weights: (len(dataset),) per-image draw weights of a training loader (repeat-factor
            sampling): each rank draws ``ceil(N / world_size)`` images with replacement, with
            these weights, from its own torch RNG (saved and restored with ``last.pt``); the
            epoch keeps the length of a uniform one. None: every image once per epoch.

    Returns:
        The loader; call ``loader.sampler.set_epoch(e)`` each epoch when it is a DistributedSampler.
    """
    sampler = None
    if train and weights is not None:
        if len(weights) != len(dataset):
            raise ValueError(f"{len(weights)} sampling weights for {len(dataset)} training images")
        sampler = WeightedRandomSampler(torch.as_tensor(np.asarray(weights), dtype=torch.double),
                                        num_samples=math.ceil(len(dataset) / ctx.world_size), replacement=True)
    elif train and ctx.distributed:
        sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed)
    transform = getattr(dataset, "transform", None)
    if workers == 0 and hasattr(transform, "set_random_seed"):
        transform.set_random_seed(int(torch.randint(2**31 - 1, ()).item()))
    per_rank = math.ceil(len(dataset) / ctx.world_size) if train else len(dataset)  # as DistributedSampler pads
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=train and sampler is None, sampler=sampler,
        drop_last=train and per_rank >= batch_size, num_workers=workers,
        pin_memory=ctx.device.type == "cuda", persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None, worker_init_fn=_seed_worker if workers > 0 else None)


# ---------------------------------------------------------------------------------------------
# training

@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, *, criterion: nn.Module, ctx: DistContext,
             num_classes: int, normalizer: InputNormalizer) -> tuple[float, ConfusionMatrix]:
    """Mean loss and raw-argmax confusion matrix of a loader, summed over DDP ranks.

    Args:
        model: the network (eval mode is set here; the caller restores train mode).
        loader: yields ``(image (N, 3, H, W) uint8, mask (N, H, W) uint8, position)``; under DDP
            each rank passes its own shard.
        criterion: the training loss (averaged per image over all ranks).
        ctx: the distributed context.
        num_classes: K.
        normalizer: the encoder's input normalisation, on ``ctx.device``.

    Returns:
        ``(mean loss, confusion matrix)``; the matrix lives on ``ctx.device``.
    """
    model.eval()
    enabled, dtype = autocast_settings(ctx.device)
    cm = ConfusionMatrix(num_classes, device=ctx.device)
    total = torch.zeros((), dtype=torch.float64, device=ctx.device)
    count = 0
    for images, masks, _ in loader:
        x, y = to_device(images, masks, normalizer)
        with torch.autocast(ctx.device.type, dtype=dtype, enabled=enabled):
            logits = model(x)
        total += criterion(logits.float(), y).double() * len(x)
        count += len(x)
        cm.update(logits.argmax(1), y)
    loss_sum, n = ctx.sum([total.item(), float(count)])
    cm.all_reduce()
    return loss_sum / max(n, 1.0), cm


@dataclass
class FitResult:
    """Outcome of :func:`fit_fold`.

    Attributes:
        best_epoch: 1-based epoch of the kept checkpoint.
        best_val_loss: its validation loss.
        epochs_run: epochs completed (over every resumed session).
        stopped_early: True when the patience ran out before ``epochs``.
        history: one dict per epoch with :data:`HISTORY_COLUMNS`.
        averaged_epochs: the epochs whose weights were averaged into the kept model (``average_last``).
    """

    best_epoch: int
    best_val_loss: float
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)
    averaged_epochs: list[int] = field(default_factory=list)


class TrainStep:
    """One optimisation step (mixed precision and loss scaling on CUDA), shared by the training
    loop and the benchmark.

    Args:
        model: the network (possibly DDP-wrapped), on ``device``.
        criterion: ``loss(logits (N, K, H, W) float32, target (N, H, W) int64)``.
        optimizer: its optimiser.
        scaler: the GradScaler (enabled only for fp16 autocast).
        normalizer: the encoder's input normalisation; its device is where the batch goes.
    """

    def __init__(self, model: nn.Module, *, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler, normalizer: InputNormalizer):
        self.model, self.criterion, self.optimizer = model, criterion, optimizer
        self.scaler, self.normalizer, self.device = scaler, normalizer, normalizer.device
        self.amp, self.dtype = autocast_settings(self.device)

    def __call__(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Train on one batch: images (N, 3, H, W) uint8, masks (N, H, W) uint8 (any device).

        Returns:
            The batch's loss, detached, on the device (no host synchronisation).
        """
        x, y = to_device(images, masks, self.normalizer)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.amp):
            logits = self.model(x)
        loss = self.criterion(logits.float(), y)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()


def _train_epoch(step: TrainStep, loader: DataLoader, *, fit: Fit, callbacks: Sequence[Callback], bar: tqdm) -> float:
    """One pass over the training loader; returns the mean loss over ranks."""
    step.model.train()
    ctx = fit.ctx
    total = torch.zeros((), dtype=torch.float64, device=ctx.device)
    steps = 0
    for i, (images, masks, _) in enumerate(loader):
        total += step(images, masks).double()
        steps += 1
        for cb in callbacks:
            cb.on_train_batch_end(fit)
        bar.update(1)
        if i % 20 == 0 and not bar.disable:  # an occasional host sync only for the display
            bar.set_postfix(loss=f"{total.item() / steps:.4f}")
    loss_sum, n = ctx.sum([total.item(), float(steps)])
    return loss_sum / max(n, 1.0)


def _seed(seed: int, rank: int) -> None:
    value = seed * 1009 + rank
    torch.manual_seed(value)
    np.random.seed(value % 2**32)
    random.seed(value)


def fit_fold(model: nn.Module, config: TrainConfig, *, train_set: Dataset, val_set: Dataset, fold_dir: Path,
             ctx: DistContext, num_classes: int, normalizer: InputNormalizer, seed: int | None = None,
             loss_weights: torch.Tensor | None = None, sample_weights: Sequence[float] | np.ndarray | None = None,
             spec: dict[str, Any] | None = None, progress: bool = True) -> FitResult:
    """Train one fold, resuming from ``fold_dir/last.pt`` when it exists.

    Args:
        model: the network, on the CPU or ``ctx.device`` (moved and, under DDP, wrapped here).
            On return it holds the weights of ``best.pt``, unwrapped, in eval mode.
        config: the run's options; this reads ``epochs`` (maximum under ``plateau``, exact under
            ``cosine``; a resumed fold counts the epochs already run), ``patience``, ``lr``,
            ``loss``, ``batch_size`` (per process), ``workers`` (per process; None: 0),
            ``monitor``, ``schedule``, ``warmup_epochs``, ``average_last`` and ``sampling``
            (module docstring).
        train_set: training images (augmented), items ``(image, mask, position)``.
        val_set: validation images (not augmented); this rank's shard under DDP.
        fold_dir: ``RUN_DIR/folds/<k>``; gets ``best.pt``, ``last.pt``, ``history.csv``.
        ctx: the distributed context; only rank 0 writes files.
        num_classes: K.
        normalizer: the encoder's input normalisation, on ``ctx.device``.
        seed: seed of the shuffling and augmentation (offset by rank); None: ``config.seed``
            (train-eval passes one per fold).
        loss_weights: (K,) class weights of the ``wce`` loss (:func:`class_weights`).
        sample_weights: (len(train_set),) draw weights, required by ``sampling="repeat-factor"``
            (:func:`clothcurate.training.sampling.sampling_weights`).
        spec: the model description both checkpoints carry (``ModelSpec.to_dict()``).
        progress: tqdm bars (rank 0 only).

    Returns:
        The fit's outcome.

    Raises:
        ValueError: ``sampling="repeat-factor"`` without ``sample_weights``, or weights given
            under ``uniform``.
    """
    if (config.sampling != "uniform") != (sample_weights is not None):
        given = "given" if sample_weights is not None else "None"
        raise ValueError(f"sampling={config.sampling!r} and sample_weights={given} disagree")
    epochs, patience, schedule, batch_size = config.epochs, config.patience, config.schedule, config.batch_size
    workers = config.workers or 0
    seed = config.seed if seed is None else seed
    fold_dir.mkdir(parents=True, exist_ok=True)
    device = ctx.device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model.to(device, memory_format=torch.channels_last if device.type == "cuda" else torch.contiguous_format)
    criterion = build_loss(config.loss, weights=None if loss_weights is None else loss_weights.to(device))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    train_loader = make_loader(train_set, batch_size=batch_size, train=True, workers=workers, ctx=ctx, seed=seed,
                               weights=sample_weights)
    val_loader = make_loader(val_set, batch_size=batch_size * 2, train=False, workers=workers, ctx=ctx)
    show = progress and ctx.is_main
    fit = Fit(model=model, optimizer=optimizer, scaler=make_scaler(device), ctx=ctx, fold_dir=fold_dir,
              state=FitState(), spec=spec, steps_per_epoch=len(train_loader))
    if schedule == "plateau":
        fit.schedule = PlateauSchedule(optimizer, patience=max(1, patience // 2))
        stopping: list[Callback] = [EarlyStopping(patience)]
    else:
        fit.schedule = WarmupCosineSchedule(optimizer, total_steps=epochs * len(train_loader),
                                            warmup_steps=config.warmup_epochs * len(train_loader))
        stopping = []

    def validate(net: nn.Module) -> tuple[float, float | None]:
        loss, cm = evaluate(net, val_loader, criterion=criterion, ctx=ctx, num_classes=num_classes,
                            normalizer=normalizer)
        return loss, scores_from_confusion(cm.compute())["mean"]["iou"]

    def bn_batches() -> Iterator[torch.Tensor]:
        return (to_device(images, masks, normalizer)[0] for images, masks, _ in train_loader)

    averaging = ([WeightAveraging(model, count=config.average_last, epochs=epochs, bn_batches=bn_batches,
                                  validate=validate)] if config.average_last else [])
    # order matters: the schedule reads the epoch's row, EarlyStopping reads BestCheckpoint's verdict,
    # LastCheckpoint saves the average after this epoch's update
    callbacks = [fit.schedule, BestCheckpoint(config.monitor), *stopping, *averaging, LastCheckpoint(keep=averaging),
                 ProgressLog(show=show)]
    _seed(seed, ctx.rank)
    resume(fit, fold_dir / "last.pt", callbacks)
    for cb in callbacks:
        cb.on_fit_start(fit)

    step = TrainStep(ctx.wrap(model), criterion=criterion, optimizer=optimizer, scaler=fit.scaler,
                     normalizer=normalizer)
    state = fit.state
    while state.epoch < epochs and not state.stopped:
        epoch = state.epoch + 1
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(epoch)
        start = time.perf_counter()
        lr_now = optimizer.param_groups[0]["lr"]
        with tqdm(total=len(train_loader), desc=f"fold {fold_dir.name} epoch {epoch}/{epochs}", unit="batch",
                  disable=not show, leave=False) as bar:
            train_loss = _train_epoch(step, train_loader, fit=fit, callbacks=callbacks, bar=bar)
        # the unwrapped module: no DDP buffer broadcast, so ranks may hold unequal validation shards
        val_loss, val_miou = validate(model)
        row = {"epoch": epoch, "train_loss": round(train_loss, 6), "val_loss": round(val_loss, 6),
               "val_miou": round(val_miou if val_miou is not None else float("nan"), 6), "lr": lr_now,
               "seconds": round(time.perf_counter() - start, 3)}
        state.history.append(row)
        state.epoch = epoch
        for cb in callbacks:
            cb.on_epoch_end(fit, {**row, "val_loss": val_loss})
        ctx.barrier()
    for cb in callbacks:
        cb.on_fit_end(fit)
    ctx.barrier()
    best = torch.load(fold_dir / "best.pt", map_location=device, weights_only=False)
    model.load_state_dict(best["state_dict"])
    model.eval()
    return FitResult(best_epoch=state.best_epoch, best_val_loss=state.best_val_loss,
                     epochs_run=state.epoch, stopped_early=state.stopped and state.epoch < epochs,
                     history=list(state.history), averaged_epochs=list(best.get("averaged_epochs") or []))


# ---------------------------------------------------------------------------------------------
# prediction

@dataclass
class FoldPrediction:
    """Out-of-fold evaluation of one fold, combined over ranks.

    Attributes:
        n_images: test images predicted.
        confusion_raw: (K, K) int64 pixel confusion of the raw argmax.
        confusion_opened: (K, K) int64 pixel confusion after the opening post-processing.
        per_sample: ``(key, iou, pixel_acc)`` per test image (opened prediction, crop frame).
    """

    n_images: int
    confusion_raw: np.ndarray
    confusion_opened: np.ndarray
    per_sample: list[tuple[str, float, float]]


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _write_outputs(sample: ExportSample, opened: np.ndarray, confidence: np.ndarray, run_dir: Path) -> None:
    """Write one sample's pasted-back prediction PNG and its confidence npz (atomically)."""
    full = paste_back(opened, crop_box=sample.frame_box, orig_size=sample.orig_size)
    write_mask_png(run_dir / "predictions" / f"{sample.key}.png", full)
    write_bytes(run_dir / "confidence" / f"{sample.key}.npz", _npz(probs=confidence))


@torch.no_grad()
def predict_fold(model: nn.Module, *, test_set: Dataset, samples: Sequence[ExportSample], run_dir: Path,
                 ctx: DistContext, batch_size: int, workers: int, num_classes: int,
                 normalizer: InputNormalizer, progress: bool = True) -> FoldPrediction:
    """Predict this rank's test images, write their files and score both variants.

    The forward pass, AMP and post-processing are :class:`~clothcurate.inference.segmenter.Segmenter`'s,
    the same as ``clothcurate predict`` uses.

    Args:
        model: the trained network (unwrapped), on ``ctx.device``.
        test_set: this rank's test images, items ``(image, mask, position)``; ``position``
            indexes ``samples``.
        samples: every exported sample (cache order).
        run_dir: gets ``predictions/<key>.png`` and ``confidence/<key>.npz``.
        ctx: the distributed context; confusion matrices are all-reduced and per-sample rows
            gathered, so every rank returns the whole fold.
        batch_size: images per forward pass.
        workers: loader processes.
        num_classes: K.
        normalizer: the encoder's input normalisation, on ``ctx.device``.
        progress: tqdm bar (rank 0 only).

    Returns:
        The fold's evaluation.
    """
    device = ctx.device
    segmenter = Segmenter([model], normalizer=normalizer)  # the same inference as clothcurate predict
    loader = make_loader(test_set, batch_size=batch_size, train=False, workers=workers, ctx=ctx)
    cm_raw = ConfusionMatrix(num_classes, device=device)
    cm_open = ConfusionMatrix(num_classes, device=device)
    (run_dir / "predictions").mkdir(parents=True, exist_ok=True)
    (run_dir / "confidence").mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, float, float]] = []
    pending: list[Future] = []
    with ThreadPoolExecutor(max_workers=4) as writer:
        for images, masks, positions in tqdm(loader, desc="predict", unit="batch", leave=False,
                                             disable=not (progress and ctx.is_main)):
            out = segmenter(images)
            y = masks.to(device, non_blocking=True).long()
            probs, raw, opened = out.probs, out.raw, out.labels                # (N, K, H, W), (N, H, W) x2
            cm_raw.update(raw, y)
            cm_open.update(opened, y)
            iou, acc = per_sample_scores(opened, y, num_classes=num_classes)
            small = F.avg_pool2d(probs, CONFIDENCE_STRIDE) if probs.shape[-1] >= 2 * CONFIDENCE_STRIDE else probs
            conf = (small * 255).round_().to(torch.uint8).cpu().numpy()        # (N, K, S/4, S/4)
            opened_np = opened.to(torch.uint8).cpu().numpy()                   # (N, H, W)
            for j, pos in enumerate(positions.tolist()):
                sample = samples[pos]
                rows.append((sample.key, float(iou[j]), float(acc[j])))
                pending.append(writer.submit(_write_outputs, sample, opened_np[j], conf[j], run_dir))
        for fut in pending:
            fut.result()  # re-raise a failed write
    cm_raw.all_reduce()
    cm_open.all_reduce()
    all_rows = [r for part in ctx.gather(rows) for r in part]
    return FoldPrediction(n_images=len(all_rows), confusion_raw=cm_raw.compute(),
                          confusion_opened=cm_open.compute(), per_sample=sorted(all_rows))
