"""Flip test-time augmentation at extra scales, re-evaluated on a finished run's test fold (no retraining).

For each run and each scale set, the fold's ``best.pt`` predicts the fold's test images of the
run's export through train-eval's own evaluation (:func:`clothcurate.training.loop.predict_fold`
with :class:`clothcurate.training.models.FlipTTA` at those scales, the scoring of
:mod:`clothcurate.training.metrics`); one line per scale set: P / R / F1 / mIoU of the opened and
raw predictions, the opened IoU of the rare classes (romper, scarf/tie, socks, hat, glasses), in
percent, as ``bench/accuracy.py`` prints them, the view sizes each scale gives (multiples of 32),
and seconds per image (the whole evaluation pass: loading, forward passes, opening, scoring).
The first line, ``recorded``, is the run's own metrics.json entry (a check: the scale set the run
was evaluated with must reproduce it). Prediction files go to a temporary folder; the run folder
is only read.

Usage::

    OMP_NUM_THREADS=1 python bench/tta.py --run out/acc64/cosine+lovasz+tta+rfs-s0 --fold 0 \\
        --scales "1;1,1.25;1,0.75;1,0.75,1.25"
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fold_eval import FoldEvaluation, print_runs, run_parser  # noqa: E402  (bench/)
from fold_scores import entry_scores, fold_entry, rare_header, score_cells  # noqa: E402  (bench/)


def evaluate_run(run_dir: Path, *, fold: int, scale_sets: list[tuple[float, ...]], batch_size: int,
                 workers: int = 0) -> list[str]:
    """The table lines of one run: its recorded entry, then one line per scale set."""
    from clothcurate.training.models import FlipTTA, tta_view_size

    recorded = fold_entry(run_dir, fold)
    if recorded is None:
        return [f"{run_dir}: fold {fold} is not finished (not in metrics.json); skipped"]
    ev = FoldEvaluation.open(run_dir, fold=fold)
    (height, width), run = ev.size, ev.run
    _, test_pos = ev.export.fold_parts(fold)
    evaluated = f"flip at {','.join(f'{v:g}' for v in run.tta_scales)}" if run.tta else "no TTA"
    lines = [f"{run_dir.name} (fold {fold}, {len(test_pos)} test images, {height}x{width}, evaluated with "
             f"{evaluated})",
             f"  {'recorded':<16} | {score_cells(entry_scores(recorded, ev.classes))} | {'':<16} |"]
    try:
        for scales in scale_sets:
            sizes = ",".join(f"{h}x{w}" if h != w else str(h)
                             for h, w in (tta_view_size(height, width, s) for s in scales))
            entry, seconds = ev.score(FlipTTA(ev.model, scales=scales), test_pos, batch_size=batch_size,
                                      workers=workers)
            name = "flip@" + ",".join(f"{v:g}" for v in scales)
            lines.append(f"  {name:<16} | {score_cells(entry_scores(entry, ev.classes))} | {sizes:<16} | {seconds:.4f}")
    finally:
        ev.close()
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = run_parser(__doc__)
    parser.add_argument("--scales", default="1;1,1.25;1,0.75;1,0.75,1.25",
                        help="scale sets, ';' between sets, ',' between the scales of a set")
    args = parser.parse_args(argv)

    import torch

    from clothcurate.errors import BadInputError
    from clothcurate.training.config import parse_tta_scales

    try:
        scale_sets = [parse_tta_scales(part) for part in args.scales.split(";") if part.strip()]
    except BadInputError as e:
        parser.error(str(e))
    print(f"tta: fold {args.fold}, CPU, {torch.get_num_threads()} thread(s) (percent; opened | raw | opened IoU "
          "of rare classes | view sizes | s/image)")
    head = (f"  {'scales':<16} | {'P':>5} {'R':>5} {'F1':>5} {'mIoU':>5} | {'P':>5} {'R':>5} {'F1':>5} {'mIoU':>5} | "
            + rare_header() + f" | {'sizes':<16} | s/img")
    print(head)
    print_runs(args.run, lambda run_dir: evaluate_run(run_dir, fold=args.fold, scale_sets=scale_sets,
                                                      batch_size=args.batch_size, workers=args.workers))


if __name__ == "__main__":
    main()
