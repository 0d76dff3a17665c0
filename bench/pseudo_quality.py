"""How good are a teacher's pseudo-masks? Measured where the truth is known.

The tag-only photos have no mask, so the rule of ``clothcurate pseudo-label`` is applied to the
*test* images of fold k of the teacher's export (which fold k's model never saw), with the classes
of their true masks as the tags (perfect image-level tags, as CCP's are meant to be). For each
threshold and tag rule (``none``: the argmax of all classes; ``drop`` and ``restrict``: the rules of
:data:`clothcurate.folders.pseudo.TAG_RULES`) it prints the share of pixels kept, the pixel accuracy
and mIoU of the kept pixels against the true masks, and the IoU of the rare classes.

Usage::

    python bench/pseudo_quality.py --run out/acc64/cosine+lovasz+tta-s1 --fold 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fold_scores import RARE  # noqa: E402  (bench/, the script's folder)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="teacher run folder (folds/<k>/best.pt)")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--thresholds", default="0,0.5,0.7,0.8,0.9")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from clothcurate.folders.pseudo import ALWAYS_ALLOWED, IGNORE_INDEX, TAG_RULES
    from clothcurate.folders.run import RunFolder
    from clothcurate.inference.segmenter import Segmenter
    from clothcurate.training.data import decode_samples
    from clothcurate.training.metrics import ConfusionMatrix, scores_from_confusion
    from clothcurate.training.pseudo_label import filter_pseudo

    run = RunFolder.open(args.run)
    export = run.export(complete=True)
    seg = Segmenter.from_run(run.root, fold=args.fold, device="cpu")
    size = seg.input_size[0]
    _, test = export.fold_parts(args.fold)
    cache = decode_samples([export.samples[i] for i in test], size=size, num_classes=len(export.classes))
    classes = export.classes
    always = [classes.index(c) for c in ALWAYS_ALLOWED]
    thresholds = [float(t) for t in args.thresholds.split(",")]
    k = len(classes)
    rules = ("none", *TAG_RULES)
    stats = {(t, rule): [ConfusionMatrix(k), 0, 0] for t in thresholds for rule in rules}
    for start in range(0, len(cache), args.batch_size):
        images = cache.images[start:start + args.batch_size].permute(0, 3, 1, 2).contiguous()
        truth = cache.masks[start:start + args.batch_size].long()                       # (N, S, S)
        probs = seg.probabilities(images)                                                # (N, K, S, S)
        present = torch.zeros(len(truth), k, dtype=torch.bool)
        for n, m in enumerate(truth):
            present[n, m.unique()] = True
        present[:, always] = True
        for (t, rule), acc in stats.items():
            if rule == "none":
                pseudo = filter_pseudo(probs, torch.ones_like(present), threshold=t, rule="drop").long()
            else:
                pseudo = filter_pseudo(probs, present, threshold=t, rule=rule).long()
            kept = pseudo != IGNORE_INDEX
            acc[0].update(pseudo[kept].view(1, 1, -1), truth[kept].view(1, 1, -1))
            acc[1] += int(kept.sum())
            acc[2] += int(kept.numel())
    print(f"pseudo-mask quality: run {run.root}, fold {args.fold}, {len(cache)} test images at {size} px "
          "(tags = the classes of the true mask; percent; IoU of the kept pixels)")
    print(f"{'threshold':>9} {'tag rule':>8} | {'kept':>5} {'acc':>5} {'mIoU':>5} | "
          + " ".join(f"{c[:9]:>9}" for c in RARE))
    for (t, rule), (cm, kept, total) in stats.items():
        m = cm.compute()
        acc = float(np.trace(m) / max(m.sum(), 1))
        scores = scores_from_confusion(m)
        per_class = dict(zip(classes, scores["per_class"]["iou"]))
        rare = " ".join(f"{100 * (per_class[c] or 0):9.1f}" for c in RARE)
        print(f"{t:>9.2f} {rule:>8} | {100 * kept / total:5.1f} {100 * acc:5.1f} "
              f"{100 * (scores['mean']['iou'] or 0):5.1f} | {rare}")


if __name__ == "__main__":
    main()
