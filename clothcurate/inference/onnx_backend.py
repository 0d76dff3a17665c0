"""ONNX Runtime as the forward pass of a :class:`~clothcurate.inference.segmenter.Segmenter` (CPU).

``Segmenter.from_run(..., backend="onnx")`` (``clothcurate predict --backend onnx``) exports its
model(s) in memory as the graph ``export-model`` writes (:mod:`.export_model`: uint8 in,
normalisation, the folds' mean softmax, the optional flip TTA, probabilities out) and hands
:meth:`Segmenter.probabilities` to an ONNX Runtime session over it. Everything after the
probabilities (evaluation's opening, paste-back, person detection by the model) is unchanged.

Shapes: N images, K classes, H x W = the model input.

Example::

    backend = OnnxRuntimeBackend("fpn.onnx")        # a file written by clothcurate export-model
    probs = backend(images)                          # (N, 3, H, W) uint8 -> (N, K, H, W) float32
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from clothcurate.errors import BadInputError

__all__ = ["OnnxRuntimeBackend"]


class OnnxRuntimeBackend:
    """An ONNX Runtime CPU session over an exported probability graph.

    Args:
        model: the ONNX file, or its serialised bytes.
        threads: intra-op threads (default: PyTorch's current setting, so both backends use
            the same cores).

    Raises:
        BadInputError: onnxruntime is not installed, or the model cannot be loaded.
    """

    def __init__(self, model: str | Path | bytes, *, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BadInputError("--backend onnx needs onnxruntime: pip install 'clothcurate[onnx]' "
                                "(make install includes it), or use --backend torch") from e
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: its graph-optimisation notices are not the user's concern
        source = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - ORT raises its own exception types for a bad model
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            where = "the exported model" if isinstance(model, bytes) else str(model)
            raise BadInputError(f"{where}: ONNX Runtime cannot load it ({first}); export it again "
                                "(clothcurate export-model)") from e
        self.input_name = self.session.get_inputs()[0].name
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    @classmethod
    def from_segmenter(cls, segmenter, *, threads: int | None = None) -> OnnxRuntimeBackend:
        """A session over a segmenter's own models (exported in memory, nothing written).

        Args:
            segmenter: a :class:`~clothcurate.inference.segmenter.Segmenter` with a spec.
            threads: intra-op threads.
        """
        from clothcurate.inference.export_model import ProbabilityGraph, model_metadata, onnx_bytes

        graph = ProbabilityGraph.of(segmenter)
        meta = model_metadata(segmenter.spec, tta=segmenter.tta, tta_scales=segmenter.tta_scales)
        data = onnx_bytes(graph, spec=segmenter.spec, metadata=meta)
        return cls(data, threads=threads)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Probabilities of a batch.

        Args:
            images: (N, 3, H, W) uint8 RGB (any device; ORT reads host memory).

        Returns:
            (N, K, H, W) float32 on the CPU.
        """
        batch = np.ascontiguousarray(images.detach().to("cpu", torch.uint8).numpy())
        return torch.from_numpy(self.session.run(None, {self.input_name: batch})[0])
