"""Reading a train-eval run folder's out-of-fold confidence maps (docs/contracts.md).

``RUN_DIR/confidence/<key>.npz`` holds ``probs``: (K, h, w) uint8 softmax (255 = 1.0) in the crop
frame; the frame (the export's ``crop_box``, or the whole photo) and the photo size come from the
export folder's ``folds.json``, found through ``RUN_DIR/config.json`` (``export_dir``, else
``options.data_dir``). Only ``folds.json`` is read there, so the export's images may be gone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clothcurate.curation.flags.internal.confident import (
    ModelEvidence,
    evidence_from_mask,
)
from clothcurate.errors import BadInputError
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


def _read_json(path: Path, what: str) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BadInputError(f"{path}: unreadable {what} ({e}); {_HINT}") from e
    if not isinstance(doc, dict):
        raise BadInputError(f"{path}: {what} is not a JSON object; {_HINT}")
    return doc


def confidence_refs(run_dir: str | Path) -> dict[str, ConfidenceRef]:
    """Every confidence map of a run, by sample key.

    Args:
        run_dir: the train-eval run folder.

    Returns:
        ``{key: ConfidenceRef}`` for every ``confidence/<key>.npz``.

    Raises:
        BadInputError: no run folder, no ``config.json``, no confidence maps (a run from before
            they existed: re-run train-eval), the export folder's ``folds.json`` missing, or a
            map whose key ``folds.json`` does not list.
    """
    run_dir = Path(run_dir).expanduser().resolve()
    if not (run_dir / "config.json").is_file():
        raise BadInputError(f"{run_dir}: no config.json, not a train-eval run folder; {_HINT}")
    maps = sorted((run_dir / "confidence").glob("*.npz"))
    if not maps:
        raise BadInputError(f"{run_dir / 'confidence'}: no <key>.npz confidence maps; confident learning needs "
                            "the softmax, re-run train-eval (it writes them for every test sample)")
    config = _read_json(run_dir / "config.json", "run config")
    export_dir = config.get("export_dir") or (config.get("options") or {}).get("data_dir")
    if not export_dir:
        raise BadInputError(f"{run_dir / 'config.json'}: names no export folder (export_dir); {_HINT}")
    folds_path = Path(export_dir) / "folds.json"
    if not folds_path.is_file():
        raise BadInputError(f"{folds_path}: missing; the run's export folder holds the crop boxes, "
                            f"put it back at {export_dir} (or fix export_dir in {run_dir / 'config.json'})")
    frames = {}
    for rec in _read_json(folds_path, "folds.json").get("samples", []):
        try:
            size = tuple(int(v) for v in rec["orig_size"])
            box = rec.get("crop_box")
            frames[str(rec["key"])] = (tuple(int(v) for v in box) if box else (0, 0, *size), size)
        except (KeyError, TypeError, ValueError) as e:
            raise BadInputError(f"{folds_path}: sample {rec.get('key', '?')!r} has a bad {e}; "
                                "re-run export-folds") from e
    unknown = [p.stem for p in maps if p.stem not in frames]
    if unknown:
        raise BadInputError(f"{run_dir / 'confidence' / unknown[0]}.npz: key not in {folds_path}; the run "
                            "and its export folder do not match")
    return {p.stem: ConfidenceRef(str(p), *frames[p.stem]) for p in maps}


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
