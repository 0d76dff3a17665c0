"""clothcurate fix: mask corrections as versions, on real CCP samples in a real FiftyOne database.

Expected masks and derived fields are computed here independently (NumPy / OpenCV), never by the
module under test.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from ccp_layout import make_ccp_subset
from clothcurate.cli import main
from clothcurate.labelmaps import TARGET_CLASSES
from clothcurate.workspace import dataset_dir

IDS = ["0003", "0004", "0019", "0022"]
C = {name: i for i, name in enumerate(TARGET_CLASSES)}
FIELDS = ["key", "ground_truth.mask_path", "ground_truth.id", "ground_truth_original.mask_path", "corrections",
          "classes", "class_pixels", "person.bounding_box", "person.id"]


@pytest.fixture
def subset(tmp_path, ccp_dir) -> Path:
    """A CCP folder of the samples IDS (links to the real files)."""
    return make_ccp_subset(tmp_path / "ccp", ccp_dir, IDS)


@pytest.fixture
def fixds(subset, tmp_home, request):
    """A small real-CCP dataset ingested for one test."""
    import fiftyone as fo

    from clothcurate.curation.ingest import ingest

    name = f"fix-{request.node.name}".replace("[", "-").replace("]", "")
    ingest(ccp=subset, dataset=name, progress=False, workers=1)
    ds = fo.load_dataset(name)
    yield ds
    fo.delete_dataset(name)


def _fix(ds, *args: str):
    return CliRunner().invoke(main, ["fix", "--dataset", ds.name, *args])


def _read(path: str) -> np.ndarray:
    return cv2.imread(path, cv2.IMREAD_UNCHANGED)


def _row(ds, key: str) -> dict:
    from fiftyone import ViewField as F

    view = ds.match(F("key") == key)
    schema = ds.get_field_schema()
    return {f: (view.values(f)[0] if f.split(".")[0] in schema else None) for f in FIELDS}


def _snapshot(ds) -> tuple[dict, dict]:
    """Every sample's fields and every file under the dataset's workspace (sha1)."""
    ds.reload()
    rows = {k: _row(ds, k) for k in ds.values("key")}
    files = {str(p): hashlib.sha1(p.read_bytes()).hexdigest()
             for p in sorted(dataset_dir(ds.name).rglob("*")) if p.is_file()}
    return rows, files


def _fresh_facts(mask: np.ndarray) -> dict:
    """classes / class_pixels / person box of a mask, computed here from scratch."""
    counts = np.bincount(mask.ravel(), minlength=len(TARGET_CLASSES))
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    box = [xs.min() / w, ys.min() / h, (xs.max() + 1 - xs.min()) / w, (ys.max() + 1 - ys.min()) / h]
    return {"classes": [TARGET_CLASSES[i] for i in np.flatnonzero(counts)],
            "class_pixels": {TARGET_CLASSES[i]: int(counts[i]) for i in np.flatnonzero(counts)},
            "person.bounding_box": box}


def _nth_region(mask: np.ndarray, cls: int, n: int) -> np.ndarray:
    """(H, W) bool: the n-th largest 8-connected region of ``cls`` (1 = largest)."""
    k, labels, stats, _ = cv2.connectedComponentsWithStats((mask == cls).astype(np.uint8), connectivity=8)
    order = sorted(range(1, k), key=lambda c: (-stats[c, cv2.CC_STAT_AREA], stats[c, cv2.CC_STAT_TOP],
                                               stats[c, cv2.CC_STAT_LEFT]))
    return labels == order[n - 1]


def _log(ds) -> list[dict]:
    path = dataset_dir(ds.name) / "corrections.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_relabel_changes_exactly_the_class_and_recomputes_the_fields(fixds):
    before = _row(fixds, "ccp_0004")
    original_path = before["ground_truth.mask_path"]
    original_bytes = Path(original_path).read_bytes()
    m0 = _read(original_path)
    assert (m0 == C["coat"]).any()

    result = _fix(fixds, "--key", "ccp_0004", "--relabel", "coat:dress")
    assert result.exit_code == 0, result.output
    assert "ccp_0004 v2: coat -> dress" in result.output
    fixds.reload()
    after = _row(fixds, "ccp_0004")
    m1 = _read(after["ground_truth.mask_path"])
    np.testing.assert_array_equal(m1, np.where(m0 == C["coat"], C["dress"], m0))
    assert after["ground_truth.mask_path"] != original_path
    assert Path(after["ground_truth.mask_path"]).name == "ccp_0004.v2.png"
    assert Path(original_path).read_bytes() == original_bytes  # the ingested mask is kept as it was
    assert after["ground_truth_original.mask_path"] == original_path
    assert after["ground_truth.id"] == before["ground_truth.id"] and after["person.id"] == before["person.id"]
    fresh = _fresh_facts(m1)
    assert after["classes"] == fresh["classes"] and "coat" not in after["classes"]
    assert after["class_pixels"] == fresh["class_pixels"]
    np.testing.assert_allclose(after["person.bounding_box"], fresh["person.bounding_box"])
    n = int((m0 == C["coat"]).sum())
    [record] = after["corrections"]
    assert record["how"] == "relabel" and record["version"] == 2 and record["pixels"] == n
    assert record["changes"] == [{"from": "coat", "to": "dress", "pixels": n}]
    assert record["previous"] == original_path and record["mask"] == after["ground_truth.mask_path"]
    [entry] = _log(fixds)
    assert entry["event"] == "correct" and entry["key"] == "ccp_0004" and entry["changes"] == record["changes"]

    status = CliRunner().invoke(main, ["status", "--dataset", fixds.name, "--json"])
    assert json.loads(status.output)["corrected"] == 1


def test_relabel_one_region_as_listed(fixds):
    m0 = _read(_row(fixds, "ccp_0004")["ground_truth.mask_path"])
    listed = _fix(fixds, "--key", "ccp_0004", "--list-regions")
    assert listed.exit_code == 0, listed.output
    second = _nth_region(m0, C["coat"], 2)
    assert f"coat region 2: {int(second.sum()):,} px" in listed.output

    result = _fix(fixds, "--key", "ccp_0004", "--relabel", "coat:shirt", "--region", "2")
    assert result.exit_code == 0, result.output
    fixds.reload()
    m1 = _read(_row(fixds, "ccp_0004")["ground_truth.mask_path"])
    expected = m0.copy()
    expected[second] = C["shirt"]
    np.testing.assert_array_equal(m1, expected)
    assert int((m1 != m0).sum()) == int(second.sum()) > 0


def test_two_corrections_then_two_undos_restore_each_version_exactly(fixds):
    s0 = _snapshot(fixds)
    r0 = _row(fixds, "ccp_0004")
    png0 = Path(r0["ground_truth.mask_path"]).read_bytes()
    assert _fix(fixds, "--key", "ccp_0004", "--relabel", "coat:dress").exit_code == 0
    fixds.reload()
    r1 = _row(fixds, "ccp_0004")
    png1 = Path(r1["ground_truth.mask_path"]).read_bytes()
    result = _fix(fixds, "--key", "ccp_0004", "--relabel", "bag:background", "--region", "1")
    assert result.exit_code == 0, result.output
    fixds.reload()
    r2 = _row(fixds, "ccp_0004")
    assert [c["version"] for c in r2["corrections"]] == [2, 3]
    assert r2["corrections"][1]["previous"] == r1["ground_truth.mask_path"]

    undo = _fix(fixds, "--key", "ccp_0004", "--undo")
    assert undo.exit_code == 0, undo.output
    assert "version 3 (relabel) undone; back to version 2" in undo.output
    fixds.reload()
    assert _row(fixds, "ccp_0004") == r1
    assert Path(_row(fixds, "ccp_0004")["ground_truth.mask_path"]).read_bytes() == png1

    assert _fix(fixds, "--key", "ccp_0004", "--undo").exit_code == 0
    fixds.reload()
    assert _row(fixds, "ccp_0004") == r0  # fields, ids, paths: as ingested
    assert Path(_row(fixds, "ccp_0004")["ground_truth.mask_path"]).read_bytes() == png0
    rows, files = _snapshot(fixds)
    assert rows == s0[0]
    assert {p: h for p, h in files.items() if p in s0[1]} == s0[1]  # nothing ingest wrote was touched
    assert [e["event"] for e in _log(fixds)] == ["correct", "correct", "undo", "undo"]
    status = CliRunner().invoke(main, ["status", "--dataset", fixds.name, "--json"])
    assert json.loads(status.output)["corrected"] == 0

    # an undone version's number is not reused: the log's paths stay true
    assert _fix(fixds, "--key", "ccp_0004", "--relabel", "coat:dress").exit_code == 0
    fixds.reload()
    assert Path(_row(fixds, "ccp_0004")["ground_truth.mask_path"]).name == "ccp_0004.v4.png"


def _craft_suggestions(ds, key: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Write a label_issues mask and label_findings lines as flag-errors --model does, with patches
    that only roughly follow the annotation (as a map scaled up from the model's resolution)."""
    import fiftyone as fo
    from fiftyone import ViewField as F

    from clothcurate.workspace import mask_dir

    gt = _read(_row(ds, key)["ground_truth.mask_path"])
    issues = np.zeros_like(gt)
    coat = _nth_region(gt, C["coat"], 1)
    inner = cv2.erode(coat.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    issues[inner] = C["dress"]  # "region labelled coat looks like dress": the whole region should change
    bag = _nth_region(gt, C["bag"], 1)
    issues[cv2.dilate(bag.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)] = 255  # should be background
    ys, xs = np.nonzero(gt)
    y0, x0 = ys.max() - 60, xs.min() - 40  # a patch over background and some garment: "scarf/tie missing?"
    patch = np.zeros_like(coat)
    patch[y0:y0 + 50, max(x0, 0):max(x0, 0) + 120] = True
    patch &= issues == 0
    issues[patch] = C["scarf/tie"]
    path = mask_dir(ds.name, "label_issues")
    path.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path / f"{key}.png"), issues)
    lines = [f"region labelled coat ({int(coat.sum()):,} px) looks like dress, p=0.95",
             f"region labelled bag ({int(bag.sum()):,} px) looks like background, p=0.71",
             f"scarf/tie missing? {int((patch & (gt == 0)).sum()):,} px labelled background look like scarf/tie, p=0.80"]
    sample = ds.one(F("key") == key)
    sample["label_issues"] = fo.Segmentation(mask_path=str(path / f"{key}.png"))
    sample["label_findings"] = lines
    sample.save()
    return gt, {"coat": coat, "bag": bag, "patch": patch & (gt == 0), "patch_on_garments": patch & (gt != 0)}


def test_accept_suggestions_dry_run_threshold_and_apply(fixds):
    gt, parts = _craft_suggestions(fixds, "ccp_0004")
    assert parts["patch"].sum() > 0 and parts["patch_on_garments"].sum() > 0  # garments under it stay
    before = _snapshot(fixds)

    from fiftyone import ViewField as F

    fixds.save_view("others", fixds.match(F("key") != "ccp_0004"))
    assert "changed 0 samples" in _fix(fixds, "--accept-suggestions", "--view", "others").output
    unknown = _fix(fixds, "--accept-suggestions", "--view", "nope")
    assert unknown.exit_code == 2 and "no saved view 'nope' (saved views: others)" in unknown.output
    before = _snapshot(fixds)

    dry = _fix(fixds, "--accept-suggestions", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would change 1 sample" in dry.output and "coat -> dress" in dry.output
    assert _snapshot(fixds) == before  # nothing written

    only_sure = _fix(fixds, "--accept-suggestions", "--min-confidence", "0.9")
    assert only_sure.exit_code == 0, only_sure.output
    assert "left alone: 2 suggestion(s) below --min-confidence" in only_sure.output
    fixds.reload()
    m1 = _read(_row(fixds, "ccp_0004")["ground_truth.mask_path"])
    expected = gt.copy()
    expected[parts["coat"]] = C["dress"]
    np.testing.assert_array_equal(m1, expected)

    again = _fix(fixds, "--accept-suggestions")
    assert again.exit_code == 0, again.output
    fixds.reload()
    row = _row(fixds, "ccp_0004")
    expected[parts["bag"]] = C["background"]
    expected[parts["patch"]] = C["scarf/tie"]
    np.testing.assert_array_equal(_read(row["ground_truth.mask_path"]), expected)
    assert [c["how"] for c in row["corrections"]] == ["suggestion", "suggestion"]
    assert row["classes"] == _fresh_facts(expected)["classes"]
    # accepted suggestions are not applied twice
    assert "changed 0 samples" in _fix(fixds, "--accept-suggestions").output


def test_export_after_a_correction_exports_the_corrected_mask(fixds, tmp_path):
    from clothcurate.curation.export import export_folds

    assert _fix(fixds, "--key", "ccp_0004", "--relabel", "coat:dress").exit_code == 0
    fixds.reload()
    corrected = _read(_row(fixds, "ccp_0004")["ground_truth.mask_path"])
    export_folds(dataset=fixds.name, out=tmp_path / "folds", folds=2, progress=False)
    np.testing.assert_array_equal(_read(str(tmp_path / "folds" / "masks" / "ccp_0004.png")), corrected)
    folds = json.loads((tmp_path / "folds" / "folds.json").read_text())
    entry = next(s for s in folds["samples"] if s["key"] == "ccp_0004")
    assert "dress" in entry["classes"] and "coat" not in entry["classes"]


def test_raw_background_area_does_not_flag_a_correction(fixds):
    """CCP 0022: its belt and wallet (labels the map sends to background) are two holes in the
    15-class mask; relabelling them is a deliberate correction, not a loss of garments."""
    from clothcurate.curation.flags import _raw_background_ids
    from clothcurate.curation.flags.raw import raw_background_area
    from clothcurate.curation.flags.sample import read_sample

    def measure(key):
        fixds.reload()
        row = _row(fixds, key)
        raw = fixds.select_by("key", [key]).values("raw_ccp.mask_path")[0]
        return raw_background_area.measure(read_sample(key, row["ground_truth.mask_path"], raw,
                                                       _raw_background_ids(fixds, "ccp")))

    untouched = measure("ccp_0019")
    assert measure("ccp_0022") > 0.005
    listed = _fix(fixds, "--key", "ccp_0022", "--list-regions").output
    assert "background region 2: 3,278 px" in listed and "background region 3: 2,059 px" in listed
    assert _fix(fixds, "--key", "ccp_0022", "--relabel", "background:pants", "--region", "2").exit_code == 0
    # regions are numbered in the mask in force: the wallet is now the second background region
    assert "background region 2: 2,059 px" in _fix(fixds, "--key", "ccp_0022", "--list-regions").output
    assert _fix(fixds, "--key", "ccp_0022", "--relabel", "background:bag", "--region", "2").exit_code == 0
    assert measure("ccp_0022") == 0.0
    assert measure("ccp_0019") == untouched  # an uncorrected sample measures as before


def test_reingest_keeps_corrections_and_overwrite_refuses(fixds, subset):
    import os

    from clothcurate.curation.ingest import ingest

    assert _fix(fixds, "--key", "ccp_0004", "--relabel", "coat:dress").exit_code == 0
    fixds.reload()
    corrected = _row(fixds, "ccp_0004")
    original = corrected["ground_truth_original.mask_path"]
    original_bytes = Path(original).read_bytes()
    os.unlink(original)  # a lost ingested mask is restored; the correction stays in force

    report = ingest(ccp=subset, dataset=fixds.name, progress=False, workers=1)
    assert report.restored == {"ccp": 1}
    fixds.reload()
    assert _row(fixds, "ccp_0004") == corrected
    assert Path(original).read_bytes() == original_bytes

    before = _snapshot(fixds)
    result = CliRunner().invoke(main, ["ingest", "--ccp", str(subset), "--dataset", fixds.name,
                                       "--overwrite"])
    assert result.exit_code == 2, result.output
    assert "--overwrite would delete the mask corrections of 1 ccp sample (e.g. ccp_0004" in result.output
    assert _snapshot(fixds) == before


@pytest.mark.parametrize("args, words", [
    (["--key", "ccp_9999", "--relabel", "coat:dress"], "no sample with key 'ccp_9999'"),
    (["--key", "ccp_0004", "--relabel", "coat:cloak"], "unknown class 'cloak'"),
    (["--key", "ccp_0004", "--relabel", "coat:coat"], "FROM and TO are the same class"),
    (["--key", "ccp_0004", "--relabel", "coat"], "give FROM:TO"),
    (["--key", "ccp_0004", "--relabel", "romper:dress"], "has no romper pixels"),
    (["--key", "ccp_0004", "--relabel", "coat:dress", "--region", "9"], "has 3 coat regions"),
    (["--key", "ccp_0004", "--relabel", "coat:dress", "--region", "0"], "numbered from 1"),
    (["--key", "ccp_0004", "--undo"], "has no correction to undo"),
    (["--key", "ccp_0004"], "give exactly one of"),
    (["--key", "ccp_0004", "--undo", "--region", "1"], "--region does not go with --undo"),
    (["--relabel", "coat:dress"], "--relabel needs --key"),
    (["--accept-suggestions"], "no model suggestions"),
    (["--accept-suggestions", "--min-confidence", "1.5"], "between 0 and 1"),
])
def test_bad_input_is_one_line_and_changes_nothing(fixds, args, words):
    before = _snapshot(fixds)
    result = _fix(fixds, *args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.output
    assert _snapshot(fixds) == before


def _run_that_saw_the_truth(root: Path, truth: dict, keys: list, boxes: list, *, blocks: int) -> Path:
    """A one-fold run folder whose model predicts the true classes: per sample, the confidence map
    of its person crop as train-eval writes it (block-averaged one-hot masks, ``blocks`` px per
    map pixel), and the export's folds.json records the map's frame."""
    from test_flags_model import block_probs

    from clothcurate.geometry import crop_box

    run, export = root / "run", root / "export"
    (run / "confidence").mkdir(parents=True)
    export.mkdir()
    records = []
    for key, bbox in zip(keys, boxes):
        h, w = truth[key].shape
        box = crop_box(bbox, width=w, height=h)
        probs = block_probs(truth[key][box[1]:box[3], box[0]:box[2]], blocks)
        np.savez_compressed(run / "confidence" / f"{key}.npz", probs=probs)
        records.append({"key": key, "fold": 0, "orig_size": [w, h], "crop_box": list(box)})
    (export / "folds.json").write_text(json.dumps({"k": 1, "seed": 0, "samples": records}))
    (run / "config.json").write_text(json.dumps({"options": {"arch": "fpn", "data_dir": str(export)},
                                                 "export_dir": str(export)}))
    return run


def test_accept_suggestions_of_a_real_flag_errors_model_run_restores_a_swapped_region(fixds, tmp_path):
    """An annotator's error (coat region 1 of ccp_0004 labelled footwear, made with fix itself), a run
    folder whose model saw the true classes: flag-errors --model finds the region and accepting
    its suggestion gives back the true mask, pixel for pixel."""
    from clothcurate.curation.flags import flag_errors

    keys, paths, boxes = fixds.values(["key", "ground_truth.mask_path", "person.bounding_box"])
    truth = {k: _read(p) for k, p in zip(keys, paths)}
    assert _fix(fixds, "--key", "ccp_0004", "--relabel", "coat:footwear", "--region", "1").exit_code == 0
    run = _run_that_saw_the_truth(tmp_path, truth, keys, boxes, blocks=40)
    flag_errors(fixds.name, model_run=run, progress=False, workers=1)
    fixds.reload()
    findings = fixds.select_by("key", ["ccp_0004"]).values("label_findings")[0]
    assert any(line.startswith("region labelled footwear (") and "looks like coat" in line for line in findings)

    result = _fix(fixds, "--accept-suggestions", "--key", "ccp_0004")
    assert result.exit_code == 0, result.output
    assert "footwear -> coat" in result.output
    fixds.reload()
    row = _row(fixds, "ccp_0004")
    np.testing.assert_array_equal(_read(row["ground_truth.mask_path"]), truth["ccp_0004"])
    assert [c["how"] for c in row["corrections"]] == ["relabel", "suggestion"]


def test_a_lost_corrected_version_is_named_and_undo_still_goes_back(fixds):
    import os

    r0 = _row(fixds, "ccp_0004")
    assert _fix(fixds, "--key", "ccp_0004", "--relabel", "coat:dress").exit_code == 0
    fixds.reload()
    os.unlink(_row(fixds, "ccp_0004")["ground_truth.mask_path"])
    listed = _fix(fixds, "--key", "ccp_0004", "--list-regions")
    assert listed.exit_code == 2 and "--undo" in listed.output and "ccp_0004.v2.png" in listed.output
    assert _fix(fixds, "--key", "ccp_0004", "--undo").exit_code == 0
    fixds.reload()
    assert _row(fixds, "ccp_0004") == r0


def test_model_suggestions_lie_on_the_regions_they_name_and_none_is_dropped(tmp_path, ccp_dir, tmp_home):
    """Confidence maps as train-eval writes them for 64 px crops (S/4 = 16: one map pixel is the
    mean softmax over a block of about 34 x 52 photo pixels) of a model that saw the true classes;
    two annotation errors planted with fix itself (ccp_0004's largest coat region labelled
    footwear, every pants pixel of ccp_0046 erased to background); ccp_0006 and ccp_0019 clean.

    Every finding's patch in label_issues must lie mostly on the class its line names (the
    region's class, or background for a missed garment), clean samples get no finding, and
    accepting the suggestions applies or reports (left alone: N reason) every finding line."""
    import fiftyone as fo

    from clothcurate.curation.fix import accept_suggestions
    from clothcurate.curation.fix.suggestions import ALREADY, ELSEWHERE, parse_finding
    from clothcurate.curation.flags import flag_errors
    from clothcurate.curation.ingest import ingest

    ingest(ccp=make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0004", "0006", "0019", "0046"]), dataset="fix-aligned",
           progress=False, workers=1)
    ds = fo.load_dataset("fix-aligned")
    try:
        keys, paths, boxes = ds.values(["key", "ground_truth.mask_path", "person.bounding_box"])
        truth = {k: _read(p) for k, p in zip(keys, paths)}
        assert _fix(ds, "--key", "ccp_0004", "--relabel", "coat:footwear", "--region", "1").exit_code == 0
        assert _fix(ds, "--key", "ccp_0046", "--relabel", "pants:background").exit_code == 0
        run = _run_that_saw_the_truth(tmp_path, truth, keys, boxes, blocks=16)
        flag_errors(ds.name, model_run=run, progress=False, workers=1)
        ds.reload()
        rows = {k: (_read(g), f, i) for k, g, f, i in zip(*ds.values(["key", "ground_truth.mask_path",
                                                                     "label_findings", "label_issues.mask_path"]))}
        assert rows["ccp_0006"][1] == [] and rows["ccp_0019"][1] == [], (rows["ccp_0006"][1], rows["ccp_0019"][1])
        assert any(line.startswith("region labelled footwear (") and "looks like coat" in line
                   for line in rows["ccp_0004"][1]), rows["ccp_0004"][1]
        assert any(line.startswith("pants missing? ") for line in rows["ccp_0046"][1]), rows["ccp_0046"][1]
        n_lines = 0
        for key, (gt, lines, issues_path) in rows.items():
            found = [parse_finding(line) for line in lines]
            assert None not in found
            n_lines += len(found)
            if not found:
                continue
            issues = _read(issues_path)
            # each patch (a connected area of one value) lies mostly on a class some line gives
            named = {(f.given, f.suggested) for f in found}
            for value in np.unique(issues[issues > 0]):
                suggested = 0 if value == 255 else int(value)
                n, patches = cv2.connectedComponents((issues == value).astype(np.uint8), connectivity=8)
                for r in range(1, n):
                    under = np.bincount(gt[patches == r], minlength=len(TARGET_CLASSES))
                    assert (int(under.argmax()), suggested) in named, (
                        key, TARGET_CLASSES[suggested], {TARGET_CLASSES[c]: int(v) for c, v in enumerate(under) if v},
                        lines)

        # a label_issues mask whose patch lies beside the region its line names (as masks written
        # before the fix did): left alone and said why, not applied as an edit nobody proposed
        issues_path = rows["ccp_0004"][2]
        good = _read(issues_path)
        ys, xs = np.nonzero(good == C["coat"])
        moved = np.zeros_like(good)
        moved[ys - ys.min(), xs - xs.min()] = C["coat"]  # into the top-left corner of the photo
        assert np.bincount(rows["ccp_0004"][0][moved > 0]).argmax() == C["background"]
        cv2.imwrite(issues_path, moved)
        dry = accept_suggestions(ds.name, key="ccp_0004", dry_run=True, progress=False)
        assert dry.lines == [] and dry.skipped.get(ELSEWHERE) == 1, dry.summary()
        assert "left alone: 1 suggestion(s) whose label_issues patch lies mostly on another class" in dry.summary()
        cv2.imwrite(issues_path, good)

        report = accept_suggestions(ds.name, progress=False)
        applied = sum(len(r["findings"]) for r in report.records)
        assert None not in [line for r in report.records for line in r["findings"]]
        assert applied + sum(report.skipped.values()) == n_lines, report.summary()
        again = accept_suggestions(ds.name, progress=False)  # accepted before: each one counted, none applied
        assert again.lines == [] and again.skipped.get(ALREADY) == applied, again.summary()
        assert sum(again.skipped.values()) == n_lines, again.summary()
        ds.reload()
        fixed = {k: _read(p) for k, p in zip(*ds.values(["key", "ground_truth.mask_path"]))}
        np.testing.assert_array_equal(fixed["ccp_0004"], truth["ccp_0004"])
        pants_true, pants_now = truth["ccp_0046"] == C["pants"], fixed["ccp_0046"] == C["pants"]
        assert (pants_true & pants_now).sum() / (pants_true | pants_now).sum() > 0.5, report.summary()
    finally:
        ds.delete()


def test_every_finding_line_is_applied_or_left_alone_with_its_reason():
    """suggestions() on arrays: each parsed line ends in exactly one place."""
    from clothcurate.curation.fix.suggestions import ALREADY, ELSEWHERE, NO_PATCH, UNREADABLE, suggestions

    gt = np.zeros((60, 60), np.uint8)
    gt[10:30, 10:30] = C["dress"]
    gt[40:50, 40:50] = C["bag"]
    issues = np.zeros_like(gt)
    issues[12:28, 12:28] = C["coat"]                 # on the dress: applied (dress -> coat, the whole region)
    issues[0:8, 50:58] = 255                         # "bag looks like background", but drawn on background
    lines = ["region labelled dress (400 px) looks like coat, p=0.95",
             "region labelled bag (100 px) looks like background, p=0.90",
             "hat missing? 30 px labelled background look like hat, p=0.80",   # no patch of that class
             "something a person typed"]
    plan = suggestions(gt, issues, lines)
    assert [(s.given, s.suggested, int(s.pixels.sum()), s.finding.line) for s in plan.edits] == [
        (C["dress"], C["coat"], 400, lines[0])]
    assert sorted((a.reason, a.finding.line if a.finding else None) for a in plan.left_alone) == sorted([
        (ALREADY, lines[1]), (NO_PATCH, lines[2]), (UNREADABLE, None)])
    # "bag looks like background" drawn mostly beside the bag (ccp_0006's shirt in the bench):
    # misplaced, not "already done"
    issues[issues == 255] = 0
    issues[36:56, 36:56] = 255                       # 100 bag pixels, 300 background pixels
    plan = suggestions(gt, issues, lines[1:2])
    assert [(a.reason, a.finding.line) for a in plan.left_alone] == [(ELSEWHERE, lines[1])]
    # the same line with its patch on another garment: not an edit nobody proposed
    issues[issues == 255] = 0
    issues[42:48, 42:48] = C["coat"]                 # "dress looks like coat" drawn on the bag
    issues[12:28, 12:28] = 0
    plan = suggestions(gt, issues, lines[:1])
    assert plan.edits == [] and [(a.reason, a.finding.line) for a in plan.left_alone] == [(ELSEWHERE, lines[0])]
