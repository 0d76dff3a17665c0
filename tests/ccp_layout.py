"""Small CCP-layout folders for tests: links to real CCP files, plus crafted bad samples."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io


def make_ccp_subset(root: Path, ccp_dir: Path, ids: list[str]) -> Path:
    """A CCP folder at ``root`` whose photos/annotations are symlinks to the real ones for ``ids``."""
    (root / "photos").mkdir(parents=True)
    (root / "annotations" / "pixel-level").mkdir(parents=True)
    os.symlink(ccp_dir / "label_list.mat", root / "label_list.mat")
    for sid in ids:
        os.symlink(ccp_dir / "photos" / f"{sid}.jpg", root / "photos" / f"{sid}.jpg")
        os.symlink(ccp_dir / "annotations" / "pixel-level" / f"{sid}.mat",
                   root / "annotations" / "pixel-level" / f"{sid}.mat")
    return root


def add_bad_samples(root: Path, ccp_dir: Path) -> dict[str, str]:
    """Add one sample per kind of bad input; returns ``{source_id: words expected in the reason}``."""
    photos, pixel = root / "photos", root / "annotations" / "pixel-level"
    real_photo = (ccp_dir / "photos" / "0001.jpg").read_bytes()
    real_gt = scipy.io.loadmat(ccp_dir / "annotations" / "pixel-level" / "0001.mat")["groundtruth"]

    # 9001: truncated .mat
    (photos / "9001.jpg").write_bytes(real_photo)
    (pixel / "9001.mat").write_bytes((ccp_dir / "annotations/pixel-level/0001.mat").read_bytes()[:300])
    # 9002: truncated JPEG
    (photos / "9002.jpg").write_bytes(real_photo[: len(real_photo) // 2])
    scipy.io.savemat(pixel / "9002.mat", {"groundtruth": real_gt})
    # 9003: mask size differs from the photo
    (photos / "9003.jpg").write_bytes(real_photo)
    scipy.io.savemat(pixel / "9003.mat", {"groundtruth": real_gt[:-10]})
    # 9004: a label id outside the 59-label vocabulary
    bad = real_gt.copy()
    bad[5:9, 5:9] = 77
    (photos / "9004.jpg").write_bytes(real_photo)
    scipy.io.savemat(pixel / "9004.mat", {"groundtruth": bad})
    # 9005: annotation without photo
    scipy.io.savemat(pixel / "9005.mat", {"groundtruth": real_gt})
    # 9006: .mat without the variable
    (photos / "9006.jpg").write_bytes(real_photo)
    scipy.io.savemat(pixel / "9006.mat", {"other": np.zeros((2, 2), np.uint8)})
    return {"9001": "unreadable .mat", "9002": "truncated JPEG", "9003": "photo is", "9004": "label id 77",
            "9005": "photo missing", "9006": "groundtruth"}


def write_mat73(path: Path, variables: dict[str, np.ndarray]) -> None:
    """Save numeric arrays as MATLAB v7.3 does (``save -v7.3``): an HDF5 file behind a 512-byte
    MATLAB header, each (H, W) matrix stored transposed ((W, H), MATLAB's column-major order) with
    its ``MATLAB_class``."""
    import h5py

    from cfpd_fixtures import _matlab_header

    classes = {np.dtype(np.uint8): "uint8", np.dtype(np.uint16): "uint16", np.dtype(np.float64): "double",
               np.dtype(np.int32): "int32"}
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in variables.items():
            ds = f.create_dataset(name, data=np.ascontiguousarray(value.T), compression="gzip")
            ds.attrs["MATLAB_class"] = np.bytes_(classes[value.dtype])
    _matlab_header(path)
