"""The train-eval run folder (``train-eval --out``, docs/contracts.md): its paths and small files.

Every reader of a run folder (train-eval collecting its folds, write-back, the report, the
model-assisted checks, inference) goes through :class:`RunFolder`, so there is one rule for each
question: where a file is, which folds are finished, and where the run's export folder is
(``config.json``'s ``export_dir``, else its ``options.data_dir``; a relative path is tried from the
working directory, then from the run folder). Imports neither torch nor FiftyOne.

A folder without ``config.json`` is not a run folder at all; one with it but without, say,
``metrics.json`` is an incomplete run. :meth:`RunFolder.open` tells the two apart.

Example::

    run = RunFolder.open("runs/fpn")
    run.arch, run.finished_folds(), run.checkpoint_path(0)
    export = run.export()                 # its ExportFolder (folds.json only)
"""

from __future__ import annotations

import csv
import json
from functools import cached_property
from pathlib import Path
from typing import Any

from clothcurate.errors import BadInputError
from clothcurate.folders.export import ExportFolder, read_export, size_from_json

__all__ = ["RunFolder", "RUN_HINT"]

#: what to do when a folder is not a run folder
RUN_HINT = "pass the --out folder of a train-eval run"


class RunFolder:
    """A train-eval run folder: the path of each file and the parsed ``config.json``.

    Args:
        root: the folder (it need not exist yet: train-eval creates it).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"RunFolder({str(self.root)!r})"

    @classmethod
    def open(cls, root: str | Path, *, hint: str = RUN_HINT) -> RunFolder:
        """An existing run folder: a folder that holds ``config.json``.

        Args:
            root: the folder.
            hint: what the user should do, ending the error message.

        Raises:
            BadInputError: no such folder, or a folder without ``config.json`` ("not a run
                folder", which is not the same as an incomplete run).
        """
        run = cls(root)
        if not run.root.is_dir():
            raise BadInputError(f"{run.root}: no such run folder; {hint}")
        if not run.config_path.is_file():
            raise BadInputError(f"{run.root}: not a run folder (no config.json); {hint}")
        return run

    # --- paths (docs/contracts.md, "Run folder")
    @property
    def config_path(self) -> Path:
        """``config.json``: options, export.json, machine, versions."""
        return self.root / "config.json"

    @property
    def metrics_path(self) -> Path:
        """``metrics.json``: rebuilt from every finished fold."""
        return self.root / "metrics.json"

    @property
    def per_sample_path(self) -> Path:
        """``per_sample.csv``: key, fold, iou, pixel_acc of every finished fold."""
        return self.root / "per_sample.csv"

    @property
    def predictions_dir(self) -> Path:
        """``predictions/``: ``<key>.png`` out-of-fold predictions in the photo frame."""
        return self.root / "predictions"

    @property
    def confidence_dir(self) -> Path:
        """``confidence/``: ``<key>.npz`` out-of-fold softmax in the crop frame."""
        return self.root / "confidence"

    @property
    def folds_dir(self) -> Path:
        """``folds/``: one folder per fold."""
        return self.root / "folds"

    def fold_dir(self, fold: int) -> Path:
        """``folds/<k>/``."""
        return self.folds_dir / str(int(fold))

    def checkpoint_path(self, fold: int) -> Path:
        """``folds/<k>/best.pt``: the fold's kept checkpoint."""
        return self.fold_dir(fold) / "best.pt"

    def done_path(self, fold: int) -> Path:
        """``folds/<k>/done``: written once the fold's evaluation is complete."""
        return self.fold_dir(fold) / "done"

    def scores_path(self, fold: int) -> Path:
        """``folds/<k>/scores.json``: the fold's metrics entry and training facts."""
        return self.fold_dir(fold) / "scores.json"

    def fold_per_sample_path(self, fold: int) -> Path:
        """``folds/<k>/per_sample.csv``."""
        return self.fold_dir(fold) / "per_sample.csv"

    def prediction_path(self, key: str) -> Path:
        """``predictions/<key>.png``."""
        return self.predictions_dir / f"{key}.png"

    def confidence_path(self, key: str) -> Path:
        """``confidence/<key>.npz``."""
        return self.confidence_dir / f"{key}.npz"

    # --- contents
    def read_json(self, path: Path, *, what: str, hint: str = RUN_HINT) -> dict[str, Any]:
        """A JSON object of this run folder.

        Raises:
            BadInputError: missing, unreadable, or not an object (one line naming the file).
        """
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError as e:
            raise BadInputError(f"{path}: missing ({what}); {hint}") from e
        except (OSError, ValueError) as e:
            raise BadInputError(f"{path}: unreadable {what} ({e}); {hint}") from e
        if not isinstance(doc, dict):
            raise BadInputError(f"{path}: {what} is not a JSON object; {hint}")
        return doc

    @cached_property
    def config(self) -> dict[str, Any]:
        """``config.json`` (read once).

        Raises:
            BadInputError: missing or not a JSON object.
        """
        return self.read_json(self.config_path, what="the run's config")

    @property
    def options(self) -> dict[str, Any]:
        """The train-eval options (``config.json`` ``options``; else its top-level plain values)."""
        opts = self.config.get("options")
        if isinstance(opts, dict):
            return opts
        return {k: v for k, v in self.config.items() if not isinstance(v, (dict, list))}

    @property
    def arch(self) -> str | None:
        """The architecture (``fpn``, ...), or None when config.json does not say."""
        return self.config.get("arch") or self.options.get("arch")

    @property
    def encoder(self) -> str | None:
        """The encoder name, or None when config.json does not say."""
        return self.config.get("encoder") or self.options.get("encoder")

    @property
    def input_size(self) -> tuple[int, int] | None:
        """``(H, W)`` of the model input: the ``image_size`` (and ``image_width``) options, else
        the export's ``size`` (``S`` or ``[H, W]``); None when neither says."""
        height = self.options.get("image_size")
        if height:
            return int(height), int(self.options.get("image_width") or height)
        return size_from_json((self.config.get("export") or {}).get("size"))

    @property
    def tta(self) -> bool:
        """Whether the run evaluated its test folds with flip test-time augmentation (False for a
        run made before the option existed)."""
        return bool(self.options.get("tta", False))

    @property
    def tta_scales(self) -> tuple[float, ...]:
        """The test-time scales the run evaluated its test folds at, with :attr:`tta` (``(1.0,)``:
        flip only; also for a run made before the option existed).

        Raises:
            BadInputError: config.json holds bad scales.
        """
        from clothcurate.training.config import check_tta_scales  # light: no torch

        try:
            return check_tta_scales(self.options.get("tta_scales", (1.0,)))
        except BadInputError as e:
            raise BadInputError(f"{self.config_path}: {e}") from e

    @property
    def recorded_export(self) -> str | None:
        """The export folder as config.json records it (it may not exist on this machine)."""
        value = self.config.get("export_dir") or self.options.get("data_dir") or self.config.get("data_dir")
        return str(value) if value else None

    @property
    def export_dir(self) -> Path | None:
        """The run's export folder when it is here (it holds ``folds.json``), else None."""
        recorded = self.recorded_export
        if not recorded:
            return None
        p = Path(recorded).expanduser()
        for candidate in (p,) if p.is_absolute() else (p, self.root / p):
            if (candidate / "folds.json").is_file():
                return candidate.resolve()
        return None

    def export(self, *, complete: bool = False) -> ExportFolder:
        """The run's export folder (by default only its ``folds.json`` is needed).

        Args:
            complete: require the export's images and masks too (as training does).

        Raises:
            BadInputError: config.json names no export folder, or it is not here.
        """
        recorded = self.recorded_export
        if not recorded:
            raise BadInputError(f"{self.config_path}: names no export folder (export_dir); {RUN_HINT}")
        where = self.export_dir
        if where is None:
            raise BadInputError(f"{Path(recorded) / 'folds.json'}: missing; the run's export folder holds the crop "
                                f"boxes, put it back at {recorded} (or fix export_dir in {self.config_path})")
        return read_export(where, complete=complete,
                           hint=f"the export folder of run {self.root} is damaged; re-export and re-run train-eval")

    def finished_folds(self) -> list[int]:
        """Folds whose evaluation is complete (``folds/<k>/done``), ascending."""
        return sorted(int(p.parent.name) for p in self.folds_dir.glob("*/done") if p.parent.name.isdigit())

    def checkpoints(self) -> dict[int, Path]:
        """``{fold: best.pt}`` of every fold that has a kept checkpoint."""
        found = {int(p.parent.name): p for p in self.folds_dir.glob("*/best.pt") if p.parent.name.isdigit()}
        return dict(sorted(found.items()))

    def predictions(self) -> dict[str, Path]:
        """``{key: predictions/<key>.png}``, sorted by key."""
        return {p.stem: p for p in sorted(self.predictions_dir.glob("*.png"))}

    def confidence_maps(self) -> dict[str, Path]:
        """``{key: confidence/<key>.npz}``, sorted by key."""
        return {p.stem: p for p in sorted(self.confidence_dir.glob("*.npz"))}

    def fold_scores(self, fold: int) -> dict[str, Any]:
        """``folds/<k>/scores.json`` (``entry``: the metrics.json fold entry; ``fit``: training facts)."""
        return self.read_json(self.scores_path(fold), what=f"fold {fold} scores",
                              hint="delete the fold's done marker and re-run train-eval")

    def fold_per_sample(self, fold: int) -> list[dict[str, str]]:
        """Rows of ``folds/<k>/per_sample.csv`` (key, fold, iou, pixel_acc as text)."""
        path = self.fold_per_sample_path(fold)
        try:
            with path.open(newline="") as f:
                return list(csv.DictReader(f))
        except OSError as e:
            raise BadInputError(f"{path}: unreadable ({e}); delete the fold's done marker and re-run train-eval") from e
