"""Reading a train-eval run folder's out-of-fold confidence maps (docs/contracts.md).

``RUN_DIR/confidence/<key>.npz`` holds ``probs``: (K, h, w) uint8 softmax (255 = 1.0) in the crop
frame; the frame (the export's ``crop_box``, or the whole photo) and the photo size come from the
run's export folder (:meth:`clothcurate.folders.RunFolder.export`). Only its ``folds.json`` is
read, so the export's images may be gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clothcurate.curation.flags.internal.confident import (
    ModelEvidence,
    evidence_from_mask,
)
from clothcurate.errors import BadInputError
from clothcurate.folders.run import RunFolder
from clothcurate.labelmaps import NUM_CLASSES

_HINT = "pass --model the --out folder of a finished train-eval run"


@dataclass(frozen=True)
class ConfidenceRef:
    """Where one sample's confidence map is and which part of the photo it covers.

    Attributes:
        path: the ``.npz`` file.
        frame_box: ``(x0, y0, x1, y1)`` photo pixels (x1/y1 exclusive).
        orig_size: ``(W, H)`` of the photo.
    """

    path: str
    frame_box: tuple[int, int, int, int]
    orig_size: tuple[int, int]


def confidence_refs(run_dir: str | Path) -> dict[str, ConfidenceRef]:
    """Every confidence map of a run, by sample key.

    Args:
        run_dir: the train-eval run folder.

    Returns:
        ``{key: ConfidenceRef}`` for every ``confidence/<key>.npz``.

    Raises:
        BadInputError: no run folder, not a run folder (no ``config.json``), no confidence maps (a
            run from before they existed: re-run train-eval), the export folder's ``folds.json``
            missing, or a map whose key ``folds.json`` does not list.
    """
    run = RunFolder.open(Path(run_dir).expanduser().resolve(), hint=_HINT)
    maps = run.confidence_maps()
    if not maps:
        raise BadInputError(f"{run.confidence_dir}: no <key>.npz confidence maps; confident learning needs "
                            "the softmax, re-run train-eval (it writes them for every test sample)")
    export = run.export()
    unknown = [key for key in maps if export.get(key) is None]
    if unknown:
        raise BadInputError(f"{maps[unknown[0]]}: key not in {export.folds_path}; the run "
                            "and its export folder do not match")
    refs = {}
    for key, path in maps.items():
        sample = export.get(key)
        refs[key] = ConfidenceRef(str(path), sample.frame_box, sample.orig_size)
    return refs


def load_evidence(key: str, gt: np.ndarray, ref: ConfidenceRef) -> ModelEvidence:
    """Read one confidence map and pair it with the sample's full-frame annotation.

    Args:
        key: the sample key, for messages.
        gt: (H, W) uint8 given class ids.
        ref: where its map is.

    Returns:
        The evidence.

    Raises:
        BadInputError: unreadable map, not (K, h, w) uint8, or a photo size that differs from
            the annotation's.
    """
    try:
        with np.load(ref.path) as npz:
            probs = npz["probs"]
    except (OSError, KeyError, ValueError) as e:
        raise BadInputError(f"{ref.path}: unreadable confidence map of sample {key} ({e}); re-run train-eval") from e
    if probs.ndim != 3 or probs.shape[0] != NUM_CLASSES or probs.dtype != np.uint8:
        raise BadInputError(f"{ref.path}: probs is {probs.dtype} {probs.shape}, expected uint8 "
                            f"({NUM_CLASSES}, h, w); re-run train-eval")
    if tuple(gt.shape[::-1]) != tuple(ref.orig_size):
        raise BadInputError(f"{ref.path}: sample {key}'s annotation is {gt.shape[1]}x{gt.shape[0]} but the run "
                            f"saw a {ref.orig_size[0]}x{ref.orig_size[1]} photo; the run belongs to another dataset")
    return evidence_from_mask(gt, probs, frame_box=ref.frame_box, orig_size=ref.orig_size)
