"""The rare-class and averaging levers of train-eval on real CCP crops (64 px, CPU, 1-2 epochs):
repeat-factor sampling, garment paste, weight averaging of the last epochs, the ``rotate``
augmentation, and their DDP path (2-process gloo).

The export (12 real CCP photos, person crops at 64 px, 2 folds; two hold a romper, one shorts,
one a scarf/tie) is built without FiftyOne by :func:`tiny_run.make_export`.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from clothcurate.cli import main as cli
from clothcurate.training.augment import build_transform
from clothcurate.training.config import REPEAT_CLASSES, TrainConfig
from clothcurate.training.data import SegmentationDataset, decode_samples, read_export
from clothcurate.training.distributed import DistContext, setup
from clothcurate.training.loop import build_loss, evaluate, make_loader
from clothcurate.training.models import InputNormalizer, encoder_normalization
from clothcurate.training.paste import GarmentPaste
from clothcurate.training.sampling import REPEAT_THRESHOLD, dataset_presence, repeat_factors, sampling_weights
from clothcurate.training.split import split_validation
from tiny_run import make_export

SIZE = 64
ENCODER = "tf_efficientnet_lite0"
#: real CCP ids: 0024 / 0027 hold a romper, 0033 shorts, 0046 a scarf/tie; the others are common
IDS = ["0024", "0027", "0033", "0046", "0010", "0012", "0013", "0014", "0015", "0017", "0018", "0019"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def export_dir(ccp_dir, tmp_path_factory) -> Path:
    return make_export(ccp_dir, tmp_path_factory.mktemp("levers") / "export", IDS)


@pytest.fixture(scope="module")
def plain_set(export_dir) -> SegmentationDataset:
    """Every exported crop, not augmented."""
    export = read_export(export_dir)
    cache = decode_samples(export.samples, size=SIZE)
    return SegmentationDataset(cache, range(len(export.samples)), transform=build_transform(size=SIZE, train=False))


def test_repeat_factors_follow_the_lvis_rule_on_the_real_masks(export_dir, plain_set):
    export = read_export(export_dir)
    presence = dataset_presence(plain_set, len(export.classes))
    assert np.array_equal(presence, export.presence(range(len(export.samples))))   # masks agree with folds.json
    factors = repeat_factors(presence, classes=export.classes)
    share = presence.mean(0)
    rare = [export.classes.index(name) for name in REPEAT_CLASSES]
    romper = export.classes.index("romper")
    assert presence[:, romper].sum() == 2
    for n, row in enumerate(presence):
        held = [c for c in rare if row[c]]
        expected = max([1.0] + [math.sqrt(REPEAT_THRESHOLD / share[c]) for c in held])
        assert factors[n] == pytest.approx(expected)
        if not held:
            assert factors[n] == 1.0
    assert factors[presence[:, romper]].min() >= math.sqrt(REPEAT_THRESHOLD / (2 / 12)) - 1e-9
    assert sampling_weights("uniform", plain_set, classes=export.classes) is None
    np.testing.assert_allclose(sampling_weights("repeat-factor", plain_set, classes=export.classes), factors)


def test_the_weighted_loader_draws_rare_images_more_often_in_an_epoch_of_the_same_length(export_dir, plain_set):
    export = read_export(export_dir)
    factors = repeat_factors(dataset_presence(plain_set, 15), classes=export.classes)
    ctx = setup("cpu")
    uniform = make_loader(plain_set, batch_size=4, train=True, workers=0, ctx=ctx)
    weighted = make_loader(plain_set, batch_size=4, train=True, workers=0, ctx=ctx, weights=factors)
    assert len(weighted) == len(uniform) == 3
    torch.manual_seed(0)
    counts = np.zeros(len(plain_set))
    epochs = 2000
    for _ in range(epochs):
        np.add.at(counts, list(weighted.sampler), 1)
    rate = counts / epochs                                        # draws per epoch
    np.testing.assert_allclose(rate, len(plain_set) * factors / factors.sum(), rtol=0.1)
    romper = dataset_presence(plain_set, 15)[:, export.classes.index("romper")]
    assert rate[romper].min() > 1.5 * rate[factors == 1].mean()   # each image once per epoch uniformly
    # under DDP each rank draws its share of an epoch (the distributed path of the loader)
    rank1 = DistContext(rank=1, world_size=2, local_rank=1, local_world_size=2, device=torch.device("cpu"))
    shard = make_loader(plain_set, batch_size=2, train=True, workers=0, ctx=rank1, weights=factors)
    assert shard.sampler.num_samples == 6 and len(shard) == 3
    with pytest.raises(ValueError, match="3 sampling weights for 12"):
        make_loader(plain_set, batch_size=4, train=True, workers=0, ctx=ctx, weights=factors[:3])


def test_rotate_policy_rotates_and_keeps_labels(plain_set):
    cache = plain_set.cache
    ds = SegmentationDataset(cache, range(4), transform=build_transform(size=SIZE, train=True, policy="rotate"))
    ds.transform.set_random_seed(0)
    rotated = 0
    for _ in range(6):
        for i in range(4):
            image, mask, _ = ds[i]
            assert image.dtype == torch.uint8 and image.shape == (3, SIZE, SIZE) and mask.shape == (SIZE, SIZE)
            original = cache.masks[i]
            assert set(np.unique(mask.numpy())) <= set(np.unique(original.numpy())) | {0}   # nearest: no new ids
            same = torch.equal(mask, original) or torch.equal(mask, original.flip(-1))
            rotated += not same
    assert rotated >= 12      # p = 0.8 of 24 draws (a 0-degree draw would look unrotated)


def test_garment_paste_puts_a_donors_rare_garment_at_its_own_place(export_dir, plain_set):
    """p = 1: every item gets the pixels of one rare class of another crop, at the same place, in
    its image and its mask; everything else is untouched. p = 0, or a crop that is the only donor
    of its garments, leaves the item as it was."""
    export = read_export(export_dir)
    cache, classes = plain_set.cache, export.classes
    rare = {classes.index(name) for name in REPEAT_CLASSES}
    paste = GarmentPaste(cache, donors=range(len(cache)), classes=classes, p=1.0)
    romper = classes.index("romper")
    assert sorted(paste.donors[romper].tolist()) == [0, 1]                 # 0024 and 0027
    rng = np.random.default_rng(0)
    pasted_classes = set()
    for _ in range(40):
        target = 4                                                         # 0010: none of the rare garments
        image, mask = cache.images[target].numpy().copy(), cache.masks[target].numpy().copy()
        new_image, new_mask = paste(image.copy(), mask.copy(), position=target, rng=rng)
        changed = (new_mask != mask) | (new_image != image).any(-1)
        assert changed.any()
        (c,) = set(np.unique(new_mask[new_mask != mask]).tolist())        # one class per paste
        assert c in rare
        pasted_classes.add(c)
        donors = [d for d in paste.donors[c] if d != target]
        garment = {d: cache.masks[d].numpy() == c for d in donors}          # each donor's pixels of class c
        match = [d for d in donors if np.array_equal(new_mask == c, garment[d] | (mask == c))
                 and np.array_equal(new_image[garment[d]], cache.images[d].numpy()[garment[d]])]
        assert match, f"class {classes[c]}: no donor's garment at its own place"
        region = garment[match[0]]
        assert np.array_equal(new_image[~region], image[~region]) and np.array_equal(new_mask[~region], mask[~region])
    assert len(pasted_classes) >= 3                                        # classes drawn uniformly
    off = GarmentPaste(cache, donors=range(len(cache)), classes=classes, p=0.0)
    image, mask = cache.images[4].numpy().copy(), cache.masks[4].numpy().copy()
    same = off(image.copy(), mask.copy(), position=4, rng=rng)
    assert np.array_equal(same[0], image) and np.array_equal(same[1], mask)
    alone = GarmentPaste(cache, donors=[0], classes=classes, p=1.0)      # 0024 gives only to others
    image, mask = cache.images[0].numpy().copy(), cache.masks[0].numpy().copy()
    same = alone(image.copy(), mask.copy(), position=0, rng=rng)
    assert np.array_equal(same[0], image) and np.array_equal(same[1], mask)
    with pytest.raises(ValueError):
        GarmentPaste(cache, donors=[0], classes=classes, p=1.5)
    # in the training set: applied before the augmentation, on copies (the cache is never written)
    before = cache.masks.clone()
    ds = SegmentationDataset(cache, [4], transform=build_transform(size=SIZE, train=False), paste=paste)
    np.random.seed(0)
    _, item_mask, _ = ds[0]
    assert not torch.equal(item_mask, cache.masks[4]) and torch.equal(cache.masks, before)


def _train_args(export_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["train-eval", "--arch", "fpn", "--data", str(export_dir), "--folds", "0", "--image-size", str(SIZE),
            "--batch-size", "4", "--workers", "0", "--device", "cpu", "--out", str(out), "--dataset", "", *extra]


def test_average_last_keeps_the_averaged_model_with_recomputed_batchnorm(export_dir, tmp_path):
    """train-eval --average-last 2 --sampling repeat-factor --augment rotate --paste 0.5 through the
    CLI: best.pt is the average of epochs 1-2 (the running average in last.pt), its BatchNorm statistics are
    recomputed, its recorded validation loss is the averaged model's, inference loads it, and
    the options bind the run folder."""
    out = tmp_path / "run"
    args = _train_args(export_dir, out, "--schedule", "cosine", "--warmup-epochs", "1", "--epochs", "2",
                       "--sampling", "repeat-factor", "--augment", "rotate", "--paste", "0.5")
    done = CliRunner().invoke(cli, [*args, "--average-last", "2"])
    assert done.exit_code == 0, done.output
    config = json.loads((out / "config.json").read_text())
    assert (config["options"]["sampling"], config["options"]["average_last"], config["options"]["augment"],
            config["options"]["paste"]) == ("repeat-factor", 2, "rotate", 0.5)
    assert {"sampling", "average_last", "augment", "paste"} <= set(config["binds"])

    fold = out / "folds" / "0"
    best = torch.load(fold / "best.pt", map_location="cpu", weights_only=True)   # as inference reads it
    last = torch.load(fold / "last.pt", map_location="cpu", weights_only=False)
    assert (best["metric"], best["averaged_epochs"], best["epoch"]) == ("average_last", [1, 2], 2)
    average = last["callbacks"]["WeightAveraging"]["average"]
    assert int(average["n_averaged"]) == 2
    params = [name for name, value in best["state_dict"].items() if value.is_floating_point()
              and not name.endswith(("running_mean", "running_var"))]
    for name in params:
        torch.testing.assert_close(best["state_dict"][name], average[f"module.{name}"])
    assert any(not torch.equal(best["state_dict"][n], last["model"][n]) for n in params)   # not epoch 2's weights
    stats = [n for n in best["state_dict"] if n.endswith("running_mean")]
    assert stats and all(not torch.equal(best["state_dict"][n], last["model"][n]) for n in stats)
    assert all(not torch.equal(best["state_dict"][n], average[f"module.{n}"]) for n in stats)   # recomputed
    scores = json.loads((fold / "scores.json").read_text())
    assert scores["fit"]["averaged_epochs"] == [1, 2] and scores["fit"]["best_epoch"] == 2

    # the recorded validation loss is the averaged model's (on the fold's validation split)
    from clothcurate.inference.segmenter import Segmenter

    export = read_export(export_dir)
    train_pos, _ = export.fold_parts(0)
    _, val_idx = split_validation(export.presence(train_pos), fraction=0.1, seed=0)
    cache = decode_samples(export.samples, size=SIZE)
    val_set = SegmentationDataset(cache, [train_pos[i] for i in val_idx],
                                  transform=build_transform(size=SIZE, train=False))
    segmenter = Segmenter.from_run(out, fold=0, device="cpu")
    (model,) = segmenter.models
    ctx = setup("cpu")
    loss, _ = evaluate(model, make_loader(val_set, batch_size=8, train=False, workers=0, ctx=ctx),
                       criterion=build_loss(json.loads((out / "config.json").read_text())["options"]["loss"]),
                       ctx=ctx, num_classes=15,
                       normalizer=InputNormalizer(*encoder_normalization(ENCODER), device=ctx.device))
    assert loss == pytest.approx(best["val_loss"], rel=1e-4)

    refused = CliRunner().invoke(cli, [*args, "--average-last", "1"])
    assert refused.exit_code == 2 and "made with average_last=2" in refused.output
    plateau = CliRunner().invoke(cli, _train_args(export_dir, tmp_path / "other", "--schedule", "plateau",
                                                  "--average-last", "2"))
    assert plateau.exit_code == 2 and "--average-last 2" in plateau.output and "cosine" in plateau.output


def test_config_checks_the_new_levers():
    from clothcurate.errors import BadInputError

    assert TrainConfig(schedule="cosine", epochs=5, average_last=5).average_last == 5
    for bad in ({"sampling": "rare"}, {"average_last": 2}, {"schedule": "cosine", "epochs": 3, "average_last": 4},
                {"schedule": "cosine", "average_last": -1}, {"paste": 1.5}, {"paste": -0.1}):
        with pytest.raises(BadInputError):
            TrainConfig(**bad)
    assert {"sampling", "average_last", "paste"} <= set(TrainConfig().binding())
    paper = TrainConfig.from_recipe("paper")
    assert (paper.sampling, paper.average_last, paper.paste) == ("uniform", 0, 0.0)


def test_torchrun_two_process_repeat_factor_and_averaging(export_dir, tmp_path):
    """The DDP path: each rank draws its weighted share; rank 0's recomputed BatchNorm statistics
    are broadcast, so both ranks predict their test shard with the one kept model."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "clothcurate.cli", *_train_args(export_dir, out, "--schedule", "cosine", "--epochs", "1",
                                                  "--average-last", "1", "--sampling", "repeat-factor")]
    cmd[cmd.index("--batch-size") + 1] = "2"
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = torch.load(out / "folds" / "0" / "best.pt", map_location="cpu", weights_only=True)
    assert best["metric"] == "average_last" and best["averaged_epochs"] == [1]
    export = read_export(export_dir)
    test_keys = sorted(s.key for s in export.samples if s.fold == 0)
    assert sorted(p.stem for p in (out / "predictions").glob("*.png")) == test_keys
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["folds"][0]["n_images"] == len(test_keys)


class _Crash(Exception):
    pass


class _CrashingSet(torch.utils.data.Dataset):
    """A dataset that raises after ``after`` items (an interrupted fit)."""

    def __init__(self, inner: SegmentationDataset, after: int):
        self.inner, self.left = inner, after

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int):
        self.left -= 1
        if self.left < 0:
            raise _Crash
        return self.inner[i]


def test_an_interrupted_fold_resumes_its_running_average(plain_set, tmp_path):
    """Epochs 2-3 of 3 averaged; a fit interrupted during epoch 3 and resumed keeps epoch 2 in
    its average: its best.pt equals that of an uninterrupted fit, bit for bit (CPU, same seeds)."""
    from clothcurate.training.loop import fit_fold
    from clothcurate.training.models import build_model

    config = TrainConfig(schedule="cosine", epochs=3, warmup_epochs=1, average_last=2, batch_size=4, workers=0)
    ctx = setup("cpu")
    norm = InputNormalizer(*encoder_normalization(ENCODER), device=ctx.device)
    train, val = SegmentationDataset(plain_set.cache, range(8), transform=plain_set.transform), plain_set

    def fit(fold_dir: Path, train_set):
        torch.manual_seed(3)
        model = build_model("fpn", encoder=ENCODER, encoder_weights="imagenet")
        return fit_fold(model, config, train_set=train_set, val_set=val, fold_dir=fold_dir, ctx=ctx,
                        num_classes=15, normalizer=norm, progress=False)

    whole = fit(tmp_path / "whole", train)
    assert whole.averaged_epochs == [2, 3]
    with pytest.raises(_Crash):
        fit(tmp_path / "resumed", _CrashingSet(train, after=2 * 8 + 3))     # dies inside epoch 3
    assert torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)["epoch"] == 2
    resumed = fit(tmp_path / "resumed", train)
    assert resumed.averaged_epochs == [2, 3]
    a = torch.load(tmp_path / "whole" / "best.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "best.pt", weights_only=True)
    assert a["val_loss"] == b["val_loss"]
    for name, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][name]), name
