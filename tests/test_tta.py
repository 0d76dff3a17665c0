"""Flip test-time augmentation at extra scales (``FlipTTA(scales=...)``, ``--tta-scales``): the
module with one scale is the old flip TTA exactly, keeps a non-square input's size, the option is
checked with one line, old run folders still open, and a real tiny run evaluated with extra
scales records them and predicts with them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from clothcurate.cli import main
from clothcurate.errors import BadInputError
from clothcurate.folders import RunFolder, read_export
from clothcurate.inference.segmenter import Segmenter
from clothcurate.training.config import TrainConfig
from clothcurate.training.loop import CONFIDENCE_STRIDE
from clothcurate.training.models import FlipTTA, create_model, tta_view_size
from clothcurate.training.run import train_eval
from tiny_run import IDS, SIZE, make_export

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCALES = (1.0, 1.25)


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("fpn", encoder="tf_efficientnet_lite0", encoder_weights=None, num_classes=15).eval()


@torch.no_grad()
def test_one_scale_is_the_old_flip_tta_exactly():
    net, x = _net(), torch.randn(2, 3, 64, 96)
    old = 0.5 * (net(x) + net(x.flip(-1)).flip(-1))  # FlipTTA before scales existed
    assert torch.equal(FlipTTA(net)(x), old)
    assert torch.equal(FlipTTA(net, scales=(1.0,))(x), old)


@torch.no_grad()
def test_extra_scale_keeps_a_non_square_size_and_averages_the_resized_views():
    net, x = _net(), torch.randn(2, 3, 96, 64)  # portrait H x W
    out = FlipTTA(net, scales=SCALES)(x)
    assert out.shape == (2, 15, 96, 64)
    assert tta_view_size(96, 64, 1.25) == (128, 96) and tta_view_size(96, 64, 0.75) == (64, 64)  # 80, 48: ties up
    big = F.interpolate(x, size=(128, 96), mode="bilinear", align_corners=False)
    views = 0.5 * (net(big) + net(big.flip(-1)).flip(-1))
    back = F.interpolate(views, size=(96, 64), mode="bilinear", align_corners=False)
    assert torch.allclose(out, 0.5 * (FlipTTA(net)(x) + back), atol=1e-5)
    assert not torch.allclose(out, FlipTTA(net)(x), atol=1e-3)  # the extra view changes the logits


@pytest.mark.parametrize("scales", [(1.25,), (1.0, 1.0), (1.0, 0.0), (1.0, -1.0), (1.0, 0.75, 1.25, 1.5), "x"])
def test_bad_scales_are_one_line(scales):
    with pytest.raises(BadInputError) as e:
        TrainConfig(tta=True, tta_scales=scales)
    assert "--tta-scales" in str(e.value) and "\n" not in str(e.value)


def test_scales_without_tta_and_bad_cli_values_are_refused(tmp_path):
    with pytest.raises(BadInputError, match="need flip TTA; add --tta"):
        TrainConfig.from_recipe("paper", tta_scales=SCALES)
    cfg = TrainConfig.from_recipe("default", tta_scales=[1, 1.25])  # a JSON list is a tuple here
    assert cfg.tta_scales == SCALES and cfg.to_json()["tta_scales"] == [1.0, 1.25] and "tta_scales" in cfg.binding()
    assert TrainConfig(**json.loads(json.dumps(cfg.to_json()))) == cfg
    res = CliRunner().invoke(main, ["train-eval", "--arch", "fpn", "--data", str(tmp_path), "--out",
                                    str(tmp_path / "r"), "--tta-scales", "1,abc"])
    assert res.exit_code == 2 and res.output.startswith("error: --tta-scales '1,abc'")
    assert len(res.output.strip().splitlines()) == 1


def _train(export: Path, run_dir: Path, **options) -> Path:
    train_eval(arch="fpn", encoder="tf_efficientnet_lite0", encoder_weights="imagenet", data_dir=export,
               fold_spec="0", epochs=1, image_size=SIZE, batch_size=4, workers=0, device="cpu", run_dir=run_dir,
               dataset=None, seed=0, tta=True, **options)
    return run_dir


@pytest.fixture(scope="module")
def scaled(ccp_dir, tmp_path_factory) -> tuple[Path, Path]:
    """``(export, run)``: fold 0 of a real FPN run (1 epoch, 64 px) evaluated with flip TTA at 1 and 1.25."""
    root = tmp_path_factory.mktemp("tta")
    export = make_export(ccp_dir, root / "export", IDS)
    return export, _train(export, root / "run", tta_scales=SCALES)


def test_run_records_and_evaluates_with_its_scales(scaled):
    export_dir, run_dir = scaled
    options = json.loads((run_dir / "config.json").read_text())
    assert options["options"]["tta_scales"] == [1.0, 1.25] and "tta_scales" in options["binds"]
    assert RunFolder.open(run_dir).tta_scales == SCALES
    seg = Segmenter.from_run(run_dir, fold=0, device="cpu")  # None: as the run was evaluated
    assert seg.describe()["tta"] is True and seg.describe()["tta_scales"] == [1.0, 1.25]
    export = read_export(export_dir)
    keys = [s.key for s in export.samples if s.fold == 0]
    imgs = [cv2.cvtColor(cv2.imread(str(export.get(k).image)), cv2.COLOR_BGR2RGB) for k in keys]
    images = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()

    def conf(s: Segmenter) -> np.ndarray:
        return (F.avg_pool2d(s.probabilities(images), CONFIDENCE_STRIDE) * 255).round().to(torch.uint8).numpy()

    saved = np.stack([np.load(run_dir / "confidence" / f"{k}.npz")["probs"] for k in keys]).astype(int)
    assert np.abs(saved - conf(seg)).max() <= 1                       # evaluation used both scales ...
    flip_only = Segmenter.from_run(run_dir, fold=0, device="cpu", tta_scales=(1.0,))
    assert np.abs(saved - conf(flip_only)).max() > 1                  # ... not the flip alone
    with pytest.raises(BadInputError, match="need flip TTA"):
        Segmenter.from_run(run_dir, fold=0, device="cpu", tta=False, tta_scales=SCALES)
    # the scales bind the folder: another value is refused before any training
    with pytest.raises(BadInputError, match="tta_scales"):
        _train(export_dir, run_dir, tta_scales=(1.0,))


def test_predict_uses_the_runs_scales_unless_told(scaled, ccp_dir, tmp_path):
    _, run_dir = scaled
    photo = str(ccp_dir / "photos" / "0004.jpg")
    res = CliRunner().invoke(main, ["predict", "--run", str(run_dir), "--out", str(tmp_path / "a"), photo])
    assert res.exit_code == 0, res.output
    assert "flip TTA at scale(s) 1,1.25" in res.output
    res = CliRunner().invoke(main, ["predict", "--run", str(run_dir), "--out", str(tmp_path / "b"), photo,
                                    "--tta-scales", "1"])
    assert res.exit_code == 0 and "flip TTA at scale(s) 1," in res.output and "1,1.25" not in res.output
    res = CliRunner().invoke(main, ["predict", "--run", str(run_dir), "--out", str(tmp_path / "c"), photo,
                                    "--no-tta", "--tta-scales", "1,1.25"])
    assert res.exit_code == 2 and res.output.startswith("error: --tta-scales 1,1.25") and "--tta" in res.output


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_model_puts_the_scales_in_the_graph_and_metadata(scaled, tmp_path, fmt):
    from clothcurate.inference.export_model import _run_file, read_metadata

    _, run_dir = scaled
    out = tmp_path / f"m.{fmt}"
    res = CliRunner().invoke(main, ["export-model", "--run", str(run_dir), "--format", fmt, "--fold", "0",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output  # the file reproduced PyTorch with both scales (probe check)
    meta = read_metadata(out)
    assert meta["tta"] is True and meta["tta_scales"] == [1.0, 1.25] and "scales 1,1.25" in res.output
    images = torch.randint(0, 256, (2, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(0)).to(torch.uint8)
    got = _run_file(out, fmt, images)
    assert torch.allclose(got, Segmenter.from_run(run_dir, fold=0, device="cpu").probabilities(images), atol=1e-3)
    flip_only = Segmenter.from_run(run_dir, fold=0, device="cpu", tta_scales=(1.0,)).probabilities(images)
    assert (got - flip_only).abs().max() > 1e-2  # the extra scale is in the graph


def test_an_old_run_without_tta_scales_opens_and_resumes(scaled, tmp_path):
    export_dir, run_dir = scaled
    old = tmp_path / "old"
    shutil.copytree(run_dir, old, ignore=shutil.ignore_patterns("last.pt", "predictions", "confidence"))
    config = json.loads((old / "config.json").read_text())
    del config["options"]["tta_scales"]
    config["binds"].remove("tta_scales")
    (old / "config.json").write_text(json.dumps(config))
    assert RunFolder.open(old).tta_scales == (1.0,)
    assert Segmenter.from_run(old, fold=0, device="cpu").describe()["tta_scales"] == [1.0]
    _train(export_dir, old)  # fold 0 is done: the same options (flip only) are accepted, nothing retrained
    with pytest.raises(BadInputError, match="tta_scales"):
        _train(export_dir, old, tta_scales=SCALES)
