"""Portrait (aspect-preserving) person crops end to end on real CCP: the crop box grown to the
input's aspect ratio, ``export-folds --size HxW``, ``train-eval --image-size HxW`` (a real 1-epoch
FPN run on CPU), the run's segmenter and ``predict`` cropping at that ratio, and the one-line
refusal of a model input whose aspect ratio differs from the export's crops."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from clothcurate.cli import main
from clothcurate.detection.registry import PersonBox
from clothcurate.folders.export import read_export
from clothcurate.geometry import aspect_of, crop_box, crop_resize, format_size, paste_back, parse_size

pytestmark = pytest.mark.usefixtures("one_torch_thread")

H, W = 96, 64  # 3:2 portrait, each side a multiple of 32


def _rel(x0, y0, x1, y1, width, height):
    return [x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height]


def test_size_options_read_squares_and_portraits():
    assert parse_size("320") == (320, 320) and parse_size(320) == (320, 320)
    assert parse_size("384x256") == (384, 256) and parse_size(" 96 X 64 ") == (96, 64)
    assert format_size((96, 64)) == "96x64" and format_size(64) == "64x64"
    assert aspect_of((384, 256)) == 1.5 and aspect_of(None) == 1.0
    for bad in ("", "0", "96x", "x64", "96x64x3", "-32", "a"):
        with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
            parse_size(bad)


def test_crop_box_grows_to_the_aspect_ratio_around_the_person():
    # a standing person (100 x 400 px) in a 1000 x 1000 photo: the margined box is 110 x 440
    bbox = _rel(450, 300, 550, 700, 1000, 1000)
    assert crop_box(bbox, width=1000, height=1000, aspect=None) == (445, 280, 555, 720)
    square = crop_box(bbox, width=1000, height=1000)
    portrait = crop_box(bbox, width=1000, height=1000, aspect=1.5)
    assert square == (280, 280, 720, 720)                      # 440 x 440: 3/4 of it background
    x0, y0, x1, y1 = portrait
    assert (y1 - y0, x1 - x0) == (440, 293) and (y0, y1) == (280, 720)   # height kept, width grown centred
    assert x0 <= 445 and x1 >= 555 and abs((x0 + x1) / 2 - 500) <= 1
    # a wide box (a person lying down) grows in height instead
    x0, y0, x1, y1 = crop_box(_rel(300, 450, 700, 550, 1000, 1000), width=1000, height=1000, aspect=1.5)
    assert (x1 - x0, y1 - y0) == (440, 660)
    # against the photo's edge: shifted inside, never outside; clipped when the photo is too narrow
    x0, y0, x1, y1 = crop_box(_rel(0, 300, 100, 700, 1000, 1000), width=1000, height=1000, aspect=1.5)
    assert x0 == 0 and x1 == 293
    assert crop_box(_rel(0, 0, 300, 1000, 300, 1000), width=300, height=1000, aspect=0.5) == (0, 0, 300, 1000)
    with pytest.raises(ValueError, match="positive"):
        crop_box(bbox, width=1000, height=1000, aspect=0)


def test_crop_resize_to_a_portrait_size_keeps_the_proportions(ccp_dir):
    from tiny_run import ccp_samples, person_box

    (key, photo, gt), = ccp_samples(ccp_dir, ["0004"])
    image = cv2.imread(str(photo))
    h, w = gt.shape
    box = crop_box(person_box(gt), width=w, height=h, aspect=aspect_of((H, W)))
    img_c, mask_c = crop_resize(image, gt, box=box, size=(H, W))
    assert img_c.shape == (H, W, 3) and mask_c.shape == (H, W)
    assert set(np.unique(mask_c)) <= set(np.unique(gt))
    x0, y0, x1, y1 = box
    assert abs((y1 - y0) / (x1 - x0) - 1.5) < 0.02 or x1 - x0 == w or y1 - y0 == h
    back = paste_back(mask_c, crop_box=box, orig_size=(w, h))
    assert (back == gt).mean() > 0.95


@pytest.fixture
def portrait_export(ccp_slice, tmp_path) -> Path:
    ds = ccp_slice(20, seed=3, prefix="portrait")
    out = tmp_path / "export"
    res = CliRunner().invoke(main, ["export-folds", "--dataset", ds.name, "--out", str(out), "--folds", "2",
                                    "--crop", "person", "--size", f"{H}x{W}"])
    assert res.exit_code == 0, res.output
    assert f"crop person {H}x{W}" in res.output
    return out


def test_export_writes_portrait_crops_that_paste_back(portrait_export):
    meta = json.loads((portrait_export / "export.json").read_text())
    assert meta["size"] == [H, W]
    export = read_export(portrait_export)
    assert export.crop_size == (H, W)
    stretched = 0
    for s in export.samples:
        img = cv2.imread(str(s.image))
        mask = cv2.imread(str(s.mask), cv2.IMREAD_UNCHANGED)
        assert img.shape == (H, W, 3) and mask.shape == (H, W)
        x0, y0, x1, y1 = s.crop_box
        width, height = s.orig_size
        ratio = (y1 - y0) / (x1 - x0)
        if abs(ratio - 1.5) > 0.02:   # only where the photo is too narrow or too short for 3:2
            stretched += 1
            assert x1 - x0 == width or y1 - y0 == height
    assert stretched < len(export.samples) // 2


def test_train_predict_at_a_portrait_size_and_refuse_another_aspect(portrait_export, ccp_dir, tmp_path):
    from clothcurate.inference.predict import predict_photos, segment_people
    from clothcurate.inference.segmenter import Segmenter

    runner = CliRunner()
    base = ["train-eval", "--arch", "fpn", "--data", str(portrait_export), "--folds", "0", "--epochs", "1",
            "--batch-size", "4", "--workers", "0", "--device", "cpu", "--dataset", ""]
    # a square model input on portrait crops would squash every crop: refused before anything is written
    res = runner.invoke(main, [*base, "--image-size", "64", "--out", str(tmp_path / "square")])
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert "aspect ratio" in res.output and f"--image-size {H}x{W}" in res.output
    assert not (tmp_path / "square").exists()
    res = runner.invoke(main, [*base, "--image-size", "96x50", "--out", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "multiple of 32" in res.output and res.output.count("\n") == 1, res.output

    run = tmp_path / "run"
    res = runner.invoke(main, [*base, "--image-size", f"{H}x{W}", "--out", str(run)])
    assert res.exit_code == 0, res.output
    config = json.loads((run / "config.json").read_text())
    assert config["options"]["image_size"] == H and config["options"]["image_width"] == W
    assert config["model"]["input_size"] == [H, W]
    seg = Segmenter.from_run(run, fold=0, device="cpu")
    assert seg.input_size == (H, W)
    # the same options resume the folder; another size of the same aspect is refused (it binds)
    res = runner.invoke(main, [*base, "--image-size", f"{H}x{W}", "--out", str(run)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, [*base, "--image-size", f"{2 * H}x{2 * W}", "--out", str(run)])
    assert res.exit_code == 2 and "image_size" in res.output, res.output

    photo = ccp_dir / "photos" / "0004.jpg"
    rgb = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    ph, pw = rgb.shape[:2]
    person = PersonBox(box=(pw // 3, ph // 8, pw // 4, ph * 3 // 4), score=0.9, detector="test")
    mask, (box,) = segment_people(rgb, [person], seg, seg.input_size)
    assert mask.shape == (ph, pw)
    x0, y0, x1, y1 = box
    assert abs((y1 - y0) / (x1 - x0) - 1.5) < 0.02
    out = tmp_path / "pred"
    report = predict_photos(run_dir=run, out_dir=out, paths=[photo], device="cpu", progress=False)
    assert report.written == ["0004"]
    assert cv2.imread(str(out / "0004.png"), cv2.IMREAD_UNCHANGED).shape == (ph, pw)
