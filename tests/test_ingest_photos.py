"""Photos as stored: EXIF orientation (CCP masks follow the stored pixels) from ingest through
export to the training reader, and the photo's own format in the metadata (real CCP photos given
an orientation tag or another format with PIL, real FiftyOne database)."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from PIL import Image

from ccp_layout import make_ccp_subset
from clothcurate.curation.export import export_folds
from clothcurate.curation.ingest import ingest
from clothcurate.images import read_image
from clothcurate.training.data import decode_samples, read_export

ORIENTATION = 0x0112  # EXIF tag


def _with_orientation(src, dst, orientation: int, *, rotate_stored: bool = False) -> np.ndarray:
    """Save the photo ``src`` as JPEG ``dst`` with an EXIF orientation tag; returns its stored pixels
    ((H, W, 3) uint8 RGB, as decoded by PIL, which never applies the tag by itself)."""
    with Image.open(src) as im:
        im = im.transpose(Image.Transpose.ROTATE_90) if rotate_stored else im.copy()
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    im.save(dst, quality=95, exif=exif)
    with Image.open(dst) as saved:
        assert saved.getexif()[ORIENTATION] == orientation
        return np.asarray(saved.convert("RGB"))


def _replace_photo(root, sid: str) -> str:
    path = root / "photos" / f"{sid}.jpg"
    target = os.readlink(path)
    path.unlink()
    return target


def test_read_image_reads_stored_pixels(tmp_path, ccp_dir):
    stored = _with_orientation(ccp_dir / "photos" / "0002.jpg", tmp_path / "p.jpg", 6)
    image = read_image(tmp_path / "p.jpg")
    assert image.dtype == np.uint8 and image.shape == stored.shape
    assert np.abs(image.astype(int) - stored).mean() < 2  # two JPEG decoders, same pixels


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_tagged_photo_whose_mask_fits_the_stored_pixels_trains_on_stored_pixels(
        tmp_path, ccp_dir, tmp_home, orientation):
    import fiftyone as fo

    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0002", "0003", "0004"])
    original = _replace_photo(root, "0003")
    stored = _with_orientation(original, root / "photos" / "0003.jpg", orientation)
    name = f"exif-{orientation}"
    report = ingest(ccp=root, dataset=name, progress=False)
    assert report.added == {"ccp": 3} and not report.bad
    sample = fo.load_dataset(name).match({"source_id": "0003"}).first()
    assert (sample.metadata.width, sample.metadata.height) == (stored.shape[1], stored.shape[0])
    assert sample.exif_orientation == orientation

    export_folds(dataset=name, out=tmp_path / "folds", folds=2, progress=False)
    export = read_export(tmp_path / "folds")
    (exported,) = [s for s in export.samples if s.key == "ccp_0003"]
    with Image.open(exported.image) as im:  # re-encoded without the tag
        assert ORIENTATION not in im.getexif() and im.size == (stored.shape[1], stored.shape[0])
    size = 96
    cache = decode_samples([exported], size=size)
    expected = cv2.resize(stored, (size, size), interpolation=cv2.INTER_AREA)
    assert np.abs(cache.images[0].numpy().astype(int) - expected).mean() < 4
    mask = cv2.imread(sample.ground_truth.mask_path, cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(cache.masks[0].numpy(), cv2.resize(mask, (size, size),
                                                                      interpolation=cv2.INTER_NEAREST))
    # an export that kept the tag (a copied photo) trains on the stored pixels all the same
    exported.image.write_bytes((root / "photos" / "0003.jpg").read_bytes())
    tagged = decode_samples([exported], size=size)
    assert np.abs(tagged.images[0].numpy().astype(int) - expected).mean() < 4


def test_photo_whose_mask_fits_only_the_rotated_view_is_refused_naming_the_orientation(
        tmp_path, ccp_dir, tmp_home):
    """A camera photo stored sideways with orientation 6: its upright view fits the mask, its stored
    pixels do not."""
    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0002", "0003"])
    original = _replace_photo(root, "0003")
    _with_orientation(original, root / "photos" / "0003.jpg", 6, rotate_stored=True)
    report = ingest(ccp=root, dataset="exif-refused", progress=False)
    assert report.added == {"ccp": 1}
    (bad,) = report.bad
    assert bad["source_id"] == "0003" and bad["path"] == str(root / "photos" / "0003.jpg")
    assert "EXIF orientation 6" in bad["reason"] and "stored pixels" in bad["reason"]


def test_metadata_describes_the_photo_file(tmp_path, ccp_dir, tmp_home):
    import fiftyone as fo

    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0002", "0003"])
    original = _replace_photo(root, "0003")
    with Image.open(original) as im:
        im.save(root / "photos" / "0003.jpg", format="PNG")  # a PNG under CCP's .jpg name
    original = _replace_photo(root, "0002")
    with Image.open(original) as im:
        im.convert("L").save(root / "photos" / "0002.jpg", quality=95)
    ingest(ccp=root, dataset="mime", progress=False)
    ds = fo.load_dataset("mime")
    meta = dict(zip(ds.values("source_id"), ds.values("metadata")))
    assert meta["0003"].mime_type == "image/png" and meta["0003"].num_channels == 3
    assert meta["0002"].mime_type == "image/jpeg" and meta["0002"].num_channels == 1
    assert meta["0003"].size_bytes == (root / "photos" / "0003.jpg").stat().st_size
