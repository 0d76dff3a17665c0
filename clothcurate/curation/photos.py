"""Cheap checks of a photo file: size, format and orientation from the header, truncation from the
end marker."""

from __future__ import annotations

import os
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from clothcurate.errors import BadSampleError
from clothcurate.images import ORIENTATION_TAG

__all__ = ["PhotoInfo", "probe_photo"]


@dataclass(frozen=True)
class PhotoInfo:
    """What a photo's header says.

    Attributes:
        width, height: the stored pixel size (an EXIF orientation is not applied).
        mime_type: from the decoded format (``image/jpeg``, ``image/png`` ...), not the file name.
        num_channels: bands of the stored image (1 grey, 3 RGB/YCbCr, 4 RGBA/CMYK).
        orientation: the EXIF orientation tag, 1 when absent.
    """

    width: int
    height: int
    mime_type: str
    num_channels: int
    orientation: int = 1


def probe_photo(path: str, source_id: str) -> PhotoInfo:
    """Size, format and orientation of a photo without decoding its pixels.

    A JPEG must end with its end-of-image marker (``FF D9``, trailing padding allowed): a
    truncated download fails here instead of in training.

    Raises:
        BadSampleError: missing, unreadable, not an image, or a truncated JPEG.
    """
    try:
        with Image.open(path) as im:
            width, height = im.size
            fmt = im.format
            mime = im.get_format_mimetype() or Image.MIME.get(fmt or "", "application/octet-stream")
            channels = len(im.getbands())
            orientation = im.getexif().get(ORIENTATION_TAG, 1)
    except FileNotFoundError:
        raise BadSampleError(source_id, "photo missing", path) from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise BadSampleError(source_id, f"photo is not a readable image ({e})", path) from e
    if fmt == "JPEG":
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 1024))
            tail = f.read().rstrip(b"\x00\r\n ")
        if not tail.endswith(b"\xff\xd9"):
            raise BadSampleError(source_id, "truncated JPEG (no end-of-image marker)", path)
    return PhotoInfo(width, height, mime, channels, orientation if isinstance(orientation, int) else 1)
