"""Atomic file writes shared by every stage: nothing is ever half-written.

Each writer puts the data in a temporary file beside the target (same folder, so the final
``os.replace`` is atomic) and renames it into place. Dependency-light: importing this module pulls
in neither FiftyOne nor PyTorch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = ["atomic_path", "write_bytes", "write_json", "write_mask_png", "MASK_PNG_PARAMS"]

# Label masks are long runs of few values: no per-row filter search and zlib level 1 with the
# run-length strategy write a CCP mask in about 1.7 ms (5 KiB), against 6.2 ms (8 KiB) with
# OpenCV's defaults (measured on this project's 2-core machine).
MASK_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
                   cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temporary name keeps the suffix (writers such as OpenCV pick the format from it) and is
    a plain new file, so the user's umask applies (``mkstemp`` would leave mode 0600).

    Args:
        path: the final file; its folder must exist.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (creating the folder)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, json.dumps(obj, indent=indent).encode())


def write_mask_png(path: str | Path, mask: np.ndarray, params: list[int] | None = None) -> None:
    """Write an (H, W) uint8 label mask (or any image) as PNG atomically.

    Raises:
        OSError: OpenCV could not write the file.
    """
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(mask), MASK_PNG_PARAMS if params is None else params):
            raise OSError(f"cannot write {path}")
