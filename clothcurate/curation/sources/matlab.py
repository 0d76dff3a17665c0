"""Numeric variables of MATLAB files, whichever format MATLAB saved them in.

``save`` writes v5/v7 files (read by scipy) unless told ``-v7.3``, which writes HDF5 behind a
512-byte header (read by h5py). HDF5 stores MATLAB's column-major arrays transposed: an (H, W)
matrix is an (W, H) dataset, turned back here so both formats give the array MATLAB shows.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import scipy.io

__all__ = ["load_array"]


def load_array(path: str | Path, name: str) -> np.ndarray | None:
    """The numeric variable ``name`` of a ``.mat`` file, or None when the file has no such variable.

    Args:
        path: a MATLAB v5/v7 or v7.3 (HDF5) file.
        name: the variable.

    Returns:
        The array as MATLAB shows it (an (H, W) matrix is (H, W)), in the file's dtype.

    Raises:
        OSError, ValueError, TypeError: the file is truncated or corrupt, or the variable is not a
            numeric array (a struct, cell, sparse or empty matrix in a v7.3 file).
    """
    if not h5py.is_hdf5(path):
        return scipy.io.loadmat(path, variable_names=[name]).get(name)
    with h5py.File(path, "r") as f:
        if name not in f:
            return None
        ds = f[name]
        matlab_class = ds.attrs.get("MATLAB_class", b"")
        matlab_class = matlab_class.decode() if isinstance(matlab_class, bytes) else str(matlab_class)
        if not isinstance(ds, h5py.Dataset) or ds.attrs.get("MATLAB_empty", 0) or ds.dtype.kind not in "biuf":
            raise TypeError(f"variable {name!r} is a MATLAB {matlab_class or 'object'}, not a numeric array")
        return ds[()].T
