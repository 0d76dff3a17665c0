"""The fixed colour of each target class, shared by the report's figures (and free for the App).

Shapes: H, W = mask rows and columns; K = 15 classes.

Example::

    from clothcurate.reports.colors import PALETTE, colorize
    rgb = colorize(mask)            # (H, W) uint8 class ids -> (H, W, 3) uint8
    PALETTE[TARGET_CLASSES.index("skin")]
"""

from __future__ import annotations

import numpy as np

from clothcurate.labelmaps import NUM_CLASSES, TARGET_CLASSES

__all__ = ["CLASS_COLORS", "PALETTE", "colorize", "hex_color"]

# Stable: the same class always gets the same colour, in every figure and every run.
CLASS_COLORS: dict[str, tuple[int, int, int]] = {
    "background": (0, 0, 0),
    "bag": (230, 159, 0),
    "coat": (86, 180, 233),
    "dress": (204, 121, 167),
    "footwear": (128, 77, 26),
    "glasses": (0, 255, 255),
    "hair": (148, 103, 189),
    "hat": (255, 235, 0),
    "pants": (0, 90, 200),
    "romper": (255, 0, 255),
    "scarf/tie": (0, 170, 110),
    "shirt": (215, 40, 40),
    "shorts": (255, 150, 120),
    "skin": (240, 205, 165),
    "socks": (150, 150, 150),
}
assert tuple(CLASS_COLORS) == TARGET_CLASSES

PALETTE: np.ndarray = np.array([CLASS_COLORS[c] for c in TARGET_CLASSES], dtype=np.uint8)
"""(K, 3) uint8 RGB colour of each class id."""

_UNKNOWN = np.array([255, 255, 255], dtype=np.uint8)  # ids outside 0..K-1 (should not happen)


def colorize(mask: np.ndarray) -> np.ndarray:
    """Paint a class-id mask with the class colours.

    Args:
        mask: (H, W) integer class ids in ``0..K-1``.

    Returns:
        (H, W, 3) uint8 RGB; ids outside the classes are white.
    """
    lut = np.tile(_UNKNOWN, (256, 1))
    lut[:NUM_CLASSES] = PALETTE
    return lut[np.clip(mask, 0, 255).astype(np.uint8)]


def hex_color(class_id: int) -> str:
    """``#rrggbb`` of a class id (for matplotlib and HTML)."""
    r, g, b = (int(x) for x in PALETTE[class_id])
    return f"#{r:02x}{g:02x}{b:02x}"
