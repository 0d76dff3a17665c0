"""Pixel metrics against confusion matrices and scores worked out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from clothcurate.errors import BadInputError
from clothcurate.training import metrics
from clothcurate.training.metrics import ConfusionMatrix, per_sample_scores, scores_from_confusion, summarize_folds

# Two 2x3 images, 4 classes; 255 = ignored pixel.
TARGET = torch.tensor([[[0, 0, 1],
                        [1, 2, 255]],
                       [[0, 1, 1],
                        [0, 0, 0]]])
PRED = torch.tensor([[[0, 1, 1],
                      [1, 1, 3]],
                     [[0, 1, 1],
                      [0, 0, 0]]])
# Counted by hand, cm[true][pred]: image 0: (0,0) (0,1) (1,1) (1,1) (2,1), pixel 255 ignored;
# image 1: (0,0) x4, (1,1) x2.
HAND_CM = np.array([[5, 1, 0, 0],
                    [0, 4, 0, 0],
                    [0, 1, 0, 0],
                    [0, 0, 0, 0]])


def _loop_confusion(pred: np.ndarray, target: np.ndarray, k: int) -> np.ndarray:
    cm = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(target.ravel(), pred.ravel()):
        if 0 <= t < k:
            cm[t, p] += 1
    return cm


def test_confusion_matrix_matches_hand_count_and_accumulates():
    cm = ConfusionMatrix(4)
    cm.update(PRED[:1], TARGET[:1])
    cm.update(PRED[1:], TARGET[1:])
    assert cm.compute().dtype == np.int64
    np.testing.assert_array_equal(cm.compute(), HAND_CM)
    cm.reset()
    assert cm.compute().sum() == 0


def test_confusion_matrix_random_against_loop():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 15, (3, 17, 13), generator=g, dtype=torch.uint8)
    pred = torch.randint(0, 15, (3, 17, 13), generator=g)
    cm = ConfusionMatrix(15)
    cm.update(pred, target)  # uint8 target must not overflow target * K
    np.testing.assert_array_equal(cm.compute(), _loop_confusion(pred.numpy(), target.numpy(), 15))


def test_confusion_matrix_rejects_bad_input():
    cm = ConfusionMatrix(4)
    with pytest.raises(BadInputError):
        cm.update(PRED[0], TARGET[0])                 # (H, W), not (N, H, W)
    with pytest.raises(BadInputError):
        cm.update(PRED.float(), TARGET)               # logits-like floats
    with pytest.raises(BadInputError):
        cm.update(PRED[:, :1], TARGET)                # shape mismatch


def test_scores_from_hand_confusion():
    s = scores_from_confusion(HAND_CM)
    pc = s["per_class"]
    # class 0: TP 5, FP 0, FN 1; class 1: TP 4, FP 2, FN 0; class 2: TP 0, FP 0, FN 1 (GT only);
    # class 3: absent on both sides.
    assert pc["precision"][:3] == pytest.approx([1.0, 4 / 6, 0.0])
    assert pc["recall"][:3] == pytest.approx([5 / 6, 1.0, 0.0])
    assert pc["f1"][:3] == pytest.approx([2 * 5 / (2 * 5 + 1), 2 * 4 / (2 * 4 + 2), 0.0])
    assert pc["iou"][:3] == pytest.approx([5 / 6, 4 / 6, 0.0])
    for name in ("precision", "recall", "f1", "iou"):
        assert pc[name][3] is None
    mean = s["mean"]
    assert mean["precision"] == pytest.approx((1 + 4 / 6 + 0) / 3)
    assert mean["recall"] == pytest.approx((5 / 6 + 1 + 0) / 3)
    assert mean["iou"] == pytest.approx((5 / 6 + 4 / 6) / 3)
    assert mean["f1"] == pytest.approx((10 / 11 + 8 / 10) / 3)
    assert mean["pixel_accuracy"] == pytest.approx(9 / 11)
    assert s["confusion"] == HAND_CM.tolist()
    json.dumps(s, allow_nan=False)


def test_scores_prediction_only_class_counts_as_zero():
    cm = np.array([[3, 1], [0, 0]])   # class 1 predicted once, never true
    s = scores_from_confusion(cm)
    assert s["per_class"]["precision"] == pytest.approx([1.0, 0.0])
    assert s["per_class"]["recall"] == pytest.approx([0.75, 0.0])
    assert s["per_class"]["iou"] == pytest.approx([0.75, 0.0])
    assert s["mean"]["iou"] == pytest.approx(0.375)


def test_scores_empty_matrix_is_all_null():
    s = scores_from_confusion(np.zeros((3, 3), dtype=np.int64))
    assert all(v is None for v in s["mean"].values())
    assert s["per_class"]["iou"] == [None, None, None]
    with pytest.raises(BadInputError):
        scores_from_confusion(np.zeros((3, 4)))


def _loop_per_sample(pred: np.ndarray, target: np.ndarray, k: int):
    ious, accs = [], []
    for p, t in zip(pred, target):
        valid = (t >= 0) & (t < k)
        per_class = []
        for c in range(k):
            inter = np.sum((p == c) & (t == c) & valid)
            union = np.sum(((p == c) | (t == c)) & valid)
            if union:
                per_class.append(inter / union)
        ious.append(np.mean(per_class))
        accs.append(np.sum((p == t) & valid) / valid.sum())
    return np.array(ious), np.array(accs)


def test_per_sample_scores_hand_values():
    iou, acc = per_sample_scores(PRED, TARGET, num_classes=4)
    # image 0: class 0 1/2, class 1 2/4, class 2 0/1 (3 is predicted only on the ignored pixel)
    np.testing.assert_allclose(iou, [(0.5 + 0.5 + 0) / 3, 1.0])
    np.testing.assert_allclose(acc, [3 / 5, 1.0])


def test_per_sample_scores_numpy_torch_and_chunks_agree(monkeypatch):
    rng = np.random.default_rng(1)
    target = rng.integers(0, 6, (7, 9, 11)).astype(np.uint8)
    pred = np.where(rng.random(target.shape) < 0.6, target, rng.integers(0, 6, target.shape))
    expected = _loop_per_sample(pred, target, 6)
    for got in (per_sample_scores(pred, target, num_classes=6),
                per_sample_scores(torch.from_numpy(pred), torch.from_numpy(target), num_classes=6)):
        np.testing.assert_allclose(got[0], expected[0])
        np.testing.assert_allclose(got[1], expected[1])
    monkeypatch.setattr(metrics, "_CHUNK_PIXELS", 200)   # two images per chunk
    np.testing.assert_allclose(per_sample_scores(pred, target, num_classes=6)[0], expected[0])


def test_summarize_folds_nan_aware():
    fold_a = scores_from_confusion(np.array([[4, 0, 0], [0, 2, 2], [0, 0, 0]]))   # class 2 predicted only
    fold_b = scores_from_confusion(np.array([[2, 2, 0], [0, 0, 0], [0, 0, 0]]))   # class 1 predicted only, 2 absent
    folds = [{"fold": 0, "n_images": 1, "raw": fold_a, "opened": fold_a},
             {"fold": 1, "n_images": 1, "raw": fold_b, "opened": fold_a}]
    s = summarize_folds(folds)
    assert set(s) == {"raw", "opened"}
    raw = s["raw"]
    # class 0 recall: 1.0 and 0.5 → mean 0.75, std 0.25; class 2 IoU: 0 in fold a, null in b.
    assert raw["per_class"]["recall"]["mean"][0] == pytest.approx(0.75)
    assert raw["per_class"]["recall"]["std"][0] == pytest.approx(0.25)
    assert raw["per_class"]["iou"]["mean"][2] == pytest.approx(0.0)
    assert raw["per_class"]["iou"]["std"][2] == pytest.approx(0.0)
    # mean IoU per fold: a = (1 + 0.5 + 0)/3, b = (0.5 + 0)/2
    assert raw["mean"]["iou"]["mean"] == pytest.approx(((1.5 / 3) + 0.25) / 2)
    assert raw["mean"]["iou"]["std"] == pytest.approx(abs(0.5 - 0.25) / 2)
    assert raw["confusion"] == [[6, 2, 0], [0, 2, 2], [0, 0, 0]]
    assert s["opened"]["mean"]["iou"]["std"] == pytest.approx(0.0)
    json.dumps(s, allow_nan=False)


def test_summarize_folds_all_null_class_stays_null():
    block = scores_from_confusion(np.array([[1, 0], [0, 0]]))
    s = summarize_folds([{"fold": 0, "raw": block}, {"fold": 1, "raw": block}])
    assert s["raw"]["per_class"]["f1"]["mean"] == [1.0, None]
    assert s["raw"]["per_class"]["f1"]["std"] == [0.0, None]
    with pytest.raises(BadInputError):
        summarize_folds([])


def _ddp_rank(rank: int, init_file: str, out_dir: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    cm = ConfusionMatrix(4)
    cm.update(PRED[rank:rank + 1], TARGET[rank:rank + 1])
    cm.all_reduce()
    np.save(f"{out_dir}/cm{rank}.npy", cm.compute())
    torch.distributed.destroy_process_group()


def test_all_reduce_sums_over_two_gloo_ranks(tmp_path):
    torch.multiprocessing.start_processes(_ddp_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2,
                                         start_method="fork")  # fork: no re-import in the children
    for rank in (0, 1):
        np.testing.assert_array_equal(np.load(tmp_path / f"cm{rank}.npy"), HAND_CM)


def test_all_reduce_without_process_group_is_noop():
    cm = ConfusionMatrix(4)
    cm.update(PRED, TARGET)
    cm.all_reduce()
    np.testing.assert_array_equal(cm.compute(), HAND_CM)
    assert not math.isnan(scores_from_confusion(cm.compute())["mean"]["iou"])
