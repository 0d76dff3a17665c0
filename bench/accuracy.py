"""Accuracy of training variants side by side: one fold of an export, a reduced size, a fixed budget.

Each variant is a set of :class:`clothcurate.training.config.TrainConfig` changes against the
``paper`` recipe (the default until this benchmark picked ``cosine+lovasz+tta``, then its peak
learning rate 3e-3, then repeat-factor sampling: the ``default`` variant is today's recipe;
``default+X`` changes one option of it; see ``_variants``). Every variant x seed is one
``train-eval`` run of the same test fold, same size, same epochs; the table prints one line per
variant (mean over seeds): P / R / F1 / mIoU of the opened and raw predictions, and the IoU of
the rare classes that fail today (romper, scarf/tie, socks, hat, glasses), in percent, plus the
training minutes.

Usage::

    python bench/accuracy.py --data folds/ --variants default,cosine,ce+lovasz --epochs 30 --size 160
    python bench/accuracy.py --ccp ../shared/datasets/ccp --limit 60 --variants default,tta \\
        --epochs 1 --size 64                      # builds a throw-away export first (tiny check)

Run folders go under ``--out`` (default: a temporary folder); a re-run with the same ``--out``
resumes or skips finished runs (train-eval's own resume).

Variants ending in ``+pseudo`` train with the pseudo-masks of the tag-only photos (``train-eval
--pseudo``) of the teacher run given by ``--pseudo-run`` (a run of the same export and fold, on
which ``clothcurate pseudo-label --run TEACHER --dataset D`` has been run)::

    python bench/accuracy.py --data folds/ --variants cosine+lovasz+tta,cosine+lovasz+tta+pseudo \
        --pseudo-run out/acc64/cosine+lovasz+tta-s1 --seeds 1 --epochs 10 --size 64
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fold_scores import fold_scores, rare_header, score_cells  # noqa: E402  (bench/, the script's folder)

PSEUDO = "<--pseudo-run>"  # replaced by the teacher run folder given on the command line


def _variants(epochs: int) -> dict[str, dict[str, Any]]:
    """Variant name -> TrainConfig changes to the ``paper`` preset (``recipe`` picks another)."""
    from clothcurate.training.config import default_warmup

    warm = default_warmup(epochs)
    last = max(1, round(0.3 * epochs))  # average_last: the last 30 % of the epochs (the low-LR tail of cosine)
    return {
        "default": {"recipe": "default"},
        "paper": {},
        "cosine": {"schedule": "cosine", "warmup_epochs": warm},
        "val_miou": {"monitor": "val_miou"},
        "ce+dice": {"loss": "ce+dice"},
        "ce+lovasz": {"loss": "ce+lovasz"},
        "wce": {"loss": "wce"},
        "tta": {"tta": True},
        "scale-aug": {"augment": "scale"},
        "lite2": {"encoder": "tf_efficientnet_lite2"},
        "cosine+lovasz+tta": {"schedule": "cosine", "warmup_epochs": warm, "loss": "ce+lovasz", "tta": True},
        "cosine+lovasz+tta+pseudo": {"schedule": "cosine", "warmup_epochs": warm, "loss": "ce+lovasz", "tta": True,
                                     "pseudo": PSEUDO},
        "default+pseudo": {"recipe": "default", "pseudo": PSEUDO},
        "rfs": {"sampling": "repeat-factor"},
        "avg": {"schedule": "cosine", "warmup_epochs": warm, "average_last": last},
        "rotate": {"augment": "rotate"},
        "cosine+lovasz+tta+rfs": {"schedule": "cosine", "warmup_epochs": warm, "loss": "ce+lovasz", "tta": True,
                                  "sampling": "repeat-factor"},
        "cosine+lovasz+tta+rfs+avg": {"schedule": "cosine", "warmup_epochs": warm, "loss": "ce+lovasz",
                                      "tta": True, "sampling": "repeat-factor", "average_last": last},
        "default+avg": {"recipe": "default", "average_last": last},
        "default+rotate": {"recipe": "default", "augment": "rotate"},
        "default+scale-aug": {"recipe": "default", "augment": "scale"},
        "default+lite2": {"recipe": "default", "encoder": "tf_efficientnet_lite2"},
        "default+ce": {"recipe": "default", "loss": "ce"},
        "default+dice": {"recipe": "default", "loss": "ce+dice"},
        "default+wce": {"recipe": "default", "loss": "wce"},
        "default+wce+lovasz": {"recipe": "default", "loss": "wce+lovasz"},
        "default+val_miou": {"recipe": "default", "monitor": "val_miou"},
        "default+bs4": {"recipe": "default", "batch_size": 4},
        "default+lr2e-3": {"recipe": "default", "lr": 2e-3},
        "default+lr5e-4": {"recipe": "default", "lr": 5e-4},
        "default+lr1e-3": {"recipe": "default", "lr": 1e-3},  # the default recipe before its lr became 3e-3
        "default+lr3e-3": {"recipe": "default", "lr": 3e-3},  # = default since then
        "default+lr4e-3": {"recipe": "default", "lr": 4e-3},
        "default+rfs": {"recipe": "default", "sampling": "repeat-factor"},  # = default since then
        "default+uniform": {"recipe": "default", "sampling": "uniform"},  # the default before it took repeat-factor
        "default+rfs+pseudo": {"recipe": "default", "sampling": "repeat-factor", "pseudo": PSEUDO},
        "default+paste": {"recipe": "default", "paste": 0.5},
        "unet": {"arch": "unet"},
        "linknet": {"arch": "linknet"},
        "pspnet": {"arch": "pspnet"},
    }


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="export folder (default: build one from --ccp)")
    parser.add_argument("--ccp", type=Path, help="CCP folder to build a temporary export from")
    parser.add_argument("--limit", type=int, default=None, help="with --ccp: export only this many samples")
    parser.add_argument("--variants", default="default,cosine", help="comma list of: " + ", ".join(_variants(2)))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--size", default="160",
                        help="model input S or HxW (each a multiple of 32; HxW: portrait crops, the export's too)")
    parser.add_argument("--seeds", default="0", help="comma list of seeds (two where a difference is < 1.5 points)")
    parser.add_argument("--fold", type=int, default=0, help="the test fold")
    parser.add_argument("--arch", default="fpn", help="architecture of the variants that do not set one")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=None, help="folder of the run folders (default: temporary)")
    parser.add_argument("--pseudo-run", type=Path, default=None,
                        help="teacher run folder with pseudo-masks (pseudo-label), for the +pseudo variants")
    args = parser.parse_args(argv)

    from clothcurate.geometry import format_size, parse_size

    try:
        height, width = parse_size(args.size)
    except ValueError as e:
        parser.error(str(e))
    table = _variants(args.epochs)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in table]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(table)}")
    if any(table[v].get("pseudo") == PSEUDO for v in names) and args.pseudo_run is None:
        parser.error("the +pseudo variants need --pseudo-run TEACHER_RUN (run clothcurate pseudo-label on it first)")
    for v in names:
        if table[v].get("pseudo") == PSEUDO:
            table[v]["pseudo"] = str(args.pseudo_run.resolve())
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="clothcurate-accuracy-"))
    data = args.data
    if data is None:
        if args.ccp is None:
            parser.error("pass --data EXPORT or --ccp CCP_DIR")
        import importlib.util

        spec = importlib.util.spec_from_file_location("bench_train", REPO / "bench" / "train.py")
        bench_train = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench_train)
        data = bench_train._build_export(args.ccp, size=(height, width), limit=args.limit, tmp=tmp)
    out = args.out or tmp / "runs"

    from clothcurate.training.config import TrainConfig
    from clothcurate.training.run import train_eval

    rows = []
    for name in names:
        changes = dict(table[name])
        recipe = changes.pop("recipe", "paper")
        per_seed, minutes = [], 0.0
        for seed in seeds:
            options = {"arch": args.arch, "data_dir": str(data), "fold_spec": str(args.fold),
                       "image_size": height, "image_width": width, "epochs": args.epochs, "batch_size": args.batch_size,
                       "workers": args.workers, "device": args.device, "dataset": None, "seed": seed, **changes}
            config = TrainConfig.from_recipe(recipe, **options)
            run_dir = out / f"{name.replace('/', '_')}-s{seed}"
            t = time.perf_counter()
            train_eval(config, run_dir=run_dir)
            minutes += (time.perf_counter() - t) / 60
            per_seed.append(fold_scores(run_dir, args.fold))
        rows.append((name, {k: _mean([s[k] for s in per_seed]) for k in per_seed[0]}, minutes / len(seeds)))

    head = (f"{'variant':<18} | {'P':>5} {'R':>5} {'F1':>5} {'mIoU':>5} | {'P':>5} {'R':>5} {'F1':>5} {'mIoU':>5} | "
            + rare_header() + " |   min")
    print(f"accuracy: export {data}, fold {args.fold}, {format_size((height, width))} px, {args.epochs} epochs, seeds {seeds}, "
          f"device {args.device}, {os.cpu_count()} CPUs (percent; opened | raw | opened IoU of rare classes)")
    print(head)
    print("-" * len(head))
    for name, s, minutes in rows:
        print(f"{name:<18} | {score_cells(s)} | {minutes:5.1f}")
    print(f"run folders: {out}")


if __name__ == "__main__":
    main()
