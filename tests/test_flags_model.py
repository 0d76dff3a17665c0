"""Model-assisted findings (confident learning on out-of-fold softmax): crafted maps, then end to end.

The crafted probability maps are made from a "true" mask (the model is right with probability
0.9, the rest spread evenly), the given labels are that mask with a known defect; expected
regions, classes and thresholds are computed here from those arrays, not by the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from clothcurate.geometry import crop_box
from clothcurate.curation.flags import flag_errors
from clothcurate.curation.flags.engine import score_samples
from clothcurate.curation.flags.internal.confident import (
    SHOULD_BE_BACKGROUND,
    ModelEvidence,
    issue_pixels,
    pooled_self_confidence,
)
from clothcurate.curation.flags.model import (
    describe,
    fit_model,
    judge,
    model_disagreement,
)
from clothcurate.curation.flags.sample import SampleMasks
from clothcurate.errors import BadInputError
from clothcurate.labelmaps import NUM_CLASSES, TARGET_CLASSES

C = {name: i for i, name in enumerate(TARGET_CLASSES)}


@pytest.fixture(scope="module", autouse=True)
def _ingest_first(ccp_dataset):
    """Ingest (fork-based worker pool) before this module runs OpenCV in the test process: a
    worker forked after OpenCV's thread pool started deadlocks in ``cv2.setNumThreads``."""


P_TRUE = 0.9
HW = 40          # confidence map side
SCALE = 2        # photo pixels per map pixel along each axis (frame box 80 x 80)


def probs_from(true: np.ndarray, p: float = P_TRUE) -> np.ndarray:
    """(K, h, w) uint8 softmax: ``p`` on the true class, the rest spread evenly."""
    probs = np.full((NUM_CLASSES, *true.shape), (1 - p) / (NUM_CLASSES - 1))
    np.put_along_axis(probs, true[None].astype(np.intp), p, 0)
    return np.round(probs * 255).astype(np.uint8)


def person(dress_class: int = C["dress"]) -> np.ndarray:
    """(HW, HW) uint8: hair, skin, a garment block, shoes; background around."""
    m = np.zeros((HW, HW), np.uint8)
    m[0:2, 16:24] = C["hat"]
    m[2:8, 14:26] = C["hair"]
    m[8:12, 15:25] = C["skin"]
    m[12:30, 10:30] = dress_class
    m[30:36, 14:26] = C["skin"]
    m[36:39, 12:28] = C["footwear"]
    return m


def evidence(true: np.ndarray, given: np.ndarray) -> ModelEvidence:
    box = (10, 20, 10 + SCALE * HW, 20 + SCALE * HW)
    return ModelEvidence(probs_from(true), given, box, (200, 200))


def population(n: int = 30) -> list[ModelEvidence]:
    """Clean samples: the model agrees with the annotation (enough of them that one bad sample
    lies in the run's tail, not in its 95th percentile)."""
    out = []
    for i in range(n):
        m = person(C["dress"] if i % 2 else C["coat"])
        out.append(evidence(m, m))
    return out


def test_thresholds_are_mean_self_confidence_per_class():
    true = person(C["coat"])
    given = true.copy()
    given[12:20, 10:30] = C["dress"]  # half the coat given as dress
    evs = population() + [evidence(true, given)]
    t = fit_model(evs).thresholds
    for j in range(NUM_CLASSES):
        values = [ev.probs[j][ev.labels == j] / 255.0 for ev in evs]
        values = np.concatenate(values)
        if values.size:
            assert t[j] == pytest.approx(values.mean(), rel=1e-6)
        else:
            assert np.isinf(t[j])
    # the dress threshold is pulled down by the mislabelled pixels, the coat's is the model's 0.9
    assert t[C["dress"]] < t[C["coat"]] == pytest.approx(round(P_TRUE * 255) / 255)


def test_swapped_region_is_found_with_class_and_pixel_count():
    true = person(C["coat"])
    given = person(C["dress"])
    evs = population() + [evidence(true, given)]
    stats = fit_model(evs)
    verdict = judge(evs[-1], stats.thresholds)
    assert len(verdict.findings) == 1
    f = verdict.findings[0]
    region = given == C["dress"]
    assert (f.given, f.suggested) == (C["dress"], C["coat"])
    assert f.region_pixels == region.sum() == f.pixels
    assert np.array_equal(f.mask, region)
    assert f.p == pytest.approx(round(P_TRUE * 255) / 255)
    photo_px = int(region.sum()) * SCALE * SCALE
    assert describe(f, pixel_area=evs[-1].pixel_area) == (
        f"region labelled dress ({photo_px:,} px) looks like coat, p={round(P_TRUE * 255) / 255:.2f}")
    # and the check ranks it worst of the run
    scores = [model_disagreement.score(ev, stats) for ev in evs]
    assert scores[-1] >= 0.5 > max(scores[:-1])


def test_clean_annotation_with_confident_model_gives_no_finding():
    evs = population()
    stats = fit_model(evs)
    for ev in evs:
        assert not issue_pixels(ev, stats.thresholds).flagged.any()
        verdict = judge(ev, stats.thresholds)
        # every pixel's p(given) is the quantised P_TRUE = its class's threshold: relative confidence 1
        assert verdict.findings == [] and verdict.statistic == pytest.approx(0.0, abs=1e-9)


def test_pooled_self_confidence_is_led_by_the_least_confident_pixels():
    p = np.full((40, 40), 0.95)
    assert pooled_self_confidence(p) == pytest.approx(0.95)
    p[:4, :4] = 0.05                                     # 1 % of the pixels contradicted
    pooled = pooled_self_confidence(p)
    assert pooled < 0.95 - 0.5 * (0.95 - 0.05) and pooled < p.mean() - 0.3
    # lower temperature -> nearer the minimum, higher -> nearer the mean
    assert pooled_self_confidence(p, temperature=0.01) < pooled < pooled_self_confidence(p, temperature=10)
    assert pooled_self_confidence(p, temperature=10) == pytest.approx(p.mean(), abs=0.01)


def test_missing_garment_and_stray_blob():
    true = person(C["coat"])
    true[14:24, 31:36] = C["bag"]               # a bag beside the coat ...
    given = true.copy()
    given[14:24, 31:36] = C["background"]       # ... left unlabelled
    given[2:6, 1:5] = C["hat"]                  # and a hat blob in the background
    evs = population() + [evidence(true, given), evidence(true, true)]
    stats = fit_model(evs)
    found = judge(evs[-2], stats.thresholds).findings
    by_class = {(f.given, f.suggested): f for f in found}
    missing = by_class[(C["background"], C["bag"])]
    assert missing.missing and missing.pixels == 50
    assert describe(missing, pixel_area=4.0).startswith("bag missing? 200 px labelled background look like bag")
    blob = by_class[(C["hat"], C["background"])]
    assert blob.region_pixels == 16
    assert len(found) == 2


def test_check_runs_through_the_registry_engine():
    true = person(C["coat"])
    samples = [SampleMasks(f"s{i}", ev.labels, model=ev) for i, ev in enumerate(population())]
    bad = evidence(true, person(C["dress"]))
    samples.append(SampleMasks("bad", bad.labels, model=bad))
    samples.append(SampleMasks("unjudged", true))  # no confidence map: not judged, score 0
    scores = score_samples(samples, [model_disagreement])[:, 0]
    assert scores[-2] >= 0.5 and scores[-1] == 0.0 and scores[:-2].max() < 0.5


# -- end to end on a FiftyOne dataset -----------------------------------------------------------

CONFUSABLE = {"dress": "coat", "coat": "dress", "shirt": "coat", "pants": "shorts"}
S = 160  # model input side of the fake run; maps are S / 4


def _largest_component(mask: np.ndarray) -> np.ndarray:
    _, lab, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    return lab == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


@pytest.fixture(scope="module")
def flagged_with_model(ccp_dataset, tmp_path_factory):
    """A 40-sample clone of CCP (enough that one bad sample lies in the tail, not in the 95th
    percentile), one sample's largest garment region relabelled to a confusable class; a run
    folder whose confidence maps come from the original annotation."""
    tmp = tmp_path_factory.mktemp("model-run")
    ds = ccp_dataset.limit(40).clone("flags-model")
    keys, paths, boxes = ds.values(["key", "ground_truth.mask_path", "person.bounding_box"])
    gts = [cv2.imread(p, cv2.IMREAD_UNCHANGED) for p in paths]
    # the largest garment whose confusable partner the sample does not have (so the relabelled
    # region is a connected region of its own)
    area = [max((int((g == C[c]).sum()) * int(not (g == C[p]).any()), c) for c, p in CONFUSABLE.items())
            for g in gts]
    victim = int(np.argmax([a for a, _ in area]))
    cls = area[victim][1]
    region = _largest_component(gts[victim] == C[cls])
    corrupted = gts[victim].copy()
    corrupted[region] = C[CONFUSABLE[cls]]
    new_path = tmp / f"{keys[victim]}.png"
    cv2.imwrite(str(new_path), corrupted)
    import fiftyone as fo

    ds.set_values("ground_truth", {keys[victim]: fo.Segmentation(mask_path=str(new_path))}, key_field="key")

    run, export = tmp / "run", tmp / "export"
    (run / "confidence").mkdir(parents=True)
    export.mkdir()
    records = []
    for key, gt, bbox in zip(keys, gts, boxes):
        h, w = gt.shape
        box = crop_box(bbox, width=w, height=h)
        # as train-eval writes them: the crop's softmax averaged over blocks (block_probs)
        probs = block_probs(gt[box[1]:box[3], box[0]:box[2]], S // 4)
        np.savez_compressed(run / "confidence" / f"{key}.npz", probs=probs)
        records.append({"key": key, "fold": 0, "orig_size": [w, h], "crop_box": list(box)})
    (export / "folds.json").write_text(json.dumps({"k": 1, "seed": 0, "samples": records}))
    (run / "config.json").write_text(json.dumps({"options": {"arch": "fpn", "data_dir": str(export)},
                                                 "export_dir": str(export)}))
    flag_errors(ds.name, progress=False)
    before = dict(zip(*ds.values(["key", "label_quality"])))
    report = flag_errors(ds.name, model_run=run, progress=False)
    yield ds, run, report, keys[victim], cls, region, before
    ds.delete()


def test_end_to_end_finding_mask_quality_and_view(flagged_with_model):
    ds, _, report, victim, cls, region, before = flagged_with_model
    sample = ds.match({"key": victim}).first()
    assert "model_disagreement" in sample.issues
    given, true = CONFUSABLE[cls], cls
    assert any(line.startswith(f"region labelled {given} (") and f"looks like {true}, p=" in line
               for line in sample.label_findings), sample.label_findings
    mask = cv2.imread(sample.label_issues.mask_path, cv2.IMREAD_UNCHANGED)
    assert mask.shape == region.shape
    # most of the relabelled region carries the true class; (almost) nothing else is marked
    assert (mask[region] == C[true]).mean() > 0.8
    assert (mask[~region] != 0).sum() < 0.1 * region.sum()
    assert sample.label_quality < before[victim] and sample.label_quality < 0.5
    assert victim in ds.load_saved_view("suspicious").values("key")
    assert report.counts["model_disagreement"] >= 1
    assert ds.mask_targets["label_issues"][SHOULD_BE_BACKGROUND] == "background"
    # clean samples (the model agrees exactly): no finding, no mask
    others = ds.match({"key": {"$ne": victim}})
    assert all(f == [] for f in others.values("label_findings"))
    assert all(m is None for m in others.values("label_issues"))


def test_rerun_without_model_removes_model_results(flagged_with_model):
    ds, run, _, victim, _, _, before = flagged_with_model
    mask_path = Path(ds.match({"key": victim}).first().label_issues.mask_path)
    flag_errors(ds.name, progress=False)
    assert not mask_path.exists()
    assert all(f is None for f in ds.values("label_findings"))
    assert dict(zip(*ds.values(["key", "label_quality"]))) == pytest.approx(before)
    flag_errors(ds.name, model_run=run, progress=False)  # and back: idempotent
    assert Path(ds.match({"key": victim}).first().label_issues.mask_path).exists()


def test_run_folder_without_confidence_maps_is_bad_input(flagged_with_model, tmp_path):
    ds = flagged_with_model[0]
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(BadInputError, match="confidence"):
        flag_errors(ds.name, model_run=tmp_path, progress=False)


def test_a_rare_class_the_model_is_unsure_of_is_not_suspect_for_that_alone():
    """Romper pixels get p=0.2 in every sample (the model's blind spot, like CCP's 34 rompers):
    the class threshold absorbs it, so clean romper samples rank with the clean, and a real swap
    still stands out."""
    def unsure_romper(true: np.ndarray) -> np.ndarray:
        probs = probs_from(true).astype(np.float64) / 255
        romper = true == C["romper"]
        probs[:, romper] = 0.8 / (NUM_CLASSES - 1)
        probs[C["romper"], romper] = 0.2
        return np.round(probs * 255).astype(np.uint8)

    box = (10, 20, 10 + SCALE * HW, 20 + SCALE * HW)
    rompers = [ModelEvidence(unsure_romper(person(C["romper"])), person(C["romper"]), box, (200, 200))
               for _ in range(6)]
    swapped = evidence(person(C["coat"]), person(C["dress"]))
    evs = population() + rompers + [swapped]
    stats = fit_model(evs)
    scores = [model_disagreement.score(ev, stats) for ev in evs]
    assert max(scores[:-1]) < 0.5 <= scores[-1]
    assert all(judge(ev, stats.thresholds).statistic == pytest.approx(0.0, abs=1e-9) for ev in rompers)


def block_probs(true: np.ndarray, side: int, p: float = P_TRUE) -> np.ndarray:
    """(K, side, side) uint8 softmax as train-eval stores it for a model that saw ``true``: each map
    pixel is the mean over its block of the (H, W) ``true`` crop (the 64 px crop's softmax averaged
    over 4 x 4 pixels, i.e. over a block of photo pixels), ``p`` on each pixel's class and the rest
    spread evenly."""
    share = np.stack([cv2.resize((true == k).astype(np.float32), (side, side), interpolation=cv2.INTER_AREA)
                      for k in range(NUM_CLASSES)])                                   # (K, side, side)
    probs = p * share + (1 - p) * (1 - share) / (NUM_CLASSES - 1)
    return np.round(probs * 255).astype(np.uint8)
