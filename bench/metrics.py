"""Time the evaluation metrics on 1,004 masks of 320 x 320 (the size of CCP) and the opening step.

Run: ``.venv/bin/python bench/metrics.py [--device cpu|cuda]``. Prints seconds; no asserts.
No GPU was available when this was written: GPU figures are "not measured on GPU".
Labels are synthetic (uniform ground truth, prediction right 85% of the time): the cost of a
bincount does not depend on the content.
"""

from __future__ import annotations

import argparse
import time

import torch

from clothcurate.training.metrics import ConfusionMatrix, per_sample_scores
from clothcurate.training.postprocess import open_predictions

N, K, SIZE, BATCH = 1004, 15, 320, 16


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    device = parser.parse_args().device
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, K, (N, SIZE, SIZE), generator=g, dtype=torch.uint8)
    noise = torch.randint(0, K, (N, SIZE, SIZE), generator=g, dtype=torch.uint8)
    pred = torch.where(torch.rand(N, SIZE, SIZE, generator=g) < 0.85, target, noise)
    target, pred = target.to(device), pred.to(device)
    print(f"device {device}, threads {torch.get_num_threads()}, {N} masks of {SIZE}x{SIZE}, K={K}")

    cm = ConfusionMatrix(K, device=device)
    _sync(device)
    t = time.perf_counter()
    for i in range(0, N, BATCH):
        cm.update(pred[i:i + BATCH], target[i:i + BATCH])
    cm.compute()
    _sync(device)
    print(f"ConfusionMatrix.update, batches of {BATCH}: {time.perf_counter() - t:.2f} s")

    t = time.perf_counter()
    per_sample_scores(pred, target, num_classes=K)
    _sync(device)
    print(f"per_sample_scores, all {N} at once: {time.perf_counter() - t:.2f} s")

    logits = torch.randn(BATCH, K, SIZE, SIZE, generator=g).to(device)
    probs = (logits + 4 * torch.nn.functional.one_hot(target[:BATCH].long(), K).permute(0, 3, 1, 2)).softmax(1)
    for mode in ("label", "paper"):
        open_predictions(probs, mode=mode)
        _sync(device)
        t = time.perf_counter()
        open_predictions(probs, mode=mode)
        _sync(device)
        dt = time.perf_counter() - t
        print(f"open_predictions mode={mode}, batch of {BATCH}: {dt:.3f} s ({dt / BATCH * N:.1f} s per {N} images)")


if __name__ == "__main__":
    main()
