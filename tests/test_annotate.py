"""clothcurate annotate: a round trip through a REAL Label Studio server, on real CCP samples.

The module starts one Label Studio (from its own environment ``.venv-labelstudio``, made by
``make install``) on a free loopback port with a SQLite data folder in a temporary directory and a
user whose API token is set on the command line, and stops it (its whole process group) at the end.
The annotator's edits are made through Label Studio's own REST API, as its web editor submits
them; the expected masks are computed here with NumPy from the ingested PNGs.
"""

from __future__ import annotations

import hashlib
import socket
import time

import cv2
import numpy as np
import pytest
import requests
from click.testing import CliRunner

from ccp_layout import make_ccp_subset
from clothcurate.cli import main
from clothcurate.labelmaps import TARGET_CLASSES
from clothcurate.workspace import dataset_dir

IDS = ["0003", "0004", "0019"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    """A real Label Studio server: ``(url, api_key)``; stopped (with every process it started) after
    the module."""
    from clothcurate.curation.annotate.local_server import LABEL_STUDIO, private_label_studio

    if not LABEL_STUDIO.exists():
        pytest.skip(f"Label Studio's environment is absent ({LABEL_STUDIO}); `make install` creates it")
    with private_label_studio(tmp_path_factory.mktemp("labelstudio")) as server:
        yield server


@pytest.fixture
def annods(tmp_path, ccp_dir, tmp_home, request):
    """A small real-CCP dataset ingested for one test."""
    import fiftyone as fo

    from clothcurate.curation.ingest import ingest

    name = f"anno-{request.node.name}".replace("[", "-").replace("]", "")
    ingest(ccp=make_ccp_subset(tmp_path / "ccp", ccp_dir, IDS), dataset=name, progress=False, workers=1)
    ds = fo.load_dataset(name)
    yield ds
    fo.delete_dataset(name)


def _cli(*args: str):
    return CliRunner().invoke(main, ["annotate", *args])


def _masks(ds) -> dict[str, np.ndarray]:
    ds.reload()
    keys, paths = ds.values(["key", "ground_truth.mask_path"])
    return {k: cv2.imread(p, cv2.IMREAD_UNCHANGED) for k, p in zip(keys, paths)}


def _snapshot(ds) -> tuple[dict, dict]:
    """Every sample's mask path and corrections, and every file of the dataset's workspace (sha1)."""
    ds.reload()
    schema = ds.get_field_schema()
    rows = {k: (p, c) for k, p, c in zip(ds.values("key"), ds.values("ground_truth.mask_path"),
                                          ds.values("corrections") if "corrections" in schema else [None] * len(ds))}
    files = {str(p): hashlib.sha1(p.read_bytes()).hexdigest()
             for p in sorted(dataset_dir(ds.name).rglob("*")) if p.is_file()}
    return rows, files


class _Annotator:
    """Label Studio's REST API, used as its web editor does."""

    def __init__(self, url: str, key: str):
        self.url, self.headers = url, {"Authorization": f"Token {key}"}

    def tasks(self, project: int) -> list[dict]:
        r = requests.get(f"{self.url}/api/tasks", params={"project": project, "fields": "all"},
                         headers=self.headers, timeout=30)
        r.raise_for_status()
        body = r.json()
        return body["tasks"] if isinstance(body, dict) else body

    def prediction(self, task: int) -> list[dict]:
        r = requests.get(f"{self.url}/api/predictions", params={"task": task}, headers=self.headers, timeout=30)
        r.raise_for_status()
        return r.json()[0]["result"]

    def submit(self, task: int, result: list[dict]) -> None:
        r = requests.post(f"{self.url}/api/tasks/{task}/annotations", headers=self.headers, timeout=30,
                          json={"result": result, "was_cancelled": False, "ground_truth": False})
        assert r.status_code == 201, r.text

    def delete_project(self, project: int) -> None:
        requests.delete(f"{self.url}/api/projects/{project}", headers=self.headers, timeout=30).raise_for_status()


def _brush(mask: np.ndarray) -> list[int]:
    """A (H, W) bool mask as Label Studio's brush RLE (RGBA, alpha 255 where painted)."""
    from label_studio_sdk.converter.brush import mask2rle

    return mask2rle(mask.astype(np.uint8) * 255)


def _decode(result: dict) -> np.ndarray:
    from label_studio_sdk.converter.brush import decode_rle

    h, w = result["original_height"], result["original_width"]
    return decode_rle(result["value"]["rle"]).reshape(h, w, 4)[:, :, 3] > 0


def _block(gt: np.ndarray, cls: int, size: int = 40) -> np.ndarray:
    """The pixels of class ``cls`` in a size x size window centred on its median pixel."""
    ys, xs = np.nonzero(gt == cls)
    cy, cx = int(np.median(ys)), int(np.median(xs))
    win = np.zeros(gt.shape, bool)
    win[max(cy - size // 2, 0):cy + size // 2, max(cx - size // 2, 0):cx + size // 2] = True
    return win & (gt == cls)


def _project(ds, anno_key: str) -> int:
    return ds.load_annotation_results(anno_key).project_id


def test_regions_reach_fiftyone_and_come_back_exactly(annods):
    """No server: the brush regions FiftyOne renders for Label Studio are each class's pixels
    exactly, and the mask rebuilt from FiftyOne's own boxes of loaded brushes is the mask."""
    import fiftyone.core.labels as fol

    from clothcurate.curation.annotate.regions import to_mask, to_regions

    for k, gt in _masks(annods).items():
        h, w = gt.shape
        regions = to_regions(gt)
        assert [name for name, _, _ in regions] == [TARGET_CLASSES[c] for c in np.unique(gt) if c]
        loaded = []
        for name, box, m in regions:
            rendered = fol.Detection(label=name, bounding_box=box, mask=m).to_segmentation(
                frame_size=(w, h)).get_mask() > 0
            assert np.array_equal(rendered, gt == TARGET_CLASSES.index(name)), f"{k} {name}"
            # what FiftyOne's Label Studio importer makes of the brush: a tight x0 / W box
            det = fol.Segmentation(mask=rendered.astype(np.uint8) * 255).to_detections({255: name}).detections[0]
            loaded.append((det.label, det.bounding_box, det.mask))
        assert np.array_equal(to_mask(regions, shape=gt.shape), gt)
        assert np.array_equal(to_mask(loaded, shape=gt.shape, before=gt), gt)


def test_overlapping_brushes_resolve_to_the_new_stroke():
    from clothcurate.curation.annotate.regions import to_mask

    before = np.zeros((6, 8), np.uint8)
    before[:, :4] = 3
    old = (TARGET_CLASSES[3], [0.0, 0.0, 4 / 8, 1.0], np.ones((6, 4), bool))
    stroke = (TARGET_CLASSES[5], [2 / 8, 1 / 6, 4 / 8, 2 / 6], np.ones((2, 4), bool))
    expected = before.copy()
    expected[1:3, 2:6] = 5
    assert np.array_equal(to_mask([old, stroke], shape=before.shape, before=before), expected)
    assert np.array_equal(to_mask([stroke, old], shape=before.shape, before=before), expected)
    with pytest.raises(ValueError, match="not one of the classes"):
        to_mask([("cape", [0, 0, 0.5, 0.5], np.ones((3, 4), bool))], shape=(6, 8))
    with pytest.raises(ValueError, match="does not fit"):
        to_mask([(TARGET_CLASSES[1], [0.75, 0, 0.5, 0.5], np.ones((3, 4), bool))], shape=(6, 8))


def test_round_trip_unchanged_masks_identical_and_edits_exact(annods, label_studio):
    url, key = label_studio
    before = _masks(annods)
    sent = _cli("send", "--dataset", annods.name, "--anno-key", "round1", "--url", url, "--api-key", key)
    assert sent.exit_code == 0, sent.output
    assert "sent 3 samples to Label Studio" in sent.output

    ls = _Annotator(url, key)
    fld = "annotate_round1"
    tasks = {t["id"]: t for t in ls.tasks(_project(annods, "round1"))}
    sample_of_task = annods.load_annotation_results("round1").uploaded_tasks
    key_of = dict(zip(annods.values("id"), annods.values("key")))
    task_of = {key_of[sid]: tid for tid, sid in sample_of_task.items()}
    assert set(task_of) == {f"ccp_{i}" for i in IDS} and set(tasks) == set(task_of.values())

    # the pre-annotations are the ingested masks, one brush region per class, exactly
    for k, tid in task_of.items():
        result = ls.prediction(tid)
        gt = before[k]
        assert sorted(r["value"]["brushlabels"][0] for r in result) == \
            sorted(TARGET_CLASSES[c] for c in np.unique(gt) if c)
        for r in result:
            assert np.array_equal(_decode(r), gt == TARGET_CLASSES.index(r["value"]["brushlabels"][0]))

    expected = {k: m.copy() for k, m in before.items()}
    # ccp_0003: the annotator erases a block of the largest class and paints it as a class the photo lacks
    k = "ccp_0003"
    gt = before[k]
    big = int(np.argmax(np.bincount(gt.ravel(), minlength=len(TARGET_CLASSES))[1:])) + 1
    new = next(c for c in range(1, len(TARGET_CLASSES)) if not (gt == c).any())
    block = _block(gt, big)
    result = ls.prediction(task_of[k])
    for r in result:
        if r["value"]["brushlabels"] == [TARGET_CLASSES[big]]:
            r["value"]["rle"] = _brush((gt == big) & ~block)
    template = dict(result[0])
    result.append({**template, "id": "Xk2v9Qp0aZ",
                   "value": {"format": "rle", "rle": _brush(block), "brushlabels": [TARGET_CLASSES[new]]}})
    ls.submit(task_of[k], result)
    expected[k][block] = new
    # ccp_0004: paints a class over another without erasing it (overlapping brushes: the new stroke wins)
    # and erases part of a second class to background
    k = "ccp_0004"
    gt = before[k]
    counts = np.bincount(gt.ravel(), minlength=len(TARGET_CLASSES))
    first, second = (np.argsort(counts[1:])[::-1][:2] + 1).tolist()
    over, erased = _block(gt, first, 30), _block(gt, second, 20)
    result = ls.prediction(task_of[k])
    for r in result:
        if r["value"]["brushlabels"] == [TARGET_CLASSES[second]]:
            r["value"]["rle"] = _brush((gt == second) & ~erased)
    result.append({**dict(result[0]), "id": "Pq7Lm2Nx4B",
                   "value": {"format": "rle", "rle": _brush(over), "brushlabels": [TARGET_CLASSES[second]]}})
    ls.submit(task_of[k], result)
    expected[k][erased] = 0
    expected[k][over] = second
    # ccp_0019: submitted as it came (the annotator found nothing to change)
    ls.submit(task_of["ccp_0019"], ls.prediction(task_of["ccp_0019"]))

    loaded = _cli("load", "--dataset", annods.name, "--anno-key", "round1", "--api-key", key)
    assert loaded.exit_code == 0, loaded.output
    assert "3 samples back from Label Studio" in loaded.output and "changed 2 samples" in loaded.output
    after = _masks(annods)
    for k in before:
        assert np.array_equal(after[k], expected[k]), f"{k}: {(after[k] != expected[k]).sum()} px differ"
    annods.reload()
    records = dict(zip(annods.values("key"), annods.values("corrections")))
    assert records["ccp_0019"] is None  # unchanged: no version
    rec = records["ccp_0003"][-1]
    assert rec["how"] == "annotation tool" and rec["anno_key"] == "round1"
    assert rec["changes"] == [{"from": TARGET_CLASSES[big], "to": TARGET_CLASSES[new], "pixels": int(block.sum())}]
    assert fld in annods.get_field_schema()

    # loading again changes nothing; undo restores the ingested mask exactly
    again = _cli("load", "--dataset", annods.name, "--anno-key", "round1", "--api-key", key)
    assert again.exit_code == 0 and "changed 0 samples" in again.output, again.output
    undo = CliRunner().invoke(main, ["fix", "--dataset", annods.name, "--key", "ccp_0003", "--undo"])
    assert undo.exit_code == 0, undo.output
    assert np.array_equal(_masks(annods)["ccp_0003"], before["ccp_0003"])

    # --cleanup deletes the project on the server and the run here
    project = _project(annods, "round1")
    gone = _cli("load", "--dataset", annods.name, "--anno-key", "round1", "--api-key", key, "--cleanup")
    assert gone.exit_code == 0, gone.output
    annods.reload()
    assert not annods.has_annotation_run("round1") and fld not in annods.get_field_schema()
    assert requests.get(f"{url}/api/projects/{project}", headers=ls.headers, timeout=30).status_code == 404


def test_unreachable_server_is_one_line_within_seconds_and_changes_nothing(annods, label_studio):
    _, key = label_studio
    before = _snapshot(annods)
    started = time.monotonic()
    result = _cli("send", "--dataset", annods.name, "--anno-key", "r", "--url", f"http://127.0.0.1:{_free_port()}",
                  "--api-key", key)
    assert time.monotonic() - started < 15
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: Label Studio not reachable at http://127.0.0.1:")
    assert result.output.count("\n") == 1
    annods.reload()
    assert not annods.has_annotation_run("r") and _snapshot(annods) == before


def test_refused_key_unknown_sample_and_unknown_run_change_nothing(annods, label_studio):
    url, key = label_studio
    before = _snapshot(annods)
    bad_key = _cli("send", "--dataset", annods.name, "--anno-key", "r", "--url", url, "--api-key", "wrong")
    assert bad_key.exit_code == 2 and "refused the API key" in bad_key.output, bad_key.output
    unknown = _cli("send", "--dataset", annods.name, "--anno-key", "r", "--url", url, "--api-key", key,
                   "--key", "ccp_9999")
    assert unknown.exit_code == 2 and "no sample with key 'ccp_9999'" in unknown.output, unknown.output
    no_run = _cli("load", "--dataset", annods.name, "--anno-key", "nope", "--url", url, "--api-key", key)
    assert no_run.exit_code == 2 and "has no annotation run 'nope'" in no_run.output, no_run.output
    bad_name = _cli("send", "--dataset", annods.name, "--anno-key", "1 bad", "--url", url, "--api-key", key)
    assert bad_name.exit_code == 2 and "--anno-key '1 bad'" in bad_name.output, bad_name.output
    for r in (bad_key, unknown, no_run, bad_name):
        assert r.output.count("\n") == 1 and r.output.startswith("error: ")
    annods.reload()
    assert not annods.list_annotation_runs() and _snapshot(annods) == before


def test_run_whose_project_was_deleted_on_the_server(annods, label_studio):
    url, key = label_studio
    sent = _cli("send", "--dataset", annods.name, "--anno-key", "gone", "--url", url, "--api-key", key,
                "--key", "ccp_0004")
    assert sent.exit_code == 0 and "sent 1 sample " in sent.output, sent.output
    _Annotator(url, key).delete_project(_project(annods, "gone"))
    before = _snapshot(annods)
    result = _cli("load", "--dataset", annods.name, "--anno-key", "gone", "--api-key", key)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert "no longer" in result.output or "deleted" in result.output
    assert _snapshot(annods) == before
    forget = _cli("load", "--dataset", annods.name, "--anno-key", "gone", "--api-key", key, "--cleanup")
    assert forget.exit_code == 0, forget.output
    annods.reload()
    assert not annods.has_annotation_run("gone")
