"""flag-errors on the real CCP in a real FiftyOne database: fields, tags, views, re-runs."""

from __future__ import annotations

import numpy as np
import pytest
from fiftyone import ViewField as F

from clothcurate.curation.flags import flag_errors
from clothcurate.errors import BadInputError


@pytest.fixture(scope="module")
def flagged(ccp_dataset):
    """A clone of the ingested CCP, flagged once (with a reviewer's tags placed beforehand)."""
    ds = ccp_dataset.clone("flags-ccp")
    keys = ds.values("key")
    ds.select_by("key", [keys[0]]).tag_samples("reject")
    ds.select_by("key", [keys[1]]).tag_samples("ok")
    report = flag_errors(ds.name, progress=False)
    yield ds, report
    ds.delete()


def test_background_only_sample_is_flagged(flagged):
    ds, report = flagged
    sample = ds.match({"source_id": "0536"}).first()
    assert set(sample.classes) <= {"background"}  # ingest's view of it, independent of the checks
    assert "background_only" in sample.issues
    assert "bg_only" in sample.tags and "suspicious" in sample.tags
    assert sample.label_quality < 0.05
    # no other CCP annotation is empty
    assert ds.match_tags("bg_only").values("source_id") == ["0536"]
    assert report.bg_only == 1 and report.counts["background_only"] == 1


def test_fields_views_and_report(flagged):
    ds, report = flagged
    quality = np.array(ds.match(F("annotation") == "pixel").values("label_quality"))
    assert len(quality) == 1004 and np.all((quality >= 0) & (quality <= 1))
    assert set(ds.list_saved_views()) >= {"bg-only", "suspicious"}
    view = ds.load_saved_view("suspicious")
    q = view.values("label_quality")
    assert q == sorted(q) and len(q) == ds.match_tags("suspicious").count() == report.suspicious
    # a ranked worklist, not the whole dataset
    assert 1 <= report.suspicious < 0.2 * len(quality)
    # every sample with an issue is suspicious
    assert ds.match(F("issues").length() > 0).match_tags("suspicious", bool=False).count() == 0
    assert report.worst[0]["key"] == view.first().key
    assert [w["label_quality"] for w in report.worst] == sorted(w["label_quality"] for w in report.worst)
    assert set(ds.info["checks"]) == set(report.counts)
    assert "background_only" in ds.get_field("issues").description
    # a list of strings, as the App needs to show the values (an untyped list shows as a bare name)
    assert type(ds.get_field("issues").field).__name__ == "StringField"
    summary = report.summary()
    assert "background_only" in summary and "ccp_0536" in summary
    assert report.to_dict()["samples"] == 1004 and report.to_dict()["tag_only"] == 994
    assert "994 with image-level tags only skipped" in summary


def test_tag_only_samples_are_not_checked(flagged):
    """The 994 photos with image-level tags only have no mask: no findings, scores or flag tags."""
    ds, _ = flagged
    tagged = ds.match(F("annotation") == "image")
    assert len(tagged) == 994
    assert set(tagged.values("label_quality")) == {None} and set(tagged.values("issues")) == {None}
    assert not set(tagged.distinct("tags")) & {"bg_only", "suspicious"}
    assert tagged.match_tags(["bg_only", "suspicious"]).count() == 0
    for name in ("bg-only", "suspicious"):
        assert not set(ds.load_saved_view(name).values("key")) & set(tagged.values("key"))


def test_rerun_replaces_own_results_and_keeps_review_tags(flagged):
    ds, _ = flagged
    small = ds.limit(80).clone("flags-rerun")
    try:
        keys = small.values("key")
        small.select_by("key", keys[2:4]).tag_samples("reject")
        small.select_by("key", keys[4:6]).tag_samples("ok")
        review = {t: small.match_tags(t).values("key") for t in ("reject", "ok")}
        flag_errors(small.name, progress=False)
        first = dict(zip(*small.values(["key", "label_quality"])))
        best = max(first, key=first.get)
        small.select_by("key", [best]).tag_samples(["suspicious", "bg_only"])  # stale flags
        flag_errors(small.name, progress=False)
        again = dict(zip(*small.values(["key", "label_quality"])))
        assert again == pytest.approx(first)
        tags = dict(zip(*small.values(["key", "tags"])))
        assert "suspicious" not in tags[best] and "bg_only" not in tags[best]
        assert all("reject" in tags[k] for k in keys[2:4]) and all("ok" in tags[k] for k in keys[4:6])
        assert {t: small.match_tags(t).values("key") for t in ("reject", "ok")} == review
    finally:
        small.delete()


def test_bad_input(flagged, tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        flag_errors("no-such-dataset", progress=False)
    with pytest.raises(BadInputError, match="--model"):
        flag_errors(flagged[0].name, model_run=tmp_path, progress=False)
