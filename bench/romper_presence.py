"""Can a photo's romper be recognised at image level? A linear probe before building a presence head.

An image-level presence head (EncNet's SE-loss, Zhang et al., CVPR 2018) or a per-photo class
gate helps a rare class only if the photo as a whole says the garment is there. This script
measures that directly: each crop of a run's fold becomes the globally pooled features of an
encoder's two deepest stages, a class-balanced logistic regression (scikit-learn) learns
"holds a romper" from the fold's training crops (``fit``) and, as a second arm, from those plus
CCP's tag-only photos (their Table I-remapped tags; 31 of 994 name romper or bodysuit), and the
probe ranks the validation and test crops. Printed per run, encoder and arm: AUROC and average
precision on ``val`` and ``test``, and the ranks of the test rompers among the test crops (0 =
the most romper-like). Two encoders: the run's own fine-tuned encoder (``run``) and the same
encoder with its ImageNet weights (``imagenet``). A romper-holding share of ~3.5 % is the AP of
chance; AUROC 0.5 is chance.

The tag-only photos are cropped as ``pseudo-label`` crops them
(:func:`clothcurate.training.pseudo_label.subject_crop_box`, the default detector; a photo
without a detected person is left out), at the run's input size. Nothing is written.

Usage::

    OMP_NUM_THREADS=2 python bench/romper_presence.py --run out/acc160/default-s0 --fold 0 \\
        --ccp ../shared/datasets/ccp
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fold_eval import FoldEvaluation, print_runs, run_parser  # noqa: E402  (bench/)

ARMS = (("fit",), ("fit", "tags"))
C_VALUES = (0.01, 0.1, 1.0)


def tag_only_crops(ccp: Path, *, size: tuple[int, int], classes: list[str], target: str):
    """CCP's tag-only photos cropped to their subject: ``((N, H, W, 3) uint8, (N,) bool holds target)``."""
    import numpy as np
    from tqdm.auto import tqdm

    from clothcurate.curation.sources.ccp import CCPSource
    from clothcurate.detection import DEFAULT_DETECTOR, create_detector
    from clothcurate.geometry import crop_image
    from clothcurate.images import read_image
    from clothcurate.labelmaps import load_labelmap
    from clothcurate.training.pseudo_label import subject_crop_box

    source, labelmap = CCPSource(ccp), load_labelmap("ccp")
    refs = [r for r in source.scan()[0] if r.annotation == "image"]
    finder = create_detector(DEFAULT_DETECTOR, device="cpu")
    target_id = classes.index(target)
    crops, holds = [], []
    for ref in tqdm(refs, desc="tag-only photos", unit="photo", leave=False):
        ids = source.read_tags(ref)
        tagged = labelmap.remap(ids.reshape(1, -1), source_id=ref.source_id) if ids.size else np.zeros((1, 0))
        image = read_image(ref.image_path, sample=ref.source_id, hint="restore the CCP photo")
        subject = subject_crop_box(image, finder.detect(image), size=size)
        if subject is None:
            continue
        crops.append(crop_image(image, box=subject[1], size=size))
        holds.append(bool((tagged == target_id).any()))
    return np.stack(crops), np.array(holds)


def pooled_features(encoder, normalizer, images, *, batch_size: int):
    """(N, C) features: the means over H x W of the encoder's two deepest stages; images (N, H, W, 3) uint8
    (a tensor or an array)."""
    import numpy as np
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            x = normalizer(torch.as_tensor(images[i:i + batch_size]).permute(0, 3, 1, 2).contiguous())
            stages = encoder(x)
            out.append(torch.cat([stages[-1].mean((2, 3)), stages[-2].mean((2, 3))], 1).numpy())
    return np.concatenate(out)


def probe_lines(features, holds, part, *, label: str) -> list[str]:
    """One line per arm and C: val / test AUROC and AP of a logistic regression trained on the arm's parts."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, roc_auc_score

    lines = []
    for arm in ARMS:
        train = np.isin(part, arm)
        for c in C_VALUES:
            clf = LogisticRegression(C=c, class_weight="balanced", max_iter=3000).fit(features[train], holds[train])
            cells, scores = [], {}
            for name in ("val", "test"):
                sel = part == name
                scores[name] = clf.decision_function(features[sel])
                cells.append(f"{name} AUROC {roc_auc_score(holds[sel], scores[name]):.2f} "
                             f"AP {average_precision_score(holds[sel], scores[name]):.2f}")
            test = part == "test"
            ranks = (-scores["test"]).argsort().argsort()[holds[test]]  # 0: the most romper-like
            lines.append(f"  {label:<8} {'+'.join(arm):<8} C={c:<5} {' | '.join(cells)} | "
                         f"test rompers ranked {sorted(ranks.tolist())} of {int(test.sum())}")
    return lines


def evaluate_run(run_dir: Path, *, fold: int, ccp: Path, batch_size: int, cache: dict) -> list[str]:
    import numpy as np

    from clothcurate.training.models import create_model

    ev = FoldEvaluation.open(run_dir, fold=fold)
    try:
        target = ev.classes.index("romper")
        parts = ev.parts(fold)
        positions = [p for name in ("fit", "val", "test") for p in parts[name]]
        part = np.array([name for name in ("fit", "val", "test") for _ in parts[name]])
        holds = (ev.cache.masks[positions].flatten(1) == target).any(1).numpy()
        if ev.size not in cache:
            cache[ev.size] = tag_only_crops(ccp, size=ev.size, classes=ev.classes, target="romper")
        tag_images, tag_holds = cache[ev.size]
        part = np.concatenate([part, np.full(len(tag_images), "tags")])
        holds = np.concatenate([holds, tag_holds])
        imagenet = create_model(ev.run.arch, encoder=ev.run.encoder, encoder_weights="imagenet",
                                num_classes=len(ev.classes)).eval()
        lines = [f"{run_dir.name} (fold {fold}, {ev.size[0]}x{ev.size[1]}): romper in "
                 + ", ".join(f"{int(holds[part == n].sum())} of {int((part == n).sum())} {n}"
                             for n in ("fit", "val", "test", "tags"))]
        crops = ev.cache.images[positions]                                    # gathered once for both encoders
        for label, encoder in (("run", ev.model.eval().encoder), ("imagenet", imagenet.encoder)):
            feats = np.concatenate([pooled_features(encoder, ev._normalizer, crops, batch_size=batch_size),
                                    pooled_features(encoder, ev._normalizer, tag_images, batch_size=batch_size)])
            lines += probe_lines(feats, holds, part, label=label)
        return lines
    finally:
        ev.close()


def main() -> None:
    parser = run_parser(__doc__)
    parser.add_argument("--ccp", type=Path, default=REPO.parent / "shared" / "datasets" / "ccp",
                        help="the CCP folder (its tag-only photos and annotations/image-level/)")
    args = parser.parse_args()
    cache: dict = {}
    print_runs(args.run, lambda run: evaluate_run(run, fold=args.fold, ccp=args.ccp, batch_size=args.batch_size,
                                                  cache=cache))


if __name__ == "__main__":
    main()
