"""Garment colour naming: synthetic patches of known colour (flat, shadowed, patterned, textured)
and real CCP photo regions under their ground-truth masks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from clothcurate.garment_colors import CFPD_COLORS, COLOR_NAMES, garment_colors, name_color
from clothcurate.labelmaps import TARGET_CLASSES, load_labelmap

KNOWN = {  # sRGB garment colours and the CFPD name a person gives them
    "red": (200, 30, 30), "blue": (30, 60, 180), "navy": (30, 35, 90), "denim": (70, 90, 130),
    "green": (40, 140, 60), "yellow": (240, 220, 40), "orange": (240, 130, 30), "pink": (240, 150, 180),
    "purple": (120, 50, 150), "brown": (110, 70, 40), "beige": (225, 198, 153), "black": (20, 20, 22),
    "white": (245, 245, 240), "gray": (128, 128, 128),
}
EXPECTED = {"navy": "blue", "denim": "blue"}


def _textured(rgb, shape=(60, 40), seed=0) -> np.ndarray:
    """A patch of one colour with sensor-like noise."""
    noise = np.random.default_rng(seed).normal(0, 6, (*shape, 3))
    return np.clip(np.array(rgb, float) + noise, 0, 255).astype(np.uint8)


def test_cfpd_vocabulary():
    assert len(CFPD_COLORS) == 13 and CFPD_COLORS[0] == "bk" and COLOR_NAMES == CFPD_COLORS[1:]
    assert CFPD_COLORS.index("red") == 10 and CFPD_COLORS.index("yellow") == 12


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_known_colour_patches(name):
    patch = _textured(KNOWN[name])
    assert name_color(patch, np.ones(patch.shape[:2], bool)) == EXPECTED.get(name, name)


def test_shadowed_red_is_still_red():
    """A red garment, its lower 60 % in shade (a third of the light, slightly blue), reads red."""
    patch = _textured(KNOWN["red"], shape=(100, 60))
    shade = np.clip(patch[40:].astype(float) * (0.33, 0.35, 0.42), 0, 255)
    patch[40:] = shade.astype(np.uint8)
    assert name_color(patch, np.ones(patch.shape[:2], bool)) == "red"


def test_highlights_and_deep_folds_do_not_vote():
    """Blue with a white specular streak and black folds (each under the trimmed share) stays blue."""
    patch = _textured(KNOWN["blue"], shape=(100, 60))
    patch[:4] = 255
    patch[50:58] = 5
    assert name_color(patch, np.ones(patch.shape[:2], bool)) == "blue"


def test_pattern_takes_the_main_colour():
    """Stripes: 70 % green, 30 % white -> green."""
    patch = _textured(KNOWN["green"], shape=(100, 60))
    for r in range(0, 100, 10):
        patch[r:r + 3] = KNOWN["white"]
    assert name_color(patch, np.ones(patch.shape[:2], bool)) == "green"


def test_garment_colors_per_class_region():
    """A synthetic 15-class mask: garments named, skin/hair/background left out, largest first."""
    cls = {c: TARGET_CLASSES.index(c) for c in ("background", "shirt", "pants", "skin", "hair", "footwear")}
    image = np.zeros((100, 50, 3), np.uint8)
    mask = np.zeros((100, 50), np.uint8)
    for name, rows, rgb in (("hair", (0, 10), (60, 40, 20)), ("skin", (10, 20), (220, 170, 140)),
                            ("shirt", (20, 50), KNOWN["red"]), ("pants", (50, 90), KNOWN["denim"]),
                            ("footwear", (90, 95), KNOWN["white"])):
        image[rows[0]:rows[1], 5:45] = _textured(rgb, shape=(rows[1] - rows[0], 40))
        mask[rows[0]:rows[1], 5:45] = cls[name]
    out = garment_colors(image, mask)
    assert out == [
        {"class": "pants", "pixel_share": round(40 * 40 / 5000, 6), "color": "blue"},
        {"class": "shirt", "pixel_share": round(30 * 40 / 5000, 6), "color": "red"},
        {"class": "footwear", "pixel_share": round(5 * 40 / 5000, 6), "color": "white"},
    ]
    assert garment_colors(image, np.zeros_like(mask)) == []
    with pytest.raises(ValueError, match="outside the 15 classes"):
        garment_colors(image, np.full_like(mask, 15))
    with pytest.raises(ValueError, match=r"\(H, W\) mask"):
        garment_colors(image, mask[:50])


@pytest.mark.parametrize("stem, garment, colour", [
    ("0002", "dress", "black"),   # long black tulle skirt
    ("0003", "coat", "brown"),    # brown trench coat
    ("0004", "pants", "white"),   # white trousers
    ("0004", "coat", "gray"),     # gray coat, bluish in the shade
])
def test_real_ccp_regions(ccp_dir: Path, stem, garment, colour):
    photo = cv2.cvtColor(cv2.imread(str(ccp_dir / "photos" / f"{stem}.jpg")), cv2.COLOR_BGR2RGB)
    raw = scipy.io.loadmat(ccp_dir / "annotations" / "pixel-level" / f"{stem}.mat")["groundtruth"]
    mask = load_labelmap("ccp").remap(raw, source_id=stem)
    found = {g["class"]: g for g in garment_colors(photo, mask)}
    assert found[garment]["color"] == colour
    assert found[garment]["pixel_share"] == round(float((mask == TARGET_CLASSES.index(garment)).mean()), 6)
    assert {g["color"] for g in found.values()} <= set(COLOR_NAMES)
