"""Benchmark of ``predict --backend onnx``: PyTorch eager vs ONNX Runtime on the CPU, side by side
in one run, same model, same real CCP photos, same threads.

Two measurements:

* **end to end** (``predict_photos`` with the default person detector, crops, paste back,
  colours, files written): photos/s per backend, and the agreement of the two backends' masks
  (share of photo pixels with the same label);
* **segmentation forward pass** alone (the person crops of the same photos, one batch, probabilities
  out): photos/s per backend, label agreement and largest probability difference; at the run's
  input size, and also at ``--also-size`` (default 320, the project's training size) with the same
  architecture and random weights, since a tiny 64 px model says little about a real one's speed.

The model: ``--run RUN_DIR``, else a tiny real run trained here first (tests/tiny_run.py: FPN,
Lite0 encoder, 64 px, 2 folds on 14 CCP crops, ``--epochs`` per fold). Each timing is the best
of ``--repeats`` after one warm-up (end to end: the two backends interleaved, loading the run
included, and for ONNX its in-memory export).

Run: ``OMP_NUM_THREADS=2 .venv/bin/python bench/export_model.py [--photos 20] [--threads 2]``.
It prints the machine and one table, and writes only into a temporary folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # tiny_run: the tests' tiny real run

from clothcurate.geometry import aspect_of, crop_box, crop_image, format_size  # noqa: E402
from clothcurate.inference.onnx_backend import OnnxRuntimeBackend  # noqa: E402
from clothcurate.inference.predict import predict_photos  # noqa: E402
from clothcurate.inference.segmenter import Segmenter  # noqa: E402
from clothcurate.training.models import InputNormalizer  # noqa: E402
from tiny_run import IDS, ccp_samples, make_export, person_box, train_tiny  # noqa: E402

CCP = Path(os.environ.get("CLOTHCURATE_TEST_CCP", REPO.parent / "shared" / "datasets" / "ccp"))


def best_of(fn, repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def crops(samples, size: int | tuple[int, int]) -> torch.Tensor:
    """(N, 3, h, w) uint8 RGB annotation person crops of ``(key, photo, gt)`` samples, grown to the
    input's aspect ratio as the export grows them."""
    out = []
    for _, photo, gt in samples:
        rgb = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
        h, w = gt.shape
        box = crop_box(person_box(gt), width=w, height=h, aspect=aspect_of(size))
        out.append(crop_image(rgb, box=box, size=size))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def forward_row(name: str, seg: Segmenter, images: torch.Tensor, threads: int, repeats: int) -> None:
    ort_backend = OnnxRuntimeBackend.from_segmenter(seg, threads=threads)
    with torch.no_grad():
        ref = seg.probabilities(images)
        got = ort_backend(images)
    t_torch = best_of(lambda: seg.probabilities(images), repeats)
    t_ort = best_of(lambda: ort_backend(images), repeats)
    same = float((ref.argmax(1) == got.argmax(1)).float().mean())
    diff = float((ref - got).abs().max())
    n = len(images)
    print(f"| forward, {name} | {n / t_torch:.1f} | {n / t_ort:.1f} | {t_torch / t_ort:.2f}x | "
          f"{100 * same:.3f} % | {diff:.1e} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ccp", type=Path, default=CCP)
    ap.add_argument("--run", type=Path, default=None, help="a train-eval run (default: train a tiny one here)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per fold of the tiny run")
    ap.add_argument("--photos", type=int, default=20, help="real CCP photos (held out from the tiny run)")
    ap.add_argument("--threads", type=int, default=2, help="PyTorch and ONNX Runtime intra-op threads")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--also-size", type=int, default=320, help="also time the forward pass at this size (0: no)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs), "
          f"threads={args.threads}; torch {torch.__version__}, onnxruntime "
          f"{__import__('onnxruntime').__version__}; GPU: not measured on GPU")
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        tmp = Path(tmp)
        run = args.run
        if run is None:
            t0 = time.perf_counter()
            run = train_tiny(make_export(args.ccp, tmp / "export", IDS), tmp / "run", epochs=args.epochs)
            print(f"tiny run trained in {time.perf_counter() - t0:.0f} s ({args.epochs} epochs x 2 folds)")
        step = max(1, 900 // args.photos)
        held_out = [f"{i:04d}" for i in range(101, 1005, step)][:args.photos]
        samples = ccp_samples(args.ccp, held_out)
        photos = [photo for _, photo, _ in samples]

        seg = Segmenter.from_run(run, fold="all", device="cpu")
        size = seg.input_size
        print(f"model: {seg.spec.arch}/{seg.spec.encoder}, {len(seg.models)} fold(s) ensembled, {format_size(size)} px; "
              f"{len(photos)} CCP photos")
        print("\n| what | PyTorch eager photos/s | ONNX Runtime photos/s | ORT speed-up | pixels agreeing | "
              "max prob diff |\n|---|---|---|---|---|---|")
        seconds: dict[str, list[float]] = {"torch": [], "onnx": []}
        for i in range(args.repeats + 1):  # interleaved, so that the other jobs' load hits both alike
            for b in seconds:
                took = predict_photos(run_dir=run, out_dir=tmp / b, paths=photos, device="cpu", backend=b,
                                      progress=False).seconds
                if i:  # the first round warms up
                    seconds[b].append(took)
        rates = {b: len(photos) / min(s) for b, s in seconds.items()}
        load = {b: best_of(lambda b=b: Segmenter.from_run(run, fold="all", device="cpu", backend=b), args.repeats)
                for b in seconds}
        same = total = 0
        for p in photos:
            a, b = (cv2.imread(str(tmp / k / f"{p.stem}.png"), cv2.IMREAD_UNCHANGED) for k in ("torch", "onnx"))
            same, total = same + int((a == b).sum()), total + a.size
        print(f"| end to end (predict, default detector) | {rates['torch']:.2f} | {rates['onnx']:.2f} | "
              f"{rates['torch'] and rates['onnx'] / rates['torch']:.2f}x | {100 * same / total:.3f} % | - |")
        print(f"| loading the run (s; ONNX: + export in memory) | {load['torch']:.2f} s | {load['onnx']:.2f} s | "
              "- | - | - |")
        forward_row(f"{format_size(size)} px, trained, {len(seg.models)} folds", seg, crops(samples, size), args.threads,
                    args.repeats)
        if args.also_size:
            s = args.also_size
            spec = dataclasses.replace(seg.spec, input_size=(s, s))
            torch.manual_seed(0)
            big = Segmenter([spec.build()], normalizer=InputNormalizer(spec.mean, spec.std, device="cpu"), spec=spec)
            forward_row(f"{s} px, random weights, 1 model", big, crops(samples, s), args.threads, args.repeats)


if __name__ == "__main__":
    main()
