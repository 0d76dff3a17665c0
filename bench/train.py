"""Training throughput per architecture: the real input pipeline versus synthetic on-device tensors.

For each architecture, the same model and training step (:class:`clothcurate.training.loop.TrainStep`:
AMP, channels-last, GradScaler on CUDA) is timed twice, side by side:

* end to end: export-folder images decoded into the shared cache, augmented by the paper's
  online augmentation in loader workers, carried as uint8, pinned, copied non-blocking and
  normalised on the device;
* synthetic: one random uint8 batch already on the device, fed again and again (normalised on
  the device too, so the two differ only by the input pipeline).

It also times the input pipeline alone (the loader's batches, pinned and copied to the device,
no model): that is the ceiling of end to end.

The ratio end-to-end / synthetic says whether the input pipeline keeps the accelerator busy
(target on a GPU: >= 90 %). On a machine without CUDA it runs small and says
"not measured on GPU".

Usage::

    python bench/train.py --data folds/                    # an export folder (export-folds --crop person)
    python bench/train.py --ccp ../shared/datasets/ccp     # builds a temporary export from CCP
    python bench/train.py --archs fpn,unet --image-size 320 --batch-size 16 --steps 50 --workers 16
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _build_export(ccp: Path, *, size: int | tuple[int, int], limit: int | None, tmp: Path,
                  more_sizes: tuple[int | tuple[int, int], ...] = ()) -> Path:
    """Ingest CCP into a throw-away FiftyOne database and export person crops of ``size`` (S or
    (H, W)) to ``tmp/export``; each of ``more_sizes`` to ``tmp/export-HxW`` with the same folds."""
    from clothcurate.curation.mongod import use_private_database

    atexit.register(use_private_database(tmp / "mongo").close)  # a private mongod, before fiftyone is imported
    os.environ["CLOTHCURATE_HOME"] = str(tmp / "home")
    from clothcurate.workspace import quiet_fiftyone

    quiet_fiftyone()
    from clothcurate.curation.export import export_folds
    from clothcurate.curation.ingest import ingest

    t = time.perf_counter()
    ingest(ccp=ccp, dataset="bench", progress=True)
    name = "bench"
    if limit:
        import fiftyone as fo

        fo.load_dataset("bench").take(limit, seed=0).clone("bench-slice")
        name = "bench-slice"
    out = tmp / "export"
    export_folds(dataset=name, out=out, folds=5, seed=0, crop="person", size=size, progress=True)
    for other in more_sizes:
        from clothcurate.geometry import format_size

        export_folds(dataset=name, out=tmp / f"export-{format_size(other)}", folds=5, seed=0, crop="person",
                     size=other, progress=True)
    print(f"built export {out} from {ccp} in {time.perf_counter() - t:.0f} s")
    return out


def _time(step, batches, *, steps: int, warmup: int, device) -> float:
    """Seconds for ``steps`` training steps after ``warmup`` untimed ones (device synchronised)."""
    import torch

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step(*next(batches))
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        step(*next(batches))
    sync()
    return time.perf_counter() - t


class _FloatItems:
    """The loader items as they were before uint8 transport: (3, S, S) float32 normalised in the
    worker, (S, S) int64 mask (for the side-by-side input-pipeline figure only)."""

    def __init__(self, dataset, mean_std):
        import torch

        self.dataset, self.torch = dataset, torch
        self.transform = dataset.transform
        mean, std = mean_std
        self.mean = torch.tensor(mean).view(3, 1, 1) * 255
        self.std = torch.tensor(std).view(3, 1, 1) * 255

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        image, mask, pos = self.dataset[i]
        return (image.float() - self.mean) / self.std, mask.long(), pos


def _loader_batches(loader):
    """Endless (images, masks) from a loader, epoch after epoch."""
    while True:
        for images, masks, _ in loader:
            yield images, masks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="export folder (default: build one from --ccp)")
    parser.add_argument("--ccp", type=Path, default=REPO.parent / "shared" / "datasets" / "ccp")
    parser.add_argument("--archs", default="fpn,unet,linknet,pspnet")
    parser.add_argument("--encoder", default="tf_efficientnet_lite0")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--image-size", type=int, help="default 320 on CUDA, 64 on the CPU")
    parser.add_argument("--batch-size", type=int, help="default 16 on CUDA, 4 on the CPU")
    parser.add_argument("--steps", type=int, help="timed steps (default 50 on CUDA, 4 on the CPU)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 10 on CUDA, 1 on the CPU)")
    parser.add_argument("--workers", type=int, help="loader workers (default: CPU count on CUDA, 1 on the CPU)")
    parser.add_argument("--limit", type=int, help="samples in a built export (default all on CUDA, 48 on the CPU)")
    args = parser.parse_args(argv)

    import torch

    from clothcurate.training.augment import build_transform
    from clothcurate.training.data import (
        SegmentationDataset,
        decode_samples,
        read_export,
    )
    from clothcurate.training.distributed import DistContext, resolve_device
    from clothcurate.training.loop import (
        TrainStep,
        build_loss,
        make_loader,
        make_scaler,
        to_device,
    )
    from clothcurate.training.models import (
        InputNormalizer,
        build_model,
        encoder_normalization,
    )

    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    size = args.image_size or (320 if gpu else 64)
    batch = args.batch_size or (16 if gpu else 4)
    steps = args.steps or (50 if gpu else 4)
    warmup = args.warmup if args.warmup is not None else (10 if gpu else 1)
    workers = args.workers if args.workers is not None else (min(16, os.cpu_count() or 1) if gpu else 1)
    limit = args.limit if args.limit is not None else (None if gpu else 48)
    if gpu:
        torch.backends.cudnn.benchmark = True

    with tempfile.TemporaryDirectory(prefix="clothcurate-bench-") as tmp:
        data = args.data or _build_export(args.ccp, size=size, limit=limit, tmp=Path(tmp))
        export = read_export(data)
        t = time.perf_counter()
        cache = decode_samples(export.samples, size=size, num_classes=len(export.classes), progress=True)
        decode_s = time.perf_counter() - t

        where = (f"device: cuda ({torch.cuda.get_device_name(device)})" if gpu
                 else "device: cpu (not measured on GPU)")
        print(where)
        print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {len(export.samples)} samples decoded in "
              f"{decode_s:.1f} s, image {size}x{size}, batch {batch}, {workers} loader workers, "
              f"{steps} timed steps after {warmup}, AMP {'on' if gpu else 'off'}")
        ctx = DistContext(rank=0, world_size=1, local_rank=0, local_world_size=1, device=device)
        normalizer = InputNormalizer(*encoder_normalization(args.encoder), device=device)
        dataset = SegmentationDataset(cache, range(len(export.samples)), transform=build_transform(size=size, train=True))
        loader = make_loader(dataset, batch_size=batch, train=True, workers=workers, ctx=ctx)
        real = _loader_batches(loader)
        t_in = _time(lambda images, masks: to_device(images, masks, normalizer), real, steps=steps, warmup=warmup,
                     device=device)
        # the same pipeline as it was before: normalised float32 images and int64 masks from the workers
        old = _FloatItems(dataset, encoder_normalization(args.encoder))
        old_loader = make_loader(old, batch_size=batch, train=True, workers=workers, ctx=ctx)
        t_old = _time(lambda images, masks: (images.to(device, non_blocking=True), masks.to(device, non_blocking=True)),
                      _loader_batches(old_loader), steps=steps, warmup=warmup, device=device)
        del old_loader
        print(f"input pipeline alone (loader -> device, no model): uint8 {steps * batch / t_in:.1f} img/s; "
              f"float32 normalised in the workers {steps * batch / t_old:.1f} img/s "
              f"(uint8 / float32 = {t_old / t_in:.2f}x)")
        print(f"{'arch':<8} {'end-to-end img/s':>17} {'synthetic img/s':>16} {'ratio':>6}")
        for arch in args.archs.split(","):
            torch.manual_seed(0)
            model = build_model(arch, encoder=args.encoder, num_classes=len(export.classes))
            model.to(device, memory_format=torch.channels_last if gpu else torch.contiguous_format).train()
            step = TrainStep(model, criterion=build_loss("ce"), optimizer=torch.optim.Adam(model.parameters(), 1e-3),
                             scaler=make_scaler(device), normalizer=normalizer)
            x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device)
            y = torch.randint(0, len(export.classes), (batch, size, size), dtype=torch.uint8, device=device)

            def synthetic():
                while True:
                    yield x, y

            t_syn = _time(step, synthetic(), steps=steps, warmup=warmup, device=device)
            t_e2e = _time(step, real, steps=steps, warmup=warmup, device=device)
            e2e, syn = steps * batch / t_e2e, steps * batch / t_syn
            print(f"{arch:<8} {e2e:>17.1f} {syn:>16.1f} {100 * e2e / syn:>5.0f}%", flush=True)
        del loader, real


if __name__ == "__main__":
    sys.exit(main())
