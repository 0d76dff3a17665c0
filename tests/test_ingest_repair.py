"""A re-run of ingest restores lost mask files and keeps review work; no message advises a command
that destroys review work without saying so (real CCP files, real FiftyOne database)."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from ccp_layout import make_ccp_subset
from clothcurate.cli import main
from clothcurate.curation.export import export_folds
from clothcurate.curation.ingest import ingest
from clothcurate.errors import BadInputError

IDS = ["0002", "0003", "0004", "0005", "0006", "0007"]


def _review(ds) -> None:
    """What a reviewer and a training run leave on the samples."""
    ds.select_by("source_id", ["0002"]).tag_samples("reject")
    ds.select_by("source_id", ["0003"]).tag_samples("ok")
    for sample in ds.select_by("source_id", ["0003", "0004"]):
        sample["iou_fpn"] = 0.5
        sample["label_findings"] = ["region labelled dress looks like coat"]
        sample.save()
    assert ds.count_sample_tags() == {"reject": 1, "ok": 1}


def _state(ds) -> dict:
    fields = ["key", "tags", "iou_fpn", "label_findings", "classes", "class_pixels", "ground_truth.mask_path",
              "raw_ccp.mask_path", "id"]
    return {row[0]: row for row in zip(*ds.values(fields))}


def test_rerun_restores_lost_masks_and_keeps_review_work(tmp_path, ccp_dir, tmp_home):
    import fiftyone as fo

    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, IDS)
    ingest(ccp=root, dataset="repair", progress=False)
    ds = fo.load_dataset("repair")
    _review(ds)
    before = _state(ds)
    masks = {key: (cv2.imread(gt, cv2.IMREAD_UNCHANGED), cv2.imread(raw, cv2.IMREAD_UNCHANGED))
             for key, (*_, gt, raw, _id) in before.items()}
    for path in (before["ccp_0003"][6], before["ccp_0004"][7], before["ccp_0005"][6]):
        os.unlink(path)
    with open(before["ccp_0006"][6], "r+b") as f:  # a truncated PNG (no IEND chunk)
        f.truncate(200)

    result = CliRunner().invoke(main, ["ingest", "--ccp", str(root), "--dataset", "repair"])
    assert result.exit_code == 0, result.output
    assert "0 added, 6 already present, 4 restored" in result.output
    ds.reload()
    assert _state(ds) == before  # tags, predictions, findings, ids and paths kept
    for key, (gt, raw) in masks.items():
        row = before[key]
        np.testing.assert_array_equal(cv2.imread(row[6], cv2.IMREAD_UNCHANGED), gt, err_msg=key)
        np.testing.assert_array_equal(cv2.imread(row[7], cv2.IMREAD_UNCHANGED), raw, err_msg=key)
    again = ingest(ccp=root, dataset="repair", progress=False)
    assert again.added == {"ccp": 0} and again.restored == {"ccp": 0}


def test_missing_mask_message_advises_no_destructive_command(tmp_path, ccp_dir, tmp_home):
    import fiftyone as fo

    root = make_ccp_subset(tmp_path / "ccp", ccp_dir, IDS)
    ingest(ccp=root, dataset="repair-advice", progress=False)
    ds = fo.load_dataset("repair-advice")
    os.unlink(ds.select_by("source_id", ["0004"]).first().ground_truth.mask_path)
    with pytest.raises(BadInputError) as e:
        export_folds(dataset="repair-advice", out=tmp_path / "folds", folds=2, progress=False)
    message = str(e.value)
    assert "ccp_0004" in message and "clothcurate ingest" in message
    assert "--overwrite" not in message or "delete" in message.split("--overwrite", 1)[1][:80]
