"""``clothcurate predict`` on real CCP photos with a tiny trained run: outputs at the photo's size,
the JSON schema, the run's own model as person detector, skipped-and-named bad photos, one-line
errors, the FiftyOne dataset. (The other detectors and the colour names: test_detection.py,
test_colors.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from clothcurate.cli import main
from clothcurate.detection import DEFAULT_DETECTOR, DETECTORS, create_detector
from clothcurate.errors import BadInputError
from clothcurate.garment_colors import COLOR_NAMES
from clothcurate.inference.predict import find_photos, predict_photos
from clothcurate.inference.segmenter import Segmenter
from clothcurate.labelmaps import TARGET_CLASSES
from tiny_run import GPU_RUNS, IDS, ccp_samples, tiny  # noqa: F401 - tiny is a fixture



pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _iou(a, b) -> float:
    """IoU of two (x, y, w, h) boxes."""
    iw = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_predict_writes_mask_and_json_per_photo_and_names_the_bad_one(tiny, ccp_dir, tmp_path):
    _, run = tiny
    photos = [ccp_dir / "photos" / f"{i}.jpg" for i in ("0004", "0016", "1005")]  # 1005: no annotation
    broken = tmp_path / "in" / "broken.jpg"
    broken.parent.mkdir()
    broken.write_bytes((ccp_dir / "photos" / "0004.jpg").read_bytes()[:300])      # a truncated download
    out = tmp_path / "out"
    report = predict_photos(run_dir=run, out_dir=out, paths=[*photos, broken.parent], overlay=True, progress=False)
    assert report.written == ["0004", "0016", "1005"] and report.models == 2
    assert report.skipped == [(str(broken), report.skipped[0][1])] and "broken.jpg" in report.summary()
    for photo in photos:
        h, w = cv2.imread(str(photo)).shape[:2]
        mask = cv2.imread(str(out / f"{photo.stem}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (h, w) and mask.dtype == np.uint8 and int(mask.max()) < len(TARGET_CLASSES)
        doc = json.loads((out / f"{photo.stem}.json").read_text())
        assert set(doc) == {"photo", "size", "persons", "garments"}
        assert doc["photo"] == str(photo.resolve()) and doc["size"] == [w, h]
        for person in doc["persons"]:
            x, y, bw, bh = person["box"]
            assert set(person) == {"box", "score", "detector", "crop"} and person["detector"] == DEFAULT_DETECTOR
            assert 0 <= x < x + bw <= w and 0 <= y < y + bh <= h and 0 <= person["score"] <= 1
            if person["crop"] is not None:  # the crop segmented for this person holds its box
                x0, y0, x1, y1 = person["crop"]
                assert 0 <= x0 <= x < x + bw <= x1 <= w and 0 <= y0 <= y < y + bh <= y1 <= h
        counts = np.bincount(mask.ravel(), minlength=len(TARGET_CLASSES))
        garments = {g["class"]: g for g in doc["garments"]}
        expected = {TARGET_CLASSES[c] for c in np.flatnonzero(counts)} - {"background", "skin", "hair"}
        assert set(garments) == expected
        for name, g in garments.items():
            assert set(g) == {"class", "pixel_share", "color"} and g["color"] in COLOR_NAMES
            assert g["pixel_share"] == pytest.approx(counts[TARGET_CLASSES.index(name)] / mask.size, abs=1e-6)
        overlay = cv2.imread(str(out / f"{photo.stem}_overlay.jpg"))
        assert overlay.shape == (h, w, 3)
    assert any(json.loads((out / f"{p.stem}.json").read_text())["persons"] for p in photos)
    # a re-run rewrites the same files, nothing else
    before = sorted(p.name for p in out.iterdir())
    predict_photos(run_dir=run, out_dir=out, paths=photos, overlay=True, progress=False)
    assert sorted(p.name for p in out.iterdir()) == before


def test_model_detector_finds_the_annotated_person(tiny, ccp_dir):
    """The first pass of the run's own model boxes the person: on these 14 photos (which the
    tiny ensemble was trained on) the best box overlaps the annotation's person box (IoU >= 0.5)
    on at least a third of them, and every photo gets a box."""
    _, run = tiny
    seg = Segmenter.from_run(run, device="cpu")
    detector = create_detector("model", segmenter=seg, device="cpu")
    samples = ccp_samples(ccp_dir, IDS)
    found = detector.detect_many([_rgb(photo) for _, photo, _ in samples])
    alone = detector.detect(_rgb(samples[0][1]))   # one photo or a batch: the same boxes (scores up to
    assert [b.box for b in found[0]] == [b.box for b in alone]                 # float rounding of batching)
    assert [b.score for b in found[0]] == pytest.approx([b.score for b in alone], abs=1e-5)
    assert all(found)
    ious = [max(_iou(b.box, cv2.boundingRect(gt)) for b in boxes) for (_, _, gt), boxes in zip(samples, found)]
    assert sum(i >= 0.5 for i in ious) >= len(ious) / 3, ious


def test_strict_stops_at_the_first_unreadable_photo(tiny, ccp_dir, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"")
    res = CliRunner().invoke(main, ["predict", "--run", str(tiny[1]), "--out", str(tmp_path / "o"), "--strict",
                                    str(broken), str(ccp_dir / "photos" / "0004.jpg")])
    assert res.exit_code == 2 and str(broken) in res.output and "not a readable image" in res.output, res.output
    shown = res.output.strip().split("\r")[-1]         # what is left after the progress bar erased itself
    assert shown.startswith("error: ") and "\n" not in shown and "Traceback" not in res.output


@pytest.mark.parametrize("case, words", [
    ("unknown detector", "--detector 'yolo': unknown; choose one of "),
    ("empty folder", "no photos found"),
    ("no such path", "no such photo or folder"),
    ("glob without match", "no file matches this pattern"),
    ("run without checkpoints", "no folds/<k>/best.pt checkpoint"),
    ("not a run", "not a run folder"),
    ("bad fold", "--fold 5"),
    ("same stem twice", "same name '0004'"),
    ("output over an input", "is one of the photos to segment and would be overwritten"),
])
def test_bad_input_is_one_line_exit_2(tiny, ccp_dir, tmp_path, case, words):
    run, photo = str(tiny[1]), str(ccp_dir / "photos" / "0004.jpg")
    args = {"unknown detector": ["--run", run, "--detector", "yolo", photo],
            "empty folder": ["--run", run, str(tmp_path)],
            "no such path": ["--run", run, str(tmp_path / "nope.jpg")],
            "glob without match": ["--run", run, str(tmp_path / "*.jpg")],
            "run without checkpoints": ["--run", str(GPU_RUNS / "fpn"), photo],
            "not a run": ["--run", str(tmp_path), photo],
            "bad fold": ["--run", run, "--fold", "5", photo]}.get(case)
    if case == "same stem twice":
        (tmp_path / "b").mkdir()
        shutil.copy(photo, tmp_path / "b" / "0004.png")
        args = ["--run", run, photo, str(tmp_path / "b")]
    if case == "output over an input":  # PNG photos predicted into their own folder
        (tmp_path / "b").mkdir()
        shutil.copy(photo, tmp_path / "b" / "0004.png")
        args = ["--run", run, str(tmp_path / "b"), "--out", str(tmp_path / "b")]
    res = CliRunner().invoke(main, ["predict", "--out", str(tmp_path / "out"), *args])
    assert res.exit_code == 2 and words in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    if case == "output over an input":
        assert [p.name for p in (tmp_path / "b").iterdir()] == ["0004.png"]
        assert (tmp_path / "b" / "0004.png").read_bytes() == Path(photo).read_bytes()


def test_find_photos_expands_folders_and_globs(ccp_dir):
    photos = find_photos([ccp_dir / "photos" / "000*.jpg", ccp_dir / "photos" / "0001.jpg"])
    assert [p.stem for p in photos] == [f"000{i}" for i in range(1, 10)]  # 0001 named twice: once
    with pytest.raises(BadInputError, match="no photos found"):
        find_photos([])
    assert "model" in DETECTORS  # registered by clothcurate.inference


def test_dataset_gets_pred_persons_garments_and_reruns_update(tiny, ccp_dir, tmp_path, tmp_home):
    import uuid

    import fiftyone as fo

    from clothcurate.curation.db import open_or_create

    name = f"pred-{uuid.uuid4().hex[:8]}"
    photos = [ccp_dir / "photos" / f"{i}.jpg" for i in ("0004", "0016")]
    out = tmp_path / "out"
    try:
        report = predict_photos(run_dir=tiny[1], out_dir=out, paths=photos, dataset=name, progress=False)
        assert report.dataset == (name, 2) and name in report.summary()
        ds = fo.load_dataset(name)
        assert (ds.mask_targets.get("pred") or ds.default_mask_targets)[0] == "background"
        for sample in ds:
            stem = Path(sample.filepath).stem
            doc = json.loads((out / f"{stem}.json").read_text())
            w, h = doc["size"]
            assert sample.key == f"photo_{stem}" and tmp_home in Path(sample.pred.mask_path).parents
            assert Path(sample.pred.mask_path).read_bytes() == (out / f"{stem}.png").read_bytes()
            boxes = [d.bounding_box for d in sample.persons.detections]
            assert np.allclose(boxes, [[p["box"][0] / w, p["box"][1] / h, p["box"][2] / w, p["box"][3] / h]
                                       for p in doc["persons"]]) and len(boxes) == len(doc["persons"])
            assert [(c.label, c.confidence) for c in sample.garments.classifications] == \
                [(g["class"], g["pixel_share"]) for g in doc["garments"]]
        predict_photos(run_dir=tiny[1], out_dir=out, paths=photos[:1], dataset=name, progress=False)
        assert len(fo.load_dataset(name)) == 2                      # updated in place, not added again
        # a curated dataset (annotated samples) is refused before any work
        curated = open_or_create(f"{name}-curated")
        curated.add_sample(fo.Sample(filepath=str(photos[0]), key="ccp_0004",
                                     ground_truth=fo.Segmentation(mask_path=str(out / "0004.png"))))
        res = CliRunner().invoke(main, ["predict", "--run", str(tiny[1]), "--out", str(tmp_path / "o2"),
                                        "--dataset", curated.name, str(photos[0])])
        assert res.exit_code == 2 and "holds annotated samples" in res.output, res.output
        assert not (tmp_path / "o2").exists()
    finally:
        for n in (name, f"{name}-curated"):
            if fo.dataset_exists(n):
                fo.delete_dataset(n)


def test_predict_segments_the_subject_not_the_passer_by(tiny, ccp_dir, tmp_path):
    """ccp_0549: the best-scoring box is a passer-by behind the subject. The JSON keeps every box as
    the detector found it; only the subject gets a crop ("crop": null for the others), so no label
    is painted where only the passers-by stand."""
    _, run = tiny
    photo = ccp_dir / "photos" / "0549.jpg"
    predict_photos(run_dir=run, out_dir=tmp_path / "out", paths=[photo], progress=False)
    doc = json.loads((tmp_path / "out" / "0549.json").read_text())
    found = create_detector(DEFAULT_DETECTOR).detect(_rgb(photo))
    assert [p["box"] for p in doc["persons"]] == [list(p.box) for p in found] and len(found) >= 3
    cropped = [p for p in doc["persons"] if p["crop"] is not None]
    assert len(cropped) == 1 and cropped[0]["box"] != doc["persons"][0]["box"]
    mask = cv2.imread(str(tmp_path / "out" / "0549.png"), cv2.IMREAD_UNCHANGED)
    x0, y0, x1, y1 = cropped[0]["crop"]
    outside = np.ones(mask.shape, bool)
    outside[y0:y1, x0:x1] = False
    assert not mask[outside].any()
