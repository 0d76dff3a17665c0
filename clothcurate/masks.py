"""Reading and writing label masks (single-channel uint8 PNG), shared by every stage."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from clothcurate.atomic import write_bytes
from clothcurate.errors import BadInputError

__all__ = ["MASK_PNG_PARAMS", "read_mask", "write_mask_png"]

# Label masks are long runs of few values: no per-row filter search and zlib level 1 with the
# run-length strategy write a CCP mask in about 1.7 ms (5 KiB), against 6.2 ms (8 KiB) with
# OpenCV's defaults (measured on this project's 2-core machine).
MASK_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
                   cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]


def read_mask(path: str | Path, *, sample: str, hint: str, num_classes: int | None = None) -> np.ndarray:
    """Read an (H, W) uint8 label mask.

    Args:
        path: the PNG.
        sample: the sample it belongs to (named in the error).
        hint: what the user should do about a bad file (e.g. "re-run `clothcurate ingest`").
        num_classes: when given, every value must be below it.

    Raises:
        BadInputError: missing, unreadable, not single-channel uint8, or a value out of range (one line).
    """
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        problem = "is missing or unreadable"
    elif mask.ndim != 2 or mask.dtype != np.uint8:
        problem = f"is {mask.dtype} with shape {mask.shape}, not a single-channel uint8 PNG"
    elif num_classes is not None and int(mask.max()) >= num_classes:
        problem = f"has class id {int(mask.max())} >= {num_classes}"
    else:
        return mask
    raise BadInputError(f"sample {sample}: mask {path} {problem}; {hint}")


def write_mask_png(path: str | Path, mask: np.ndarray, params: list[int] | None = None) -> None:
    """Write an (H, W) uint8 label mask (or any image) as PNG atomically.

    Raises:
        OSError: the file cannot be written (with its errno: disk full, read-only ...).
    """
    # encoded by OpenCV, written by Python: cv2.imwrite would only say False on a full disk
    ok, data = cv2.imencode(".png", np.ascontiguousarray(mask), MASK_PNG_PARAMS if params is None else params)
    if not ok:
        raise OSError(f"cannot encode {path} as PNG")
    write_bytes(path, data.tobytes())
