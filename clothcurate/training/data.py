"""Read an export folder (docs/contracts.md) into decoded tensors, without FiftyOne.

Shapes: N samples, S = side of the (square) model input, K classes.

Every image and mask is decoded once, resized to ``S x S`` if needed, and kept as one uint8
tensor in shared memory (:class:`DecodedCache`); data-loader workers, whatever their start
method, read that memory instead of decoding again, and every epoch reuses it. An export made
with ``--crop person --size S`` is used as it is; any other size (or an export of whole photos,
``size`` null) is resized plainly to ``S x S`` (no letterbox: the aspect ratio is not kept, and
predictions are resized back to the crop box, or the whole photo, when pasted back).

Example::

    export = read_export("folds/")
    train, test = export.fold_parts(0)
    cache = decode_samples(export.samples, size=320)
    ds = SegmentationDataset(cache, train, transform=tf)   # positions in export.samples
    image, mask, i = ds[0]        # (3, S, S) uint8, (S, S) uint8, position in the cache
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from clothcurate.errors import BadInputError
from clothcurate.masks import read_mask

__all__ = ["ExportSample", "ExportFolder", "read_export", "DecodedCache", "decode_samples",
           "SegmentationDataset"]

_REQUIRED = ("export.json", "classes.json", "folds.json", "images", "masks")
_HINT = "run clothcurate export-folds --out DIR and pass that DIR to --data"


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
        meta: ``export.json`` as a dict.
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

    def index(self, key: str) -> int:
        """Position of a sample key in :attr:`samples`."""
        return self._index[key]

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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BadInputError(f"{path}: unreadable export file ({e}); {_HINT}") from e


def _sample(root: Path, rec: dict[str, Any], where: Path) -> ExportSample:
    try:
        box = rec.get("crop_box")
        return ExportSample(key=str(rec["key"]), fold=int(rec["fold"]), image=root / rec["image"],
                            mask=root / rec["mask"], orig_size=tuple(int(v) for v in rec["orig_size"]),
                            crop_box=None if box is None else tuple(int(v) for v in box),
                            classes=tuple(rec.get("classes", ())))
    except (KeyError, TypeError, ValueError) as e:
        raise BadInputError(f"{where}: sample {rec.get('key', '?')!r} lacks or has a bad {e} "
                            f"(see docs/contracts.md); {_HINT}") from e


def read_export(data_dir: str | Path) -> ExportFolder:
    """Read and check an export folder (its JSON files; images/masks are only checked to exist).

    Args:
        data_dir: the folder written by ``clothcurate export-folds``.

    Returns:
        The folder's samples, classes and metadata.

    Raises:
        BadInputError: the folder, one of its files, or a sample's image or mask is missing, or a
            JSON file is malformed (one line naming the file).
    """
    root = Path(data_dir).expanduser().resolve()
    if not root.is_dir():
        raise BadInputError(f"{root}: no such export folder; {_HINT}")
    for name in _REQUIRED:
        if not (root / name).exists():
            raise BadInputError(f"{root / name}: missing, {root} is not a complete export folder; {_HINT}")
    meta = _read_json(root / "export.json")
    classes_doc = _read_json(root / "classes.json")
    folds_doc = _read_json(root / "folds.json")
    classes = list(classes_doc.get("classes", [])) if isinstance(classes_doc, dict) else []
    if not classes:
        raise BadInputError(f"{root / 'classes.json'}: no 'classes' list; {_HINT}")
    records = folds_doc.get("samples") if isinstance(folds_doc, dict) else None
    if not records:
        raise BadInputError(f"{root / 'folds.json'}: no 'samples'; {_HINT}")
    samples = [_sample(root, rec, root / "folds.json") for rec in records]
    for s in samples:
        for path in (s.image, s.mask):
            if not path.is_file():
                raise BadInputError(f"{path}: missing (sample {s.key} of {root / 'folds.json'}); "
                                    "re-run export-folds with --overwrite")
    k = int(folds_doc.get("k", meta.get("folds", 1 + max(s.fold for s in samples))))
    bad = [s.key for s in samples if not 0 <= s.fold < k]
    if bad:
        raise BadInputError(f"{root / 'folds.json'}: sample {bad[0]} has a fold outside 0..{k - 1}; {_HINT}")
    return ExportFolder(root=root, meta=meta, classes=classes, k=k, samples=samples)


@dataclass
class DecodedCache:
    """Decoded images and masks of N samples, in shared memory.

    Attributes:
        images: (N, S, S, 3) uint8 RGB.
        masks: (N, S, S) uint8 class ids.
    """

    images: torch.Tensor
    masks: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def size(self) -> int:
        """S, the side of every image."""
        return int(self.images.shape[1])


def _decode_one(sample: ExportSample, size: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode one image (to RGB) and its mask, both resized to ``size x size``."""
    image = cv2.imread(str(sample.image), cv2.IMREAD_COLOR)
    if image is None:
        raise BadInputError(f"{sample.image}: not a readable image (sample {sample.key}); "
                            "re-run export-folds with --overwrite")
    mask = read_mask(sample.mask, sample=sample.key, hint="re-run export-folds with --overwrite")
    if mask.shape != image.shape[:2]:
        raise BadInputError(f"{sample.mask}: mask {mask.shape} and image {image.shape[:2]} differ in size "
                            f"(sample {sample.key}); re-run export-folds with --overwrite")
    if int(mask.max()) >= num_classes:
        raise BadInputError(f"{sample.mask}: class id {int(mask.max())} outside 0..{num_classes - 1} "
                            f"(sample {sample.key}); re-run export-folds")
    if image.shape[:2] != (size, size):
        shrink = size * size <= image.shape[0] * image.shape[1]
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), mask


def decode_samples(samples: Sequence[ExportSample], *, size: int, num_classes: int = 15,
                   threads: int | None = None, progress: bool = False) -> DecodedCache:
    """Decode every sample once into shared-memory uint8 tensors (OpenCV, in threads).

    Args:
        samples: the samples to decode (cache position n = ``samples[n]``).
        size: side S of the model input; other sizes are resized (image: area/linear, mask:
            nearest).
        num_classes: K; a mask value >= K is bad input.
        threads: decoding threads (default: CPU count, at most 16).
        progress: show a tqdm bar.

    Returns:
        The decoded cache.

    Raises:
        BadInputError: an unreadable image or mask, mismatched sizes, or a class id out of range.
    """
    n = len(samples)
    images = torch.empty((n, size, size, 3), dtype=torch.uint8).share_memory_()
    masks = torch.empty((n, size, size), dtype=torch.uint8).share_memory_()
    img_np, mask_np = images.numpy(), masks.numpy()

    def work(i: int) -> None:
        img_np[i], mask_np[i] = _decode_one(samples[i], size, num_classes)

    threads = threads or min(16, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in tqdm(pool.map(work, range(n)), total=n, desc="decode", unit="img", disable=not progress,
                      leave=False):
            pass
    return DecodedCache(images=images, masks=masks)


class SegmentationDataset(Dataset):
    """Some samples of a :class:`DecodedCache`, through an albumentations transform.

    Args:
        cache: the decoded samples (shared, never modified).
        positions: the cache positions this dataset serves, in order.
        transform: ``transform(image=(S, S, 3) uint8, mask=(S, S) uint8)`` returning a dict whose
            ``image`` is a (3, S, S) uint8 tensor and ``mask`` an (S, S) tensor (see
            :func:`clothcurate.training.augment.build_transform`).

    Items are ``(image (3, S, S) uint8, mask (S, S) uint8, position)``: scaling, normalisation
    and the int64 targets are made on the device (:func:`clothcurate.training.loop.to_device`).
    """

    def __init__(self, cache: DecodedCache, positions: Sequence[int], *, transform: Callable[..., dict]):
        self.cache = cache
        self.positions = [int(p) for p in positions]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        pos = self.positions[i]
        out = self.transform(image=self.cache.images[pos].numpy().copy(),
                             mask=self.cache.masks[pos].numpy().copy())
        return out["image"], torch.as_tensor(out["mask"], dtype=torch.uint8), pos
