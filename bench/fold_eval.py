"""Re-evaluate a finished run's fold with a changed network (no retraining), as train-eval scores it.

``bench/tta.py`` (other test-time scales), ``bench/logit_adjust.py`` (prior-corrected logits)
and ``bench/part_scores.py`` (training, validation and test images side by side) load a fold's
``best.pt`` once, wrap the network, and score it on some of the fold's images through
train-eval's own evaluation (:func:`clothcurate.training.loop.predict_fold`, the scoring of
:mod:`clothcurate.training.metrics`). Prediction files go to a temporary folder; the run folder
is only read.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:  # the package is imported late so that --help stays fast
    import torch

    from clothcurate.folders import ExportFolder, RunFolder
    from clothcurate.training.data import DecodedCache


def run_parser(doc: str) -> argparse.ArgumentParser:
    """The arguments every re-scoring script takes: ``--run`` (repeatable), ``--fold``, ``--batch-size``,
    ``--workers``; ``doc``'s first line describes the script."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--run", action="append", type=Path, required=True,
                        help="a finished train-eval run folder (repeat for several)")
    parser.add_argument("--fold", type=int, default=0, help="the fold to re-score (its folds/<k>/best.pt)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0, help="loader processes")
    return parser


def print_runs(runs: Sequence[Path], evaluate: Callable[[Path], list[str]]) -> None:
    """Print ``evaluate(run)``'s table lines for each run; bad input (not a run folder, no
    checkpoint for the fold, unreadable files) ends the script with its one-line message, exit 1."""
    from clothcurate.errors import BadInputError

    for run_dir in runs:
        try:
            lines = evaluate(run_dir.resolve())
        except BadInputError as e:
            sys.exit(f"error: {e}")
        for line in lines:
            print(line, flush=True)


@dataclass
class FoldEvaluation:
    """One fold of a run, loaded for re-scoring.

    Shapes: K classes, H x W the model input.

    Attributes:
        run: the :class:`~clothcurate.folders.RunFolder`.
        model: the fold's plain network (no TTA): (N, 3, H, W) normalised images -> (N, K, H, W) logits.
        size: ``(H, W)``.
        classes: the K class names.
        export: the run's :class:`~clothcurate.folders.ExportFolder`.
        cache: every export sample decoded at ``size``.
    """

    run: RunFolder
    model: torch.nn.Module
    size: tuple[int, int]
    classes: list[str]
    export: ExportFolder
    cache: DecodedCache
    _normalizer: Any
    _ctx: Any

    @classmethod
    def open(cls, run_dir: Path, *, fold: int) -> FoldEvaluation:
        """Load ``run_dir``'s fold ``fold`` on the CPU (close it with :meth:`close`)."""
        from clothcurate.folders import RunFolder, read_export
        from clothcurate.inference.segmenter import Segmenter
        from clothcurate.training.data import decode_samples
        from clothcurate.training.distributed import setup

        run = RunFolder.open(run_dir)
        seg = Segmenter.from_run(run_dir, fold=fold, device="cpu", tta=False)
        (model,), spec = seg.models, seg.spec
        size = tuple(spec.input_size)
        export = read_export(run.export_dir)
        classes = list(export.classes)
        cache = decode_samples(export.samples, size=size, num_classes=len(classes))
        return cls(run=run, model=model, size=size, classes=classes, export=export, cache=cache,
                   _normalizer=seg.normalizer, _ctx=setup("cpu"))

    def parts(self, fold: int) -> dict[str, list[int]]:
        """The fold's images as train-eval split them: ``fit`` (trained on), ``val`` (validated on:
        the run's seed and validation fraction) and ``test``; export positions."""
        from clothcurate.training.split import split_validation

        train_pos, test_pos = self.export.fold_parts(fold)
        options = self.run.options
        fit_idx, val_idx = split_validation(self.export.presence(train_pos),
                                            fraction=options["validation_fraction"], seed=options["seed"])
        return {"fit": [train_pos[i] for i in fit_idx], "val": [train_pos[i] for i in val_idx], "test": test_pos}

    def with_run_tta(self, net: torch.nn.Module) -> torch.nn.Module:
        """``net`` with the flip TTA the run evaluated its folds with (unchanged when it had none)."""
        from clothcurate.training.models import FlipTTA

        return FlipTTA(net, scales=self.run.tta_scales) if self.run.tta else net

    def score(self, net: torch.nn.Module, positions: Sequence[int], *, batch_size: int = 16,
              workers: int = 0) -> tuple[dict, float]:
        """Score ``net`` on the export samples at ``positions``.

        Returns:
            ``(entry, seconds per image)``: ``entry`` is ``{"raw": scores, "opened": scores}`` as
            metrics.json holds them (:func:`clothcurate.training.metrics.scores_from_confusion`).
        """
        from clothcurate.training.augment import build_transform
        from clothcurate.training.data import SegmentationDataset
        from clothcurate.training.loop import predict_fold
        from clothcurate.training.metrics import scores_from_confusion

        data = SegmentationDataset(self.cache, list(positions), transform=build_transform(size=self.size, train=False))
        with tempfile.TemporaryDirectory(prefix="clothcurate-bench-") as tmp:
            t = time.perf_counter()
            pred = predict_fold(net, test_set=data, samples=self.export.samples, run_dir=Path(tmp), ctx=self._ctx,
                                batch_size=batch_size, workers=workers, num_classes=len(self.classes),
                                normalizer=self._normalizer, progress=False)
            seconds = (time.perf_counter() - t) / max(1, pred.n_images)
        return ({"raw": scores_from_confusion(pred.confusion_raw),
                 "opened": scores_from_confusion(pred.confusion_opened)}, seconds)

    def close(self) -> None:
        self._ctx.close()
