"""Colorful Fashion Parsing Data (Liu et al., IEEE TMM 2014), in the authors' own layout::

    fashon_parsing_data.mat     MATLAB v7.3 (HDF5); the authors' spelling "fashon"
    image/<img_name>            JPEG photos, 600 rows x 400 columns

The ``.mat`` holds ``all_category_name`` (23 names), ``all_colors_name`` (13 names) and
``fashion_dataset``: one object reference per image to a group under ``#refs#`` with ``img_name``
(uint16 character codes), ``segmentation`` ((W, H) as stored: 0-based superpixel index per pixel),
``category_label`` and ``color_label`` ((1, S) or (S, 1): 1-based name index per superpixel).
See ``../shared/formats/CFPD.md``. Every raw mask is 0-based: 0 = ``bk``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from clothcurate.curation.sources.base import RawSample, SampleRef, ScanProblem, Source
from clothcurate.errors import BadInputError, BadSampleError

MAT_NAME = "fashon_parsing_data.mat"
IMAGE_DIR = "image"
_VOCABULARY_KEYS = {"": "all_category_name", "color": "all_colors_name"}
_LABEL_KEYS = {"": "category_label", "color": "color_label"}
_RECORD_MEMBERS = ("img_name", "segmentation", *_LABEL_KEYS.values())


@dataclass(frozen=True)
class _Mat:
    """An open ``fashon_parsing_data.mat``.

    Attributes:
        file: the open HDF5 file.
        records: (N,) object references of ``fashion_dataset``, in the file's order.
        sizes: ``{raw field suffix: vocabulary length}`` (23 categories, 13 colours).
    """

    file: h5py.File
    records: np.ndarray
    sizes: dict[str, int]


# One open file per process and path: ingest reads records in worker processes, and an HDF5
# handle inherited through fork must not be used, so the key holds the process id.
_OPEN: dict[str, tuple[int, int, _Mat]] = {}


def _open_mat(path: Path) -> _Mat:
    """The cached open ``.mat`` at ``path``, reopened when the process or the file changed.

    Raises:
        BadInputError: not an HDF5 file, or a top-level key is missing or malformed.
    """
    try:
        key, stamp = str(path), path.stat().st_mtime_ns
        cached = _OPEN.get(key)
        if cached and cached[:2] == (os.getpid(), stamp):
            return cached[2]
        f = h5py.File(path, "r")
    except OSError as e:
        raise BadInputError(f"{path}: not a readable MATLAB v7.3 (HDF5) file ({_first_line(e)}); use the "
                            "authors' original fashon_parsing_data.mat or re-save it with save -v7.3") from e
    missing = [k for k in ("fashion_dataset", *_VOCABULARY_KEYS.values()) if k not in f]
    if missing:
        raise BadInputError(f"{path}: no {', '.join(missing)}; this is not the CFPD "
                            "fashon_parsing_data.mat (expected all_category_name, all_colors_name, "
                            "fashion_dataset)")
    mat = _Mat(f, _references(f, "fashion_dataset", path),
               {field: len(_references(f, k, path)) for field, k in _VOCABULARY_KEYS.items()})
    _OPEN[key] = (os.getpid(), stamp, mat)
    return mat


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]


def _references(f: h5py.File, key: str, path: Path) -> np.ndarray:
    """The (N,) object references of a (1, N) or (N, 1) reference array ``key``."""
    ds = f[key]
    if not isinstance(ds, h5py.Dataset) or ds.dtype != h5py.ref_dtype or ds.ndim > 2 or (
            ds.ndim == 2 and 1 not in ds.shape):
        raise BadInputError(f"{path}: '{key}' is not a (1, N) array of object references; "
                            "use the authors' original fashon_parsing_data.mat")
    return ds[()].ravel()


def _text(ds: h5py.Dataset) -> str:
    """Decode a MATLAB char array: (n, 1) uint16 character codes."""
    codes = ds[()]
    if not np.issubdtype(codes.dtype, np.integer):
        raise TypeError(f"{ds.name} is {codes.dtype}, not character codes")
    return "".join(map(chr, codes.ravel()))


def _integers(values: np.ndarray, what: str, source_id: str, path: str) -> np.ndarray:
    """``values`` as int64 (same shape), refusing non-integral or non-finite numbers."""
    if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
        raise BadSampleError(source_id, f"{what} is {values.dtype}, expected numbers", path)
    with np.errstate(invalid="ignore"):
        ints = values.astype(np.int64, order="C")
    if not np.array_equal(ints, values):
        raise BadSampleError(source_id, f"{what} holds non-integer values", path)
    return ints


def _label_vector(record: h5py.Group, what: str, source_id: str, path: str) -> np.ndarray:
    """The (1, S) or (S, 1) label array ``what`` of ``record`` as (S,) int64."""
    ds = record[what]
    if ds.ndim > 2 or (ds.ndim == 2 and 1 not in ds.shape):
        raise BadSampleError(source_id, f"{what} has shape {ds.shape}, expected (1, S) or (S, 1)", path)
    return _integers(ds[()].ravel(), what, source_id, path)


def _lookup(labels: np.ndarray, superpixels: np.ndarray, used: np.ndarray, *, size: int, what: str,
            source_id: str, path: str) -> np.ndarray:
    """Paint each superpixel with its 0-based label.

    Args:
        labels: (S,) 1-based labels, one per superpixel.
        superpixels: (H, W) 0-based superpixel index per pixel, all < S.
        used: (S,) bool, True for the superpixels present in ``superpixels``.
        size: vocabulary length; labels of used superpixels must lie in 1..size (never clipped).
        what: the label array's name, for the error.

    Returns:
        (H, W) uint8 0-based label ids.
    """
    bad = used & ((labels < 1) | (labels > size))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise BadSampleError(source_id, f"{what} of superpixel {k} is {labels[k]}, outside 1..{size}", path)
    lut = np.where(used, labels - 1, 0).astype(np.uint8)
    return lut[superpixels]


class CFPDSource(Source):
    """Reader of CFPD's category and colour annotations."""

    name = "cfpd"

    def _mat(self) -> _Mat:
        if not self.root.is_dir():
            raise BadInputError(f"{self.root}: no such folder; pass --cfpd the folder that holds "
                                f"{MAT_NAME} and {IMAGE_DIR}/")
        for p in (self.root / MAT_NAME, self.root / IMAGE_DIR):
            if not p.exists():
                raise BadInputError(f"{p}: missing; {self.root} is not a CFPD folder "
                                    f"(expected {MAT_NAME} and {IMAGE_DIR}/)")
        return _open_mat(self.root / MAT_NAME)

    def vocabulary_file(self) -> Path:
        return self.root / MAT_NAME

    def vocabularies(self) -> dict[str, list[str]]:
        mat = self._mat()
        path = self.root / MAT_NAME
        vocabularies = {}
        for field, key in _VOCABULARY_KEYS.items():
            try:
                vocabularies[field] = [_text(mat.file[r]) for r in _references(mat.file, key, path)]
            except (TypeError, ValueError, KeyError, OSError) as e:
                raise BadInputError(f"{path}: cannot decode the names of '{key}' ({_first_line(e)}); "
                                    "use the authors' original fashon_parsing_data.mat") from e
        return vocabularies

    def scan(self) -> tuple[list[SampleRef], list[ScanProblem], dict[str, int]]:
        mat = self._mat()
        path, images = str(self.root / MAT_NAME), self.root / IMAGE_DIR
        refs, problems, seen = [], [], set()
        for index, reference in enumerate(mat.records):
            sid = f"fashion_dataset[{index}]"
            try:
                record = mat.file[reference]
                missing = [m for m in _RECORD_MEMBERS if m not in record]
                if "img_name" not in missing:
                    sid = _text(record["img_name"])
            except (TypeError, ValueError, KeyError, OSError) as e:
                problems.append(ScanProblem(sid, f"unreadable record ({_first_line(e)})", path))
                continue
            photo = images / sid
            if missing:
                problems.append(ScanProblem(sid, f"record has no {', '.join(missing)}", path))
            elif sid in seen or Path(sid).name != sid:
                problems.append(ScanProblem(sid, "img_name is repeated or not a plain file name", path))
            elif not photo.is_file():
                problems.append(ScanProblem(sid, "image missing", str(photo)))
            else:
                refs.append(SampleRef(sid, str(photo), (path, index)))
            seen.add(sid)
        return refs, problems, {}

    def read(self, ref: SampleRef) -> RawSample:
        path, index = ref.locator
        mat, sid = _open_mat(Path(path)), ref.source_id
        try:
            record = mat.file[mat.records[index]]
            labels = {field: _label_vector(record, key, sid, path) for field, key in _LABEL_KEYS.items()}
            segmentation = record["segmentation"][()]
        except (KeyError, ValueError, TypeError, IndexError, OSError) as e:
            raise BadSampleError(sid, f"unreadable record fashion_dataset[{index}] ({_first_line(e)})", path) from e
        if segmentation.ndim != 2 or segmentation.size == 0:
            raise BadSampleError(sid, f"segmentation has shape {segmentation.shape}, expected (W, H)", path)
        superpixels = _integers(segmentation.T, "segmentation", sid, path)
        n = len(labels[""])
        if len(labels["color"]) != n:
            raise BadSampleError(sid, f"category_label has {n} superpixels but color_label "
                                 f"{len(labels['color'])}", path)
        lo, hi = int(superpixels.min()), int(superpixels.max())
        if lo < 0 or hi >= n:
            raise BadSampleError(sid, f"superpixel index {lo if lo < 0 else hi} is outside category_label's "
                                 f"{n} entries (broken record)", path)
        used = np.zeros(n, dtype=bool)
        used[superpixels] = True
        masks = {field: _lookup(labels[field], superpixels, used, size=mat.sizes[field],
                                what=_LABEL_KEYS[field], source_id=sid, path=path)
                 for field in _LABEL_KEYS}
        return RawSample(masks=masks, annotation_path=path)
