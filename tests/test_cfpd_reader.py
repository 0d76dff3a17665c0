"""The CFPD reader against fixtures written in the authors' exact MATLAB v7.3 format."""

from __future__ import annotations

import multiprocessing
import pickle
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from cfpd_fixtures import CATEGORY_NAMES, COLOR_NAMES, FixtureTruth, write_cfpd_fixture
from clothcurate.curation.sources import get_source
from clothcurate.curation.sources.cfpd import CFPDSource
from clothcurate.errors import BadInputError, BadSampleError
from clothcurate.labelmaps import TARGET_CLASSES, load_labelmap

# DESIGN.md's reading of Table I for CFPD, written out here independently of the YAML map.
TABLE_I = {"bk": "background", "T-shirt": "shirt", "bag": "bag", "belt": "background", "blazer": "coat",
           "blouse": "shirt", "coat": "coat", "dress": "dress", "face": "skin", "hair": "hair", "hat": "hat",
           "jeans": "pants", "legging": "pants", "pants": "pants", "scarf": "scarf/tie", "shoe": "footwear",
           "shorts": "shorts", "skin": "skin", "skirt": "dress", "socks": "socks", "stocking": "socks",
           "sunglass": "glasses", "sweater": "shirt"}


@pytest.fixture(scope="module")
def cfpd(tmp_path_factory) -> FixtureTruth:
    return write_cfpd_fixture(tmp_path_factory.mktemp("cfpd") / "CFPD", n_images=12)


@pytest.fixture(scope="module")
def scanned(cfpd):
    return CFPDSource(cfpd.root).scan()


def _by_id(refs):
    return {r.source_id: r for r in refs}


def test_vocabularies_are_decoded_from_the_references(cfpd):
    assert CFPDSource(cfpd.root).vocabularies() == {"": list(CATEGORY_NAMES), "color": list(COLOR_NAMES)}


def test_scan_follows_fashion_dataset_in_order_and_reports_problems(cfpd, scanned):
    refs, problems, skipped = scanned
    unusable = set(cfpd.missing_image + cfpd.incomplete)
    assert [r.source_id for r in refs] == [n for n in cfpd.order if n not in unusable]
    assert [r.locator[1] for r in refs] == [i for i, n in enumerate(cfpd.order) if n not in unusable]
    assert all(Path(r.image_path) == cfpd.root.resolve() / "image" / r.source_id for r in refs)
    assert {(p.source_id, p.reason) for p in problems} == (
        {(n, "image missing") for n in cfpd.missing_image} | {(n, "record has no color_label") for n in cfpd.incomplete})
    assert skipped == {}
    assert "decoy.jpg" not in {r.source_id for r in refs}  # an unreferenced group in #refs#


def test_scan_is_stable(cfpd, scanned):
    assert CFPDSource(cfpd.root).scan() == scanned


def test_read_decodes_categories_and_colours(cfpd, scanned):
    refs = _by_id(scanned[0])
    assert cfpd.categories and cfpd.column_labels
    source = CFPDSource(cfpd.root)
    for name, expected in cfpd.categories.items():
        sample = source.read(refs[name])
        assert set(sample.masks) == {"", "color"}
        for got, want in ((sample.masks[""], expected), (sample.masks["color"], cfpd.colors[name])):
            assert got.dtype == np.uint8 and got.shape == (600, 400)
            np.testing.assert_array_equal(got, want, err_msg=name)
        assert sample.annotation_path == str(cfpd.mat_path.resolve())


@pytest.mark.parametrize("kind, reason", [("broken", "broken record"), ("out_of_range", "is 117, outside 1..23")])
def test_bad_records_raise_bad_sample_error(cfpd, scanned, kind, reason):
    (name,) = getattr(cfpd, kind)
    with pytest.raises(BadSampleError, match=reason) as e:
        CFPDSource(cfpd.root).read(_by_id(scanned[0])[name])
    assert e.value.source_id == name and e.value.path == str(cfpd.mat_path.resolve())


def test_fashion_dataset_stored_as_a_column(tmp_path):
    truth = write_cfpd_fixture(tmp_path / "CFPD", n_images=6, column_dataset=True, seed=3)
    source = CFPDSource(truth.root)
    refs = _by_id(source.scan()[0])
    for name, expected in truth.categories.items():
        np.testing.assert_array_equal(source.read(refs[name]).masks[""], expected)


def _corrupt(cfpd: FixtureTruth, tmp_path: Path, name: str, member: str, edit) -> CFPDSource:
    """A copy of the fixture with member ``member`` of record ``name`` replaced by ``edit(old)``."""
    root = tmp_path / "CFPD"
    shutil.copytree(cfpd.root, root)
    with h5py.File(root / cfpd.mat_path.name, "r+") as f:
        record = f[f["fashion_dataset"][0, cfpd.order.index(name)]]
        old = record[member][()]
        del record[member]
        record[member] = edit(old)
    return CFPDSource(root)


@pytest.mark.parametrize("member, edit, reason", [
    ("color_label", lambda a: np.full_like(a, 14), "color_label of superpixel 0 is 14, outside 1..13"),
    ("category_label", lambda a: np.zeros_like(a), "category_label of superpixel 0 is 0, outside 1..23"),
    ("category_label", lambda a: np.stack([a.ravel(), a.ravel()]), r"shape \(2, \d+\), expected \(1, S\) or \(S, 1\)"),
    ("segmentation", lambda a: a + 0.5, "segmentation holds non-integer values"),
    ("segmentation", lambda a: a[None], "expected \\(W, H\\)"),
    ("img_name", lambda a: a.astype(np.float64), "unreadable record"),
])
def test_malformed_records_raise_bad_sample_error(cfpd, tmp_path, member, edit, reason):
    name = next(iter(cfpd.categories))
    source = _corrupt(cfpd, tmp_path, name, member, edit)
    if member == "img_name":
        assert [p.source_id for p in source.scan()[1] if "unreadable" in p.reason] == [
            f"fashion_dataset[{cfpd.order.index(name)}]"]
        return
    with pytest.raises(BadSampleError, match=reason) as e:
        source.read(_by_id(source.scan()[0])[name])
    assert e.value.source_id == name


def test_names_that_give_one_sample_key_are_both_listed(cfpd, tmp_path):
    """``7.jpg`` and ``7.png`` would both be sample ``cfpd_7``: the reader lists both, and ingest
    refuses the pair before writing anything (tests/test_ingest_keys.py)."""
    first, second = list(cfpd.categories)[:2]
    clash = first.replace(".jpg", ".png")

    def rename(old: np.ndarray) -> np.ndarray:
        chars = np.array([ord(c) for c in clash], dtype=old.dtype)
        return chars.reshape(old.shape[0], -1) if old.shape[0] == 1 else chars.reshape(-1, 1)

    source = _corrupt(cfpd, tmp_path, second, "img_name", rename)
    shutil.copy(source.root / "image" / first, source.root / "image" / clash)
    refs, problems, _ = source.scan()
    assert {first, clash} <= {r.source_id for r in refs}
    assert not [p for p in problems if p.source_id in (first, clash)]


def _layouts(tmp_path: Path, cfpd: FixtureTruth) -> dict[str, Path]:
    """Folders that are not CFPD, by what is wrong with them."""
    no_mat, no_images, v5, truncated, not_cfpd = (tmp_path / n for n in ("no_mat", "no_images", "v5", "truncated",
                                                                        "not_cfpd"))
    for root in (no_mat, v5, truncated, not_cfpd):
        (root / "image").mkdir(parents=True)
    no_images.mkdir()
    shutil.copy(cfpd.mat_path, no_images / cfpd.mat_path.name)
    data = cfpd.mat_path.read_bytes()
    (truncated / cfpd.mat_path.name).write_bytes(data[: len(data) // 2])
    scipy.io.savemat(v5 / cfpd.mat_path.name, {"fashion_dataset": np.zeros((1, 3))})
    with h5py.File(not_cfpd / cfpd.mat_path.name, "w") as f:
        f["all_category_name"] = np.zeros((1, 23))
    return {"no such folder": tmp_path / "absent", "fashon_parsing_data.mat: missing": no_mat,
            "image: missing": no_images, "not a readable MATLAB v7.3 \\(HDF5\\) file": v5,
            "truncated file": truncated,
            "no fashion_dataset, all_colors_name": not_cfpd}


@pytest.mark.parametrize("method", ["vocabularies", "scan"])
def test_bad_layout_is_a_one_line_bad_input_error(cfpd, tmp_path, method):
    for reason, root in _layouts(tmp_path, cfpd).items():
        with pytest.raises(BadInputError, match=reason) as e:
            getattr(CFPDSource(root), method)()
        assert "\n" not in str(e.value)


def test_reference_arrays_of_the_wrong_kind_are_bad_input(cfpd, tmp_path):
    root = tmp_path / "CFPD"
    shutil.copytree(cfpd.root, root)
    with h5py.File(root / cfpd.mat_path.name, "r+") as f:
        del f["all_colors_name"]
        f["all_colors_name"] = np.zeros((2, 13))
    with pytest.raises(BadInputError, match="'all_colors_name' is not a \\(1, N\\) array of object references"):
        CFPDSource(root).scan()


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_refs_pickle_and_read_in_worker_processes(cfpd, scanned, start):
    refs = [r for r in scanned[0] if r.source_id in cfpd.categories]
    assert pickle.loads(pickle.dumps(refs)) == refs
    source = get_source("cfpd", cfpd.root)
    source.read(refs[0])  # the parent holds the file open before the workers start
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(start)) as pool:
        samples = list(pool.map(source.read, refs))
    for ref, sample in zip(refs, samples):
        np.testing.assert_array_equal(sample.masks[""], cfpd.categories[ref.source_id])
        np.testing.assert_array_equal(sample.masks["color"], cfpd.colors[ref.source_id])


def test_labelmap_remaps_to_table_i(cfpd, scanned):
    source, labelmap = CFPDSource(cfpd.root), load_labelmap("cfpd")
    labelmap.check_vocabulary(source.vocabularies()[""], where=str(cfpd.mat_path))
    lut = np.array([TARGET_CLASSES.index(TABLE_I[n]) for n in CATEGORY_NAMES], np.uint8)
    seen = set()
    for ref in scanned[0]:
        if ref.source_id in cfpd.categories:
            raw = source.read(ref).masks[""]
            seen |= {CATEGORY_NAMES[i] for i in np.unique(raw)}
            np.testing.assert_array_equal(labelmap.remap(raw, source_id=ref.source_id), lut[raw])
    assert {"face", "skirt", "belt", "bk"} <= seen
