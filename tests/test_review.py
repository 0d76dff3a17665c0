"""The review loop: tags as the App writes them are counted by status; the App serves the
suspicious view to a real headless browser."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request

import cv2
import numpy as np
import pytest

from click.testing import CliRunner

from clothcurate.cli import main
from clothcurate.curation.flags import flag_errors
from clothcurate.curation.review import start
from clothcurate.curation.status import dataset_status
from clothcurate.errors import BadInputError

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def small(ccp_dataset):
    """A flagged 10-sample clone of CCP that holds the background-only sample 0536."""
    from fiftyone import ViewField as F

    ids = ccp_dataset.limit(9).values("id") + ccp_dataset.match(F("source_id") == "0536").values("id")
    ds = ccp_dataset.select(ids).clone("review-small")
    flag_errors(ds.name, progress=False)
    yield ds
    ds.delete()


def test_review_tags_are_counted_by_status(small):
    keys = small.values("key")
    # what the App does when a reviewer tags samples in the grid: tag_samples on the current view
    small.select_by("key", keys[:2]).tag_samples("reject")
    small.select_by("key", keys[2:5]).tag_samples("ok")
    try:
        tags = dataset_status(small.name)["tags"]
        assert tags.get("reject") == 2 and tags.get("ok") == 3
        assert tags.get("bg_only") == 1
        assert tags.get("suspicious") == small.match_tags("suspicious").count() >= 1
    finally:
        small.untag_samples(["reject", "ok"])


def test_class_colours_on_target_fields_only(small):
    from clothcurate.curation.review import apply_color_scheme
    from clothcurate.reports.colors import hex_color

    apply_color_scheme(small)
    scheme = small.app_config.color_scheme
    by_path = {f["path"]: f["maskTargetsColors"] for f in scheme.fields}
    assert "ground_truth" in by_path and not any(p.startswith("raw_") for p in by_path)
    assert {c["intTarget"]: c["color"] for c in by_path["ground_truth"]}[5] == hex_color(5)
    assert not scheme.default_mask_targets_colors   # it would colour raw_ccp's source ids too


def test_unknown_view_is_bad_input(small):
    with pytest.raises(BadInputError, match="no saved view"):
        start(small.name, view="no-such-view", port=_free_port())


def test_busy_port_is_refused_naming_it(small):
    """Something already listens on the port: exit 2 naming the port and a free one, the App is
    not started (nor attached to whatever serves there)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(BadInputError, match=rf"port {port} on localhost is already in use.*--port \d+"):
            start(small.name, port=port)
        result = CliRunner().invoke(main, ["review", "--dataset", small.name, "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [result.output.strip()] and f"port {port}" in result.output


def test_app_opens_with_the_masks_drawn_and_owns_its_port(small):
    """The App's dataset settings (read back from the App server) check every target-class mask
    field; a second review on the same port is refused rather than attached to this App."""
    import fiftyone as fo

    ds = small.clone("review-fields")
    for name in ("pred_fpn", "label_issues"):  # as write-back and flag-errors --model add them
        ds.add_sample_field(name, fo.EmbeddedDocumentField, embedded_doc_type=fo.Segmentation)
    port = _free_port()
    session = start(ds.name, port=port, address="127.0.0.1")
    try:
        served = _graphql(f"http://127.0.0.1:{port}",
                          "query($d: String!) { dataset(name: $d) { appConfig { activeFields { exclude paths } } } }",
                          {"d": ds.name})["dataset"]["appConfig"]["activeFields"]
        assert not served["exclude"]
        assert served["paths"][:3] == ["ground_truth", "label_issues", "pred_fpn"]
        assert "person" in served["paths"] and not any(p.startswith("raw_") for p in served["paths"])
        with pytest.raises(BadInputError, match=f"port {port}"):
            start(small.name, port=port, address="127.0.0.1")
    finally:
        session.close()
        ds.delete()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(base: str, query: str, variables: dict) -> dict:
    req = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": query, "variables": variables}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        out = json.load(r)
    assert "errors" not in out, out.get("errors")
    return out["data"]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium",
                       shell=True, capture_output=True, timeout=900)
        exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("headless Chromium is not installed and `apt-get install chromium` failed")
    return exe


@pytest.mark.browser
def test_app_shows_the_suspicious_view(small, tmp_path):
    chromium = _chromium()
    port = _free_port()
    session = start(small.name, view="suspicious", port=port, address="127.0.0.1")
    try:
        base = f"http://127.0.0.1:{port}"
        # the App's own API: the saved view's stages, and the samples it pages through
        views = _graphql(base, "query($d: String!) { savedViews(datasetName: $d) { name viewStages } }",
                         {"d": small.name})["savedViews"]
        stages = next(v["viewStages"] for v in views if v["name"] == "suspicious")
        page = _graphql(base, """query($d: String!, $v: BSONArray!) {
            samples(dataset: $d, view: $v, first: 50) {
              ... on SampleItemStrConnection { edges { node { ... on ImageSample { id sample } } } } } }""",
                        {"d": small.name, "v": [json.loads(s) if isinstance(s, str) else s for s in stages]})
        nodes = [e["node"] for e in page["samples"]["edges"]]
        served = [n["id"] for n in nodes]
        expected = small.match_tags("suspicious").sort_by("label_quality").values("id")
        assert served == expected and len(served) >= 1
        first = nodes[0]["sample"] if isinstance(nodes[0]["sample"], dict) else json.loads(nodes[0]["sample"])
        assert "background_only" in first["issues"] and "label_quality" in first

        shot = tmp_path / "app.png"
        subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                        f"--screenshot={shot}", "--window-size=1280,800", "--virtual-time-budget=15000",
                        f"{base}/datasets/{small.name}?view=suspicious"],
                       capture_output=True, timeout=180)
        img = cv2.imread(str(shot))
        assert img is not None, "chromium wrote no screenshot"
        assert img.shape[:2] == (800, 1280)
        colours = np.unique(img.reshape(-1, 3), axis=0)
        assert len(colours) > 50, f"blank page ({len(colours)} colours)"
    finally:
        session.close()
    time.sleep(1)
    with socket.socket() as s:  # the App server is gone
        assert s.connect_ex(("127.0.0.1", port)) != 0
