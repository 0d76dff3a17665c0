"""CCP's photos with image-level tags only (ids 1005-1998): ingested as mask-less samples with
their Table I tags, counted by status, left out of exports (and of flag-errors: test_flags_ccp)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner
from fiftyone import ViewField as F

from clothcurate.cli import main
from clothcurate.curation.ingest import ingest
from clothcurate.curation.sources.ccp import CCPSource
from test_ingest import CLASSES, TABLE_I

TAG_ONLY_IDS = [f"{i:04d}" for i in range(1005, 1999)]


def _names(ccp_dir: Path) -> list[str]:
    return [str(x[0]) for x in scipy.io.loadmat(ccp_dir / "label_list.mat")["label_list"][0]]


def _table_i(ccp_dir: Path, **moved: str) -> np.ndarray:
    """(59,) target class id per CCP id, from TABLE_I written out in test_ingest (not the package's
    YAML); ``moved`` re-targets CCP names (``skirt="pants"``)."""
    by_name = {n: CLASSES.index(c) for c, ns in TABLE_I.items() for n in ns.split()}
    by_name.update({n: CLASSES.index(c) for n, c in moved.items()})
    return np.array([by_name[n] for n in _names(ccp_dir)])


def _expected_tags(ccp_dir: Path, sid: str, lut: np.ndarray) -> list[str]:
    """scipy's own read of the tags file, remapped by ``lut``, background dropped, in class order."""
    tags = scipy.io.loadmat(ccp_dir / "annotations" / "image-level" / f"{sid}.mat")["tags"].ravel()
    return [CLASSES[c] for c in sorted(set(lut[tags].tolist())) if c != 0]


def _tags_of(sample) -> list[str]:
    return [c.label for c in sample.image_tags.classifications]


def _subset(root: Path, ccp_dir: Path, *, pixel: list[str], image: list[str]) -> Path:
    """A CCP folder linking to the real files: ``pixel`` ids with their masks, ``image`` ids with
    their image-level tags."""
    for d in ("photos", "annotations/pixel-level", "annotations/image-level"):
        (root / d).mkdir(parents=True)
    os.symlink(ccp_dir / "label_list.mat", root / "label_list.mat")
    for kind, ids in (("pixel-level", pixel), ("image-level", image)):
        for sid in ids:
            os.symlink(ccp_dir / "photos" / f"{sid}.jpg", root / "photos" / f"{sid}.jpg")
            os.symlink(ccp_dir / "annotations" / kind / f"{sid}.mat", root / "annotations" / kind / f"{sid}.mat")
    return root


@pytest.mark.slow
def test_full_ccp_tag_only_samples(ccp_dataset, ccp_dir):
    """Every one of the 994 photos: a sample without mask, tags = scipy's read through Table I."""
    import PIL.Image

    tagged = ccp_dataset.match(F("annotation") == "image")
    assert sorted(tagged.values("source_id")) == TAG_ONLY_IDS
    assert ccp_dataset.match(F("annotation") == "pixel").count() == 1004
    # no mask, so none of the fields measured from one
    for fld in ("ground_truth", "raw_ccp", "classes", "class_pixels", "person"):
        assert tagged.exists(fld).count() == 0, fld
    lut = _table_i(ccp_dir)
    seen = set()
    for sample in tagged.select_fields(["source_id", "image_tags", "metadata", "key"]):
        sid = sample.source_id
        assert _tags_of(sample) == _expected_tags(ccp_dir, sid, lut), sid
        assert sample.filepath == str(ccp_dir / "photos" / f"{sid}.jpg") and sample.key == f"ccp_{sid}"
        with PIL.Image.open(sample.filepath) as im:
            assert (sample.metadata.width, sample.metadata.height) == im.size, sid
        seen.update(_tags_of(sample))
    assert "background" not in seen and seen <= set(CLASSES)
    # the pixel-annotated samples carry no image_tags
    assert ccp_dataset.match(F("annotation") == "pixel").exists("image_tags").count() == 0


def test_reader_matches_scipy(ccp_dir):
    """CCPSource.read_tags gives exactly the ids scipy reads, for every tags file."""
    source = CCPSource(ccp_dir)
    refs, problems, left_out = source.scan()
    image = [r for r in refs if r.annotation == "image"]
    assert [r.source_id for r in image] == TAG_ONLY_IDS and not problems and left_out == {"photo without annotation": 0}
    assert [r.annotation for r in refs[:1004]] == ["pixel"] * 1004  # pixel-annotated first
    for ref in image:
        want = scipy.io.loadmat(ref.locator[0])["tags"].ravel()
        np.testing.assert_array_equal(source.read_tags(ref), want.astype(np.int64), err_msg=ref.source_id)


def test_user_labelmap_applies_to_tags(tmp_path, ccp_dir, tmp_home):
    """--labelmap re-targets tags too (skirt -> pants; bracelet, a background label, -> hat)."""
    import fiftyone as fo

    from clothcurate.labelmaps import _builtin

    lm = tmp_path / "ccp-edited.yaml"
    lm.write_text(_builtin("ccp.yaml").read_text().replace('["skirt", "dress"]', '["skirt", "pants"]')
                  .replace('["bracelet", "background"]', '["bracelet", "hat"]'))
    names = _names(ccp_dir)
    level = ccp_dir / "annotations" / "image-level"
    tags = {sid: {names[i] for i in scipy.io.loadmat(level / f"{sid}.mat")["tags"].ravel()}
            for sid in TAG_ONLY_IDS[:200]}
    # a photo where skirt is the only dress-like tag, another with a bracelet but no hat
    skirt = next(s for s, t in tags.items() if "skirt" in t and "dress" not in t)
    ids = [skirt, next(s for s, t in tags.items() if "bracelet" in t and "hat" not in t and s != skirt)]
    root = _subset(tmp_path / "ccp", ccp_dir, pixel=["0002"], image=ids)
    ingest(ccp=root, dataset="tags-lm", labelmaps=[lm], progress=False)
    ds = fo.load_dataset("tags-lm")
    lut = _table_i(ccp_dir, skirt="pants", bracelet="hat")
    got = {s.source_id: _tags_of(s) for s in ds.match(F("annotation") == "image")}
    assert got == {sid: _expected_tags(ccp_dir, sid, lut) for sid in ids}
    assert "pants" in got[ids[0]] and "dress" not in got[ids[0]] and "hat" in got[ids[1]]


def _write_bad_tags(root: Path, ccp_dir: Path) -> dict[str, str]:
    """One tag-only sample per kind of bad input; returns ``{source_id: words expected in the reason}``."""
    photos, level = root / "photos", root / "annotations" / "image-level"
    real_photo = (ccp_dir / "photos" / "1005.jpg").read_bytes()
    real_mat = (ccp_dir / "annotations" / "image-level" / "1005.mat").read_bytes()
    (photos / "9101.jpg").write_bytes(real_photo)
    (level / "9101.mat").write_bytes(real_mat[:100])                                  # truncated .mat
    (photos / "9102.jpg").write_bytes(real_photo)
    scipy.io.savemat(level / "9102.mat", {"labels": np.array([[1, 2]], np.uint8)})    # no 'tags'
    (photos / "9103.jpg").write_bytes(real_photo)
    scipy.io.savemat(level / "9103.mat", {"tags": np.array([[0, 5, 77]], np.uint8)})  # id outside 0..58
    (photos / "9104.jpg").write_bytes(real_photo)
    scipy.io.savemat(level / "9104.mat", {"tags": np.ones((3, 3), np.uint8)})         # a matrix
    (photos / "9105.jpg").write_bytes(real_photo[: len(real_photo) // 2])                # truncated photo
    scipy.io.savemat(level / "9105.mat", {"tags": np.array([[5]], np.uint8)})
    scipy.io.savemat(level / "9106.mat", {"tags": np.array([[5]], np.uint8)})         # no photo
    return {"9101": "unreadable .mat", "9102": "no variable 'tags'", "9103": "tag id 77",
            "9104": "expected a vector", "9105": "truncated JPEG", "9106": "photo missing"}


def test_bad_tags_files_are_skipped_named_and_strict_stops(tmp_path, ccp_dir, tmp_home):
    root = _subset(tmp_path / "ccp", ccp_dir, pixel=["0002"], image=["1005", "1006"])
    expected = _write_bad_tags(root, ccp_dir)
    # MATLAB's default double is accepted when whole
    (root / "photos" / "9107.jpg").symlink_to(ccp_dir / "photos" / "1007.jpg")
    tags_1007 = scipy.io.loadmat(ccp_dir / "annotations" / "image-level" / "1007.mat")["tags"]
    scipy.io.savemat(root / "annotations" / "image-level" / "9107.mat", {"tags": tags_1007.astype(np.float64)})

    result = CliRunner().invoke(main, ["ingest", "--ccp", str(root), "--dataset", "bad-tags"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_home / "datasets" / "bad-tags" / "ingest_report.json").read_text())
    assert report["added"] == {"ccp": 4} and report["tag_only"] == {"ccp": 3}
    reasons = {b["source_id"]: b["reason"] for b in report["bad"]}
    assert set(reasons) == set(expected)
    for sid, words in expected.items():
        assert words in reasons[sid], (sid, reasons[sid])
        assert sum(sid in line for line in result.output.splitlines()) == 1, sid  # one line each
    assert "4 added (3 with image-level tags only, no mask)" in result.output
    import fiftyone as fo

    ds = fo.load_dataset("bad-tags")
    got = {s.source_id: _tags_of(s) for s in ds.match(F("annotation") == "image")}
    assert got["9107"] == _expected_tags(ccp_dir, "1007", _table_i(ccp_dir)) != []

    # --strict stops at the first bad one (a scan problem first: the tags file without photo)
    result = CliRunner().invoke(main, ["ingest", "--ccp", str(root), "--dataset", "bad-tags-strict", "--strict"])
    assert result.exit_code == 2 and "--strict" in result.output and "9106" in result.output, result.output
    (root / "annotations" / "image-level" / "9106.mat").unlink()
    result = CliRunner().invoke(main, ["ingest", "--ccp", str(root), "--dataset", "bad-tags-strict", "--strict"])
    assert result.exit_code == 2 and "--strict" in result.output, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: ") and any(sid in last for sid in ("9101", "9102", "9103", "9104", "9105"))


def test_rerun_is_idempotent_and_overwrite_rebuilds(tmp_path, ccp_dir, tmp_home):
    import fiftyone as fo

    root = _subset(tmp_path / "ccp", ccp_dir, pixel=["0002", "0003"], image=["1005", "1006", "1007"])
    first = ingest(ccp=root, dataset="tags-rerun", progress=False)
    assert first.added == {"ccp": 5} and first.tag_only == {"ccp": 3}
    ds = fo.load_dataset("tags-rerun")
    ds.select_by("key", ["ccp_1006"]).tag_samples("reject")  # a reviewer's tag survives a re-run
    before = dict(zip(*ds.values(["key", "last_modified_at"])))
    tags = {s.key: _tags_of(s) for s in ds.match(F("annotation") == "image")}

    again = ingest(ccp=root, dataset="tags-rerun", progress=False)
    assert again.added == {"ccp": 0} and again.already_present == {"ccp": 5}
    assert again.restored == {"ccp": 0} and again.tag_only == {"ccp": 0}  # nothing to restore: no mask
    ds.reload()
    assert dict(zip(*ds.values(["key", "last_modified_at"]))) == before
    assert "reject" in ds.one(F("key") == "ccp_1006").tags

    ids = set(ds.values("id"))
    rebuilt = ingest(ccp=root, dataset="tags-rerun", overwrite=True, progress=False)
    ds.reload()
    assert rebuilt.added == {"ccp": 5} and rebuilt.tag_only == {"ccp": 3} and len(ds) == 5
    assert not ids & set(ds.values("id"))
    assert {s.key: _tags_of(s) for s in ds.match(F("annotation") == "image")} == tags
    assert ds.count_sample_tags() == {}


def test_export_leaves_tag_only_samples_out(ccp_dataset, tmp_path, tmp_home):
    """export-folds writes only pixel-annotated samples, says how many tag-only ones it left out,
    and gives those no fold."""
    import fiftyone as fo

    from clothcurate.folders import read_export

    ids = (ccp_dataset.match(F("annotation") == "pixel").take(20, seed=3).values("id")
           + ccp_dataset.match(F("annotation") == "image").take(7, seed=3).values("id"))
    ds = ccp_dataset.select(ids).clone("export-tags")
    try:
        tagged = set(ds.match(F("annotation") == "image").values("key"))
        result = CliRunner().invoke(main, ["export-folds", "--dataset", ds.name, "--out", str(tmp_path / "e"),
                                           "--folds", "2"])
        assert result.exit_code == 0, result.output
        assert "7 with image-level tags only (no mask)" in result.output
        meta = json.loads((tmp_path / "e" / "export.json").read_text())
        assert meta["left_out"] == {"reject": 0, "bg_only": 0, "tag_only": 7} and meta["n_samples"] == 20
        folds = json.loads((tmp_path / "e" / "folds.json").read_text())["samples"]
        assert len(folds) == 20 and not {s["key"] for s in folds} & tagged
        assert not {p.stem for p in (tmp_path / "e" / "images").iterdir()} & tagged
        ds.reload()
        assert set(ds.match(F("annotation") == "image").values("fold")) == {None}
        assert ds.exists("fold").count() == 20
        assert len(read_export(tmp_path / "e").samples) == 20
    finally:
        fo.delete_dataset("export-tags")


def test_dataset_of_tag_only_samples_is_refused_by_export_and_flag_errors(tmp_path, ccp_dir, tmp_home):
    root = _subset(tmp_path / "ccp", ccp_dir, pixel=[], image=["1005", "1006", "1007"])
    assert ingest(ccp=root, dataset="tags-alone", progress=False).tag_only == {"ccp": 3}
    result = CliRunner().invoke(main, ["export-folds", "--dataset", "tags-alone", "--out", str(tmp_path / "e")])
    assert result.exit_code == 2, result.output
    assert "0 eligible samples" in result.output and "'tag_only': 3" in result.output, result.output
    result = CliRunner().invoke(main, ["flag-errors", "--dataset", "tags-alone"])
    assert result.exit_code == 2 and "no pixel-annotated samples" in result.output, result.output


def test_status_counts_pixel_and_tag_only(ccp_dataset):
    result = CliRunner().invoke(main, ["status", "--dataset", ccp_dataset.name, "--json"])
    assert result.exit_code == 0, result.output
    st = json.loads(result.output)
    assert st["samples"] == 1998 and st["annotation"] == {"ccp": {"pixel": 1004, "image": 994}}
    text = CliRunner().invoke(main, ["status", "--dataset", ccp_dataset.name])
    assert text.exit_code == 0 and "ccp 1998 (1004 pixel-annotated, 994 image-level tags only)" in text.output


def test_tag_only_sample_that_gains_a_mask_is_reported_then_rebuilt_by_overwrite(tmp_path, ccp_dir, tmp_home):
    import fiftyone as fo
    import PIL.Image

    root = _subset(tmp_path / "ccp", ccp_dir, pixel=["0002"], image=["1005"])
    ingest(ccp=root, dataset="tags-upgrade", progress=False)
    with PIL.Image.open(ccp_dir / "photos" / "1005.jpg") as im:
        width, height = im.size
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4: height // 2, width // 4: width // 2] = 14  # CCP "dress"
    scipy.io.savemat(root / "annotations" / "pixel-level" / "1005.mat", {"groundtruth": mask})

    report = ingest(ccp=root, dataset="tags-upgrade", progress=False)
    assert report.added == {"ccp": 0}
    assert report.left_out == {"ccp": {"tag-only in the dataset but now pixel-annotated "
                                       "(--overwrite rebuilds them)": 1}}
    assert "left out: 1 tag-only in the dataset but now pixel-annotated" in report.summary()
    assert fo.load_dataset("tags-upgrade").one(F("key") == "ccp_1005").annotation == "image"

    ingest(ccp=root, dataset="tags-upgrade", overwrite=True, progress=False)
    sample = fo.load_dataset("tags-upgrade").one(F("key") == "ccp_1005")
    assert sample.annotation == "pixel" and sample.classes == ["background", "dress"]
    assert sample.has_field("image_tags") is False or sample.image_tags is None


def test_dataset_ingested_before_the_annotation_field_counts_as_pixel(ccp_dataset, tmp_path, tmp_home):
    """Samples without ``annotation`` (older clothcurate) are pixel-annotated for every reader."""
    import fiftyone as fo

    from clothcurate.curation.export import export_folds
    from clothcurate.curation.flags import flag_errors
    from clothcurate.curation.status import dataset_status

    ds = ccp_dataset.match(F("annotation") == "pixel").take(12, seed=5).clone("tags-older")
    try:
        ds.delete_sample_field("annotation")
        assert dataset_status(ds.name)["annotation"] == {"ccp": {"pixel": 12, "image": 0}}
        report = export_folds(dataset=ds.name, out=tmp_path / "e", folds=2, progress=False)
        assert report.n_exported == 12 and report.left_out["tag_only"] == 0
        assert flag_errors(ds.name, progress=False).samples == 12
    finally:
        fo.delete_dataset("tags-older")
