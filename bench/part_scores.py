"""A finished run's fold scored on the images it trained on, validated on and was tested on.

Memorisation against generalisation, class by class: a class the model scores well on its own
training images but not on unseen ones is short of examples, not of capacity or steps. For each
run, the fold's ``best.pt`` (with the run's own flip TTA) predicts the three parts train-eval made
of the fold (``fit``: the training images, ``val``: the validation split of the run's seed,
``test``: the fold's test images) through train-eval's own evaluation; one line per part: the
number of images (and of images holding romper), P / R / F1 / mIoU of the opened and raw
predictions and the opened IoU of the rare classes, in percent, as ``bench/accuracy.py`` prints
them. The ``test`` line must equal the run's metrics.json entry.

Usage::

    OMP_NUM_THREADS=2 python bench/part_scores.py --run out/acc160/default+rfs-s0
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fold_eval import FoldEvaluation, print_runs, run_parser  # noqa: E402  (bench/)
from fold_scores import entry_scores, rare_header, score_cells  # noqa: E402  (bench/)


def evaluate_run(run_dir: Path, *, fold: int, batch_size: int, workers: int = 0) -> list[str]:
    """The table lines of one run: a title, then one line per part."""
    ev = FoldEvaluation.open(run_dir, fold=fold)
    romper = ev.classes.index("romper")
    lines = [f"{run_dir.name} (fold {fold}, {ev.size[0]}x{ev.size[1]})"]
    try:
        for name, positions in ev.parts(fold).items():
            holding = int(ev.export.presence(positions)[:, romper].sum())
            entry, _ = ev.score(ev.with_run_tta(ev.model), positions, batch_size=batch_size, workers=workers)
            lines.append(f"  {name:<4} {len(positions):4d} ({holding:2d}) | "
                         f"{score_cells(entry_scores(entry, ev.classes))}")
    finally:
        ev.close()
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = run_parser(__doc__)
    args = parser.parse_args(argv)

    import torch

    print(f"part scores: fold {args.fold}, CPU, {torch.get_num_threads()} thread(s) (percent; opened | raw | "
          "opened IoU of rare classes)")
    print(f"  {'part images (romper)':<17} | {'P':>5} {'R':>5} {'F1':>5} {'mIoU':>5} | "
          f"{'P':>5} {'R':>5} {'F1':>5} {'mIoU':>5} | " + rare_header())
    print_runs(args.run, lambda run_dir: evaluate_run(run_dir, fold=args.fold, batch_size=args.batch_size,
                                                      workers=args.workers))


if __name__ == "__main__":
    main()
