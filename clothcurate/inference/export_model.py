"""``clothcurate export-model``: a trained run as one self-contained model file (ONNX or TorchScript).

The file maps what a photo crop is, not what a network wants: input (N, 3, H, W) **uint8 RGB** at
the run's input geometry; the encoder's normalisation, the fold model(s) (their mean softmax when
the run's folds are exported as one ensemble), the optional flip TTA (at its scales) and the softmax
are inside the graph; output (N, K, H, W) float32 **probabilities**. Argmax (and evaluation's opening,
:func:`clothcurate.training.postprocess.open_predictions`) are left to the caller. N is dynamic;
H and W are fixed to the run's input size.

What the model is travels in the file, as strings holding JSON (:func:`model_metadata`): ONNX
``metadata_props``; TorchScript ``_extra_files["clothcurate.json"]``. Read it back with
:func:`read_metadata`.

Both formats come from PyTorch's tracer: ONNX through the TorchScript-based exporter
(``dynamo=False``; the dynamo exporter needs onnxscript, which the project does not install), opset
17. Before the file is renamed into place, it is loaded again (ONNX Runtime / ``torch.jit.load``)
and must reproduce PyTorch's probabilities on a probe batch, so a file that is there is a file
that works.

Shapes: N images, K classes, H x W = the run's input size.

Example::

    result = export_model(run_dir="runs/fpn", fmt="onnx", out="fpn.onnx", fold=0)
    session = onnxruntime.InferenceSession("fpn.onnx")
    probs = session.run(None, {"images": crops_uint8_nchw})[0]     # (N, K, H, W)
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clothcurate.atomic import atomic_path, write_bytes
from clothcurate.errors import BadInputError, ClothcurateError
from clothcurate.folders.run import RunFolder
from clothcurate.inference.segmenter import Segmenter
from clothcurate.training.models import FlipTTA, ModelSpec

__all__ = ["FORMATS", "INPUT_NAME", "OUTPUT_NAME", "ExportResult", "ProbabilityGraph", "export_model",
           "model_metadata", "onnx_bytes", "read_metadata"]

FORMATS = ("onnx", "torchscript")
INPUT_NAME, OUTPUT_NAME = "images", "probs"
OPSET = 17
#: TorchScript's extra file holding the metadata
EXTRA_FILE = "clothcurate.json"
#: largest probability difference the written file may show against PyTorch on the probe batch
PROBE_TOLERANCE = 1e-3


class ProbabilityGraph(nn.Module):
    """uint8 RGB -> normalisation -> each model (flip TTA) -> softmax -> mean over the models.

    The same arithmetic as :meth:`Segmenter.probabilities` on the CPU, as one traceable module.

    Args:
        models: networks mapping (N, 3, H, W) normalised images to (N, K, H, W) logits.
        spec: their description (normalisation, input size, classes).
        tta: also run the horizontally flipped images (mean of the two views' logits).
        tta_scales: with ``tta``, the scales each image and its flip are run at (mean of every
            view's logits, :class:`~clothcurate.training.models.FlipTTA`).
    """

    def __init__(self, models: Sequence[nn.Module], *, spec: ModelSpec, tta: bool = False,
                 tta_scales: Sequence[float] = (1.0,)):
        super().__init__()
        self.nets = nn.ModuleList([FlipTTA(m, scales=tta_scales) if tta else m for m in models])
        mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std))
        self.register_buffer("shift", mean / std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, 3, H, W) uint8 RGB -> (N, K, H, W) float32 probabilities."""
        x = images.float() * self.scale - self.shift
        total = None
        for net in self.nets:
            probs = net(x).float().softmax(1)
            total = probs if total is None else total + probs
        return total if len(self.nets) == 1 else total / len(self.nets)

    @classmethod
    def of(cls, segmenter: Segmenter) -> ProbabilityGraph:
        """The graph of a segmenter's models, on the CPU (copies when the segmenter is elsewhere), in
        eval mode."""
        if segmenter.spec is None:
            raise BadInputError("the segmenter does not know its model's input size and classes; "
                                "load it with Segmenter.from_run")
        models = segmenter.models if segmenter.device.type == "cpu" else [copy.deepcopy(m) for m in segmenter.models]
        models = [m.to("cpu", memory_format=torch.contiguous_format) for m in models]
        return cls(models, spec=segmenter.spec, tta=segmenter.tta, tta_scales=segmenter.tta_scales).eval()


def model_metadata(spec: ModelSpec, *, folds: Sequence[int] | None = None, tta: bool = False,
                   tta_scales: Sequence[float] = (1.0,)) -> dict[str, str]:
    """What the file says about its model: every value a string (ONNX's ``metadata_props``), lists
    and numbers as JSON.

    Keys: ``arch``, ``encoder``, ``classes`` (the K names, index = output channel), ``input_size``
    (``[H, W]``), ``mean`` / ``std`` (applied inside), ``folds`` (the run folds averaged), ``tta``,
    ``tta_scales`` (the TTA's scales, ``[1.0]``: flip only; ``[1.0]`` without TTA),
    ``input`` / ``output`` (the tensors' names, dtypes and layouts).
    """
    h, w = spec.input_size
    k = len(spec.classes)
    return {"producer": "clothcurate export-model", "arch": spec.arch, "encoder": spec.encoder,
            "classes": json.dumps(list(spec.classes)), "input_size": json.dumps([h, w]),
            "mean": json.dumps(list(spec.mean)), "std": json.dumps(list(spec.std)),
            "folds": json.dumps(list(folds or [])), "tta": json.dumps(bool(tta)),
            "tta_scales": json.dumps([float(v) for v in tta_scales] if tta else [1.0]),
            "input": f"{INPUT_NAME}: uint8 RGB (N, 3, {h}, {w}), normalisation inside",
            "output": f"{OUTPUT_NAME}: float32 softmax probabilities (N, {k}, {h}, {w})"}


@contextmanager
def _quiet_tracing() -> Iterator[None]:
    """The tracer's warnings are about Python branches on shapes (fixed here: the input size is
    the run's) and about the exporters' deprecation; the probe check of :func:`export_model` is
    what vouches for the traced graph."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        yield


def _dummy(spec: ModelSpec, n: int = 2) -> torch.Tensor:
    h, w = spec.input_size
    return torch.zeros((n, 3, h, w), dtype=torch.uint8)


@torch.no_grad()
def onnx_bytes(graph: ProbabilityGraph, *, spec: ModelSpec, metadata: dict[str, str]) -> bytes:
    """The serialised ONNX model of a graph, with ``metadata`` as its ``metadata_props``.

    Args:
        graph: the module to export (CPU).
        spec: its input size.
        metadata: strings to store (:func:`model_metadata`).
    """
    import onnx

    buffer = io.BytesIO()
    with _quiet_tracing():
        torch.onnx.export(graph, (_dummy(spec),), buffer, dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}})
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


@torch.no_grad()
def _torchscript(graph: ProbabilityGraph, spec: ModelSpec) -> torch.jit.ScriptModule:
    with _quiet_tracing():
        return torch.jit.trace(graph, (_dummy(spec),), check_trace=False)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of an exported file (ONNX or TorchScript), JSON values decoded.

    Raises:
        BadInputError: not a file written by :func:`export_model`.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such model file; write it with clothcurate export-model")
    raw: dict[str, str]
    try:
        if path.read_bytes()[:2] == b"PK":  # TorchScript archives are zip files
            extra = {EXTRA_FILE: ""}
            with _quiet_tracing():
                torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
            raw = json.loads(extra[EXTRA_FILE] or "{}")
        else:
            import onnx

            raw = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception as e:  # noqa: BLE001 - onnx and torch raise many types for a foreign file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise BadInputError(f"{path}: not a readable ONNX or TorchScript model ({first})") from e
    if raw.get("producer") != "clothcurate export-model":
        raise BadInputError(f"{path}: has no clothcurate metadata; write it with clothcurate export-model")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except (TypeError, ValueError):
            out[key] = value
    return out


@dataclass
class ExportResult:
    """What :func:`export_model` wrote.

    Attributes:
        path: the model file.
        fmt: ``onnx`` or ``torchscript``.
        spec: the model's description.
        folds: the run folds in the file (several: their mean softmax).
        tta: flip TTA inside.
        tta_scales: its scales (``(1.0,)``: flip only).
        probe_max_diff: largest probability difference of the written file vs PyTorch on the
            probe batch.
        metadata: what the file's metadata says.
    """

    path: Path
    fmt: str
    spec: ModelSpec
    folds: list[int]
    tta: bool
    probe_max_diff: float
    tta_scales: tuple[float, ...] = (1.0,)
    metadata: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the terminal."""
        h, w = self.spec.input_size
        size = self.path.stat().st_size / 2**20 if self.path.is_file() else 0.0
        return (f"export-model: {self.path} ({self.fmt}, {size:.1f} MiB): {self.spec.arch}/{self.spec.encoder}, "
                f"fold(s) {', '.join(map(str, self.folds))}{self._tta_text()}; input uint8 "
                f"(N, 3, {h}, {w}) RGB, output probabilities (N, {len(self.spec.classes)}, {h}, {w}); "
                f"matches PyTorch to {self.probe_max_diff:.1e}")


    def _tta_text(self) -> str:
        if not self.tta:
            return ""
        extra = [v for v in self.tta_scales if v != 1.0]
        return " + flip TTA" + (f" at scales 1,{','.join(f'{v:g}' for v in extra)}" if extra else "")


def _probe(spec: ModelSpec) -> torch.Tensor:
    """(2, 3, H, W) uint8: smooth colour ramps, a deterministic stand-in for photos."""
    h, w = spec.input_size
    ys = torch.linspace(0, 255, h).view(1, h, 1).expand(3, h, w)
    xs = torch.linspace(0, 255, w).view(1, 1, w).expand(3, h, w)
    ramp = torch.stack([ys, xs, (ys + xs) / 2])[:, 0]
    return torch.stack([ramp, ramp.flip(-1)]).round().to(torch.uint8)


def _run_file(path: Path, fmt: str, images: torch.Tensor) -> torch.Tensor:
    if fmt == "onnx":
        from clothcurate.inference.onnx_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path)(images)
    with torch.no_grad(), _quiet_tracing():
        return torch.jit.load(str(path), map_location="cpu")(images)


def export_model(*, run_dir: str | Path, fmt: str, out: str | Path, fold: int | str = "all",
                 tta: bool | None = None, tta_scales: Sequence[float] | None = None) -> ExportResult:
    """Write a run's model as one self-contained ONNX or TorchScript file (atomically).

    Args:
        run_dir: a train-eval run folder with ``folds/<k>/best.pt``.
        fmt: ``onnx`` or ``torchscript``.
        out: the file to write (its folder is created; an existing file is replaced).
        fold: a fold number, or ``"all"``: every fold with a checkpoint, their mean softmax in
            one graph (what ``predict`` uses by default).
        tta: put the horizontal-flip TTA inside the graph; None: as the run evaluated its test folds.
        tta_scales: the TTA's scales, inside the graph and in its metadata (1.0 among them, at
            most 3; only with TTA); None: the run's when TTA is on.

    Returns:
        :class:`ExportResult`.

    Raises:
        BadInputError: an unknown format, not a run folder, no checkpoint, a fold without one,
            or an output path that cannot be written.
        ClothcurateError: the written file does not reproduce PyTorch (it is not left in place).
    """
    fmt = str(fmt).strip().lower()
    if fmt not in FORMATS:
        raise BadInputError(f"--format {fmt!r}: unknown model format; choose one of {', '.join(FORMATS)}")
    out = Path(out).expanduser()
    if out.is_dir():
        raise BadInputError(f"--out {out}: is a folder; give the model file to write (e.g. {out / 'model.' + fmt})")
    segmenter = Segmenter.from_run(run_dir, fold=fold, device="cpu", tta=tta, tta_scales=tta_scales)
    tta, tta_scales = segmenter.tta, segmenter.tta_scales
    spec = segmenter.spec
    found = sorted(RunFolder.open(run_dir).checkpoints())
    folds = found if str(fold).strip().lower() == "all" else [int(fold)]
    metadata = model_metadata(spec, folds=folds, tta=tta, tta_scales=tta_scales)
    graph = ProbabilityGraph.of(segmenter)
    probe = _probe(spec)
    with torch.no_grad():
        expected = graph(probe)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInputError(f"--out {out}: cannot create its folder ({e.strerror or e}); pass another --out") from e
    with atomic_path(out) as tmp:
        if fmt == "onnx":
            write_bytes(tmp, onnx_bytes(graph, spec=spec, metadata=metadata))
        else:
            with _quiet_tracing():
                torch.jit.save(_torchscript(graph, spec), str(tmp), _extra_files={EXTRA_FILE: json.dumps(metadata)})
        diff = float((_run_file(tmp, fmt, probe) - expected).abs().max())
        if not diff <= PROBE_TOLERANCE:
            raise ClothcurateError(f"{out}: the exported {fmt} model differs from PyTorch by {diff:.2g} in "
                                   "probability on a probe batch; not written (report this with the run's arch)")
    return ExportResult(path=out, fmt=fmt, spec=spec, folds=folds, tta=tta, probe_max_diff=diff, metadata=metadata,
                        tta_scales=tta_scales)
