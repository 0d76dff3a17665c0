"""Sample keys: one key per source id, and ids that would still share a key refused before anything
is written (real CCP files under crafted names, real FiftyOne database)."""

from __future__ import annotations

import os

import cv2
import numpy as np
import scipy.io
from click.testing import CliRunner

from ccp_layout import make_ccp_subset
from clothcurate.cli import main
from clothcurate.curation.ingest import ingest
from clothcurate.workspace import sample_key

# Names that a replacing scheme maps onto each other ("00 01", "00-01", "00_01" ...).
TRICKY = ["00 01", "00-01", "00_01", "00.01", "00%01", "00%2001", "00+01", "0001", "ä01", "a01",
          "00~01", "00--01", "00/01", "00\\01", "00:01"]


def test_existing_keys_keep_their_form():
    assert sample_key("ccp", "0001") == "ccp_0001"
    assert sample_key("cfpd", "1.jpg") == "cfpd_1"
    assert sample_key("cfpd", "img_12.jpg") == "cfpd_img_12"


def test_keys_are_injective_and_file_name_safe():
    keys = [sample_key("ccp", sid) for sid in TRICKY]
    assert len(set(keys)) == len(TRICKY), dict(zip(TRICKY, keys))
    assert len({k.casefold() for k in keys}) == len(keys)
    for k in keys:
        assert "/" not in k and "\\" not in k and ":" not in k and k.isascii(), k


def _link_sample(root, ccp_dir, real: str, sid: str) -> None:
    os.symlink(ccp_dir / "photos" / f"{real}.jpg", root / "photos" / f"{sid}.jpg")
    os.symlink(ccp_dir / "annotations" / "pixel-level" / f"{real}.mat",
               root / "annotations" / "pixel-level" / f"{sid}.mat")


def test_names_a_replacing_scheme_merges_are_separate_samples(tmp_path, ccp_dir, tmp_home):
    """``00 01`` and ``00-01`` were one key: the first ingest crashed after one insert and the re-run
    gave that sample the other photo's mask."""
    import fiftyone as fo

    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, [])
    _link_sample(root, ccp_dir, "0002", "00 01")
    _link_sample(root, ccp_dir, "0003", "00-01")
    report = ingest(ccp=root, dataset="keys-merge", progress=False)
    assert report.added == {"ccp": 2}
    ds = fo.load_dataset("keys-merge")
    assert len(set(ds.values("key"))) == 2
    for sid, real in (("00 01", "0002"), ("00-01", "0003")):
        sample = ds.match({"source_id": sid}).first()
        assert sample.key == sample_key("ccp", sid)
        raw = scipy.io.loadmat(ccp_dir / "annotations" / "pixel-level" / f"{real}.mat")["groundtruth"]
        np.testing.assert_array_equal(cv2.imread(sample.raw_ccp.mask_path, cv2.IMREAD_UNCHANGED), raw)
    again = ingest(ccp=root, dataset="keys-merge", progress=False)
    assert again.added == {"ccp": 0} and again.already_present == {"ccp": 2}


def test_ids_that_still_share_a_key_are_refused_before_anything_is_written(tmp_path, ccp_dir, tmp_home):
    """``Ab`` and ``aB`` are two mask files on Linux but one on a case-insensitive file system."""
    import fiftyone as fo

    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0004"])
    _link_sample(root, ccp_dir, "0002", "Ab")
    _link_sample(root, ccp_dir, "0003", "aB")
    result = CliRunner().invoke(main, ["ingest", "--ccp", str(root), "--dataset", "keys-clash"])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert line.startswith("error: ") and "\n" not in line
    assert str(root / "photos" / "Ab.jpg") in line and str(root / "photos" / "aB.jpg") in line
    assert "keys-clash" not in fo.list_datasets()
    assert not (tmp_home / "datasets" / "keys-clash").exists()


def test_cfpd_names_that_differ_only_in_extension_are_refused(tmp_path, tmp_home):
    import shutil

    import h5py

    from cfpd_fixtures import write_cfpd_fixture

    truth = write_cfpd_fixture(tmp_path / "CFPD", n_images=6, broken=False, out_of_range=False,
                               missing_image=False, incomplete=False, seed=5)
    first, second = list(truth.categories)[:2]
    clash = first.replace(".jpg", ".png")
    with h5py.File(truth.mat_path, "r+") as f:  # rename record `second` to `clash`, same shape
        for ref in f["fashion_dataset"][()].ravel():
            rec = f[ref]
            name = "".join(map(chr, rec["img_name"][()].ravel()))
            if name == second:
                codes = rec["img_name"][()]
                del rec["img_name"]
                rec["img_name"] = np.array([ord(c) for c in clash], codes.dtype).reshape(
                    (-1, 1) if codes.shape[1] == 1 else (1, -1))
    shutil.copy(truth.root / "image" / first, truth.root / "image" / clash)
    result = CliRunner().invoke(main, ["ingest", "--cfpd", str(truth.root), "--dataset", "keys-ext"])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and first in line and clash in line and "cfpd_" in line


def test_a_dataset_keyed_by_the_old_scheme_is_not_joined_silently(tmp_path, ccp_dir, tmp_home):
    """A dataset made when ``00 01`` was keyed ``ccp_00-01``: a re-run must neither add ``00 01``
    again under its new key nor give ``00-01`` the key of another photo's sample."""
    import fiftyone as fo

    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0002"])
    _link_sample(root, ccp_dir, "0003", "00 01")
    ingest(ccp=root, dataset="keys-old", progress=False)
    ds = fo.load_dataset("keys-old")
    old = ds.match({"source_id": "00 01"}).first()
    old.key = "ccp_00-01"  # as the replacing scheme named it
    old.save()
    before = sorted(ds.values("key"))
    for extra in ([], ["00-01"]):
        for sid in extra:
            _link_sample(root, ccp_dir, "0004", sid)
        result = CliRunner().invoke(main, ["ingest", "--ccp", str(root), "--dataset", "keys-old"])
        assert result.exit_code == 2, result.output
        line = result.output.strip()
        assert "\n" not in line and "ccp_00-01" in line and "'00 01'" in line and "deletes" in line
        ds.reload()
        assert sorted(ds.values("key")) == before
