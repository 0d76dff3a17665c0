"""Write CFPD folders in the authors' exact on-disk format (see ``../shared/formats/CFPD.md``).

The generator works in the photo's frame: it draws a person as garment regions, cuts the photo
into Voronoi superpixels, gives each superpixel the garment under its seed, and keeps the 0-based
category and colour masks it meant. Only then does it encode them the way MATLAB v7.3 stores them:
an HDF5 file behind a 512-byte MATLAB header, cells and structs as object references into
``#refs#``, names as uint16 character codes, ``segmentation`` transposed, labels 1-based doubles.

Example::

    truth = write_cfpd_fixture(tmp_path / "cfpd", n_images=8)
    truth.categories["3.jpg"]   # (600, 400) uint8, 0 = bk
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count, islice, product
from pathlib import Path
from string import ascii_lowercase

import h5py
import numpy as np
from PIL import Image
from scipy.spatial import cKDTree

CATEGORY_NAMES = ("bk", "T-shirt", "bag", "belt", "blazer", "blouse", "coat", "dress", "face", "hair", "hat",
                  "jeans", "legging", "pants", "scarf", "shoe", "shorts", "skin", "skirt", "socks", "stocking",
                  "sunglass", "sweater")
COLOR_NAMES = ("bk", "beige", "black", "blue", "brown", "gray", "green", "orange", "pink", "purple", "red",
               "white", "yellow")
HEIGHT, WIDTH = 600, 400
FINE_CATEGORIES = 117
_STEP = 4  # superpixels are drawn on a grid of 4 x 4 pixel cells (150 x 100 cells)

# Garment slots of the drawn person: (pool of category names, box as fractions (top, bottom, left, right)).
_SLOTS = (
    (("hair",), (0.05, 0.16, 0.38, 0.62)),
    (("face",), (0.10, 0.20, 0.42, 0.58)),
    (("hat", "sunglass", "skin"), (0.04, 0.09, 0.40, 0.60)),
    (("T-shirt", "blouse", "sweater", "coat", "blazer", "dress"), (0.20, 0.52, 0.30, 0.70)),
    (("skin",), (0.22, 0.48, 0.20, 0.30)),
    (("scarf", "bag", "skin"), (0.30, 0.45, 0.70, 0.82)),
    (("skirt", "pants", "jeans", "shorts", "legging"), (0.52, 0.80, 0.34, 0.66)),
    (("belt",), (0.50, 0.54, 0.32, 0.68)),
    (("socks", "stocking", "skin"), (0.80, 0.90, 0.38, 0.62)),
    (("shoe",), (0.90, 0.97, 0.36, 0.64)),
)
_PALETTE = np.random.default_rng(7).integers(0, 256, size=(len(COLOR_NAMES), 3), dtype=np.uint8)


@dataclass
class FixtureTruth:
    """What the generator wrote.

    Attributes:
        root: the CFPD folder.
        mat_path: its ``fashon_parsing_data.mat``.
        order: ``img_name`` of every ``fashion_dataset`` record, in the file's order.
        categories: good records only: ``{img_name: (600, 400) uint8 0-based category ids}``.
        colors: good records only: ``{img_name: (600, 400) uint8 0-based colour ids}``.
        broken: records with a superpixel index beyond ``category_label``.
        out_of_range: records with a category value of 117.
        missing_image: records whose photo is not in ``image/``.
        incomplete: records without ``color_label``.
        column_labels: good records whose label arrays are stored (S, 1).
    """

    root: Path
    mat_path: Path
    order: list[str] = field(default_factory=list)
    categories: dict[str, np.ndarray] = field(default_factory=dict)
    colors: dict[str, np.ndarray] = field(default_factory=dict)
    broken: list[str] = field(default_factory=list)
    out_of_range: list[str] = field(default_factory=list)
    missing_image: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    column_labels: list[str] = field(default_factory=list)


def _refs_names():
    """MATLAB's member names in ``#refs#``: a, b, ..., z, aa, ab, ..."""
    for n in count(1):
        for letters in product(ascii_lowercase, repeat=n):
            yield "".join(letters)


class _Writer:
    """Writes MATLAB v7.3 objects into ``#refs#`` and hands back references to them."""

    def __init__(self, f: h5py.File, rng: np.random.Generator, *, capacity: int):
        self.f, self.refs = f, f.create_group("#refs#")
        names = list(islice(_refs_names(), 1, capacity + 1))  # "a" is MATLAB's canonical empty
        rng.shuffle(names)  # #refs# order must not be fashion_dataset's order
        self._names = iter(names)
        empty = self.refs.create_dataset("a", data=np.zeros(2, np.uint64))  # MATLAB's canonical empty
        empty.attrs["MATLAB_class"] = np.bytes_("canonical empty")
        empty.attrs["MATLAB_empty"] = np.uint8(1)

    def char(self, text: str, where: h5py.Group | None = None, name: str | None = None) -> h5py.Dataset:
        """A MATLAB char row vector: uint16 codes of shape (n, 1)."""
        ds = (where or self.refs).create_dataset(name or next(self._names),
                                                 data=np.array([[ord(c)] for c in text], np.uint16))
        ds.attrs["MATLAB_class"] = np.bytes_("char")
        ds.attrs["MATLAB_int_decode"] = np.int32(2)
        return ds

    def cell(self, name: str, targets: list, shape: tuple[int, int]) -> h5py.Dataset:
        """A top-level MATLAB cell array of object references."""
        ds = self.f.create_dataset(name, data=np.array([t.ref for t in targets], dtype=h5py.ref_dtype)
                                   .reshape(shape))
        ds.attrs["MATLAB_class"] = np.bytes_("cell")
        return ds

    def struct(self, members: dict[str, np.ndarray | str]) -> h5py.Group:
        """A MATLAB struct under ``#refs#``: strings as char arrays, arrays as doubles/singles."""
        group = self.refs.create_group(next(self._names))
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        for key, value in members.items():
            if isinstance(value, str):
                self.char(value, group, key)
                continue
            ds = group.create_dataset(key, data=value, compression="gzip", compression_opts=3)
            ds.attrs["MATLAB_class"] = np.bytes_("single" if value.dtype == np.float32 else "double")
        return group


def _superpixels(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Voronoi superpixels of a 600 x 400 photo.

    Returns:
        ``(index, seeds)``: (600, 400) int 0-based superpixel index per pixel, every index used, and
        (S, 2) int seed (row, col) per superpixel, S in 100..425.
    """
    n = int(rng.integers(100, 426))
    seeds = np.column_stack([rng.integers(0, HEIGHT, n), rng.integers(0, WIDTH, n)])
    seeds = np.unique(seeds, axis=0)
    rows, cols = np.mgrid[0:HEIGHT:_STEP, 0:WIDTH:_STEP]  # Voronoi on a coarse grid, blown up
    _, nearest = cKDTree(seeds).query(np.column_stack([rows.ravel(), cols.ravel()]))
    used, index = np.unique(nearest, return_inverse=True)  # renumber so that every superpixel is used
    return index.reshape(rows.shape).repeat(_STEP, axis=0).repeat(_STEP, axis=1), seeds[used]


def _person(i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The garment layout of photo ``i``: (600, 400) 1-based category and colour per pixel."""
    cat = np.ones((HEIGHT, WIDTH), np.int64)
    col = np.ones((HEIGHT, WIDTH), np.int64)
    dy, dx = rng.uniform(-0.03, 0.03, 2)
    for pool, (top, bottom, left, right) in _SLOTS:
        name = pool[i % len(pool)]
        box = (slice(int((top + dy) * HEIGHT), int((bottom + dy) * HEIGHT)),
               slice(int((left + dx) * WIDTH), int((right + dx) * WIDTH)))
        cat[box] = CATEGORY_NAMES.index(name) + 1
        col[box] = rng.integers(2, len(COLOR_NAMES) + 1)
    return cat, col


def _matlab_header(path: Path) -> None:
    """Write the 128-byte MATLAB v7.3 text header into the file's 512-byte userblock."""
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  6 12:00:00 2014 HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(text.ljust(116) + b"\0" * 8 + b"\x00\x02" + b"IM")


def write_cfpd_fixture(root: Path, *, n_images: int = 8, broken: bool = True, out_of_range: bool = True,
                       missing_image: bool = True, incomplete: bool = True, column_labels: bool = True,
                       column_dataset: bool = False, seed: int = 0) -> FixtureTruth:
    """Write a CFPD folder: ``root/fashon_parsing_data.mat`` and ``root/image/*.jpg``.

    Args:
        root: the folder to create.
        n_images: ``fashion_dataset`` records, special ones included (named ``1.jpg`` ... in a
            shuffled order).
        broken: record 0 has a superpixel index beyond its ``category_label``.
        out_of_range: record 1 has a category value of 117 on a used superpixel.
        missing_image: record 2's photo is not written.
        incomplete: record 3 has no ``color_label``.
        column_labels: record 4 stores its labels as (S, 1) instead of (1, S).
        column_dataset: store ``fashion_dataset`` as (N, 1) instead of (1, N).
        seed: random seed.

    Returns:
        What was written, with the expected 0-based masks of every good record.
    """
    rng = np.random.default_rng(seed)
    specials = [broken, out_of_range, missing_image, incomplete, column_labels]
    if n_images < len(specials) + 1:
        raise ValueError(f"n_images must be at least {len(specials) + 1}")
    (root / "image").mkdir(parents=True, exist_ok=True)
    truth = FixtureTruth(root, root / "fashon_parsing_data.mat")
    with h5py.File(truth.mat_path, "w", userblock_size=512) as f:
        w = _Writer(f, rng, capacity=len(CATEGORY_NAMES) + len(COLOR_NAMES) + n_images + 8)
        w.cell("all_category_name", [w.char(n) for n in CATEGORY_NAMES], (1, len(CATEGORY_NAMES)))
        w.cell("all_colors_name", [w.char(n) for n in COLOR_NAMES], (1, len(COLOR_NAMES)))
        records = [_record(i, f"{k}.jpg", specials, w, truth, rng)
                   for i, k in enumerate(rng.permutation(n_images) + 1)]
        w.cell("fashion_dataset", records, (n_images, 1) if column_dataset else (1, n_images))
        _decoys(w, rng)
    _matlab_header(truth.mat_path)
    return truth


def _record(i: int, img_name: str, specials: list[bool], w: _Writer, truth: FixtureTruth,
            rng: np.random.Generator) -> h5py.Group:
    """Write record ``i`` (its struct, and its photo unless it is the missing one)."""
    broken, out_of_range, missing_image, incomplete, column_labels = (s and i == k for k, s in enumerate(specials))
    index, seeds = _superpixels(rng)
    layout_cat, layout_col = _person(i, rng)
    cat = layout_cat[seeds[:, 0], seeds[:, 1]].astype(np.float64)  # (S,) 1-based
    col = layout_col[seeds[:, 0], seeds[:, 1]].astype(np.float64)
    category, color = (cat[index] - 1).astype(np.uint8), (col[index] - 1).astype(np.uint8)
    truth.order.append(img_name)
    if broken:
        truth.broken.append(img_name)
        cat, col = cat[:-5], col[:-5]
    elif out_of_range:
        truth.out_of_range.append(img_name)
        cat[index[HEIGHT // 2, WIDTH // 2]] = FINE_CATEGORIES
    elif missing_image:
        truth.missing_image.append(img_name)
    elif incomplete:
        truth.incomplete.append(img_name)
    else:
        truth.categories[img_name], truth.colors[img_name] = category, color
        if column_labels:
            truth.column_labels.append(img_name)
    if not missing_image:
        Image.fromarray(_PALETTE[color] ^ rng.integers(0, 24, (HEIGHT, WIDTH, 3), np.uint8)).save(
            truth.root / "image" / img_name, quality=90)
    shape = (-1, 1) if column_labels else (1, -1)
    members = {"img_name": img_name, "segmentation": np.ascontiguousarray(index.T).astype(np.float32),
               "category_label": cat.reshape(shape), "color_label": col.reshape(shape)}
    if incomplete:
        del members["color_label"]
    return w.struct(members)


def _decoys(w: _Writer, rng: np.random.Generator) -> None:
    """Members of ``#refs#`` that are not images: fine-category names and a record-like group that
    ``fashion_dataset`` does not reference (its photo exists, so only following references skips it)."""
    for k in range(3):
        w.char(f"fine category {k}")
    index, _ = _superpixels(rng)
    n = int(index.max()) + 1
    w.struct({"img_name": "decoy.jpg", "segmentation": index.T.astype(np.float32),
              "category_label": rng.integers(1, FINE_CATEGORIES + 1, (1, n)).astype(np.float64),
              "color_label": np.ones((1, n)), "fine_category_label": np.full((1, n), 117.0)})
    Image.new("RGB", (WIDTH, HEIGHT)).save(Path(w.f.filename).parent / "image" / "decoy.jpg")
