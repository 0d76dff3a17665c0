"""Training and evaluation end to end on real CCP crops (CPU, small): learning, the run folder of
docs/contracts.md, resume, the 2-process gloo DDP run and the CLI's bad-input exit code.

One export (24 CCP photos, person crops at 64 px, 2 folds) is made once for the module with the
real ingest + export-folds; one 2-fold run is trained once and inspected by several tests.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from clothcurate.cli import main as cli
from clothcurate.training.augment import build_transform
from clothcurate.training.config import RECIPES, TrainConfig
from clothcurate.training.data import SegmentationDataset, decode_samples, read_export
from clothcurate.training.distributed import setup
from clothcurate.training.loop import (
    build_loss,
    evaluate,
    fit_fold,
    make_loader,
    to_device,
)
from clothcurate.training.metrics import scores_from_confusion
from clothcurate.training.models import (
    InputNormalizer,
    ModelSpec,
    build_model,
    encoder_normalization,
)
from clothcurate.training.run import train_eval

SIZE = 64
ENCODER = "tf_efficientnet_lite0"
SLICE = "train-slice"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def export_dir(ccp_pixel, tmp_path_factory) -> Path:
    """24 real CCP samples exported by export-folds as person crops of 64 x 64 in 2 folds."""
    import fiftyone as fo

    from clothcurate.curation.export import export_folds

    name = SLICE
    if not fo.dataset_exists(name):
        ccp_pixel.take(24, seed=0).clone(name)
    out = tmp_path_factory.mktemp("export") / "folds"
    export_folds(dataset=name, out=out, folds=2, seed=0, crop="person", size=SIZE, progress=False)
    return out


def _train(export_dir: Path, run_dir: Path, **overrides):
    """train_eval with the paper's recipe (plateau: more epochs may follow in the same folder)."""
    options = dict(recipe="paper", arch="fpn", encoder=ENCODER, encoder_weights="imagenet", data_dir=export_dir, fold_spec="all",
                   epochs=1, patience=10, image_size=SIZE, batch_size=4, lr=1e-3, loss="ce", workers=0,
                   device="cpu", run_dir=run_dir, dataset=None, seed=0)
    return train_eval(**{**options, **overrides})


@pytest.fixture(scope="module")
def run_dir(export_dir, tmp_path_factory) -> Path:
    """A 2-fold, 1-epoch FPN run on the export."""
    out = tmp_path_factory.mktemp("runs") / "fpn"
    _train(export_dir, out, dataset=SLICE)     # and written back to the FiftyOne slice
    return out


def test_a_few_dozen_steps_raise_training_iou(export_dir, tmp_path):
    export = read_export(export_dir)
    samples = export.samples[:8]
    cache = decode_samples(samples, size=SIZE)
    plain = SegmentationDataset(cache, range(len(samples)), transform=build_transform(size=SIZE, train=False))
    ctx = setup("cpu")
    norm = InputNormalizer(*encoder_normalization(ENCODER), device=ctx.device)
    torch.manual_seed(0)
    model = build_model("fpn", encoder=ENCODER, encoder_weights="imagenet")
    loader = make_loader(plain, batch_size=8, train=False, workers=0, ctx=ctx)

    def score():
        loss, cm = evaluate(model, loader, criterion=build_loss("ce"), ctx=ctx, num_classes=15,
                            normalizer=norm)
        return loss, scores_from_confusion(cm.compute())["mean"]

    loss0, before = score()
    twice = SegmentationDataset(cache, [*range(len(samples))] * 2, transform=plain.transform)
    config = TrainConfig(epochs=5, patience=100, lr=1e-3, loss="ce", batch_size=4, workers=0)
    fit = fit_fold(model, config, train_set=twice, val_set=plain, fold_dir=tmp_path / "fold", ctx=ctx,
                   num_classes=15, normalizer=norm, progress=False)
    loss1, after = score()
    assert fit.epochs_run == 5 and len(fit.history) == 5   # 5 epochs x 4 steps = 20 Adam steps
    assert loss1 < 0.5 * loss0
    assert after["iou"] > before["iou"] + 0.2, (before, after)
    assert after["pixel_accuracy"] > before["pixel_accuracy"] + 0.2


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_run_folder_follows_the_contract(run_dir, export_dir, ccp_dir):
    export = read_export(export_dir)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["arch"] == config["options"]["arch"] == "fpn" and config["options"]["image_size"] == SIZE
    assert config["export"] == json.loads((export_dir / "export.json").read_text())
    assert config["versions"]["torch"] and config["machine"]["cpu"] and config["finished"]
    assert config["recipe"]["name"] == "paper" and config["options"]["schedule"] == "plateau"
    assert set(config["binds"]) >= {"arch", "encoder", "lr", "loss", "monitor", "seed", "schedule", "tta"}
    assert "epochs" not in config["binds"]                       # plateau: more epochs may follow

    for k in (0, 1):
        fold = run_dir / "folds" / str(k)
        assert {"best.pt", "last.pt", "history.csv", "done"} <= {p.name for p in fold.iterdir()}
        best = torch.load(fold / "best.pt", weights_only=False)
        assert best["epoch"] == 1 and "state_dict" in best
        last = torch.load(fold / "last.pt", weights_only=False)
        assert {"model", "optimizer", "scheduler", "scaler", "epoch", "history", "rng"} <= set(last)
        # the checkpoint alone rebuilds its model: architecture, encoder, classes, geometry, normalisation
        spec = ModelSpec.from_dict(best["model"])
        assert spec == ModelSpec.from_dict(last["spec"]) == ModelSpec.from_dict(config["model"])
        assert (spec.arch, spec.encoder, list(spec.classes), spec.input_size) == ("fpn", ENCODER, export.classes,
                                                                                 (SIZE, SIZE))
        assert (spec.mean, spec.std) == encoder_normalization(ENCODER)
        spec.build().load_state_dict(best["state_dict"])          # strict: every tensor matches
        history = _read_csv(fold / "history.csv")
        assert list(history[0]) == ["epoch", "train_loss", "val_loss", "val_miou", "lr", "seconds"]
        assert len(history) == 1 and float(history[0]["lr"]) == pytest.approx(1e-3)

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["classes"] == export.classes and metrics["primary"] == "opened"
    per_sample = _read_csv(run_dir / "per_sample.csv")
    assert list(per_sample[0]) == ["key", "fold", "iou", "pixel_acc"]
    assert sorted(r["key"] for r in per_sample) == sorted(s.key for s in export.samples)
    for entry in metrics["folds"]:
        k = entry["fold"]
        test_keys = [s.key for s in export.samples if s.fold == k]
        assert entry["n_images"] == len(test_keys)
        for variant in ("raw", "opened"):
            cm = np.array(entry[variant]["confusion"])
            assert cm.shape == (15, 15) and cm.sum() == len(test_keys) * SIZE * SIZE
            # the true-class totals are the test masks' own pixel counts
            truth = sum(np.bincount(cv2.imread(str(export_dir / "masks" / f"{key}.png"), cv2.IMREAD_UNCHANGED).ravel(),
                                    minlength=15) for key in test_keys)
            np.testing.assert_array_equal(cm.sum(1), truth)
            assert entry[variant]["mean"]["pixel_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
        # equal-sized crops: the mean per-sample pixel accuracy is the fold's pixel accuracy
        accs = [float(r["pixel_acc"]) for r in per_sample if int(r["fold"]) == k]
        assert np.mean(accs) == pytest.approx(entry["opened"]["mean"]["pixel_accuracy"], abs=1e-5)
    import fiftyone as fo

    written = fo.load_dataset(SLICE)
    assert written.has_sample_field("pred_fpn") and written.count("iou_fpn") == len(export.samples)
    summary_cm = np.array(metrics["summary"]["opened"]["confusion"])
    assert summary_cm.sum() == len(export.samples) * SIZE * SIZE

    for s in export.samples:
        pred = cv2.imread(str(run_dir / "predictions" / f"{s.key}.png"), cv2.IMREAD_UNCHANGED)
        photo = cv2.imread(str(ccp_dir / "photos" / f"{s.key.removeprefix('ccp_')}.jpg"))
        assert pred.shape == photo.shape[:2] and pred.dtype == np.uint8 and pred.max() < 15
        x0, y0, x1, y1 = s.crop_box
        outside = np.ones(pred.shape, bool)
        outside[y0:y1, x0:x1] = False
        assert not pred[outside].any()                          # background outside the crop box
        # the pasted-back prediction, taken back to the crop frame, agrees with the crop's score
        crop = cv2.resize(pred[y0:y1, x0:x1], (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)
        truth = cv2.imread(str(s.mask), cv2.IMREAD_UNCHANGED)
        acc = next(float(r["pixel_acc"]) for r in per_sample if r["key"] == s.key)
        assert abs((crop == truth).mean() - acc) < 0.05
        conf = np.load(run_dir / "confidence" / f"{s.key}.npz")["probs"]
        assert conf.shape == (15, SIZE // 4, SIZE // 4) and conf.dtype == np.uint8
        assert np.all(np.abs(conf.astype(int).sum(0) - 255) <= 15)   # quantised softmax sums to ~1


def test_resume_continues_an_interrupted_fold_and_skips_done_ones(run_dir, export_dir, tmp_path):
    resumed = tmp_path / "fpn"
    shutil.copytree(run_dir, resumed)
    (resumed / "folds" / "0" / "done").unlink()                     # fold 0 "crashed" after epoch 1
    before0 = _read_csv(resumed / "folds" / "0" / "history.csv")
    fold1 = resumed / "folds" / "1"
    stamps1 = {p.name: p.stat().st_mtime_ns for p in fold1.iterdir()}

    result = _train(export_dir, resumed, epochs=2)

    assert result.trained == [0] and result.skipped == [1]
    after0 = _read_csv(resumed / "folds" / "0" / "history.csv")
    assert [r["epoch"] for r in after0] == ["1", "2"]
    assert after0[0] == before0[0]                # epoch 1 (wall seconds included) came from last.pt
    assert torch.load(resumed / "folds" / "0" / "last.pt", weights_only=False)["epoch"] == 2
    assert {p.name: p.stat().st_mtime_ns for p in fold1.iterdir()} == stamps1
    assert len(json.loads((resumed / "metrics.json").read_text())["folds"]) == 2
    assert "fold" in result.summary() and (resumed / "folds" / "0" / "done").exists()


@pytest.mark.parametrize("change", [{"arch": "linknet"}, {"lr": 1e-4}, {"monitor": "val_miou"}])
def test_run_folder_refuses_other_options(run_dir, export_dir, change):
    from clothcurate.errors import BadInputError

    with pytest.raises(BadInputError, match=f"made with {next(iter(change))}="):
        _train(export_dir, run_dir, **change)


def test_a_run_folder_from_before_the_new_options_keeps_working(run_dir, export_dir, tmp_path):
    """config.json written before schedule / TTA / recipe existed: those runs used plateau and no
    TTA, so the same command still collects the folder, and another schedule is refused."""
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    config = json.loads((old / "config.json").read_text())
    for name in ("schedule", "warmup_epochs", "tta", "augment", "recipe", "monitor"):
        config["options"].pop(name)
    (old / "config.json").write_text(json.dumps(config))
    assert _train(export_dir, old).skipped == [0, 1]
    from clothcurate.errors import BadInputError

    with pytest.raises(BadInputError, match="made with schedule='plateau'"):
        _train(export_dir, old, schedule="cosine")


def test_a_failed_first_attempt_binds_no_option(export_dir, tmp_path, monkeypatch):
    """The weights missing for one encoder (what the error advises: another encoder or
    --encoder-weights none) must not lock the run folder to that encoder."""
    import huggingface_hub.constants

    from clothcurate.errors import BadInputError

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    out = tmp_path / "run"
    with pytest.raises(BadInputError, match="--encoder-weights none"):
        _train(export_dir, out, encoder="efficientnet-b0", fold_spec="0")
    assert (out / "config.json").exists() and not list(out.glob("folds/*/last.pt"))
    result = _train(export_dir, out, fold_spec="0")
    assert result.trained == [0]
    assert json.loads((out / "config.json").read_text())["encoder"] == ENCODER


def test_resume_adopts_a_best_checkpoint_newer_than_last(export_dir, tmp_path):
    """A crash after best.pt (epoch e) but before last.pt (e - 1): the resumed fold keeps the
    checkpoint on disk as the best so far instead of reporting an older best epoch."""
    export = read_export(export_dir)
    cache = decode_samples(export.samples[:8], size=SIZE)
    ds = SegmentationDataset(cache, range(8), transform=build_transform(size=SIZE, train=False))
    ctx = setup("cpu")
    norm = InputNormalizer(*encoder_normalization(ENCODER), device=ctx.device)

    def fit(epochs):
        torch.manual_seed(1)
        model = build_model("fpn", encoder=ENCODER, encoder_weights="imagenet")
        config = TrainConfig(epochs=epochs, patience=100, lr=1e-3, loss="ce", batch_size=4, workers=0)
        return fit_fold(model, config, train_set=ds, val_set=ds, fold_dir=tmp_path / "fold", ctx=ctx,
                        num_classes=15, progress=False, normalizer=norm)

    fit(1)
    best = torch.load(tmp_path / "fold" / "best.pt", weights_only=False)
    torch.save({**best, "epoch": 2, "val_loss": 1e-9}, tmp_path / "fold" / "best.pt")  # epoch 2's, unbeatable
    resumed = fit(2)
    assert resumed.best_epoch == 2 and resumed.best_val_loss == 1e-9
    assert torch.load(tmp_path / "fold" / "best.pt", weights_only=False)["val_loss"] == 1e-9


def _on_main_worker(rank: int, port: int, results) -> None:
    from clothcurate.errors import BadInputError
    from clothcurate.training.distributed import DistContext

    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    ctx = DistContext(rank=rank, world_size=2, local_rank=rank, local_world_size=2, device=torch.device("cpu"))

    def fails_on_rank_0():
        raise BadInputError("config.json: made with arch='fpn'")

    try:
        ctx.on_main(fails_on_rank_0)
        results.put((rank, None))
    except BadInputError as exc:
        results.put((rank, str(exc)))
    ok = ctx.on_main(lambda: "written")
    results.put((rank, ok))
    ctx.close()


def test_an_error_on_rank_0_reaches_every_rank():
    import multiprocessing as mp
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spawn = mp.get_context("spawn")
    results = spawn.Queue()
    procs = [spawn.Process(target=_on_main_worker, args=(r, port, results)) for r in (0, 1)]
    for proc in procs:
        proc.start()
    got = [results.get(timeout=120) for _ in range(4)]
    for proc in procs:
        proc.join(timeout=60)
    errors = {rank: msg for rank, msg in got if msg not in ("written", None)}
    assert errors == {0: "config.json: made with arch='fpn'", 1: "rank 0: config.json: made with arch='fpn'"}
    assert sorted((rank, msg) for rank, msg in got if msg in ("written", None)) == [(0, "written"), (1, None)]


def test_torchrun_two_process_gloo_run(export_dir, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "clothcurate.cli", "train-eval", "--arch", "fpn", "--data", str(export_dir), "--folds", "0",
           "--epochs", "1", "--image-size", str(SIZE), "--batch-size", "2", "--workers", "0",
           "--device", "cpu", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("train-eval fpn") == 1                   # rank 0 prints the summary once
    export = read_export(export_dir)
    test_keys = sorted(s.key for s in export.samples if s.fold == 0)
    metrics = json.loads((out / "metrics.json").read_text())
    (entry,) = metrics["folds"]
    assert entry["fold"] == 0 and entry["n_images"] == len(test_keys)
    assert np.array(entry["opened"]["confusion"]).sum() == len(test_keys) * SIZE * SIZE
    assert sorted(r["key"] for r in _read_csv(out / "per_sample.csv")) == test_keys
    assert sorted(p.stem for p in (out / "predictions").glob("*.png")) == test_keys
    assert json.loads((out / "config.json").read_text())["machine"]["world_size"] == 2
    assert len(_read_csv(out / "folds" / "0" / "history.csv")) == 1


def test_cli_levers_cosine_weighted_ce_tta_on_linknet(export_dir, tmp_path):
    """The recipe levers end to end through the CLI: warm-up + cosine for exactly --epochs (which
    then binds the run folder), class-weighted CE + Lovász, flip TTA; config.json records them."""
    out = tmp_path / "run"
    args = ["train-eval", "--arch", "linknet", "--data", str(export_dir), "--folds", "0", "--image-size", str(SIZE),
            "--batch-size", "4", "--workers", "0", "--device", "cpu", "--out", str(out), "--dataset", "",
            "--schedule", "cosine", "--warmup-epochs", "1", "--loss", "wce+lovasz", "--tta"]
    done = CliRunner().invoke(cli, [*args, "--epochs", "2"])
    assert done.exit_code == 0, done.output
    config = json.loads((out / "config.json").read_text())
    options = config["options"]
    assert (options["arch"], options["schedule"], options["loss"], options["tta"], options["epochs"]) == (
        "linknet", "cosine", "wce+lovasz", True, 2)
    assert options["patience"] == 10 and config["recipe"]["name"] == "default"   # the recipe's, not given
    assert {"epochs", "warmup_epochs", "tta"} <= set(config["binds"])
    peak = RECIPES["default"]["lr"]                                           # the recipe's, not given
    assert options["lr"] == peak and options["sampling"] == RECIPES["default"]["sampling"] == "repeat-factor"
    history = _read_csv(out / "folds" / "0" / "history.csv")
    assert [float(r["lr"]) for r in history] == pytest.approx([peak / 100, peak])  # warm-up start, then peak
    scores = json.loads((out / "folds" / "0" / "scores.json").read_text())
    assert scores["fit"]["epochs_run"] == 2 and not scores["fit"]["stopped_early"]
    refused = CliRunner().invoke(cli, [*args, "--epochs", "3"])
    assert refused.exit_code == 2 and "made with epochs=2" in refused.output


def test_cli_paper_recipe_takes_the_papers_values_not_the_defaults_shown(export_dir, tmp_path):
    """``train-eval --help`` shows the default recipe's values (e.g. --lr 3e-3); ``--recipe paper``
    without those options must still train with the paper's (Adam 1e-3, plateau, CE, no TTA)."""
    out = tmp_path / "paper"
    done = CliRunner().invoke(cli, ["train-eval", "--arch", "fpn", "--recipe", "paper", "--data", str(export_dir),
                                    "--folds", "0", "--image-size", str(SIZE), "--epochs", "1", "--batch-size", "4",
                                    "--workers", "0", "--device", "cpu", "--out", str(out), "--dataset", ""])
    assert done.exit_code == 0, done.output
    options = json.loads((out / "config.json").read_text())["options"]
    paper = RECIPES["paper"]
    assert RECIPES["default"]["lr"] != paper["lr"]        # else this test shows nothing
    keys = ("lr", "loss", "schedule", "tta", "sampling")
    assert {k: options[k] for k in keys} == {k: paper[k] for k in keys}
    history = _read_csv(out / "folds" / "0" / "history.csv")
    assert float(history[0]["lr"]) == pytest.approx(paper["lr"])


def test_cli_exit_code_2_on_missing_or_incomplete_export(tmp_path, export_dir):
    runner = CliRunner()
    args = ["train-eval", "--arch", "fpn", "--out", str(tmp_path / "run"), "--device", "cpu"]
    missing = runner.invoke(cli, [*args, "--data", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "nope" in missing.output
    partial = tmp_path / "partial"
    shutil.copytree(export_dir, partial)
    (partial / "folds.json").unlink()
    incomplete = runner.invoke(cli, [*args, "--data", str(partial)])
    assert incomplete.exit_code == 2 and "folds.json" in incomplete.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("encoder", ["tf_efficientnet_lite0", "efficientnet-b0"])
def test_device_normalisation_equals_albumentations_normalize(encoder):
    """The loaders carry uint8; InputNormalizer must give what A.Normalize gave on the CPU."""
    import albumentations as A

    mean, std = encoder_normalization(encoder)
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, size=(3, 32, 48, 3), dtype=np.uint8)          # N, H, W, C
    expected = np.stack([A.Normalize(mean=mean, std=std, max_pixel_value=255.0)(image=im)["image"]
                         for im in images]).transpose(0, 3, 1, 2)
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    got = InputNormalizer(mean, std, device="cpu")(batch)
    assert got.dtype == torch.float32 and got.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_loader_items_stay_uint8(export_dir):
    export = read_export(export_dir)
    cache = decode_samples(export.samples[:2], size=SIZE)
    ds = SegmentationDataset(cache, [0, 1], transform=build_transform(size=SIZE, train=True))
    image, mask, pos = ds[1]
    assert image.dtype == torch.uint8 and image.shape == (3, SIZE, SIZE)
    assert mask.dtype == torch.uint8 and mask.shape == (SIZE, SIZE) and pos == 1
    x, y = to_device(image[None], mask[None], InputNormalizer((0.5,) * 3, (0.5,) * 3, device="cpu"))
    assert y.dtype == torch.int64 and float(x.min()) >= -1.0 and float(x.max()) <= 1.0


@pytest.mark.parametrize("policy", ["paper", "scale"])
def test_augmentation_keeps_labels_and_uint8(export_dir, policy):
    """Every policy moves masks with nearest neighbour (no new class ids; rotated-in pixels are
    background), keeps S x S uint8; ``scale`` also zooms out (the person covers less)."""
    export = read_export(export_dir)
    cache = decode_samples(export.samples[:4], size=SIZE)
    ds = SegmentationDataset(cache, range(4), transform=build_transform(size=SIZE, train=True, policy=policy))
    np.random.seed(0)
    ds.transform.set_random_seed(0)
    shares = []
    for _ in range(8):
        for i in range(4):
            image, mask, _ = ds[i]
            assert image.dtype == torch.uint8 and image.shape == (3, SIZE, SIZE) and mask.shape == (SIZE, SIZE)
            original = set(np.unique(cache.masks[i].numpy())) | {0}
            assert set(np.unique(mask.numpy())) <= original
            shares.append(float((mask > 0).float().mean() / (cache.masks[i] > 0).float().mean()))
    if policy == "scale":
        assert min(shares) < 0.85 and max(shares) > 1.15, shares


@pytest.mark.parametrize("monitor", ["val_loss", "val_miou"])
def test_the_kept_checkpoint_follows_the_monitor(export_dir, tmp_path, monitor):
    export = read_export(export_dir)
    cache = decode_samples(export.samples[:8], size=SIZE)
    ds = SegmentationDataset(cache, range(8), transform=build_transform(size=SIZE, train=False))
    ctx = setup("cpu")
    torch.manual_seed(1)
    model = build_model("fpn", encoder=ENCODER, encoder_weights="imagenet")
    config = TrainConfig(epochs=4, patience=100, lr=1e-3, loss="ce", batch_size=4, workers=0, monitor=monitor)
    fit = fit_fold(model, config, train_set=ds, val_set=ds, fold_dir=tmp_path / "fold", ctx=ctx, num_classes=15,
                   progress=False, normalizer=InputNormalizer(*encoder_normalization(ENCODER), device=ctx.device))
    values = [row[monitor] for row in fit.history]
    best = int(np.argmin(values) if monitor == "val_loss" else np.argmax(values))   # first best epoch
    assert fit.best_epoch == best + 1
    assert fit.best_val_loss == pytest.approx(fit.history[best]["val_loss"])
    saved = torch.load(tmp_path / "fold" / "best.pt", weights_only=False)
    assert saved["metric"] == monitor and saved["epoch"] == fit.best_epoch
