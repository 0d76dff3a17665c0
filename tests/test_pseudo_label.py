"""Self-training on CCP's tag-only photos: ``pseudo-label`` on a tiny real run and real tag-only CCP
photos (ids >= 1005), then ``train-eval --pseudo`` (issue 13 section 3)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from clothcurate.cli import main
from clothcurate.curation.ingest import ingest
from clothcurate.folders.pseudo import ALWAYS_ALLOWED, IGNORE_INDEX, PseudoFolder
from clothcurate.labelmaps import TARGET_CLASSES
from clothcurate.training.loop import LOSSES, build_loss
from test_tag_only import _subset
from tiny_run import IDS, SIZE, make_export, tiny  # noqa: F401 - tiny is a fixture

#: real tag-only CCP photos (image-level tags only)
TAG_IDS = ["1005", "1010", "1020", "1100", "1500", "1700", "1900", "1998"]
THRESHOLD = 0.5


@pytest.fixture(scope="module")
def tagged(ccp_dir, tmp_path_factory) -> str:
    """A dataset of one pixel-annotated and six tag-only real CCP photos."""
    import fiftyone as fo

    root = _subset(tmp_path_factory.mktemp("ccp-tagged"), ccp_dir, pixel=["0001"], image=TAG_IDS)
    ingest(ccp=root, dataset="pseudo-tagged", progress=False)
    yield "pseudo-tagged"
    fo.delete_dataset("pseudo-tagged")


@pytest.fixture(scope="module")
def labelled(tiny, tagged, tmp_path_factory, one_torch_thread):
    """A copy of the tiny run, pseudo-labelled once: ``(run_dir, report)``."""
    from clothcurate.training.pseudo_label import pseudo_label

    run = tmp_path_factory.mktemp("teacher") / "run"
    shutil.copytree(tiny[1], run)
    return run, pseudo_label(run_dir=run, dataset=tagged, threshold=THRESHOLD, device="cpu", progress=False)


def _tags(dataset: str) -> dict[str, list[str]]:
    import fiftyone as fo

    view = fo.load_dataset(dataset).match({"annotation": "image"})
    keys, labels = view.values(["key", "image_tags.classifications.label"])
    return {k: list(v or []) for k, v in zip(keys, labels)}


def _files(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "pseudo.json"}


def test_masks_hold_only_tagged_or_body_classes_or_ignore(labelled, tagged):
    run, report = labelled
    pf = PseudoFolder.open(run)
    tags = _tags(tagged)
    usable = pf.usable()
    assert report.samples == len(TAG_IDS) and len(usable) >= len(TAG_IDS) - 1  # a person in (nearly) every photo
    assert pf.finished_folds() == [0, 1] and set(report.folds) == {0, 1}
    labelled_pixels = 0
    for k in (0, 1):
        for s in usable:
            mask = cv2.imread(str(pf.mask_path(k, s.key)), cv2.IMREAD_UNCHANGED)
            assert mask.shape == (SIZE, SIZE) and mask.dtype == np.uint8
            allowed = {TARGET_CLASSES.index(c) for c in [*tags[s.key], *ALWAYS_ALLOWED]} | {IGNORE_INDEX}
            assert set(np.unique(mask).tolist()) <= allowed, (k, s.key, tags[s.key])
            labelled_pixels += int((mask != IGNORE_INDEX).sum())
            crop = cv2.imread(str(pf.image_path(s.key)))
            assert crop.shape == (SIZE, SIZE, 3)
    assert labelled_pixels > 0  # not all ignored
    # the subject, not the higher-scoring passer-by behind them (their boxes: 779 and 751 of ~830 px rows)
    for key in ("ccp_1700", "ccp_1900"):
        s = next(s for s in usable if s.key == key)
        assert s.crop_box[3] - s.crop_box[1] >= 0.8 * s.orig_size[1], (key, s.crop_box)


def test_fold_k_masks_come_from_fold_k_model(labelled, tagged):
    """Recompute with each fold's own checkpoint: the stored masks are exactly those."""
    from clothcurate.images import read_image
    from clothcurate.inference.segmenter import Segmenter
    from clothcurate.training.pseudo_label import allowed_classes, filter_pseudo

    run, _ = labelled
    pf = PseudoFolder.open(run)
    tags = _tags(tagged)
    usable = pf.usable()
    crops = torch.from_numpy(np.stack([read_image(pf.image_path(s.key)) for s in usable])).permute(0, 3, 1, 2)
    allowed = torch.from_numpy(np.stack([allowed_classes(tags[s.key], TARGET_CLASSES) for s in usable]))
    stored = {k: np.stack([cv2.imread(str(pf.mask_path(k, s.key)), cv2.IMREAD_UNCHANGED) for s in usable])
              for k in (0, 1)}
    for k in (0, 1):
        probs = Segmenter.from_run(run, fold=k, device="cpu").probabilities(crops.contiguous())
        mine = filter_pseudo(probs, allowed, threshold=THRESHOLD).numpy()
        assert (mine == stored[k]).mean() > 0.999, k
    assert (stored[0] != stored[1]).any()  # two teachers, two sets of masks


@pytest.mark.parametrize("rule, expected", [
    ("restrict", [0, 0, 2, 2, IGNORE_INDEX]),
    ("drop", [0, IGNORE_INDEX, IGNORE_INDEX, 2, IGNORE_INDEX]),
])
def test_filter_pseudo_rule(rule, expected):
    """The rules on hand-made probabilities, classes 0 and 2 allowed, threshold 0.8."""
    from clothcurate.training.pseudo_label import filter_pseudo

    probs = torch.zeros(1, 3, 1, 5)
    probs[0, :, 0, 0] = torch.tensor([0.9, 0.05, 0.05])   # background, confident: 0 either way
    probs[0, :, 0, 1] = torch.tensor([0.1, 0.88, 0.02])   # argmax not allowed; of the allowed, 0 at 0.83
    probs[0, :, 0, 2] = torch.tensor([0.1, 0.2, 0.7])     # 2 allowed, 0.7 < 0.8; of the allowed, 0.875
    probs[0, :, 0, 3] = torch.tensor([0.0, 0.1, 0.9])     # 2 allowed and confident: 2 either way
    probs[0, :, 0, 4] = torch.tensor([0.3, 0.4, 0.3])     # of the allowed, 0.5: ignored either way
    out = filter_pseudo(probs, torch.tensor([[True, False, True]]), threshold=0.8, rule=rule)
    assert out.tolist() == [[expected]]


def test_dataset_field_holds_the_masks_in_the_photo_frame(labelled, tagged):
    import fiftyone as fo

    run, report = labelled
    ds = fo.load_dataset(tagged)
    assert report.field == "pseudo_fpn" and ds.has_sample_field("pseudo_fpn")
    assert ds.mask_targets["pseudo_fpn"][IGNORE_INDEX] == "ignore"
    pf = PseudoFolder.open(run)
    by_key = {s.key: s for s in pf.usable()}
    for sample in ds:
        if sample.annotation == "pixel":
            assert sample.get_field("pseudo_fpn") is None and sample.ground_truth is not None
            continue
        seg = sample.pseudo_fpn
        assert seg is not None and sample.ground_truth is None  # never ground_truth
        full = cv2.imread(seg.mask_path, cv2.IMREAD_UNCHANGED)
        s = by_key[sample.key]
        assert full.shape == (s.orig_size[1], s.orig_size[0])
        x0, y0, x1, y1 = s.crop_box
        outside = np.ones(full.shape, bool)
        outside[y0:y1, x0:x1] = False
        assert (full[outside] == IGNORE_INDEX).all()
        fold0 = cv2.imread(str(pf.mask_path(0, s.key)), cv2.IMREAD_UNCHANGED)
        assert set(np.unique(full).tolist()) == set(np.unique(fold0).tolist()) | ({IGNORE_INDEX} if outside.any() else set())


def test_rerun_is_idempotent_and_a_new_threshold_remakes_the_masks(labelled, tagged):
    from clothcurate.training.pseudo_label import pseudo_label

    run, _ = labelled
    root = PseudoFolder(run).root
    before = _files(root)
    again = CliRunner().invoke(main, ["pseudo-label", "--run", str(run), "--dataset", tagged, "--threshold",
                                      str(THRESHOLD), "--device", "cpu"])
    assert again.exit_code == 0, again.output
    assert "(0 crop(s) made now" in again.output
    assert "fold 0: 0 mask(s) written now" in again.output and "fold 1: 0 mask(s) written now" in again.output
    assert _files(root) == before
    share = PseudoFolder(run).manifest()["folds"]["0"]["labelled_share"]
    stricter = pseudo_label(run_dir=run, dataset=tagged, threshold=0.95, device="cpu", progress=False)
    n = len(PseudoFolder(run).usable())
    assert stricter.cropped == 0 and stricter.folds == {0: n, 1: n}
    assert stricter.kept_share[0] <= share
    # another tag rule remakes the masks too; "drop" keeps a subset of "restrict"'s pixels, same classes
    restrict = _masks(run)
    dropped = pseudo_label(run_dir=run, dataset=tagged, threshold=0.95, tag_rule="drop", device="cpu",
                           progress=False)
    assert dropped.cropped == 0 and dropped.folds == {0: n, 1: n}
    assert PseudoFolder(run).manifest()["settings"]["tag_rule"] == "drop"
    drop = _masks(run)
    kept = drop != IGNORE_INDEX
    assert kept.any() and (restrict[kept] == drop[kept]).all()
    assert (restrict != IGNORE_INDEX).sum() > kept.sum()  # else the rule did not reach the masks
    # back to the threshold the other tests read
    pseudo_label(run_dir=run, dataset=tagged, threshold=THRESHOLD, device="cpu", progress=False)


def _masks(run: Path) -> np.ndarray:
    """(F, N, H, W) uint8: every fold's pseudo-masks of the usable photos, in key order."""
    pf = PseudoFolder(run)
    return np.stack([np.stack([cv2.imread(str(pf.mask_path(k, s.key)), cv2.IMREAD_UNCHANGED) for s in pf.usable()])
                     for k in pf.finished_folds()])


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_skips_ignored_pixels(name):
    torch.manual_seed(0)
    logits = torch.randn(2, 15, 8, 8)
    target = torch.randint(0, 15, (2, 8, 8))
    target[:, :4] = IGNORE_INDEX
    loss = build_loss(name, weights=torch.rand(15) + 0.5)
    changed = logits.clone()
    changed[:, :, :4] = torch.randn(2, 15, 4, 8) * 10   # only where the target is ignored
    assert torch.isfinite(loss(logits, target))
    assert torch.allclose(loss(logits, target), loss(changed, target), atol=1e-5)


def test_train_eval_pseudo_adds_masks_to_training_only(labelled, tiny, tmp_path):
    from clothcurate.folders.run import RunFolder

    run, _ = labelled
    export, teacher = tiny
    student = tmp_path / "student"
    result = CliRunner().invoke(main, ["train-eval", "--arch", "fpn", "--data", str(export), "--out", str(student),
                                       "--epochs", "1", "--image-size", str(SIZE), "--batch-size", "4",
                                       "--workers", "0", "--device", "cpu", "--dataset", "", "--pseudo", str(run)])
    assert result.exit_code == 0, result.output
    n = len(PseudoFolder(run).usable())
    for k in (0, 1):
        mine, theirs = RunFolder(student).fold_scores(k)["fit"], RunFolder(teacher).fold_scores(k)["fit"]
        assert mine["n_pseudo"] == n > 0
        assert (mine["n_train"], mine["n_val"], mine["n_test"]) == (theirs["n_train"], theirs["n_val"], theirs["n_test"])
        keys = {r["key"] for r in RunFolder(student).fold_per_sample(k)}
        assert keys == {r["key"] for r in RunFolder(teacher).fold_per_sample(k)}  # the test fold is unchanged
        assert not any(key >= "ccp_1005" for key in keys)
    config = json.loads((student / "config.json").read_text())
    assert config["options"]["pseudo"] == str(run.resolve()) and "pseudo" in config["binds"]
    # the option binds the folder: another teacher (or none) is refused once folds have started
    other = CliRunner().invoke(main, ["train-eval", "--arch", "fpn", "--data", str(export), "--out", str(student),
                                      "--epochs", "1", "--image-size", str(SIZE), "--device", "cpu", "--dataset", ""])
    assert other.exit_code == 2 and "pseudo" in other.output


def _one_line_exit_2(result, *words):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for w in words:
        assert w in lines[0], lines[0]


def test_bad_inputs_are_one_line_errors(labelled, tiny, tagged, ccp_dir, tmp_path):
    import fiftyone as fo

    run, _ = labelled
    export, _teacher = tiny
    runner = CliRunner()
    # a run folder without checkpoints
    bare = tmp_path / "bare"
    shutil.copytree(run, bare, ignore=shutil.ignore_patterns("*.pt", "pseudo"))
    _one_line_exit_2(runner.invoke(main, ["pseudo-label", "--run", str(bare), "--dataset", tagged]), "best.pt")
    assert not (bare / "pseudo").exists()
    # a dataset without tag-only samples
    root = _subset(tmp_path / "pixel-only", ccp_dir, pixel=["0001"], image=[])
    ingest(ccp=root, dataset="pseudo-pixel-only", progress=False)
    try:
        _one_line_exit_2(runner.invoke(main, ["pseudo-label", "--run", str(run), "--dataset", "pseudo-pixel-only"]),
                         "no tag-only samples")
    finally:
        fo.delete_dataset("pseudo-pixel-only")
    _one_line_exit_2(runner.invoke(main, ["pseudo-label", "--run", str(run), "--dataset", tagged, "--threshold", "1.5"]),
                     "--threshold")
    # train-eval --pseudo: a run without pseudo-masks, and a teacher trained on other test folds
    args = ["train-eval", "--arch", "fpn", "--data", str(export), "--epochs", "1", "--image-size", str(SIZE),
            "--device", "cpu", "--dataset", ""]
    _one_line_exit_2(runner.invoke(main, [*args, "--out", str(tmp_path / "s1"), "--pseudo", str(bare)]),
                     "no pseudo-masks")
    refolded = make_export(ccp_dir, tmp_path / "refolded", IDS, folds=3)
    _one_line_exit_2(runner.invoke(main, [*args[:4], str(refolded), *args[5:], "--out", str(tmp_path / "s2"),
                                          "--pseudo", str(run)]), "other test folds")
    assert not (tmp_path / "s2" / "folds").exists()


def test_subject_crop_box_is_the_largest_person_grown_to_the_crop_aspect():
    from clothcurate.detection.registry import PersonBox
    from clothcurate.training.pseudo_label import subject_crop_box

    image = np.zeros((600, 400, 3), np.uint8)
    assert subject_crop_box(image, [], size=(160, 160)) is None
    passer_by = PersonBox(box=(10, 20, 40, 120), score=0.97, detector="ssdlite-pedestrian")
    subject = PersonBox(box=(120, 40, 150, 520), score=0.8, detector="ssdlite-pedestrian")
    person, (x0, y0, x1, y1) = subject_crop_box(image, [passer_by, subject], size=(300, 200))
    assert person == subject
    assert x0 <= 120 and y0 <= 40 and x1 >= 270 and y1 >= 560          # the subject lies inside the crop
    assert 0 <= x0 < x1 <= 400 and 0 <= y0 < y1 <= 600
    assert abs((y1 - y0) / (x1 - x0) - 1.5) < 0.02                     # grown to the crops' H:W = 3:2
