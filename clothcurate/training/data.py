"""Read an export folder (docs/contracts.md) into decoded tensors, without FiftyOne.

Shapes: N samples, H x W = the model input (square ``S x S``, or portrait such as 384 x 256),
K classes.

Every image and mask is decoded once, resized to ``H x W`` if needed, and kept as one uint8
tensor in shared memory (:class:`DecodedCache`); data-loader workers, whatever their start
method, read that memory instead of decoding again, and every epoch reuses it. An export made
with ``--crop person --size HxW`` is used as it is; any other size of the same aspect ratio (or
an export of whole photos, ``size`` null) is resized plainly to ``H x W`` (no letterbox; predictions
are resized back to the crop box, or the whole photo, when pasted back). Training refuses an
export whose crops have another aspect ratio than the model input (``train-eval``).

Example::

    export = read_export("folds/")
    train, test = export.fold_parts(0)
    cache = decode_samples(export.samples, size=320)
    ds = SegmentationDataset(cache, train, transform=tf)   # positions in export.samples
    image, mask, i = ds[0]        # (3, H, W) uint8, (H, W) uint8, position in the cache
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from clothcurate.errors import BadInputError
from clothcurate.geometry import Size, as_size, resize_image, resize_mask
from clothcurate.folders.export import ExportFolder, ExportSample, read_export
from clothcurate.images import read_image
from clothcurate.masks import read_mask

__all__ = ["ExportSample", "ExportFolder", "read_export", "DecodedCache", "decode_samples",
           "SegmentationDataset"]


@dataclass
class DecodedCache:
    """Decoded images and masks of N samples, in shared memory.

    Attributes:
        images: (N, H, W, 3) uint8 RGB.
        masks: (N, H, W) uint8 class ids.
    """

    images: torch.Tensor
    masks: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def size(self) -> Size:
        """``(H, W)`` of every image."""
        return int(self.images.shape[1]), int(self.images.shape[2])


def _decode_one(sample: ExportSample, size: Size, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode one image (to RGB) and its mask, both resized to ``size`` (H, W)."""
    image = read_image(sample.image, sample=sample.key, hint="re-run export-folds with --overwrite")  # RGB
    mask = read_mask(sample.mask, sample=sample.key, hint="re-run export-folds with --overwrite")
    if mask.shape != image.shape[:2]:
        raise BadInputError(f"{sample.mask}: mask {mask.shape} and image {image.shape[:2]} differ in size "
                            f"(sample {sample.key}); re-run export-folds with --overwrite")
    if int(mask.max()) >= num_classes:
        raise BadInputError(f"{sample.mask}: class id {int(mask.max())} outside 0..{num_classes - 1} "
                            f"(sample {sample.key}); re-run export-folds")
    return resize_image(image, size), resize_mask(mask, size)


def decode_samples(samples: Sequence[ExportSample], *, size: int | Sequence[int], num_classes: int = 15,
                   threads: int | None = None, progress: bool = False) -> DecodedCache:
    """Decode every sample once into shared-memory uint8 tensors (OpenCV, in threads).

    Args:
        samples: the samples to decode (cache position n = ``samples[n]``).
        size: ``(H, W)`` of the model input (``S``: square); other sizes are resized (image:
            area/linear, mask: nearest).
        num_classes: K; a mask value >= K is bad input.
        threads: decoding threads (default: CPU count, at most 16).
        progress: show a tqdm bar.

    Returns:
        The decoded cache.

    Raises:
        BadInputError: an unreadable image or mask, mismatched sizes, or a class id out of range.
    """
    n, size = len(samples), as_size(size)
    images = torch.empty((n, *size, 3), dtype=torch.uint8).share_memory_()
    masks = torch.empty((n, *size), dtype=torch.uint8).share_memory_()
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
        transform: ``transform(image=(H, W, 3) uint8, mask=(H, W) uint8)`` returning a dict whose
            ``image`` is a (3, H, W) uint8 tensor and ``mask`` an (H, W) tensor (see
            :func:`clothcurate.training.augment.build_transform`).
        paste: applied before ``transform``: ``paste(image, mask, position=pos) -> (image, mask)``
            on copies of the cached arrays (:class:`clothcurate.training.paste.GarmentPaste`);
            None: none.

    Items are ``(image (3, H, W) uint8, mask (H, W) uint8, position)``: scaling, normalisation
    and the int64 targets are made on the device (:func:`clothcurate.training.loop.to_device`).
    """

    def __init__(self, cache: DecodedCache, positions: Sequence[int], *, transform: Callable[..., dict],
                 paste: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None):
        self.cache = cache
        self.positions = [int(p) for p in positions]
        self.transform = transform
        self.paste = paste

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        pos = self.positions[i]
        image, mask = self.cache.images[pos].numpy().copy(), self.cache.masks[pos].numpy().copy()
        if self.paste is not None:
            image, mask = self.paste(image, mask, position=pos)
        out = self.transform(image=image, mask=mask)
        return out["image"], torch.as_tensor(out["mask"], dtype=torch.uint8), pos
