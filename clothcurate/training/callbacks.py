"""The parts of a fold's training loop, as small callbacks (in the style of PyTorch Lightning).

:func:`clothcurate.training.loop.fit_fold` runs the epochs; everything else that happens around
them is a :class:`Callback` with hooks called on every rank, in list order:

* the learning-rate schedule: :class:`PlateauSchedule` (ReduceLROnPlateau on the validation loss,
  per epoch) or :class:`WarmupCosineSchedule` (linear warm-up then cosine decay, per step);
* :class:`BestCheckpoint`: follows the monitored value, keeps ``best.pt``;
* :class:`EarlyStopping`: stops after ``patience`` epochs without a better monitored value;
* :class:`LastCheckpoint`: ``last.pt`` (everything needed to resume, every rank's RNG states)
  and ``history.csv`` after every epoch;
* :class:`ProgressLog`: one line per epoch;
* :class:`WeightAveraging` (``average_last``): the equal-weight average of the last epochs'
  weights (``torch.optim.swa_utils.AveragedModel``) becomes the kept model at the fit's end.

Their shared progress is one :class:`FitState` (saved in ``last.pt`` as a plain dict, the layout
run folders have always had). A new training lever is a new callback chosen by an option, not
a branch in the loop. Only rank 0 writes files.

Checkpoints describe their model: both files carry a ``model`` description (architecture,
encoder, class names, input size (H, W), mean/std; :class:`clothcurate.training.models.ModelSpec`)
beside the weights: ``best.pt`` = ``{"state_dict", "model": spec, "epoch", "metric",
"val_loss", "val_miou"}`` (an averaged model: ``metric`` = ``"average_last"`` and
``averaged_epochs`` = the epochs averaged); ``last.pt`` keeps the weights under ``model`` (resumable run folders
predate the description) and the description under ``spec``.
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn
from tqdm.auto import tqdm

from clothcurate.atomic import atomic_path, write_bytes
from clothcurate.training.distributed import DistContext

__all__ = ["FitState", "Fit", "Callback", "PlateauSchedule", "WarmupCosineSchedule", "BestCheckpoint",
           "EarlyStopping", "LastCheckpoint", "ProgressLog", "WeightAveraging", "monitor_score", "resume",
           "HISTORY_COLUMNS"]

HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_miou", "lr", "seconds")


@dataclass
class FitState:
    """A fold's progress, as saved in ``last.pt`` (key ``state``).

    Attributes:
        epoch: epochs finished.
        history: one row per epoch (:data:`HISTORY_COLUMNS`).
        best_val_loss: validation loss of the kept epoch.
        best_score: the monitored value of the kept epoch, as higher-is-better.
        best_epoch: the kept epoch (0: none yet).
        bad_epochs: epochs since the kept one.
        stopped: early stopping fired.
    """

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_val_loss: float = float("inf")
    best_score: float = -float("inf")
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitState:
        """Read a saved state (``best_score`` is missing in last.pt written before monitors existed)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known.setdefault("best_score", -known.get("best_val_loss", float("inf")))
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Fit:
    """What callbacks see of the running fit.

    Attributes:
        model: the unwrapped network (its ``state_dict`` is what checkpoints hold).
        optimizer: the optimiser.
        scaler: the GradScaler.
        ctx: the distributed context.
        fold_dir: ``RUN_DIR/folds/<k>``.
        state: the shared progress.
        spec: the model description checkpoints carry (``ModelSpec.to_dict()``), or None.
        steps_per_epoch: training steps per epoch (for per-step schedules).
        improved: set by :class:`BestCheckpoint` at each epoch's end for the callbacks after it.
        schedule: the callback owning the learning-rate scheduler (its state goes in ``last.pt``).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ctx: DistContext
    fold_dir: Path
    state: FitState
    spec: dict[str, Any] | None = None
    steps_per_epoch: int = 1
    improved: bool = False
    schedule: Callback | None = None


class Callback:
    """Hooks around the epochs; each may keep state that ``last.pt`` saves (``state_dict``)."""

    def on_fit_start(self, fit: Fit) -> None:
        """Before the first epoch of this session (after a resume)."""

    def on_train_batch_end(self, fit: Fit) -> None:
        """After each optimisation step."""

    def on_epoch_end(self, fit: Fit, row: dict[str, float]) -> None:
        """After validation; ``row`` is the epoch's history row (already in ``fit.state``)."""

    def on_fit_end(self, fit: Fit) -> None:
        """After the last epoch (also when a finished fit is run again: must be repeatable)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


# ---------------------------------------------------------------------------------------------
# learning-rate schedules

class PlateauSchedule(Callback):
    """ReduceLROnPlateau (x0.1) on the validation loss, stepped once per epoch.

    Args:
        optimizer: the optimiser.
        patience: epochs without a lower validation loss before the learning rate drops.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, patience: int):
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1,
                                                                    patience=patience)

    def on_epoch_end(self, fit: Fit, row: dict[str, float]) -> None:
        self.scheduler.step(row["val_loss"])

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


class WarmupCosineSchedule(Callback):
    """Linear warm-up from lr/100 over ``warmup_steps``, then cosine decay to 0 at ``total_steps``,
    stepped after every optimisation step.

    Args:
        optimizer: the optimiser (its current lr is the peak).
        total_steps: steps of the whole fit (epochs x steps per epoch).
        warmup_steps: steps of the linear warm-up (0: none).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_steps: int):
        total, warm = max(1, total_steps), max(0, warmup_steps)

        def factor(step: int) -> float:
            if step < warm:
                return 0.01 + 0.99 * step / warm
            progress = min(1.0, (step - warm) / max(1, total - warm))
            return 0.5 * (1.0 + math.cos(math.pi * progress))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def on_train_batch_end(self, fit: Fit) -> None:
        self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.scheduler.state_dict().items() if k != "lr_lambdas"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict({**state, "lr_lambdas": [None]})


# ---------------------------------------------------------------------------------------------
# monitoring, stopping, checkpoints

def monitor_score(monitor: str, val_loss: float, val_miou: float | None) -> float:
    """The monitored value as a score where higher is better; a missing or NaN value never leads."""
    score = -val_loss if monitor == "val_loss" else val_miou
    return -float("inf") if score is None or score != score else float(score)


def _atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file, then rename (never a half-written checkpoint)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


class BestCheckpoint(Callback):
    """Follows ``monitor``; when an epoch beats the kept one, records it and writes ``best.pt``.

    Args:
        monitor: ``val_loss`` (lower is better) or ``val_miou`` (higher is better).
    """

    def __init__(self, monitor: str):
        self.monitor = monitor

    def on_epoch_end(self, fit: Fit, row: dict[str, float]) -> None:
        state = fit.state
        score = monitor_score(self.monitor, row["val_loss"], row["val_miou"])
        fit.improved = score > state.best_score or state.best_epoch == 0
        if not fit.improved:
            return
        state.best_score, state.best_val_loss, state.best_epoch = score, row["val_loss"], row["epoch"]
        if fit.ctx.is_main:
            miou = row["val_miou"]
            _atomic_save({"state_dict": fit.model.state_dict(), "model": fit.spec, "epoch": row["epoch"],
                          "metric": self.monitor, "val_loss": row["val_loss"],
                          "val_miou": None if miou != miou else miou}, fit.fold_dir / "best.pt")

    def adopt_newer(self, state: FitState, best_path: Path) -> None:
        """After a crash between writing ``best.pt`` (epoch e) and ``last.pt`` (still e - 1), the
        resumed fold re-runs epoch e against the checkpoint on disk: its score becomes the best so
        far, so ``best.pt`` and the recorded best epoch never disagree."""
        if not best_path.exists():
            return
        best = torch.load(best_path, map_location="cpu", weights_only=False)
        if best["epoch"] <= state.epoch:
            return
        state.best_score = monitor_score(self.monitor, best["val_loss"], best.get("val_miou"))
        state.best_val_loss, state.best_epoch, state.bad_epochs = best["val_loss"], best["epoch"], 0


class EarlyStopping(Callback):
    """Stops the fit after ``patience`` epochs without a better monitored value (run after
    :class:`BestCheckpoint`, which says whether the epoch improved).

    Args:
        patience: epochs without improvement before stopping.
    """

    def __init__(self, patience: int):
        self.patience = patience

    def on_epoch_end(self, fit: Fit, row: dict[str, float]) -> None:
        state = fit.state
        if fit.improved:
            state.bad_epochs = 0
        else:
            state.bad_epochs += 1
            state.stopped = state.bad_epochs >= self.patience


def rng_state() -> dict[str, Any]:
    """This process's torch / numpy / Python / CUDA RNG states."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_history(path: Path, history: Sequence[dict[str, float]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_bytes(path, buf.getvalue().encode())


class LastCheckpoint(Callback):
    """Writes ``last.pt`` (model, optimizer, scheduler, scaler, epoch, history, state, every
    rank's RNG states, the model description) and ``history.csv`` after every epoch.

    Args:
        keep: callbacks whose ``state_dict`` goes in ``last.pt`` too (key ``callbacks``, by class
            name; :func:`resume` gives it back).
    """

    def __init__(self, keep: Sequence[Callback] = ()):
        self.keep = list(keep)

    def on_epoch_end(self, fit: Fit, row: dict[str, float]) -> None:
        rngs = fit.ctx.gather(rng_state())            # every rank takes part; rank 0 writes
        if not fit.ctx.is_main:
            return
        state = fit.state
        _atomic_save({"model": fit.model.state_dict(), "optimizer": fit.optimizer.state_dict(),
                      "scheduler": fit.schedule.state_dict() if fit.schedule else {},
                      "scaler": fit.scaler.state_dict(), "epoch": state.epoch, "history": state.history,
                      "state": state.to_dict(), "rng": rngs, "spec": fit.spec,
                      "callbacks": {type(cb).__name__: cb.state_dict() for cb in self.keep}},
                     fit.fold_dir / "last.pt")
        _write_history(fit.fold_dir / "history.csv", state.history)


class ProgressLog(Callback):
    """One line per epoch on rank 0 (``*`` marks a kept epoch)."""

    def __init__(self, *, show: bool):
        self.show = show

    def on_epoch_end(self, fit: Fit, row: dict[str, float]) -> None:
        if self.show and fit.ctx.is_main:
            tqdm.write(f"fold {fit.fold_dir.name} epoch {row['epoch']}: train_loss {row['train_loss']:.4f}  "
                       f"val_loss {row['val_loss']:.4f}  val_mIoU {row['val_miou']:.3f}  lr {row['lr']:.1e}  "
                       f"{row['seconds']:.1f}s" + ("  *" if fit.improved else ""))


class WeightAveraging(Callback):
    """Averages the weights of the last ``count`` epochs with equal weights (SWA-style, at the
    end of each of those epochs; ``torch.optim.swa_utils.AveragedModel``) and, at the fit's end,
    makes the average the kept model: its BatchNorm statistics are recomputed on the training
    loader (``swa_utils.update_bn``: running statistics of the last weights do not fit averaged
    weights), it is validated, and ``best.pt`` is replaced by it (same layout, ``metric`` =
    ``"average_last"``, ``averaged_epochs``). Under DDP the parameters are equal on every rank;
    rank 0's recomputed BatchNorm statistics are broadcast so every rank predicts with one model.
    Its state (the running average) is saved in ``last.pt``, so a resumed fold keeps averaging.

    Args:
        model: the unwrapped network, already on its device (copied once).
        count: epochs averaged (the last ``count`` of ``epochs``).
        epochs: the fit's exact number of epochs (cosine schedule).
        bn_batches: a fresh iterable of normalised training inputs (N, 3, H, W) float on the
            model's device, one pass over the training loader.
        validate: ``validate(model) -> (val_loss, val_miou)`` over the validation set (every rank).
    """

    def __init__(self, model: nn.Module, *, count: int, epochs: int,
                 bn_batches: Callable[[], Iterable[torch.Tensor]],
                 validate: Callable[[nn.Module], tuple[float, float | None]]):
        self.first = epochs - count + 1
        self.average = AveragedModel(model)
        self.epochs: list[int] = []
        self.bn_batches, self.validate = bn_batches, validate

    def on_epoch_end(self, fit: Fit, row: dict[str, float]) -> None:
        epoch = int(row["epoch"])
        if epoch >= self.first and epoch not in self.epochs:
            self.average.update_parameters(fit.model)
            self.epochs.append(epoch)

    def on_fit_end(self, fit: Fit) -> None:
        if not self.epochs:
            return
        averaged = self.average.module
        update_bn(self.bn_batches(), averaged)
        if fit.ctx.distributed:
            for buf in averaged.buffers():
                torch.distributed.broadcast(buf, src=0)
        val_loss, val_miou = self.validate(averaged)
        state = fit.state
        state.best_epoch, state.best_val_loss = self.epochs[-1], val_loss
        if fit.ctx.is_main:
            miou = None if val_miou is None or val_miou != val_miou else val_miou
            _atomic_save({"state_dict": averaged.state_dict(), "model": fit.spec, "epoch": self.epochs[-1],
                          "metric": "average_last", "averaged_epochs": list(self.epochs), "val_loss": val_loss,
                          "val_miou": miou}, fit.fold_dir / "best.pt")

    def state_dict(self) -> dict[str, Any]:
        return {"average": self.average.state_dict(), "epochs": list(self.epochs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.average.load_state_dict(state["average"])
        self.epochs = [int(e) for e in state["epochs"]]


def resume(fit: Fit, path: Path, callbacks: Sequence[Callback]) -> bool:
    """Load ``last.pt`` into the fit (weights, optimiser, schedule, scaler, progress, this rank's
    RNG state) when it exists.

    Returns:
        True when a checkpoint was loaded.
    """
    if not path.exists():
        return False
    ckpt = torch.load(path, map_location="cpu", weights_only=False)  # RNG states must stay on the CPU
    fit.model.load_state_dict(ckpt["model"])
    fit.optimizer.load_state_dict(ckpt["optimizer"])
    if fit.schedule is not None and ckpt.get("scheduler"):
        fit.schedule.load_state_dict(ckpt["scheduler"])
    if fit.scaler.is_enabled() and ckpt["scaler"]:  # empty when written where no scaler ran (CPU, bf16)
        fit.scaler.load_state_dict(ckpt["scaler"])
    fit.state = FitState.from_dict(ckpt["state"])
    saved = ckpt.get("callbacks") or {}
    for cb in callbacks:
        if isinstance(cb, BestCheckpoint):
            cb.adopt_newer(fit.state, fit.fold_dir / "best.pt")
        if type(cb).__name__ in saved:
            cb.load_state_dict(saved[type(cb).__name__])
    rngs = ckpt.get("rng") or []
    if len(rngs) == fit.ctx.world_size:
        set_rng_state(rngs[fit.ctx.rank])
    return True
