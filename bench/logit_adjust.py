"""Post-hoc logit adjustment for the rare classes, re-evaluated on a finished run's fold (no retraining).

Logit adjustment (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021) subtracts
``tau * log(prior)`` from every pixel's logits, the prior being each class's pixel share in the
fold's pixel-annotated training images (a run's pseudo-masks not counted): a class the training
set rarely shows needs less evidence to win the argmax. ``tau = 0`` is the run's own prediction.

For each run, the fold's ``best.pt`` (with the run's own flip TTA) predicts two parts through
train-eval's own evaluation (:func:`clothcurate.training.loop.predict_fold`, the scoring of
:mod:`clothcurate.training.metrics`): the fold's validation images (the split train-eval made
with the run's seed) and its test images. One line per ``tau`` and part: P / R / F1 / mIoU of
the opened and raw predictions and the opened IoU of the rare classes, in percent, as
``bench/accuracy.py`` prints them. Then the ``tau`` with the best validation mIoU, and the test
line at that ``tau``: the choice never looks at the test images.

Usage::

    OMP_NUM_THREADS=1 python bench/logit_adjust.py --run out/acc160/default-s0 --taus 0,0.25,0.5,0.75,1
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fold_eval import FoldEvaluation, print_runs, run_parser  # noqa: E402  (bench/)
from fold_scores import entry_scores, fold_entry, rare_header, score_cells  # noqa: E402  (bench/)


def adjusted(net, offset):
    """``net`` with ``offset`` (K,) added to its (N, K, H, W) logits at every pixel."""
    import torch

    class Adjusted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net
            self.register_buffer("offset", offset.view(1, -1, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x) + self.offset

    return Adjusted()


def evaluate_run(run_dir: Path, *, fold: int, taus: list[float], batch_size: int,
                 workers: int = 0) -> list[str]:
    """The table lines of one run: its recorded entry, per tau the validation and test lines, the chosen tau."""
    import numpy as np
    import torch

    recorded = fold_entry(run_dir, fold)
    if recorded is None:
        return [f"{run_dir}: fold {fold} is not finished (not in metrics.json); skipped"]
    ev = FoldEvaluation.open(run_dir, fold=fold)
    classes = ev.classes
    parts = ev.parts(fold)
    fit_pos, val_pos, test_pos = parts["fit"], parts["val"], parts["test"]
    counts = np.bincount(ev.cache.masks[fit_pos].numpy().ravel(), minlength=len(classes))[:len(classes)]
    log_prior = torch.log(torch.as_tensor((counts + 1) / (counts + 1).sum(), dtype=torch.float32))  # (K,)
    romper = 100 * counts[classes.index("romper")] / counts.sum()
    lines = [f"{run_dir.name} (fold {fold}, {len(val_pos)} validation / {len(test_pos)} test images, "
             f"{ev.size[0]}x{ev.size[1]}; romper {romper:.3f} % of the training pixels)",
             f"  {'recorded':<14} | {score_cells(entry_scores(recorded, classes))}"]
    val_miou: dict[float, float] = {}
    test_line: dict[float, str] = {}
    try:
        for tau in taus:
            net = ev.with_run_tta(adjusted(ev.model, -tau * log_prior))
            for part, positions in (("val", val_pos), ("test", test_pos)):
                entry, _ = ev.score(net, positions, batch_size=batch_size, workers=workers)
                line = f"  tau {tau:<4g} {part:<4} | {score_cells(entry_scores(entry, classes))}"
                lines.append(line)
                if part == "val":
                    val_miou[tau] = entry["opened"]["mean"]["iou"]
                else:
                    test_line[tau] = line
    finally:
        ev.close()
    best = max(val_miou, key=lambda t: (val_miou[t], -t))  # ties: the weaker adjustment
    lines += [f"  chosen on validation mIoU: tau {best:g}", test_line[best]]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = run_parser(__doc__)
    parser.add_argument("--taus", default="0,0.25,0.5,0.75,1", help="the adjustment strengths, ',' between them")
    args = parser.parse_args(argv)
    taus = [float(t) for t in args.taus.split(",") if t.strip()]

    import torch

    print(f"logit adjustment: fold {args.fold}, CPU, {torch.get_num_threads()} thread(s) (percent; opened | raw | "
          "opened IoU of rare classes)")
    print(f"  {'tau / part':<14} | {'P':>5} {'R':>5} {'F1':>5} {'mIoU':>5} | {'P':>5} {'R':>5} {'F1':>5} {'mIoU':>5} | "
          + rare_header())
    print_runs(args.run, lambda run_dir: evaluate_run(run_dir, fold=args.fold, taus=taus,
                                                      batch_size=args.batch_size, workers=args.workers))


if __name__ == "__main__":
    main()
