"""DistributedDataParallel under ``torchrun``: process group, device per rank, collectives.

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) everything here degrades to a single
process: rank 0 of 1, collectives are no-ops. Under ``torchrun`` the process group is initialised
from the environment (``env://``) with ``nccl`` on CUDA and ``gloo`` on the CPU; each rank uses
``cuda:LOCAL_RANK``. Files shared by the run (config, checkpoints, history, metrics) are written
by rank 0 only (:attr:`DistContext.is_main`); each rank predicts and writes a disjoint shard of
the test samples.

Example::

    ctx = setup("auto")                 # DistContext(rank=0, world_size=1, device=cpu) alone
    model = ctx.wrap(model)             # DDP when world_size > 1
    mine = ctx.shard(test_positions)    # this rank's share, no padding
    ctx.barrier()
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from clothcurate.errors import BadInputError

__all__ = ["DistContext", "setup", "resolve_device", "autocast_settings", "unwrap"]

T = TypeVar("T")


def autocast_settings(device: torch.device) -> tuple[bool, torch.dtype]:
    """Autocast on CUDA only: bf16 where the GPU supports it, else fp16 (which needs a scaler to train).

    Returns:
        ``(enabled, dtype)`` for :func:`torch.autocast`.
    """
    if device.type != "cuda":
        return False, torch.float32
    return True, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda``/``cpu``/``cuda:N`` as given.

    Raises:
        BadInputError: an unknown device, or ``cuda`` where no GPU is visible.
    """
    name = str(device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise BadInputError(f"--device {device!r}: unknown device ({e}); use auto, cuda or cpu") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BadInputError(f"--device {device}: no CUDA GPU is visible to PyTorch; use --device cpu or auto")
    if dev.type not in ("cuda", "cpu"):
        raise BadInputError(f"--device {device}: only cuda and cpu are supported")
    return dev


@dataclass
class DistContext:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: global rank, 0..world_size-1.
        world_size: number of processes.
        local_rank: rank on this node (picks the GPU).
        local_world_size: processes on this node (shares the CPU cores between them).
        device: this rank's device.
    """

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes the run's shared files."""
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model in DDP when distributed (gradients all-reduced), else unchanged."""
        if not self.distributed:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's share of ``items`` (every world_size-th one), without padding or repeats."""
        return list(items[self.rank::self.world_size])

    def barrier(self) -> None:
        """Wait for every rank (no-op alone)."""
        if self.distributed:
            dist.barrier()

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of a few numbers over ranks (float64)."""
        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        if self.distributed:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), indexed by rank, on every rank."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def on_main(self, fn: Callable[[], T]) -> T | None:
        """Run ``fn`` on rank 0 only, the other ranks waiting for it; an error raised there is
        raised on every rank, so none is left waiting at a later collective call.

        Returns:
            ``fn()`` on rank 0, None on the other ranks.
        """
        result, error = None, None
        if self.is_main:
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the other ranks hear of it
                if not self.distributed:
                    raise
                error = exc
        failure = self.broadcast(None if error is None else (isinstance(error, BadInputError), str(error)))
        if error is not None:
            raise error
        if failure is not None:
            bad_input, message = failure
            raise (BadInputError if bad_input else RuntimeError)(f"rank 0: {message}")
        return result

    def close(self) -> None:
        """Destroy the process group (that :func:`setup` joined), if one is initialised."""
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: str = "auto") -> DistContext:
    """Join the ``torchrun`` process group if there is one, and pick this rank's device.

    Args:
        device: ``auto``, ``cuda`` or ``cpu``; under torchrun ``cuda`` becomes ``cuda:LOCAL_RANK``.

    Returns:
        The context; a process group is initialised only when ``WORLD_SIZE`` > 1.

    Raises:
        BadInputError: a bad device (see :func:`resolve_device`).
    """
    dev = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank if world > 1 else (dev.index or 0))
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, init_method="env://", timeout=timedelta(minutes=30), **kwargs)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, local_world_size=local_world,
                       device=dev)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
