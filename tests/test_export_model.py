"""``clothcurate export-model`` and ``predict --backend onnx`` on a tiny real run: the exported
ONNX / TorchScript files reproduce PyTorch on real CCP person crops and whole photos, carry their
geometry and classes in their metadata, and bad input is one line with exit 2; predict with ONNX
Runtime gives the masks PyTorch gives."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from clothcurate.cli import main
from clothcurate.errors import BadInputError
from clothcurate.folders.run import RunFolder
from clothcurate.geometry import crop_box, crop_image
from clothcurate.inference.export_model import read_metadata
from clothcurate.inference.onnx_backend import OnnxRuntimeBackend
from clothcurate.inference.predict import predict_photos
from clothcurate.inference.segmenter import Segmenter
from clothcurate.labelmaps import TARGET_CLASSES
from tiny_run import GPU_RUNS, SIZE, ccp_samples, person_box, tiny  # noqa: F401 - tiny is a fixture

#: real CCP photos the tiny run did not train on
HELD_OUT = [f"{i:04d}" for i in range(101, 1004, 90)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def real_inputs(ccp_dir) -> torch.Tensor:
    """(2P, 3, S, S) uint8 RGB: the annotated person crop and the whole photo (squashed) of each
    held-out CCP photo, as predict and the model detector feed the model."""
    images = []
    for _, photo, gt in ccp_samples(ccp_dir, HELD_OUT):
        rgb = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
        h, w = gt.shape
        images.append(crop_image(rgb, box=crop_box(person_box(gt), width=w, height=h), size=SIZE))
        images.append(cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def _agree(probs: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """(share of pixels with the same argmax, largest probability difference)."""
    return float((probs.argmax(1) == reference.argmax(1)).float().mean()), float((probs - reference).abs().max())


def _export(run: Path, out: Path, *args: str):
    return CliRunner().invoke(main, ["export-model", "--run", str(run), "--out", str(out), *args])


def test_onnx_file_reproduces_pytorch_on_real_photos_and_describes_itself(tiny, real_inputs, tmp_path):
    _, run = tiny
    out = tmp_path / "models" / "fold0.onnx"
    res = _export(run, out, "--format", "onnx", "--fold", "0")
    assert res.exit_code == 0, res.output
    assert "fpn/tf_efficientnet_lite0" in res.output and f"(N, 3, {SIZE}, {SIZE})" in res.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["fold0.onnx"]          # no temporary left
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["arch"] == "fpn" and props["encoder"] == "tf_efficientnet_lite0"
    meta = read_metadata(out)
    assert meta["input_size"] == [SIZE, SIZE] and meta["classes"] == list(TARGET_CLASSES)
    assert meta["folds"] == [0] and meta["mean"] == [0.5, 0.5, 0.5]
    assert meta["tta"] is RunFolder.open(run).tta     # not given: as the run evaluated its test folds
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (inp,), (outp,) = session.get_inputs(), session.get_outputs()
    assert inp.type == "tensor(uint8)" and inp.shape[1:] == [3, SIZE, SIZE] and isinstance(inp.shape[0], str)
    assert outp.shape[1] == len(TARGET_CLASSES)  # spatial sizes are symbolic after the softmax
    probs = torch.from_numpy(session.run(None, {inp.name: real_inputs.numpy()})[0])
    reference = Segmenter.from_run(run, fold=0, device="cpu").probabilities(real_inputs)
    assert probs.shape == reference.shape == (len(real_inputs), len(TARGET_CLASSES), SIZE, SIZE)
    same, diff = _agree(probs, reference)
    assert same >= 0.999 and diff < 1e-3, (same, diff)
    assert torch.allclose(probs.sum(1), torch.ones(()), atol=1e-5)            # softmax inside


def test_torchscript_ensemble_with_tta_reproduces_pytorch(tiny, real_inputs, tmp_path):
    _, run = tiny
    out = tmp_path / "all.pt"
    res = _export(run, out, "--format", "torchscript", "--tta")
    assert res.exit_code == 0, res.output
    meta = read_metadata(out)
    assert meta["folds"] == [0, 1] and meta["tta"] is True and meta["input_size"] == [SIZE, SIZE]
    assert meta["classes"] == list(TARGET_CLASSES) and meta["arch"] == "fpn"
    model = torch.jit.load(str(out))
    with torch.no_grad():
        probs = model(real_inputs)
    reference = Segmenter.from_run(run, fold="all", device="cpu", tta=True).probabilities(real_inputs)
    same, diff = _agree(probs, reference)
    assert same >= 0.999 and diff < 1e-3, (same, diff)
    first = out.read_bytes()
    assert _export(run, out, "--format", "torchscript", "--fold", "1").exit_code == 0   # re-export replaces it
    assert out.read_bytes() != first and read_metadata(out)["folds"] == [1]


@pytest.mark.parametrize("args, words", [
    (["--format", "tflite"], "--format 'tflite': unknown model format; choose one of onnx, torchscript"),
    (["--format", "onnx", "--fold", "7"], "--fold 7: "),
    (["--format", "onnx", "--fold", "first"], "expected 'all' or a fold number"),
    (["--format", "onnx", "--run", str(GPU_RUNS / "fpn")], "no folds/<k>/best.pt checkpoint"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tiny, tmp_path, args, words):
    _, run = tiny
    out = tmp_path / "m.onnx"
    res = CliRunner().invoke(main, ["export-model", "--run", str(run), "--out", str(out), *args])
    assert res.exit_code == 2 and words in res.output, res.output
    assert res.output.count("\n") == 1 and res.output.startswith("error: ")
    assert not tmp_path.joinpath("m.onnx").exists() and list(tmp_path.iterdir()) == []


def test_predict_onnx_backend_gives_pytorch_masks_on_real_photos(tiny, ccp_dir, tmp_path):
    _, run = tiny
    photos = [ccp_dir / "photos" / f"{i}.jpg" for i in HELD_OUT[:6]]
    reports = {b: predict_photos(run_dir=run, out_dir=tmp_path / b, paths=photos, device="cpu", backend=b,
                                 progress=False) for b in ("torch", "onnx")}
    assert reports["onnx"].written == reports["torch"].written == [p.stem for p in photos]
    same = total = 0
    for p in photos:
        a, b = (cv2.imread(str(tmp_path / k / f"{p.stem}.png"), cv2.IMREAD_UNCHANGED) for k in ("torch", "onnx"))
        assert a.shape == b.shape == cv2.imread(str(p)).shape[:2]
        same, total = same + int((a == b).sum()), total + a.size
    assert same / total >= 0.999, same / total
    res = CliRunner().invoke(main, ["predict", "--run", str(run), "--out", str(tmp_path / "cli"),
                                    "--backend", "onnx", "--fold", "0", str(photos[0])])
    assert res.exit_code == 0 and (tmp_path / "cli" / f"{photos[0].stem}.png").is_file(), res.output


def test_onnx_backend_replaces_only_the_forward_pass(tiny, real_inputs, ccp_dir, tmp_path):
    _, run = tiny
    seg = Segmenter.from_run(run, fold="all", device="auto", backend="onnx")
    assert isinstance(seg.backend, OnnxRuntimeBackend) and seg.device.type == "cpu" and len(seg.models) == 2
    assert seg.backend.metadata["classes"].startswith('["background"')
    out, ref = seg(real_inputs), Segmenter.from_run(run, fold="all", device="cpu")(real_inputs)
    assert out.labels.shape == ref.labels.shape and float((out.labels == ref.labels).float().mean()) >= 0.999
    with pytest.raises(BadInputError, match="--backend 'tensorrt': unknown; choose one of torch, onnx"):
        Segmenter.from_run(run, backend="tensorrt")
    with pytest.raises(BadInputError, match="--backend onnx runs on the CPU"):
        Segmenter.from_run(run, device="cuda", backend="onnx")
    res = CliRunner().invoke(main, ["predict", "--run", str(run), "--out", str(tmp_path / "o"), "--backend", "trt",
                                    str(ccp_dir / "photos" / "0004.jpg")])
    assert res.exit_code == 2 and res.output == "error: --backend 'trt': unknown; choose one of torch, onnx\n"
