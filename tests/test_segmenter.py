"""Inference in one place (``clothcurate.inference.segmenter``) on a tiny real run of CCP crops:
it reproduces evaluation's outputs, ensembles folds by mean softmax, flips with TTA, reads
self-describing and older checkpoints, and refuses bad runs with one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clothcurate.errors import BadInputError
from clothcurate.folders import RunFolder, read_export
from clothcurate.geometry import paste_back
from clothcurate.inference.segmenter import Segmenter, load_checkpoint
from clothcurate.training.loop import CONFIDENCE_STRIDE
from clothcurate.training.models import ModelSpec
from tiny_run import GPU_RUNS, SIZE, tiny  # noqa: F401 - tiny is a fixture



pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _images(export_dir: Path, keys: list[str]) -> torch.Tensor:
    """(N, 3, S, S) uint8 RGB exported crops."""
    export = read_export(export_dir)
    imgs = [cv2.cvtColor(cv2.imread(str(export.get(k).image)), cv2.COLOR_BGR2RGB) for k in keys]
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()


def test_one_fold_reproduces_evaluation_outputs(tiny):
    export_dir, run_dir = tiny
    export = read_export(export_dir)
    keys = [s.key for s in export.samples if s.fold == 0]
    seg = Segmenter.from_run(run_dir, fold=0, device="cpu")
    assert seg.input_size == (SIZE, SIZE) and len(seg.models) == 1
    out = seg(_images(export_dir, keys))
    assert out.probs.shape == (len(keys), 15, SIZE, SIZE) and out.labels.shape == (len(keys), SIZE, SIZE)
    assert torch.allclose(out.probs.sum(1), torch.ones(()), atol=1e-5)
    conf = (F.avg_pool2d(out.probs, CONFIDENCE_STRIDE) * 255).round().to(torch.uint8).numpy()
    labels = out.labels.to(torch.uint8).numpy()
    for j, key in enumerate(keys):
        with np.load(run_dir / "confidence" / f"{key}.npz") as npz:
            saved = npz["probs"]
        assert np.abs(saved.astype(int) - conf[j]).max() <= 1, key      # float rounding only
        s = export.get(key)
        pasted = paste_back(labels[j], crop_box=s.frame_box, orig_size=s.orig_size)
        written = cv2.imread(str(run_dir / "predictions" / f"{key}.png"), cv2.IMREAD_UNCHANGED)
        assert (pasted == written).mean() > 0.999, key


def test_all_folds_is_the_mean_softmax_of_each_fold(tiny):
    export_dir, run_dir = tiny
    keys = [s.key for s in read_export(export_dir).samples[:4]]
    images = _images(export_dir, keys)
    each = [Segmenter.from_run(run_dir, fold=k, device="cpu").probabilities(images) for k in (0, 1)]
    both = Segmenter.from_run(run_dir, fold="all", device="cpu")
    assert len(both.models) == 2
    assert torch.allclose(both.probabilities(images), (each[0] + each[1]) / 2, atol=1e-6)


def test_flip_tta_is_flip_equivariant_and_changes_the_prediction(tiny):
    export_dir, run_dir = tiny
    images = _images(export_dir, [s.key for s in read_export(export_dir).samples[:3]])
    tta = Segmenter.from_run(run_dir, fold=0, device="cpu", tta=True)
    plain = Segmenter.from_run(run_dir, fold=0, device="cpu", tta=False)
    p, p_flipped = tta.probabilities(images), tta.probabilities(images.flip(-1))
    assert torch.allclose(p_flipped, p.flip(-1), atol=1e-5)
    assert not torch.allclose(p, plain.probabilities(images), atol=1e-4)


def test_self_describing_checkpoint_wins_over_config_and_older_ones_use_config(tiny, tmp_path):
    _, run_dir = tiny
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    config = json.loads((run / "config.json").read_text())
    config.pop("model", None)                      # an older run folder: no description anywhere
    config["options"]["image_size"] = 96           # so this is what its checkpoint is read with
    (run / "config.json").write_text(json.dumps(config))
    best = run / "folds" / "0" / "best.pt"
    ckpt = torch.load(best, weights_only=True)
    ckpt.pop("model", None)
    torch.save(ckpt, best)
    spec, state = load_checkpoint(best, run=RunFolder.open(run))
    assert (spec.arch, spec.encoder, spec.input_size) == ("fpn", "tf_efficientnet_lite0", (96, 96))
    assert spec.mean == (0.5, 0.5, 0.5) and len(spec.classes) == 15 and state.keys() == ckpt["state_dict"].keys()
    with pytest.raises(BadInputError, match="does not describe its model"):
        load_checkpoint(best)
    in_config = ModelSpec.of(arch="fpn", encoder="tf_efficientnet_lite0", classes=spec.classes, input_size=(80, 80))
    (run / "config.json").write_text(json.dumps({**config, "model": in_config.to_dict()}))
    assert load_checkpoint(best, run=RunFolder.open(run))[0] == in_config   # config.json's description next
    described = ModelSpec.of(arch="fpn", encoder="tf_efficientnet_lite0", classes=spec.classes,
                             input_size=(SIZE, SIZE))
    torch.save({**ckpt, "model": described.to_dict()}, best)
    assert load_checkpoint(best, run=RunFolder.open(run))[0] == described
    assert Segmenter.from_run(run, fold=0, device="cpu").input_size == (SIZE, SIZE)


def test_bad_runs_are_one_line_errors(tiny, tmp_path):
    _, run_dir = tiny
    with pytest.raises(BadInputError, match="not a run folder"):
        Segmenter.from_run(tmp_path)
    with pytest.raises(BadInputError, match=r"no folds/<k>/best.pt checkpoint"):
        Segmenter.from_run(GPU_RUNS / "fpn")             # real older run folder shipped without .pt files
    with pytest.raises(BadInputError, match=r"--fold 7: .*best.pt missing; folds with a checkpoint: 0, 1"):
        Segmenter.from_run(run_dir, fold=7)
    with pytest.raises(BadInputError, match="expected 'all' or a fold number"):
        Segmenter.from_run(run_dir, fold="first")
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "folds" / "1" / "best.pt").write_bytes(b"truncated")
    with pytest.raises(BadInputError, match="1/best.pt: unreadable checkpoint") as e:
        Segmenter.from_run(run, fold="all")
    assert "\n" not in str(e.value)
