"""export-folds on a real slice of CCP in a real FiftyOne database: layout, left-out samples, round
trips through FiftyOne's importers and pycocotools, person crops, refusal and atomicity, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from pycocotools.coco import COCO

from clothcurate.cli import main
from clothcurate.geometry import paste_back
from clothcurate.curation.export import export_folds
from clothcurate.errors import BadInputError
from clothcurate.labelmaps import TARGET_CLASSES


@pytest.fixture
def small(ccp_slice):
    """A private 40-sample slice of the session's CCP dataset (tests may tag and edit it)."""
    return ccp_slice(40, seed=0, prefix="export")


def _originals(ds) -> dict[str, np.ndarray]:
    paths = zip(ds.values("key"), ds.values("ground_truth.mask_path"))
    return {key: cv2.imread(path, cv2.IMREAD_UNCHANGED) for key, path in paths}


def _paint(detections, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) class mask from FiftyOne instance detections (relative box + mask cropped to it).

    Written out here because FiftyOne 1.22's ``Detections.to_segmentation`` re-renders the boxes
    with its own rounding and moves a few hundred boundary pixels per image.
    """
    height, width = shape
    canvas = np.zeros(shape, np.uint8)
    for det in detections:
        x, y = round(det.bounding_box[0] * width), round(det.bounding_box[1] * height)
        mh, mw = det.mask.shape
        canvas[y:y + mh, x:x + mw][det.mask.astype(bool)] = TARGET_CLASSES.index(det.label)
    return canvas


def _load(out: Path, name: str) -> dict:
    return json.loads((out / name).read_text())


def test_png_export_layout_folds_and_fiftyone_round_trip(small, tmp_path):
    import fiftyone as fo

    out = tmp_path / "export"
    report = export_folds(dataset=small.name, out=out, folds=5, seed=0, progress=False)
    assert report.n_exported == 40 and report.left_out == {"reject": 0, "bg_only": 0, "tag_only": 0}
    meta = _load(out, "export.json")
    assert {k: meta[k] for k in ("version", "dataset", "folds", "seed", "crop", "size", "format")} == \
        {"version": 1, "dataset": small.name, "folds": 5, "seed": 0, "crop": None, "size": None, "format": "png"}
    assert _load(out, "classes.json") == {"classes": list(TARGET_CLASSES),
                                          "mask_targets": {str(i): c for i, c in enumerate(TARGET_CLASSES)}}
    samples = _load(out, "folds.json")["samples"]
    keys = [s["key"] for s in samples]
    assert sorted(keys) == sorted(small.values("key")) and len(set(keys)) == 40
    assert {s["fold"] for s in samples} == set(range(5))
    stats = _load(out, "fold_stats.json")
    assert sum(f["n_images"] for f in stats["folds"]) == 40
    # every image listed exists and is the original photo, byte for byte
    by_key = dict(zip(small.values("key"), small.values("filepath")))
    for s in samples:
        assert (out / s["image"]).read_bytes() == Path(by_key[s["key"]]).read_bytes()
        assert s["crop_box"] is None
    # the fold is written back to FiftyOne and matches folds.json
    assert dict(zip(small.values("key"), small.values("fold"))) == {s["key"]: s["fold"] for s in samples}
    # same seed, same folds
    again = tmp_path / "again"
    export_folds(dataset=small.name, out=again, seed=0, progress=False)
    assert [s["fold"] for s in _load(again, "folds.json")["samples"]] == [s["fold"] for s in samples]

    originals = _originals(small)
    imported = fo.Dataset.from_dir(dataset_dir=str(out), dataset_type=fo.types.ImageSegmentationDirectory,
                                   data_path="images", labels_path="masks")
    try:
        assert len(imported) == 40
        for sample in imported.iter_samples():
            key = Path(sample.filepath).stem
            assert np.array_equal(sample.ground_truth.get_mask(), originals[key])
    finally:
        imported.delete()


def test_coco_export_read_back_by_pycocotools_and_fiftyone(small, tmp_path):
    import fiftyone as fo

    out = tmp_path / "coco"
    export_folds(dataset=small.name, out=out, fmt="coco", progress=False)
    originals = _originals(small)
    assert (out / "masks").is_dir()  # training always reads the PNG masks

    coco = COCO(str(out / "coco.json"))
    assert {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())} == \
        {i: c for i, c in enumerate(TARGET_CLASSES) if i > 0}
    for img in coco.loadImgs(coco.getImgIds()):
        mask = np.zeros((img["height"], img["width"]), np.uint8)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
        for ann in anns:
            assert not mask[coco.annToMask(ann) > 0].any()  # one region per class, no overlaps
            mask[coco.annToMask(ann) > 0] = ann["category_id"]
        key = Path(img["file_name"]).stem
        assert np.array_equal(mask, originals[key])
        assert len(anns) == len(np.unique(originals[key])) - 1  # one annotation per class but background

    imported = fo.Dataset.from_dir(dataset_dir=str(out), dataset_type=fo.types.COCODetectionDataset,
                                   data_path="images", labels_path="coco.json", label_types="segmentations",
                                   label_field="gt")
    try:
        assert len(imported) == 40
        for sample in imported.iter_samples():
            original = originals[Path(sample.filepath).stem]
            detections = sample.gt.detections if sample.gt else []  # background only: no annotation
            assert np.array_equal(_paint(detections, original.shape), original)
    finally:
        imported.delete()


def test_reject_and_bg_only_left_out(small, tmp_path):
    keys = sorted(small.values("key"))
    reject, bg_only, both = keys[:3], keys[3:5], keys[5:6]
    from fiftyone import ViewField as F

    small.match(F("key").is_in(reject + both)).tag_samples("reject")
    small.match(F("key").is_in(bg_only + both)).tag_samples("bg_only")

    report = export_folds(dataset=small.name, out=tmp_path / "a", progress=False)
    exported = {s["key"] for s in _load(tmp_path / "a", "folds.json")["samples"]}
    assert exported == set(keys) - set(reject + bg_only + both)
    assert report.left_out == {"reject": 4, "bg_only": 2, "tag_only": 0}
    assert _load(tmp_path / "a", "export.json")["left_out"] == {"reject": 4, "bg_only": 2, "tag_only": 0}
    assert "4 tagged reject" in report.summary() and "2 tagged bg_only" in report.summary()
    folds = dict(zip(small.values("key"), small.values("fold")))
    assert all(folds[k] is None for k in reject + bg_only + both)
    assert all(folds[k] is not None for k in exported)
    # status counts the folds of the exported samples; the left-out ones (fold None) are not a fold
    res = CliRunner().invoke(main, ["status", "--dataset", small.name, "--json"])
    assert res.exit_code == 0, res.output
    assert sum(json.loads(res.output)["folds"].values()) == len(exported)

    report = export_folds(dataset=small.name, out=tmp_path / "b", keep_flagged=True, progress=False)
    exported = {s["key"] for s in _load(tmp_path / "b", "folds.json")["samples"]}
    assert exported == set(keys) - set(reject + both)
    assert report.left_out == {"reject": 4, "bg_only": 0, "tag_only": 0}


def test_person_crop_pastes_back(small, tmp_path):
    originals = _originals(small)
    boxes = dict(zip(small.values("key"), small.values("person.bounding_box")))

    out = tmp_path / "crop"
    export_folds(dataset=small.name, out=out, crop="person", progress=False)
    for s in _load(out, "folds.json")["samples"]:
        original = originals[s["key"]]
        height, width = original.shape
        assert s["orig_size"] == [width, height]
        x0, y0, x1, y1 = s["crop_box"]
        rows, cols = np.nonzero(original)
        if rows.size == 0:  # a background-only photo (the slice may hold one): no person, the whole photo
            assert boxes[s["key"]] is None and s["crop_box"] == [0, 0, width, height]
        else:
            # the box holds the whole person: every non-background pixel
            assert x0 <= cols.min() and cols.max() < x1 and y0 <= rows.min() and rows.max() < y1
            bx, by, bw, bh = boxes[s["key"]]
            assert x0 <= bx * width + 1e-6 and (bx + bw) * width - 1e-6 <= x1
            assert y0 <= by * height + 1e-6 and (by + bh) * height - 1e-6 <= y1
        crop = cv2.imread(str(out / s["mask"]), cv2.IMREAD_UNCHANGED)
        assert crop.shape == (y1 - y0, x1 - x0)
        assert cv2.imread(str(out / s["image"])).shape[:2] == crop.shape
        full = paste_back(crop, crop_box=s["crop_box"], orig_size=s["orig_size"])
        assert np.array_equal(full[y0:y1, x0:x1], original[y0:y1, x0:x1])
        assert np.array_equal(full, original)  # nothing but background outside the person box

    out = tmp_path / "crop64"
    export_folds(dataset=small.name, out=out, crop="person", size=64, progress=False)
    assert _load(out, "export.json")["size"] == 64
    for s in _load(out, "folds.json")["samples"]:
        crop = cv2.imread(str(out / s["mask"]), cv2.IMREAD_UNCHANGED)
        assert crop.shape == (64, 64) and cv2.imread(str(out / s["image"])).shape == (64, 64, 3)
        full = paste_back(crop, crop_box=s["crop_box"], orig_size=s["orig_size"])
        x0, y0, x1, y1 = s["crop_box"]
        original = originals[s["key"]]
        assert (full[y0:y1, x0:x1] == original[y0:y1, x0:x1]).mean() > 0.8


def test_out_replaced_only_when_made_by_export(small, tmp_path):
    """--overwrite replaces only an earlier export (our export.json) or an empty folder; a user's
    folder (photos, the workspace, a file named export.json of another tool) is refused untouched."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(BadInputError, match="not a clothcurate export folder"):
            export_folds(dataset=small.name, out=out, overwrite=overwrite, progress=False)
        assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (out / "export.json").write_text(json.dumps({"exported_by": "another tool"}))
    with pytest.raises(BadInputError, match="not a clothcurate export folder"):
        export_folds(dataset=small.name, out=out, overwrite=True, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "notes.txt"]

    empty = tmp_path / "empty"
    empty.mkdir()
    export_folds(dataset=small.name, out=empty, progress=False)   # an empty folder needs no --overwrite
    first = _load(empty, "export.json")["created"]
    with pytest.raises(BadInputError, match="pass --overwrite"):
        export_folds(dataset=small.name, out=empty, progress=False)
    (empty / "extra.txt").write_text("left by the user inside our export")
    export_folds(dataset=small.name, out=empty, overwrite=True, progress=False)
    assert not (empty / "extra.txt").exists() and _load(empty, "export.json")["created"] >= first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "out"]  # no temporary folder or lock left


def test_cli_overwrite_refuses_photos_and_workspace(small, tmp_path, monkeypatch):
    """The issue's two reproductions through the CLI: --out at a photo folder or at $CLOTHCURATE_HOME."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for key, path in list(zip(small.values("key"), small.values("filepath")))[:3]:
        (photos / f"{key}.jpg").write_bytes(Path(path).read_bytes())
    home = tmp_path / "home"
    (home / "datasets" / "x" / "masks").mkdir(parents=True)
    (home / "datasets" / "x" / "masks" / "a.png").write_bytes(b"mask")
    monkeypatch.setenv("CLOTHCURATE_HOME", str(home))
    for out in (photos, home):
        before = sorted(str(p) for p in out.rglob("*"))
        res = CliRunner().invoke(main, ["export-folds", "--dataset", small.name, "--out", str(out), "--overwrite"])
        assert res.exit_code == 2, res.output
        assert res.output.count("\n") == 1 and res.output.startswith("error: ") and str(out) in res.output
        assert "nothing was changed" in res.output
        assert sorted(str(p) for p in out.rglob("*")) == before


def test_export_to_a_folder_another_export_is_writing_is_refused(small, tmp_path):
    """The lock beside --out: while another process holds it (as a running export does), an export
    neither writes nor publishes; once it is released, the export goes through."""
    import subprocess
    import sys

    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom clothcurate.outdir import folder_lock\n"
                               "with folder_lock(sys.argv[1]):\n    print('held', flush=True)\n    sys.stdin.read()",
         str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BadInputError, match="another clothcurate command is writing"):
            export_folds(dataset=small.name, out=out, progress=False)
        assert not out.exists() and not (tmp_path / ".out.partial").exists()
    finally:
        holder.communicate("", timeout=60)
    assert holder.returncode == 0
    export_folds(dataset=small.name, out=out, progress=False)
    assert (out / "export.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failed_export_leaves_no_complete_looking_folder(small, tmp_path):
    # break one sample's mask in the middle of the key order: the export fails half way
    keys = sorted(small.values("key"))
    broken = small.select_by("key", [keys[20]]).first()
    broken.ground_truth.mask_path = str(tmp_path / "gone.png")
    broken.save()

    out = tmp_path / "new"
    with pytest.raises(BadInputError, match=keys[20]):
        export_folds(dataset=small.name, out=out, progress=False)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []

    old = tmp_path / "old"
    old.mkdir()
    (old / "export.json").write_text(json.dumps({"version": 1, "dataset": small.name, "folds": 5}))  # an earlier export
    with pytest.raises(BadInputError):
        export_folds(dataset=small.name, out=old, overwrite=True, progress=False)
    assert [p.name for p in old.iterdir()] == ["export.json"]  # the previous export is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]
    assert not small.has_field("fold") or set(small.values("fold")) == {None}  # nothing written back


def test_cli(small, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(main, ["export-folds", "--dataset", small.name, "--out", str(out), "--folds", "4",
                               "--format", "both", "--crop", "person", "--size", "48"])
    assert res.exit_code == 0, res.output
    assert "left out: 0 tagged reject" in res.output and "fold 3" in res.output
    assert (out / "coco.json").exists() and _load(out, "export.json")["folds"] == 4
    # train-eval's default --data is the latest export of the dataset
    from clothcurate.workspace import last_export

    assert last_export(small.name) == out.resolve()
    res = runner.invoke(main, ["train-eval", "--arch", "fpn", "--dataset", "never-exported"])
    assert res.exit_code == 2 and "export-folds" in res.output

    for args in (["--out", str(out)],                       # not empty
                 ["--out", str(tmp_path / "x"), "--size", "48"],  # size without crop
                 ["--out", str(tmp_path / "x"), "--folds", "1"]):
        res = runner.invoke(main, ["export-folds", "--dataset", small.name, *args])
        assert res.exit_code == 2, (args, res.output)
        assert res.output.count("\n") == 1 and "error:" in res.output
    res = runner.invoke(main, ["export-folds", "--dataset", "no-such-dataset", "--out", str(tmp_path / "y")])
    assert res.exit_code == 2 and "ingest" in res.output
