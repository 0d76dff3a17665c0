"""Photos as stored: every reader of a photo decodes its stored pixels, never its EXIF-rotated view.

The rule (docs/contracts.md): CCP masks follow a photo's stored pixels, so a photo's EXIF
orientation tag is ignored everywhere. OpenCV applies the tag unless told not to
(``cv2.IMREAD_IGNORE_ORIENTATION``) and browsers apply it by default, which would turn a tagged
photo against its mask; ingest records the tag (:func:`exif_orientation`) and exports re-encode
tagged photos without it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from clothcurate.errors import BadInputError

__all__ = ["ORIENTATION_TAG", "exif_orientation", "is_plain_jpeg", "orientation_name", "read_image"]

ORIENTATION_TAG = 0x0112  # EXIF "Orientation"
# What a viewer does to the stored pixels for each orientation value (EXIF 2.32, tag 274).
_ORIENTATIONS = {1: "none", 2: "mirror left-right", 3: "rotate 180", 4: "mirror top-bottom",
                 5: "mirror and rotate 90 counter-clockwise", 6: "rotate 90 clockwise",
                 7: "mirror and rotate 90 clockwise", 8: "rotate 90 counter-clockwise"}


def read_image(path: str | Path, *, sample: str | None = None, hint: str = "restore the photo") -> np.ndarray:
    """Decode a photo's stored pixels, ignoring any EXIF orientation.

    Args:
        path: the photo (any format OpenCV reads; grey, 16-bit and alpha images are converted).
        sample: the sample it belongs to (named in the error).
        hint: what the user should do when it cannot be read (ends the error message).

    Returns:
        (H, W, 3) uint8 RGB, H x W being the stored size (PIL's ``Image.size`` reversed).

    Raises:
        BadInputError: missing or not a readable image (one line naming the file).
    """
    of = f" (sample {sample})" if sample else ""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # non-ASCII paths, unlike cv2.imread
    except OSError as e:
        raise BadInputError(f"{path}: cannot read the photo{of} ({e.strerror or e}); {hint}") from e
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if image is None:
        raise BadInputError(f"{path}: not a readable image{of}; {hint}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def exif_orientation(path: str | Path) -> int:
    """The EXIF orientation tag of a photo (1..8), 1 when it has none or it cannot be read."""
    try:
        with Image.open(path) as im:
            value = im.getexif().get(ORIENTATION_TAG, 1)
    except (OSError, UnidentifiedImageError, ValueError):
        return 1
    return value if isinstance(value, int) and value in _ORIENTATIONS else 1


def orientation_name(orientation: int) -> str:
    """What a viewer does for an orientation value: ``rotate 90 clockwise`` for 6."""
    return _ORIENTATIONS.get(orientation, "unknown")


def is_plain_jpeg(path: str | Path) -> bool:
    """True for a JPEG file without an orientation other than 1: its bytes can be copied as they
    are, and any reader shows its stored pixels."""
    try:
        with Image.open(path) as im:
            if im.format != "JPEG":
                return False
            return im.getexif().get(ORIENTATION_TAG, 1) in (1, None)
    except (OSError, UnidentifiedImageError, ValueError):
        return False
