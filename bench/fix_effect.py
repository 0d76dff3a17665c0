"""The effect of fixing (issue 15): train on CCP with the accepted model suggestions vs as ingested.

Protocol (that of ``bench/accuracy.py``): every pixel-annotated CCP photo as a 64 px person crop,
5 stratified folds (seed 0), FPN with ImageNet Lite0, the ``default`` recipe, test fold 0.

1. ingest CCP (read in place) into a private database (a ``mongod`` on ``OUT/mongo``, the
   workspace in ``OUT/home``) and export the 5 folds (``OUT/export``);
2. train the 5 folds (``OUT/runs/ingested``; fold 0 of it is the "as ingested" arm), write the
   predictions back to the dataset and run ``flag-errors --model`` with that run;
3. accept the model suggestions (``fix --accept-suggestions``'s function) only on the samples
   outside fold 0's test part (a saved view of them), once per ``--min-confidence`` value, highest
   first and cumulatively (0.7 adds to what 0.9 changed); the test photos and their masks stay
   exactly as ingested; prints how many samples and pixels changed and the findings' p spread;
4. after each threshold, export again (``OUT/export-fixed-p<P>``): the stratification sees the
   corrected classes and moves samples between folds, so the original ``folds.json`` fold of every
   sample is written back into the new export (the count of moved samples is printed), and the
   bench checks that the test masks are byte-identical to the first export's and says how much
   the validation split of the training part changed; fold 0 of each corrected export is trained
   with the same recipe, seed and budget (``OUT/runs/fixed-p<P>``);
5. prints one line per arm: P / R / F1 / mIoU (opened) and the IoU of the rare classes, all on
   the same test fold, scored against the same (ingested) test masks.

Usage::

    OMP_NUM_THREADS=1 python bench/fix_effect.py --ccp ../shared/datasets/ccp --out out/fix-effect \
        --epochs 10 --size 64 --min-confidence 0.9,0.7
    OMP_NUM_THREADS=1 python bench/fix_effect.py --out out/fix-effect --jobs 2
        # two folds at once, one thread each (a 2-core machine)

Every step is resumable: a re-run with the same ``--out`` reuses the database, the exports and the
finished folds (train-eval's own resume); flag-errors runs once (a second run would judge the
corrected masks) and each threshold's fix is applied once (``OUT/fix-p<P>.json``). The seed-noise
yardstick of docs/results.md is one more fold-0 run of the first export with ``--seed 1``.
Set ``OMP_NUM_THREADS`` so that ``--jobs`` x threads does not exceed the free cores: on a 2-core
machine shared with other jobs, ``OMP_NUM_THREADS=1`` trained ~50x faster than 2 (0.3 vs 15 s per
batch of 8 at 64 px): oversubscribed OpenMP threads spin-wait.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fold_scores import fold_scores, rare_header, score_cells  # noqa: E402  (bench/)

DATASET = "fix-effect"
TRAIN_VIEW = "fix-effect-train"  # saved view: the samples outside the test part of the test fold


def _config(data: Path, *, fold: str, args: argparse.Namespace, dataset: str | None):
    from clothcurate.training.config import TrainConfig

    # the paper's recipe (the default recipe when these figures were taken; docs/results.md)
    return TrainConfig.from_recipe("paper", arch="fpn", data_dir=str(data), fold_spec=fold,
                                   image_size=args.size, epochs=args.epochs, batch_size=args.batch_size,
                                   workers=args.workers, device="cpu", dataset=dataset, seed=args.seed)


def _train(tasks: list[tuple[Path, Path, int]], *, args: argparse.Namespace) -> None:
    """Train every ``(export, run_dir, fold)`` not finished yet: with ``--jobs`` > 1, up to that
    many at once, one process each (fold folders are independent; callers collect them after)."""
    from clothcurate.training.run import train_eval

    todo = [t for t in tasks if not (t[1] / "folds" / str(t[2]) / "done").exists()]
    if args.jobs <= 1 or len(todo) <= 1:
        for data, run_dir, k in todo:
            train_eval(_config(data, fold=str(k), args=args, dataset=None), run_dir=run_dir)
        return
    waiting, running = list(todo), []
    try:
        while waiting or running:
            while waiting and len(running) < args.jobs:
                data, run_dir, k = waiting.pop(0)
                log = run_dir.parent / f"{run_dir.name}-fold{k}.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                cmd = [sys.executable, __file__, "--train-only", str(k), "--data", str(data), "--run",
                       str(run_dir), "--epochs", str(args.epochs), "--size", str(args.size), "--seed",
                       str(args.seed), "--batch-size", str(args.batch_size), "--workers", str(args.workers)]
                running.append((k, log, subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT)))
                # one after the other: the first one writes config.json before the next reads it
                time.sleep(15)
            for k, log, p in list(running):
                if p.poll() is None:
                    continue
                running.remove((k, log, p))
                if p.returncode != 0:
                    raise SystemExit(f"error: fold {k} failed (exit {p.returncode}); see {log}, then re-run "
                                     "to resume")
                print(f"fold {k} trained ({log})")
            time.sleep(2)
    finally:
        for _, _, p in running:
            if p.poll() is None:
                p.terminate()


def _open_database(out: Path) -> None:
    """A private mongod on OUT/mongo (kept between runs) and the workspace OUT/home."""
    import atexit

    from clothcurate.curation.mongod import use_private_database

    atexit.register(use_private_database(out / "mongo").close)  # before fiftyone is imported
    os.environ["CLOTHCURATE_HOME"] = str((out / "home").resolve())
    from clothcurate.workspace import quiet_fiftyone

    quiet_fiftyone()


def _realign_folds(original: Path, fixed: Path) -> str:
    """Give every sample of the ``fixed`` export its fold of the ``original`` export.

    Returns:
        What was done (one line).
    """
    from clothcurate.atomic import write_json

    old = json.loads((original / "folds.json").read_text())
    new = json.loads((fixed / "folds.json").read_text())
    was = {s["key"]: s["fold"] for s in old["samples"]}
    keys_new = {s["key"] for s in new["samples"]}
    if keys_new != set(was):
        raise SystemExit(f"error: the corrected export has other samples than the original "
                         f"({len(keys_new - set(was))} more, {len(set(was) - keys_new)} fewer); cannot compare")
    moved = sum(s["fold"] != was[s["key"]] for s in new["samples"])
    if not moved:
        return "fold membership: the re-export kept every sample's fold (stratification unchanged)"
    for s in new["samples"]:
        s["fold"] = was[s["key"]]
    write_json(fixed / "folds.json", new)
    (fixed / "fold_stats.json").unlink(missing_ok=True)  # described the re-stratified folds
    return (f"fold membership: the re-export moved {moved} of {len(was)} samples to other folds; "
            f"{fixed / 'folds.json'} now has the original fold of every sample")


def _count_fix(ds, *, train_keys: list[str], test_keys: set[str], min_confidence: float) -> dict:
    """Count the corrections in the database (cumulative over the thresholds applied so far),
    check that no test sample was touched; prints and returns the counts."""
    from collections import Counter

    from fiftyone import ViewField as F

    corrected = ds.exists("corrections")
    keys, records = corrected.values("key"), corrected.values("corrections")
    if set(keys) & test_keys:
        raise SystemExit(f"error: test samples were corrected: {sorted(set(keys) & test_keys)[:5]}")
    pairs: Counter = Counter()
    for recs in records:
        for r in recs:
            for c in r["changes"]:
                pairs[f"{c['from']} -> {c['to']}"] += c["pixels"]
    from clothcurate.curation.fix.suggestions import parse_finding

    train = ds.match(F("key").is_in(train_keys))
    lines = train.values("label_findings") if ds.has_sample_field("label_findings") else []
    with_findings = sum(bool(v) for v in lines)
    ps = [f.p for v in lines for f in map(parse_finding, v or []) if f is not None]
    bins = {f"p>={t}": sum(p >= t for p in ps) for t in (0.5, 0.7, 0.8, 0.9, 0.95)}
    print(f"model findings on the training part: {len(ps)} parsed region findings; {bins}")
    summary = {"min_confidence": min_confidence, "train_samples": len(train_keys),
               "train_samples_with_findings": with_findings, "samples_changed": len(keys),
               "pixels_changed": sum(pairs.values()), "changes": dict(pairs.most_common()), "findings_p": bins}
    top = ", ".join(f"{k} {v:,}" for k, v in pairs.most_common(8))
    print(f"fix (min confidence {min_confidence}): {len(keys)} of {len(train_keys)} training samples changed "
          f"({with_findings} had model findings), {sum(pairs.values()):,} photo pixels relabelled; most: {top}")
    return summary


def _same_test(original: Path, fixed: Path, *, fold: int, seed: int) -> str:
    """Check that the test part of ``fold`` is the same photos with byte-identical masks in both
    exports, and say whether the validation split of the training part is the same."""
    import numpy as np

    from clothcurate.folders.export import read_export
    from clothcurate.training.split import split_validation

    a, b = read_export(original), read_export(fixed)
    (a_train, a_test), (b_train, b_test) = a.fold_parts(fold), b.fold_parts(fold)
    a_keys, b_keys = [s.key for s in a.samples], [s.key for s in b.samples]
    if [a_keys[i] for i in a_test] != [b_keys[i] for i in b_test]:
        raise SystemExit("error: the test parts differ")
    for i in a_test:
        if a.samples[i].mask.read_bytes() != b.samples[b_keys.index(a_keys[i])].mask.read_bytes():
            raise SystemExit(f"error: test mask of {a_keys[i]} differs between the exports")
    val_a = {a_keys[a_train[i]] for i in split_validation(a.presence(a_train), seed=seed)[1]}
    val_b = {b_keys[b_train[i]] for i in split_validation(b.presence(b_train), seed=seed)[1]}
    same_val = "the same" if val_a == val_b else f"{len(val_a ^ val_b) // 2} of {len(val_a)} samples different"
    n_changed = sum(int(not np.array_equal(a.presence([i]), b.presence([b_keys.index(a_keys[i])])))
                    for i in a_train)
    return (f"test fold {fold}: the same {len(a_test)} photos, masks byte-identical in both exports; "
            f"{n_changed} training samples changed their class set; validation split: {same_val}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ccp", type=Path, default=REPO.parent / "shared" / "datasets" / "ccp",
                        help="CCP folder, read in place (default: ../shared/datasets/ccp)")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "fix-effect",
                        help="database, workspace, exports and run folders (kept: a re-run resumes)")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs of every fold (both arms)")
    parser.add_argument("--size", type=int, default=64, help="crop size (a multiple of 32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fold", type=int, default=0, help="the test fold")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0,
                        help="loader worker processes per training (same in both arms; 0: in the training process)")
    parser.add_argument("--min-confidence", default="0.9",
                        help="comma list: one corrected arm per value, accepting the findings with p >= it "
                             "(fix --accept-suggestions --min-confidence); cumulative, highest first")
    parser.add_argument("--jobs", type=int, default=1, help="folds trained at once (one process each)")
    # internal: one fold in a child process (no database)
    parser.add_argument("--train-only", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from clothcurate.training.run import train_eval

    if args.train_only is not None:
        train_eval(_config(args.data, fold=str(args.train_only), args=args, dataset=None), run_dir=args.run)
        return

    thresholds = sorted({float(t) for t in args.min_confidence.split(",") if t.strip()}, reverse=True)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    _open_database(out)
    import fiftyone as fo
    from fiftyone import ViewField as F

    from clothcurate.curation.export import export_folds
    from clothcurate.curation.fix import accept_suggestions
    from clothcurate.curation.flags import flag_errors
    from clothcurate.atomic import write_json
    from clothcurate.curation.ingest import ingest

    t0 = time.perf_counter()
    # 1. ingest + export
    export = out / "export"
    if not fo.dataset_exists(DATASET):
        print(ingest(ccp=args.ccp, dataset=DATASET, progress=True).summary())
    if not (export / "export.json").exists():
        export_folds(dataset=DATASET, out=export, folds=5, seed=0, crop="person", size=args.size, progress=True)
    print(f"[{(time.perf_counter() - t0) / 60:.1f} min] export {export}")

    # 2. the 5 folds, write-back, flag-errors --model
    ingested = out / "runs" / "ingested"
    _train([(export, ingested, k) for k in range(5)], args=args)
    train_eval(_config(export, fold="all", args=args, dataset=DATASET), run_dir=ingested)
    print(f"[{(time.perf_counter() - t0) / 60:.1f} min] 5 folds trained: {ingested}")
    ds = fo.load_dataset(DATASET)
    folds = json.loads((export / "folds.json").read_text())["samples"]
    test_keys = {s["key"] for s in folds if s["fold"] == args.fold}
    train_keys = sorted(s["key"] for s in folds if s["fold"] != args.fold)
    flagged = out / "flagged"
    if not flagged.exists() and not (ds.has_sample_field("corrections") and len(ds.exists("corrections"))):
        # done once: a second flag-errors would judge the corrected masks (a second round of fixes)
        flag_errors(DATASET, model_run=ingested, progress=True)
        print(f"[{(time.perf_counter() - t0) / 60:.1f} min] flag-errors --model {ingested}")
    flagged.touch()
    ds.save_view(TRAIN_VIEW, ds.match(F("key").is_in(train_keys)), overwrite=True)
    # 3-4. per threshold, most confident first (cumulative: a lower one adds to the higher one's
    # corrections): accept outside the test part, export, keep the original folds
    arms = []
    for t in thresholds:
        tag = f"p{t:g}"
        fixed, marker = out / f"export-fixed-{tag}", out / f"fix-{tag}.json"
        if not marker.exists():
            report = accept_suggestions(DATASET, view=TRAIN_VIEW, min_confidence=t, progress=True)
            print(report.summary())
            ds.reload()
            summary = _count_fix(ds, train_keys=train_keys, test_keys=test_keys, min_confidence=t)
            # keep_flagged: flag-errors has tagged bg_only samples since the first export; keep the same set
            export_folds(dataset=DATASET, out=fixed, folds=5, seed=0, crop="person", size=args.size,
                         keep_flagged=True, overwrite=True, progress=True)
            summary["realign"] = _realign_folds(export, fixed)
            summary["same_test"] = _same_test(export, fixed, fold=args.fold, seed=args.seed)
            write_json(marker, summary)
        summary = json.loads(marker.read_text())
        print(f"p >= {t}: {summary['samples_changed']} training samples changed, {summary['pixels_changed']:,} px; "
              f"{summary['realign']}\n  {summary['same_test']}")
        arms.append((f"suggestions accepted (p >= {t:g})", fixed, out / "runs" / f"fixed-{tag}", summary))
    _train([(fixed, run, args.fold) for _, fixed, run, _ in arms], args=args)
    for _, fixed, run, _ in arms:  # collect (metrics.json)
        train_eval(_config(fixed, fold=str(args.fold), args=args, dataset=None), run_dir=run)
    print(f"[{(time.perf_counter() - t0) / 60:.1f} min] fold {args.fold} trained on the corrected exports")

    # 5. one line per arm
    print(f"fix effect: CCP, test fold {args.fold} (same photos and ingested masks in every arm), {args.size} px, "
          f"{args.epochs} epochs, default recipe, seed {args.seed}, {os.cpu_count()} CPUs; percent, opened")
    head = (f"{'arm':<36} | {'P':>5} {'R':>5} {'F1':>5} {'mIoU':>5} | " + rare_header())
    print(head)
    print("-" * len(head))
    for name, run in [("as ingested", ingested)] + [(name, run) for name, _, run, _ in arms]:
        print(f"{name:<36} | {score_cells(fold_scores(run, args.fold), raw=False)}")
    print(f"run folders: {out / 'runs'}; {(time.perf_counter() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
