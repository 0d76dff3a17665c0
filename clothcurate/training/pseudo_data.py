"""The pseudo-labelled tag-only photos as extra training images (``train-eval --pseudo RUN_DIR``).

Shapes: N exported samples, M pseudo-labelled crops, H x W = the model input.

The crops of ``RUN_DIR/pseudo/`` (:class:`~clothcurate.folders.pseudo.PseudoFolder`, written by
``clothcurate pseudo-label``) are decoded once and appended to the export's
:class:`~clothcurate.training.data.DecodedCache` (positions N..N+M-1); before fold k trains, fold
k's pseudo-masks are written into those positions' mask slots and the positions join fold k's
*training* part only: never its validation or test part. Pixels without a pseudo-label hold
:data:`~clothcurate.folders.pseudo.IGNORE_INDEX`, which the losses skip
(:func:`clothcurate.training.loop.build_loss`). The extra images go through the same augmentation
as the labelled ones (a pixel rotated in from outside the crop becomes background, as there).

Example::

    pseudo = PseudoSet.open("runs/teacher", export=export, folds=[0])
    cache = pseudo.extend(cache)            # N + M samples
    extra = pseudo.fill(cache, fold=0)      # positions N..N+M-1, fold 0's masks in place
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from clothcurate.errors import BadInputError
from clothcurate.folders.export import ExportFolder
from clothcurate.folders.pseudo import IGNORE_INDEX, PseudoFolder, PseudoSample
from clothcurate.geometry import resize_image, resize_mask
from clothcurate.images import read_image
from clothcurate.masks import read_mask
from clothcurate.training.data import DecodedCache

__all__ = ["PseudoSet"]

_HINT = "re-run clothcurate pseudo-label on the teacher run"


class PseudoSet:
    """A teacher run's pseudo-labelled crops, checked against the student's export.

    Args:
        folder: the teacher's ``pseudo/`` folder.
        samples: the crops to train on (those with a person crop).
        num_classes: K; a mask value must be below K or be the ignore index.
    """

    def __init__(self, folder: PseudoFolder, samples: Sequence[PseudoSample], *, num_classes: int):
        self.folder = folder
        self.samples = list(samples)
        self.num_classes = num_classes
        self.offset: int | None = None

    def __len__(self) -> int:
        return len(self.samples)

    @classmethod
    def open(cls, run_dir: str | Path, *, export: ExportFolder, folds: Sequence[int]) -> PseudoSet:
        """The pseudo-masks of ``run_dir`` for a student on ``export`` training ``folds``.

        Raises:
            BadInputError: no pseudo-masks, masks of a teacher with other test folds, a fold's
                masks missing (:meth:`PseudoFolder.check_for`), or other classes than the export's.
        """
        pf = PseudoFolder.open(run_dir)
        pf.check_for(export, folds=folds)
        classes = pf.manifest().get("classes")
        if classes != list(export.classes):
            raise BadInputError(f"{pf.manifest_path}: classes {classes} differ from the export's "
                                f"{export.classes}; {_HINT}")
        return cls(pf, pf.usable(), num_classes=len(export.classes))

    def describe(self) -> dict[str, Any]:
        """What the student trains with (for ``scores.json``)."""
        doc = self.folder.manifest()
        settings = doc["settings"]  # a manifest without tag_rule was made by the "drop" rule
        return {"run": str(self.folder.run_dir), "samples": len(self), "threshold": settings["threshold"],
                "tag_rule": settings.get("tag_rule", "drop"), "detector": settings["detector"]}

    def extend(self, cache: DecodedCache, *, threads: int | None = None) -> DecodedCache:
        """A cache of the export's samples followed by the M crops (their masks empty until
        :meth:`fill`).

        Args:
            cache: the export's decoded samples (N).
            threads: decoding threads (default: CPU count, at most 16).

        Returns:
            A new shared-memory cache of N + M samples (the first N copied from ``cache``).

        Raises:
            BadInputError: a crop that cannot be read.
        """
        size, n = cache.size, len(cache)
        images = torch.empty((n + len(self), *size, 3), dtype=torch.uint8)
        images[:n] = cache.images
        masks = torch.full((n + len(self), *size), IGNORE_INDEX, dtype=torch.uint8)
        masks[:n] = cache.masks
        img_np = images.numpy()

        def work(i: int) -> None:
            s = self.samples[i]
            img_np[n + i] = resize_image(read_image(self.folder.image_path(s.key), sample=s.key, hint=_HINT), size)

        with ThreadPoolExecutor(max_workers=threads or min(16, os.cpu_count() or 1)) as pool:
            list(pool.map(work, range(len(self))))
        self.offset = n
        return DecodedCache(images=images.share_memory_(), masks=masks.share_memory_())

    def fill(self, cache: DecodedCache, fold: int) -> list[int]:
        """Put fold ``fold``'s pseudo-masks into the crops' mask slots.

        Args:
            cache: the cache :meth:`extend` returned (shared memory: loader workers started
                afterwards see the new masks).
            fold: the fold about to train.

        Returns:
            The crops' positions in ``cache`` (to add to the fold's training part).

        Raises:
            BadInputError: :meth:`extend` not called, or a missing, unreadable or out-of-range mask.
        """
        if self.offset is None:
            raise BadInputError("PseudoSet.fill: call extend() first")
        size, n = cache.size, self.offset
        out = cache.masks.numpy()
        for i, s in enumerate(self.samples):
            path = self.folder.mask_path(fold, s.key)
            mask = read_mask(path, sample=s.key, hint=_HINT)
            bad = (mask >= self.num_classes) & (mask != IGNORE_INDEX)
            if bad.any():
                raise BadInputError(f"sample {s.key}: pseudo-mask {path} has class id {int(mask[bad].max())} "
                                    f"outside 0..{self.num_classes - 1} and not the ignore index {IGNORE_INDEX}; {_HINT}")
            out[n + i] = resize_mask(mask, size)
        return list(range(n, n + len(self)))

    @staticmethod
    def labelled_share(cache: DecodedCache, positions: Sequence[int]) -> float:
        """Share of the pixels of some cache positions that hold a class (not ignored)."""
        if not positions:
            return 0.0
        m = cache.masks[list(positions)]
        return float((m != IGNORE_INDEX).float().mean())
