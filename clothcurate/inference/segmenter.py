"""Inference in one place: a trained run's model(s) -> softmax probabilities and labels.

Evaluation (:func:`clothcurate.training.loop.predict_fold`), ``clothcurate predict`` and anything
else that applies a model go through :class:`Segmenter`, so they share the input normalisation,
mixed precision (bf16 where the GPU supports it, else fp16; none on the CPU), the optional
horizontal-flip TTA at one or more scales (:class:`~clothcurate.training.models.FlipTTA`), the
ensemble rule (mean of the folds' softmax) and the post-processing of evaluation
(:func:`~clothcurate.training.postprocess.open_predictions`).

A checkpoint describes its model (``best.pt``'s ``model``: a
:class:`~clothcurate.training.models.ModelSpec` as a dict); one written before that is read with
the run's ``config.json`` (its ``model``, else arch, encoder, ``image_size``, and
``metrics.json``'s classes).

Shapes: N images, K classes, H x W = the model input (``spec.input_size``; square in the paper).

Example::

    seg = Segmenter.from_run("runs/fpn", fold="all", tta=True)      # the 5 folds' ensemble
    out = seg(images)               # images: (N, 3, H, W) uint8 RGB
    out.probs, out.labels           # (N, K, H, W) float32, (N, H, W) int64 (post-processed)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clothcurate.errors import BadInputError
from clothcurate.folders.run import RunFolder
from clothcurate.labelmaps import TARGET_CLASSES
from clothcurate.training.config import check_tta_scales
from clothcurate.training.distributed import autocast_settings, resolve_device
from clothcurate.training.models import FlipTTA, InputNormalizer, ModelSpec
from clothcurate.training.postprocess import open_predictions

__all__ = ["Segmenter", "SegmenterOutput", "load_checkpoint"]


@dataclass
class SegmenterOutput:
    """One batch's prediction.

    Attributes:
        probs: (N, K, H, W) float32 softmax (mean over the ensemble and the TTA views).
        labels: (N, H, W) int64 post-processed labels (what evaluation scores as ``opened``).
    """

    probs: torch.Tensor
    labels: torch.Tensor

    @property
    def raw(self) -> torch.Tensor:
        """(N, H, W) int64 argmax of :attr:`probs`, before post-processing."""
        return self.probs.argmax(1)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _spec_from_config(run: RunFolder, path: Path) -> ModelSpec:
    """The model description of a checkpoint written before checkpoints described themselves:
    ``config.json``'s ``model`` when it has one, else its arch, encoder and image size."""
    described = run.config.get("model")
    if isinstance(described, dict) and "arch" in described:
        try:
            return ModelSpec.from_dict(described)
        except BadInputError as e:
            raise BadInputError(f"{run.config_path}: {e}") from e
    arch, encoder, size = run.arch, run.encoder, run.input_size
    if not (arch and encoder and size):
        raise BadInputError(f"{path}: the checkpoint does not describe its model and {run.config_path} lacks "
                            "arch, encoder or image_size; re-run train-eval")
    classes = list(TARGET_CLASSES)
    if run.metrics_path.is_file():
        classes = list(run.read_json(run.metrics_path, what="metrics").get("classes") or classes)
    return ModelSpec.of(arch=str(arch), encoder=str(encoder), classes=classes, input_size=size)


def load_checkpoint(path: str | Path, *, run: RunFolder | None = None) -> tuple[ModelSpec, dict[str, torch.Tensor]]:
    """Read a ``best.pt`` checkpoint: its model description and weights.

    Args:
        path: the checkpoint.
        run: its run folder, read when the checkpoint predates self-describing checkpoints.

    Returns:
        ``(spec, state_dict)``.

    Raises:
        BadInputError: unreadable file, no weights, or no description anywhere.
    """
    path = Path(path)
    try:  # weights_only: a checkpoint is data (tensors, numbers, strings); never run pickled code
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise BadInputError(f"{path}: no such checkpoint; train the fold first (clothcurate train-eval)") from e
    except Exception as e:  # noqa: BLE001 - torch raises many types (IndexError, EOFError ...) for a damaged file
        raise BadInputError(f"{path}: unreadable checkpoint ({_first_line(e)}); re-copy the run folder") from e
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise BadInputError(f"{path}: no 'state_dict' (is it a best.pt of clothcurate train-eval?)")
    described = ckpt.get("model")
    if isinstance(described, dict) and "arch" in described:
        try:
            spec = ModelSpec.from_dict(described)
        except BadInputError as e:
            raise BadInputError(f"{path}: {e}") from e
    elif run is not None:
        spec = _spec_from_config(run, path)
    else:
        raise BadInputError(f"{path}: the checkpoint does not describe its model; load it with its run folder")
    return spec, state


def _build(spec: ModelSpec, state: dict[str, torch.Tensor], path: Path) -> nn.Module:
    model = spec.build()
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise BadInputError(f"{path}: its weights do not fit {spec.arch} / {spec.encoder} as built now "
                            f"({_first_line(e)}); retrain the run") from e
    return model


class Segmenter:
    """One model or an ensemble of them, with the project's normalisation, AMP and post-processing.

    Args:
        models: networks mapping (N, 3, H, W) normalised images to (N, K, H, W) logits (moved to
            the normaliser's device and put in eval mode here). Several: the mean of their softmax.
        normalizer: the encoders' input normalisation; its device is where inference runs.
        spec: what the models are (input size, classes), when known.
        tta: also predict the horizontally flipped images (mean of the two views' logits).
        tta_scales: with ``tta``, the scales each image and its flip are predicted at (mean of
            all views' logits, :class:`~clothcurate.training.models.FlipTTA`); ``(1.0,)``: flip only.
        kernel_size: the opening's structuring element (1 = labels are the raw argmax).
        backend: another forward pass, mapping (N, 3, H, W) uint8 RGB to (N, K, H, W) float32
            probabilities of these models (e.g. :class:`.onnx_backend.OnnxRuntimeBackend`);
            ``None``: PyTorch.
    """

    BACKENDS = ("torch", "onnx")

    def __init__(self, models: Sequence[nn.Module], *, normalizer: InputNormalizer, spec: ModelSpec | None = None,
                 tta: bool = False, tta_scales: Sequence[float] = (1.0,), kernel_size: int = 3,
                 backend: Callable[[torch.Tensor], torch.Tensor] | None = None):
        if not models:
            raise BadInputError("Segmenter: no model given")
        tta_scales = check_tta_scales(tta_scales, tta=tta)
        self.normalizer = normalizer
        self.device = normalizer.device
        self.spec = spec
        self.tta = tta
        self.tta_scales = tta_scales if tta else (1.0,)
        self.kernel_size = kernel_size
        fmt = torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        self._format = fmt
        self.models = [m.to(self.device, memory_format=fmt).eval() for m in models]
        self._nets = [FlipTTA(m, scales=tta_scales) if tta else m for m in self.models]
        self.amp, self.dtype = autocast_settings(self.device)
        self.backend = backend

    @classmethod
    def from_run(cls, run_dir: str | Path, *, fold: int | str = "all", device: str | torch.device = "auto",
                 tta: bool | None = None, tta_scales: Sequence[float] | None = None,
                 backend: str = "torch") -> Segmenter:
        """The model of one fold of a train-eval run, or the ensemble of all its folds.

        Args:
            run_dir: the run folder (``folds/<k>/best.pt``).
            fold: a fold number, or ``"all"`` for every fold that has a checkpoint.
            device: ``auto``, ``cpu`` or ``cuda``.
            tta: horizontal-flip test-time augmentation; None: as the run evaluated its test
                folds (its ``tta`` option), so predictions match the run's scores.
            tta_scales: the TTA's scales (1.0 among them, at most 3; only with TTA); None: the
                run's ``tta_scales`` when TTA is as the run evaluated (or on), else ``(1.0,)``.
            backend: ``torch``, or ``onnx``: the forward pass on ONNX Runtime (CPU only; the
                models exported in memory, :mod:`.onnx_backend`).

        Raises:
            BadInputError: not a run folder, no checkpoint (for that fold), folds trained on
                different models, an unreadable checkpoint, an unknown backend, ``onnx``
                with a CUDA device, or bad ``tta_scales`` (or scales without TTA).
        """
        backend = str(backend).strip().lower()
        if backend not in cls.BACKENDS:
            raise BadInputError(f"--backend {backend!r}: unknown; choose one of {', '.join(cls.BACKENDS)}")
        if backend == "onnx":  # ONNX Runtime's CPU build: "auto" means the CPU here
            if str(device).strip().lower() not in ("auto", "cpu"):
                raise BadInputError(f"--device {device}: --backend onnx runs on the CPU; use --device cpu "
                                    "(or auto), or --backend torch for the GPU")
            device = "cpu"
        run = RunFolder.open(run_dir)
        if tta is None:
            tta = run.tta
        if tta_scales is None:
            tta_scales = run.tta_scales if tta else (1.0,)
        found = run.checkpoints()
        if not found:
            raise BadInputError(f"{run.folds_dir}: no folds/<k>/best.pt checkpoint; train the run first "
                                "(clothcurate train-eval), or copy its .pt files with the run folder")
        if str(fold).strip().lower() == "all":
            chosen = list(found.values())
        else:
            try:
                k = int(fold)
            except (TypeError, ValueError):
                raise BadInputError(f"--fold {fold!r}: expected 'all' or a fold number") from None
            if k not in found:
                raise BadInputError(f"--fold {fold}: {run.checkpoint_path(k)} missing; folds with a checkpoint: "
                                    f"{', '.join(map(str, found))}")
            chosen = [found[k]]
        dev = resolve_device(device)
        models, spec = [], None
        for path in chosen:
            this, state = load_checkpoint(path, run=run)
            if spec is not None and this != spec:
                raise BadInputError(f"{path}: describes {this.arch}/{this.encoder} at {this.input_size}, but "
                                    f"{chosen[0]} {spec.arch}/{spec.encoder} at {spec.input_size}; use --fold K")
            spec = this
            models.append(_build(this, state, path))
        seg = cls(models, normalizer=InputNormalizer(spec.mean, spec.std, device=dev), spec=spec, tta=tta,
                  tta_scales=tta_scales)
        if backend == "onnx":
            from clothcurate.inference.onnx_backend import OnnxRuntimeBackend

            seg.backend = OnnxRuntimeBackend.from_segmenter(seg)
        return seg

    @property
    def input_size(self) -> tuple[int, int] | None:
        """``(H, W)`` the models were trained at, when known."""
        return None if self.spec is None else tuple(self.spec.input_size)

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Softmax of a batch, averaged over the ensemble (and the flip view with TTA).

        Args:
            images: (N, 3, H, W) uint8 RGB, on any device (pinned memory copies asynchronously).

        Returns:
            (N, K, H, W) float32 on :attr:`device`.
        """
        if self.backend is not None:
            return self.backend(images).to(self.device)
        x = self.normalizer(images.to(self.device, non_blocking=True, memory_format=self._format))
        total: torch.Tensor | None = None
        for net in self._nets:
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.amp):
                logits = net(x)
            probs = logits.float().softmax(1)
            total = probs if total is None else total.add_(probs)
        return total if len(self._nets) == 1 else total.div_(len(self._nets))

    def __call__(self, images: torch.Tensor) -> SegmenterOutput:
        """Probabilities and post-processed labels of a batch.

        Args:
            images: (N, 3, H, W) uint8 RGB.

        Returns:
            :class:`SegmenterOutput` on :attr:`device`.
        """
        probs = self.probabilities(images)
        return SegmenterOutput(probs=probs, labels=open_predictions(probs, kernel_size=self.kernel_size))

    def describe(self) -> dict[str, Any]:
        """A few facts for logs and output files: models, TTA (and its scales), device, and the spec
        when known."""
        return {"models": len(self.models), "tta": self.tta, "tta_scales": list(self.tta_scales),
                "device": str(self.device),
                "backend": "torch" if self.backend is None else type(self.backend).__name__,
                **({} if self.spec is None else self.spec.to_dict())}
