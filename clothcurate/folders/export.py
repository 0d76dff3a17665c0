"""The export folder (``export-folds --out``, docs/contracts.md): one reader for every stage.

Training reads the whole folder (:func:`read_export`); the model-assisted checks, the report and
inference need only ``folds.json``'s crop boxes and photo sizes, and may run where the export's
images are gone (``read_export(..., complete=False)``). Imports neither torch nor FiftyOne.

Example::

    export = read_export("folds/")
    train, test = export.fold_parts(0)
    export.samples[test[0]].frame_box      # (x0, y0, x1, y1) of the photo the image shows
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clothcurate.errors import BadInputError
from clothcurate.labelmaps import TARGET_CLASSES

__all__ = ["ExportSample", "ExportFolder", "read_export", "EXPORT_FILES", "size_to_json", "size_from_json"]

#: what a complete export folder holds (docs/contracts.md)
EXPORT_FILES = ("export.json", "classes.json", "folds.json", "images", "masks")
_HINT = "run clothcurate export-folds --out DIR and pass that DIR to --data"


def size_to_json(size: Sequence[int] | None) -> int | list[int] | None:
    """A crop size ``(H, W)`` as ``export.json`` (and the pseudo-label manifest) store it: one
    number for a square, as files written before portrait crops hold it, else ``[H, W]``."""
    if size is None:
        return None
    h, w = (int(v) for v in size)
    return h if h == w else [h, w]


def size_from_json(value: Any) -> tuple[int, int] | None:
    """The inverse of :func:`size_to_json`: ``S`` -> ``(S, S)``, ``[H, W]`` -> ``(H, W)``, null -> None."""
    if not value:
        return None
    if isinstance(value, (int, float)):
        return int(value), int(value)
    h, w = (int(v) for v in value)
    return h, w


@dataclass(frozen=True)
class ExportSample:
    """One sample of ``folds.json``.

    Attributes:
        key: stable sample key (``ccp_0001``).
        fold: test fold 0..k-1.
        image: absolute path of the exported image.
        mask: absolute path of the exported 15-class mask.
        orig_size: ``(W, H)`` of the original photo.
        crop_box: ``(x0, y0, x1, y1)`` in original-photo pixels, or None (whole photo).
        classes: names of the target classes present in the mask.
    """

    key: str
    fold: int
    image: Path
    mask: Path
    orig_size: tuple[int, int]
    crop_box: tuple[int, int, int, int] | None
    classes: tuple[str, ...]

    @property
    def frame_box(self) -> tuple[int, int, int, int]:
        """The box of the photo the exported image shows: ``crop_box``, or the whole photo."""
        return self.crop_box if self.crop_box is not None else (0, 0, *self.orig_size)


@dataclass
class ExportFolder:
    """An export folder read from disk.

    Attributes:
        root: the folder.
        meta: ``export.json`` as a dict (empty when read with ``complete=False`` and it is gone).
        classes: the K class names (index = mask value).
        k: number of folds.
        samples: every sample, in ``folds.json`` order.
    """

    root: Path
    meta: dict[str, Any]
    classes: list[str]
    k: int
    samples: list[ExportSample]
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._index = {s.key: i for i, s in enumerate(self.samples)}

    @property
    def folds_path(self) -> Path:
        """``folds.json``."""
        return self.root / "folds.json"

    @property
    def crop_size(self) -> tuple[int, int] | None:
        """``(H, W)`` of the person crops (``export.json``'s ``size``: ``S`` or ``[H, W]``), or
        None (whole photos, crops at their own size, or unknown)."""
        return size_from_json(self.meta.get("size")) if self.meta.get("crop") else None

    def check_input_size(self, input_size: Sequence[int], *, option: str = "--image-size") -> None:
        """Refuse a model input whose aspect ratio differs from the person crops' (the crops
        would be squashed or stretched); whole-photo exports take any input size.

        Args:
            input_size: ``(H, W)`` of the model input.
            option: the option that set it, for the message.

        Raises:
            BadInputError: person crops of another aspect ratio than ``input_size``.
        """
        if not self.meta.get("crop"):
            return
        crop = self.crop_size or (1, 1)  # crops at their own size are grown to squares
        h, w = (int(v) for v in input_size)
        if abs(crop[0] / crop[1] - h / w) > 0.01 * h / w:
            shown, fit = (f"{crop[0]}x{crop[1]} (H x W)", f"{crop[0]}x{crop[1]}") if self.crop_size else ("square", "320")
            raise BadInputError(f"{self.root}: its person crops are {shown} but {option} {h}x{w} has another "
                                f"aspect ratio, so every crop would be distorted; pass {option} with the crops' "
                                f"aspect (e.g. {option} {fit}) or export again with --size {h}x{w}")

    def index(self, key: str) -> int:
        """Position of a sample key in :attr:`samples`."""
        return self._index[key]

    def get(self, key: str) -> ExportSample | None:
        """The sample with this key, or None."""
        i = self._index.get(key)
        return None if i is None else self.samples[i]

    def fold_parts(self, fold: int) -> tuple[list[int], list[int]]:
        """Training and test part of one fold.

        Returns:
            ``(train, test)``: positions in :attr:`samples` (test = samples whose ``fold`` is ``fold``).
        """
        train = [i for i, s in enumerate(self.samples) if s.fold != fold]
        test = [i for i, s in enumerate(self.samples) if s.fold == fold]
        return train, test

    def presence(self, positions: Sequence[int]) -> np.ndarray:
        """Class presence of some samples.

        Returns:
            (len(positions), K) bool, ``[n, c]`` true when class c is in sample n's mask.
        """
        col = {name: c for c, name in enumerate(self.classes)}
        out = np.zeros((len(positions), len(self.classes)), dtype=bool)
        for row, i in enumerate(positions):
            out[row, [col[name] for name in self.samples[i].classes if name in col]] = True
        return out


def _read_json(path: Path, hint: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BadInputError(f"{path}: unreadable export file ({e}); {hint}") from e


def _sample(root: Path, rec: Any, where: Path, hint: str, *, complete: bool) -> ExportSample:
    """One ``folds.json`` record; without ``complete``, a record lacking ``image``/``mask`` gets the
    contract's ``images/<key>.jpg`` / ``masks/<key>.png`` (readers of crop boxes never open them)."""
    if not isinstance(rec, dict):
        raise BadInputError(f"{where}: a sample entry is {type(rec).__name__}, not an object; {hint}")
    try:
        box, key = rec.get("crop_box"), str(rec["key"])
        image = rec["image"] if complete else rec.get("image", f"images/{key}.jpg")
        mask = rec["mask"] if complete else rec.get("mask", f"masks/{key}.png")
        return ExportSample(key=key, fold=int(rec["fold"]), image=root / image, mask=root / mask,
                            orig_size=tuple(int(v) for v in rec["orig_size"]),
                            crop_box=None if box is None else tuple(int(v) for v in box),
                            classes=tuple(rec.get("classes", ())))
    except (KeyError, TypeError, ValueError) as e:
        raise BadInputError(f"{where}: sample {rec.get('key', '?')!r} lacks or has a bad {e} "
                            f"(see docs/contracts.md); {hint}") from e


def read_export(data_dir: str | Path, *, complete: bool = True, hint: str = _HINT) -> ExportFolder:
    """Read and check an export folder (its JSON files; images/masks are only checked to exist).

    Args:
        data_dir: the folder written by ``clothcurate export-folds``.
        complete: require every file of the contract and every sample's image and mask (what
            training needs); False reads ``folds.json`` alone (``export.json`` and
            ``classes.json`` when present, else the 15 target classes), for readers that only
            need the crop boxes and photo sizes.
        hint: what the user should do, ending every error message.

    Returns:
        The folder's samples, classes and metadata.

    Raises:
        BadInputError: the folder, one of its files, or a sample's image or mask is missing, or a
            JSON file is malformed (one line naming the file).
    """
    root = Path(data_dir).expanduser().resolve()
    if not root.is_dir():
        raise BadInputError(f"{root}: no such export folder; {hint}")
    for name in EXPORT_FILES if complete else ("folds.json",):
        if not (root / name).exists():
            raise BadInputError(f"{root / name}: missing, {root} is not a complete export folder; {hint}")
    meta = _read_json(root / "export.json", hint) if (root / "export.json").exists() else {}
    classes_doc = (_read_json(root / "classes.json", hint) if (root / "classes.json").exists()
                   else {"classes": list(TARGET_CLASSES)})
    folds_doc = _read_json(root / "folds.json", hint)
    if not isinstance(meta, dict):
        raise BadInputError(f"{root / 'export.json'}: not a JSON object; {hint}")
    classes = classes_doc.get("classes") if isinstance(classes_doc, dict) else None
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise BadInputError(f"{root / 'classes.json'}: no 'classes' list; {hint}")
    records = folds_doc.get("samples") if isinstance(folds_doc, dict) else None
    if not records or not isinstance(records, list):
        raise BadInputError(f"{root / 'folds.json'}: no 'samples'; {hint}")
    samples = [_sample(root, rec, root / "folds.json", hint, complete=complete) for rec in records]
    if complete:
        for s in samples:
            for path in (s.image, s.mask):
                if not path.is_file():
                    raise BadInputError(f"{path}: missing (sample {s.key} of {root / 'folds.json'}); "
                                        "re-run export-folds with --overwrite")
    try:
        k = int(folds_doc.get("k", meta.get("folds", 1 + max(s.fold for s in samples))))
    except (TypeError, ValueError) as e:
        raise BadInputError(f"{root / 'folds.json'}: 'k' is not a number ({e}); {hint}") from e
    bad = [s.key for s in samples if not 0 <= s.fold < k]
    if bad:
        raise BadInputError(f"{root / 'folds.json'}: sample {bad[0]} has a fold outside 0..{k - 1}; {hint}")
    return ExportFolder(root=root, meta=meta, classes=classes, k=k, samples=samples)
