"""The typed training config, its recipes and binding options; the schedule and class-weight parts."""

from __future__ import annotations

import json
import math

import pytest
import torch

from clothcurate.errors import BadInputError
from clothcurate.training.callbacks import WarmupCosineSchedule
from clothcurate.training.config import LOSSES, RECIPES, TrainConfig
from clothcurate.training.loop import build_loss, class_weights


def test_recipe_fills_what_is_not_given_and_is_recorded():
    cfg = TrainConfig.from_recipe("paper", arch="unet", data_dir="folds", epochs=7)
    assert cfg.recipe == "paper" and cfg.arch == "unet" and cfg.epochs == 7
    assert all(getattr(cfg, k) == v for k, v in RECIPES["paper"].items() if k != "epochs")
    # what config.json stores reads back to the same config
    assert TrainConfig(**json.loads(json.dumps(cfg.to_json()))) == cfg


def test_the_paper_recipe_is_the_papers():
    paper = RECIPES["paper"]
    assert (paper["lr"], paper["loss"], paper["schedule"], paper["patience"], paper["epochs"], paper["image_size"],
            paper["monitor"], paper["tta"], paper["augment"]) == (1e-3, "ce", "plateau", 10, 100, 320, "val_loss",
                                                                  False, "paper")


def test_binding_options_depend_on_the_schedule():
    plateau = TrainConfig(arch="fpn", data_dir="x")
    assert {"arch", "encoder", "encoder_weights", "image_size", "image_width", "loss", "lr", "seed", "monitor", "schedule",
            "tta", "tta_scales", "augment", "sampling", "paste", "average_last", "pseudo"} == set(plateau.binding())
    cosine = plateau.replace(schedule="cosine", warmup_epochs=2)
    assert {"epochs", "warmup_epochs"} <= set(cosine.binding())


@pytest.mark.parametrize("bad, words", [
    ({"loss": "hinge"}, "--loss"), ({"schedule": "step"}, "--schedule"), ({"image_size": 100}, "multiple of 32"),
    ({"image_size": 96, "image_width": 50}, "96x50: each side must be a multiple of 32"),
    ({"epochs": 0}, "--epochs"), ({"warmup_epochs": 5, "epochs": 5}, "--warmup-epochs"),
    ({"monitor": "f1"}, "--monitor"), ({"lr": 0}, "--lr"), ({"augment": "mixup"}, "--augment"),
    ({"paste": 2.0}, "--paste 2.0: a probability")])
def test_bad_values_are_bad_input(bad, words):
    with pytest.raises(BadInputError, match=words):
        TrainConfig(arch="fpn", data_dir="x", **bad)


def test_a_square_has_one_spelling_and_a_portrait_input_its_height_and_width():
    assert TrainConfig(arch="fpn", data_dir="x", image_size=96, image_width=96) == TrainConfig(arch="fpn", data_dir="x",
                                                                                              image_size=96)
    portrait = TrainConfig(arch="fpn", data_dir="x", image_size=384, image_width=256)
    assert portrait.input_size == (384, 256) and TrainConfig(arch="fpn", data_dir="x").input_size == (320, 320)


def test_unknown_recipe_or_option_is_bad_input():
    with pytest.raises(BadInputError, match="--recipe"):
        TrainConfig.from_recipe("fast", arch="fpn")
    with pytest.raises(BadInputError, match="unknown training option"):
        TrainConfig.from_recipe("default", arch="fpn", learning_rate=1.0)


def test_warmup_cosine_schedule_rises_then_decays_to_zero():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = WarmupCosineSchedule(opt, total_steps=100, warmup_steps=10)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.on_train_batch_end(None)
    assert lrs[0] == pytest.approx(1e-5) and lrs[10] == pytest.approx(1e-3)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))            # warm-up rises
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))             # then never rises again
    assert lrs[55] == pytest.approx(0.5e-3, rel=1e-6) and opt.param_groups[0]["lr"] < 1e-9
    # the state survives a save/load into a fresh schedule (resume)
    fresh_opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    fresh = WarmupCosineSchedule(fresh_opt, total_steps=100, warmup_steps=10)
    partial = WarmupCosineSchedule(torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3),
                                   total_steps=100, warmup_steps=10)
    for _ in range(30):
        partial.scheduler.optimizer.step()
        partial.on_train_batch_end(None)
    fresh.load_state_dict(partial.state_dict())
    fresh_opt.step()
    fresh.on_train_batch_end(None)
    assert fresh_opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 21 / 90)))


def test_class_weights_favour_rare_classes_and_keep_the_loss_scale():
    masks = torch.zeros(2, 10, 10, dtype=torch.uint8)
    masks[0, :5] = 1                       # class 1: 50 px, class 2: 4 px, background 146 px
    masks[1, :2, :2] = 2
    w = class_weights(masks, 4)
    share = torch.bincount(masks.reshape(-1).long(), minlength=4).float() / masks.numel()
    assert w[2] > w[1] > w[0] and w[3] == w.max()                      # class 3 is absent
    assert float((share * w).sum()) == pytest.approx(1.0, rel=1e-5)
    logits, target = torch.randn(2, 4, 10, 10), masks.long()
    assert build_loss("wce", weights=w)(logits, target) != build_loss("ce")(logits, target)
    with pytest.raises(BadInputError, match="wce"):
        build_loss("wce")
    with pytest.raises(BadInputError, match="wce\\+lovasz"):
        build_loss("wce+lovasz")
    lovasz_part = build_loss("ce+lovasz")(logits, target) - build_loss("ce")(logits, target)
    assert build_loss("wce+lovasz", weights=w)(logits, target) == pytest.approx(
        float(build_loss("wce", weights=w)(logits, target) + lovasz_part), rel=1e-5)
    assert torch.isfinite(build_loss("ce+lovasz")(logits, target))


def test_every_offered_loss_builds_and_a_combination_is_the_sum_of_its_terms():
    target = torch.randint(0, 4, (2, 10, 10))
    target[0, 0, :3] = 255                                             # ignored pixels (pseudo-masks)
    logits, w = torch.randn(2, 4, 10, 10), torch.tensor([0.5, 1.0, 2.0, 3.0])
    value = {name: float(build_loss(name, weights=w)(logits, target)) for name in LOSSES}
    assert all(math.isfinite(v) for v in value.values())
    # dice alone against ce+dice: the combination adds ce's value, nothing else
    assert value["ce+dice"] == pytest.approx(value["ce"] + value["dice"], rel=1e-5)
    with pytest.raises(BadInputError, match="unknown loss"):
        build_loss("ce+focal")                                         # terms that exist, a combination not offered
