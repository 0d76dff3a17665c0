"""Cheap checks of a photo file: size from the header, truncation from the end marker."""

from __future__ import annotations

import os

from PIL import Image, UnidentifiedImageError

from clothcurate.errors import BadSampleError


def probe_photo(path: str, source_id: str) -> tuple[int, int]:
    """Width and height of a photo without decoding its pixels.

    A JPEG must end with its end-of-image marker (``FF D9``, trailing padding allowed): a
    truncated download fails here instead of in training.

    Raises:
        BadSampleError: missing, unreadable, not an image, or a truncated JPEG.
    """
    try:
        with Image.open(path) as im:
            width, height = im.size
            fmt = im.format
    except FileNotFoundError:
        raise BadSampleError(source_id, "photo missing", path) from None
    except (UnidentifiedImageError, OSError) as e:
        raise BadSampleError(source_id, f"photo is not a readable image ({e})", path) from e
    if fmt == "JPEG":
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 1024))
            tail = f.read().rstrip(b"\x00\r\n ")
        if not tail.endswith(b"\xff\xd9"):
            raise BadSampleError(source_id, "truncated JPEG (no end-of-image marker)", path)
    return width, height
