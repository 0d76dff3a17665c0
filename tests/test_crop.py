"""Person crop boxes, crop + resize, and pasting predictions back (``clothcurate.geometry``)."""

from __future__ import annotations

import numpy as np

from clothcurate.geometry import crop_box, crop_image, crop_resize, paste_back


def _rel(x0, y0, x1, y1, width, height):
    return [x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height]


def test_crop_box_margin_square_and_clipping():
    # person pixels x 100..200, y 100..500 in a 400x600 photo; 5% margin = 5 px and 20 px
    bbox = _rel(100, 100, 200, 500, 400, 600)
    assert crop_box(bbox, width=400, height=600, aspect=None) == (95, 80, 205, 520)
    # square wants 440 px wide, the photo has 400: the box takes the full width
    assert crop_box(bbox, width=400, height=600) == (0, 80, 400, 520)
    # in a large photo it becomes a 440 x 440 square, centred (x from -70) and shifted inside
    assert crop_box(_rel(100, 100, 200, 500, 1000, 1000), width=1000, height=1000) == (0, 80, 440, 520)
    assert crop_box(_rel(500, 100, 600, 500, 1000, 1000), width=1000, height=1000) == (330, 80, 770, 520)
    # margins are clipped at the border; no person -> the whole photo
    assert crop_box(_rel(0, 0, 400, 600, 400, 600), width=400, height=600) == (0, 0, 400, 600)
    assert crop_box(None, width=400, height=600) == (0, 0, 400, 600)


def _toy(height=120, width=90, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width), np.uint8)
    mask[20:100, 30:60] = rng.integers(1, 15, size=(80, 30), dtype=np.uint8)
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return image, mask


def test_crop_without_resize_pastes_back_exactly():
    image, mask = _toy()
    box = crop_box(_rel(30, 20, 60, 100, 90, 120), width=90, height=120)
    img_c, mask_c = crop_resize(image, mask, box=box, size=None)
    x0, y0, x1, y1 = box
    assert mask_c.shape == (y1 - y0, x1 - x0) and img_c.shape == (y1 - y0, x1 - x0, 3)
    assert np.array_equal(img_c, image[y0:y1, x0:x1])
    full = paste_back(mask_c, crop_box=box, orig_size=(90, 120))
    assert full.shape == mask.shape and full.dtype == mask.dtype
    assert np.array_equal(full[y0:y1, x0:x1], mask[y0:y1, x0:x1])
    outside = np.ones_like(mask, bool)
    outside[y0:y1, x0:x1] = False
    assert not full[outside].any()
    # per-class maps keep their channels
    maps = np.random.default_rng(1).random((*mask_c.shape, 4)).astype(np.float32)
    assert paste_back(maps, crop_box=box, orig_size=(90, 120)).shape == (120, 90, 4)


def test_crop_with_resize_pastes_back_approximately():
    # a smooth mask (three large regions) survives a down- and up-sampling by nearest neighbour
    mask = np.zeros((600, 400), np.uint8)
    mask[100:300, 120:280] = 2
    mask[300:520, 140:260] = 8
    image = np.dstack([mask * 10] * 3).astype(np.uint8)
    box = crop_box(_rel(120, 100, 280, 520, 400, 600), width=400, height=600)
    img_c, mask_c = crop_resize(image, mask, box=box, size=64)
    assert img_c.shape == (64, 64, 3) and mask_c.shape == (64, 64)
    assert set(np.unique(mask_c)) <= {0, 2, 8}  # nearest neighbour: no invented ids
    full = paste_back(mask_c, crop_box=box, orig_size=(400, 600))
    x0, y0, x1, y1 = box
    agree = (full[y0:y1, x0:x1] == mask[y0:y1, x0:x1]).mean()
    assert agree > 0.97


def test_crop_image_is_the_photo_half_of_crop_resize():
    """Inference crops a photo that has no mask: the same pixels as the export's crop."""
    image, mask = _toy(600, 400)
    box = crop_box(_rel(120, 100, 280, 520, 400, 600), width=400, height=600)
    for size in (None, 64, 512):
        assert np.array_equal(crop_image(image, box=box, size=size), crop_resize(image, mask, box=box, size=size)[0])
