"""Class frequency (the paper's Fig. 4) and fold statistics of an export folder.

Computed from the export's own files (``folds.json`` and ``masks/``, docs/contracts.md), so the
figures describe exactly the curated data a run was trained on.

Shapes: K = 15 classes, k = folds.

Example::

    st = export_stats(Path("folds/"))
    st.images_per_class          # (K,) images in which each class appears
    st.pixel_share               # (K,) fraction of all mask pixels
    st.fold_images[f, c]         # images of fold f that contain class c
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clothcurate.folders.export import read_export
from clothcurate.labelmaps import NUM_CLASSES
from clothcurate.masks import read_mask

__all__ = ["ExportStats", "export_stats"]


@dataclass(frozen=True)
class ExportStats:
    """Class and fold statistics of one export.

    Attributes:
        export_dir: the export folder.
        meta: its ``export.json`` (``{}`` when absent).
        n_samples: samples in ``folds.json``.
        k: number of folds.
        fold_sizes: (k,) samples per fold.
        fold_images: (k, K) images per fold that contain each class.
        fold_pixels: (k, K) int64 mask pixels per fold and class.
    """

    export_dir: Path
    meta: dict[str, Any]
    n_samples: int
    k: int
    fold_sizes: np.ndarray
    fold_images: np.ndarray
    fold_pixels: np.ndarray

    @property
    def images_per_class(self) -> np.ndarray:
        """(K,) images that contain each class."""
        return self.fold_images.sum(0)

    @property
    def pixels_per_class(self) -> np.ndarray:
        """(K,) int64 mask pixels of each class."""
        return self.fold_pixels.sum(0)

    @property
    def pixel_share(self) -> np.ndarray:
        """(K,) fraction of all mask pixels that belong to each class."""
        p = self.pixels_per_class
        return p / max(int(p.sum()), 1)

    @property
    def left_out(self) -> dict[str, int]:
        """Samples left out of the export and why (``{"reject": n, "bg_only": n}``)."""
        return dict(self.meta.get("left_out") or {})


def export_stats(export_dir: Path) -> ExportStats:
    """Count images and pixels per class and fold in an export folder.

    Args:
        export_dir: an ``export-folds --out`` folder with ``folds.json`` and ``masks/``.

    Returns:
        The statistics.

    Raises:
        BadInputError: ``folds.json``, ``export.json`` or a mask it lists is missing, unreadable or
            (a mask) holds a class id outside the 15 classes.
    """
    export = read_export(export_dir, complete=False, hint="re-run export-folds")
    meta, samples, k = export.meta, export.samples, export.k
    sizes = np.zeros(k, dtype=np.int64)
    images = np.zeros((k, NUM_CLASSES), dtype=np.int64)
    pixels = np.zeros((k, NUM_CLASSES), dtype=np.int64)
    for s in samples:
        mask = read_mask(s.mask, sample=s.key, hint="re-run export-folds", num_classes=NUM_CLASSES)
        counts = np.bincount(mask.ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES]
        f = s.fold
        sizes[f] += 1
        pixels[f] += counts
        images[f] += counts > 0
    return ExportStats(export_dir=export_dir, meta=meta, n_samples=len(samples), k=k, fold_sizes=sizes,
                       fold_images=images, fold_pixels=pixels)

