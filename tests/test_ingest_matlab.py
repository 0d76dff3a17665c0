"""CCP annotations saved as MATLAB v7.3 (HDF5) read like the v5 originals (real CCP masks re-saved
in the v7.3 layout, real FiftyOne database)."""

from __future__ import annotations

import cv2
import numpy as np
import scipy.io

from ccp_layout import make_ccp_subset, write_mat73
from clothcurate.curation.ingest import ingest


def _resave(root, ccp_dir, sid: str, variables=None) -> np.ndarray:
    mat = root / "annotations" / "pixel-level" / f"{sid}.mat"
    gt = scipy.io.loadmat(ccp_dir / "annotations" / "pixel-level" / f"{sid}.mat")["groundtruth"]
    mat.unlink()
    write_mat73(mat, {"groundtruth": gt} if variables is None else variables(gt))
    return gt


def test_v73_masks_are_read(tmp_path, ccp_dir, tmp_home):
    import fiftyone as fo

    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0002", "0003", "0004", "0005"])
    truth = {sid: _resave(root, ccp_dir, sid) for sid in ("0003", "0004")}
    assert truth["0003"].shape[0] != truth["0003"].shape[1]  # the transposition matters
    _resave(root, ccp_dir, "0005", lambda gt: {"groundtruth": gt.astype(np.float64)})  # as v5: refused
    _resave(root, ccp_dir, "0002", lambda gt: {"other": gt})
    report = ingest(ccp=root, dataset="mat73", progress=False)
    assert report.added == {"ccp": 2}
    reasons = {b["source_id"]: b["reason"] for b in report.bad}
    assert "no variable 'groundtruth'" in reasons["0002"] and "float64" in reasons["0005"]
    ds = fo.load_dataset("mat73")
    for sid, raw in zip(*ds.values(["source_id", "raw_ccp.mask_path"])):
        np.testing.assert_array_equal(cv2.imread(raw, cv2.IMREAD_UNCHANGED), truth[sid], err_msg=sid)
