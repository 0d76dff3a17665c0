"""Each flag-errors check on crafted masks: it catches its own defect and passes clean masks.

Clean masks are real CCP annotations remapped with the built-in label map; the statistical
checks are fitted on a population of about 190 of them, with the crafted sample in it.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from clothcurate.curation.flags import scoring
from clothcurate.curation.flags.engine import score_samples
from clothcurate.curation.flags.registry import all_checks, get_check
from clothcurate.curation.flags.sample import SampleMasks, working_resolution
from clothcurate.curation.sources.ccp import CCPSource
from clothcurate.labelmaps import TARGET_CLASSES, load_labelmap

POPULATION = 160
C = {name: i for i, name in enumerate(TARGET_CLASSES)}


@pytest.fixture(scope="module")
def population(ccp_dir) -> list[SampleMasks]:
    """Real CCP samples 1..160, plus every CCP sample with shorts or a romper (so that these rare
    classes have enough examples for co-occurrence statistics), at the working resolution, with
    raw masks."""
    source, lm = CCPSource(ccp_dir), load_labelmap("ccp")
    bg_ids = tuple(i for i, t in enumerate(lm.targets) if t == 0 and i != 0)
    refs = [r for r in source.scan()[0] if r.annotation == "pixel"]  # tag-only photos have no mask
    out = []
    for n, ref in enumerate(refs):
        raw = source.read(ref).masks[""].astype(np.uint8)
        gt = lm.remap(raw, source_id=ref.source_id)
        if n < POPULATION or np.isin(gt, [C["romper"], C["shorts"]]).any():
            out.append(SampleMasks(f"ccp_{ref.source_id}", working_resolution(gt), working_resolution(raw), bg_ids))
    return out


@pytest.fixture(scope="module")
def clean_scores(population) -> np.ndarray:
    return score_samples(population, all_checks())


def _base(population, clean_scores, need: tuple[str, ...]) -> int:
    """Index of a real sample that holds the classes ``need`` and that no check flags."""
    checks = all_checks()
    thr = np.array([c.threshold for c in checks])
    for i, s in enumerate(population):
        if all(s.class_pixels[C[n]] > 200 for n in need) and not (clean_scores[i] >= thr).any():
            return i
    pytest.fail(f"no clean CCP sample with {need} in the population")


def _score_with(population, i: int, corrupted: SampleMasks, check: str) -> float:
    """Score of ``check`` for sample i replaced by ``corrupted`` (the population refitted)."""
    samples = list(population)
    samples[i] = corrupted
    return float(score_samples(samples, [get_check(check)])[i, 0])


def _replace(s: SampleMasks, gt: np.ndarray, raw: np.ndarray | None = None) -> SampleMasks:
    return SampleMasks(s.key, gt, s.raw if raw is None else raw, s.raw_background_ids)


# -- crafted defects, one per check ------------------------------------------------------------

def _background_only(s: SampleMasks) -> SampleMasks:
    return _replace(s, np.zeros_like(s.gt))


def _no_person(s: SampleMasks) -> SampleMasks:
    gt = np.zeros_like(s.gt)
    ys, xs = np.nonzero(s.gt == C["hair"])
    gt[ys[:40], xs[:40]] = C["hair"]  # a few hair pixels are all that is left
    return _replace(s, gt)


def _speckle(s: SampleMasks) -> SampleMasks:
    rng = np.random.default_rng(0)
    gt = s.gt.copy()
    ys, xs = np.nonzero(gt == 0)
    pick = rng.choice(len(ys), 150, replace=False)
    gt[ys[pick], xs[pick]] = rng.integers(1, len(TARGET_CLASSES), 150)
    return _replace(s, gt)


def _hole_in_garment(s: SampleMasks, garment: str) -> SampleMasks:
    region = (s.gt == C[garment]).astype(np.uint8)
    core = cv2.erode(region, np.ones((9, 9), np.uint8))  # keep a rim of the garment all around
    gt = s.gt.copy()
    gt[core.astype(bool)] = 0
    return _replace(s, gt)


def _erase_band(s: SampleMasks) -> SampleMasks:
    y0, y1, _, _ = s.person_box
    gt = s.gt.copy()
    gt[y0 + int(0.55 * (y1 - y0)): y0 + int(0.8 * (y1 - y0))] = 0  # legs erased: feet float
    return _replace(s, gt)


def _shoes_to_hat(s: SampleMasks) -> SampleMasks:
    gt = s.gt.copy()
    gt[gt == C["footwear"]] = C["hat"]
    return _replace(s, gt)


def _huge_glasses(s: SampleMasks) -> SampleMasks:
    gt = s.gt.copy()
    grown = cv2.dilate((gt == C["glasses"]).astype(np.uint8), np.ones((31, 31), np.uint8)).astype(bool)
    gt[grown & (gt != 0)] = C["glasses"]
    return _replace(s, gt)


def _dress_and_shorts(s: SampleMasks) -> SampleMasks:
    gt = s.gt.copy()
    ys, _ = np.nonzero(gt == C["dress"])
    lower = (gt == C["dress"]) & (np.arange(gt.shape[0])[:, None] > np.median(ys))
    gt[lower] = C["shorts"]  # a dress whose skirt became shorts: no CCP annotation has both
    return _replace(s, gt)


def _garment_as_accessory(s: SampleMasks) -> SampleMasks:
    lm = load_labelmap("ccp")
    accessories = lm.names.index("accessories")
    region = s.gt == C["coat"]
    raw, gt = s.raw.copy(), s.gt.copy()
    raw[region], gt[region] = accessories, 0
    return _replace(s, gt, raw)


CASES = [
    ("background_only", (), _background_only),
    ("no_person", ("hair",), _no_person),
    ("tiny_fragments", (), _speckle),
    ("holes", ("coat",), lambda s: _hole_in_garment(s, "coat")),
    ("holes", ("pants",), lambda s: _hole_in_garment(s, "pants")),
    ("detached_parts", ("footwear",), _erase_band),
    ("implausible_layout", ("footwear",), _shoes_to_hat),
    ("area_outlier", ("glasses",), _huge_glasses),
    ("unlikely_combination", ("dress",), _dress_and_shorts),
    ("raw_background_area", ("coat",), _garment_as_accessory),
]


@pytest.mark.parametrize("check,need,corrupt", CASES, ids=[f"{c[0]}-{c[2].__name__}" for c in CASES])
def test_check_catches_its_defect(population, clean_scores, check, need, corrupt):
    i = _base(population, clean_scores, need)
    threshold = get_check(check).threshold
    clean = clean_scores[i, [c.name for c in all_checks()].index(check)]
    assert clean < threshold
    assert _score_with(population, i, corrupt(population[i]), check) >= threshold


def test_only_specks_still_scored(population):
    """A mask of 60 isolated one-pixel parts, none holding 2 % of the foreground, is scored by
    every check (the person box then spans all the parts) instead of stopping the run."""
    gt = np.zeros_like(population[0].gt)
    gt[10:130:2, 20] = C["shirt"]
    samples = [*population[:20], _replace(population[0], gt)]
    assert samples[-1].person_box == (10, 129, 20, 21)
    scores = score_samples(samples, all_checks())
    assert np.isfinite(scores[-1]).all()


def test_checks_pass_most_clean_masks(clean_scores):
    # real annotations hold some real errors, but a check that fires on many is miscalibrated
    checks = all_checks()
    for j, c in enumerate(checks):
        flagged = (clean_scores[:, j] >= c.threshold).mean()
        assert flagged <= 0.06, f"{c.name} flags {flagged:.0%} of real CCP masks"
    assert 0.0 <= clean_scores.min() and clean_scores.max() <= 1.0


def test_registry_entries_are_documented():
    checks = all_checks()
    names = [c.name for c in checks]
    assert len(names) == len(set(names))
    for required in ("background_only", "no_person", "tiny_fragments", "holes", "implausible_layout",
                     "area_outlier", "unlikely_combination", "raw_background_area"):
        assert required in names
    for c in checks:
        assert c.name.isidentifier() and len(c.description) > 40 and 0 < c.weight <= 1


def test_scoring_combines_as_noisy_or():
    checks = [get_check("background_only"), get_check("holes")]
    scores = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5], [0.0, 1.0]])
    q = scoring.label_quality(scores, checks)
    w = checks[1].weight
    np.testing.assert_allclose(q, [1.0, 0.0, 1 - 0.5 * w, 1 - w])
    assert scoring.issues(scores, checks) == [[], ["background_only"], ["holes"], ["holes"]]
    assert scoring.suspicious(q, scoring.issues(scores, checks)).tolist() == [False, True, True, True]


def test_with_a_model_heuristics_count_only_where_they_fire():
    from clothcurate.curation.flags.model import model_disagreement

    checks = [get_check("holes"), model_disagreement]
    thr = checks[0].threshold
    scores = np.array([[0.9 * thr, 0.2], [thr, 0.2], [0.0, 0.2], [0.9 * thr, 0.0]])
    q = scoring.label_quality(scores, checks)
    w_h, w_m = checks[0].weight, checks[1].weight
    # below its threshold the heuristic changes nothing; at it, it compounds with the model
    np.testing.assert_allclose(q, [1 - 0.2 * w_m, (1 - thr * w_h) * (1 - 0.2 * w_m), 1 - 0.2 * w_m, 1.0])
    # without the model column the same heuristic score counts in full
    np.testing.assert_allclose(scoring.label_quality(scores[:, :1], checks[:1])[0], 1 - 0.9 * thr * w_h)
