"""A tiny trained run on real CCP photos, made without FiftyOne (for the inference tests).

The export follows docs/contracts.md exactly as export-folds writes it (person crops of the real
annotation box, resized to S x S, 2 folds), built here from the CCP reader, the label map and
:mod:`clothcurate.geometry` so that these tests need no database; the run is a real
``train_eval`` (FPN, ImageNet Lite0 encoder, 1 epoch per fold, CPU).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from clothcurate.curation.sources.ccp import CCPSource
from clothcurate.geometry import crop_box, crop_resize
from clothcurate.labelmaps import TARGET_CLASSES, load_labelmap
from clothcurate.workspace import sample_key

#: real run folders of the 2026-11-24 GPU session, shipped without their .pt checkpoints
GPU_RUNS = Path(__file__).resolve().parents[1] / "docs" / "gpu-2026-11-24" / "runs"
SIZE = 64
#: 14 real CCP photos (every third of the first 40)
IDS = [f"{i:04d}" for i in range(1, 41, 3)]
EPOCHS = 15  # enough for the model detector to find people on these photos


def person_box(gt: np.ndarray) -> list[float] | None:
    """Relative ``[x, y, w, h]`` of the non-background pixels (what ingest stores as ``person``)."""
    x, y, w, h = cv2.boundingRect(gt)
    height, width = gt.shape
    return [x / width, y / height, w / width, h / height] if w else None


def ccp_samples(ccp_dir: Path, ids: list[str]) -> list[tuple[str, Path, np.ndarray]]:
    """``(key, photo, (H, W) uint8 15-class mask)`` of some real CCP samples."""
    source, labelmap = CCPSource(ccp_dir), load_labelmap("ccp")
    refs = {r.source_id: r for r in source.scan()[0]}
    out = []
    for sid in ids:
        ref = refs[sid]
        gt = labelmap.remap(source.read(ref).masks[""], source_id=sid)
        out.append((sample_key("ccp", sid), Path(ref.image_path), gt))
    return out


def make_export(ccp_dir: Path, out: Path, ids: list[str], *, size: int = SIZE, folds: int = 2) -> Path:
    """An export folder of person crops (contract layout) of the given CCP ids."""
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir()
    records = []
    for i, (key, photo, gt) in enumerate(ccp_samples(ccp_dir, ids)):
        image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        h, w = gt.shape
        box = crop_box(person_box(gt), width=w, height=h)
        img_c, mask_c = crop_resize(image, gt, box=box, size=size)
        cv2.imwrite(str(out / "images" / f"{key}.jpg"), img_c)
        cv2.imwrite(str(out / "masks" / f"{key}.png"), mask_c)
        records.append({"key": key, "id": key, "source": "ccp", "source_id": key[4:], "fold": i % folds,
                        "image": f"images/{key}.jpg", "mask": f"masks/{key}.png", "orig_size": [w, h],
                        "crop_box": list(box), "classes": [TARGET_CLASSES[c] for c in np.unique(mask_c)]})
    meta = {"version": 1, "dataset": "tiny", "folds": folds, "seed": 0, "crop": "person", "size": size,
            "format": "png", "created": "2026-11-30T00:00:00+00:00", "left_out": {"reject": 0, "bg_only": 0}}
    (out / "export.json").write_text(json.dumps(meta))
    (out / "classes.json").write_text(json.dumps({"classes": list(TARGET_CLASSES),
                                                  "mask_targets": dict(enumerate(TARGET_CLASSES))}))
    (out / "folds.json").write_text(json.dumps({"k": folds, "seed": 0, "samples": records}))
    return out


def train_tiny(export: Path, run_dir: Path, *, epochs: int = 1) -> Path:
    """A real 2-fold FPN run on the export (CPU, one thread)."""
    from clothcurate.training.run import train_eval

    train_eval(arch="fpn", encoder="tf_efficientnet_lite0", encoder_weights="imagenet", data_dir=export,
               fold_spec="all", epochs=epochs, patience=10, image_size=SIZE, batch_size=4, lr=1e-3, loss="ce",
               workers=0, device="cpu", run_dir=run_dir, dataset=None, seed=0)
    return run_dir


@pytest.fixture(scope="session")
def tiny(ccp_dir, tmp_path_factory) -> tuple[Path, Path]:
    """``(export, run)``: a real 2-fold FPN run, 15 epochs per fold, on 14 CCP person crops at
    64 px, trained once per test session (about 30 s on one CPU thread)."""
    root = tmp_path_factory.mktemp("tiny")
    export = make_export(ccp_dir, root / "export", IDS)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # one spinning OpenMP thread is faster on the shared 2-core machine
    try:
        return export, train_tiny(export, root / "run", epochs=EPOCHS)
    finally:
        torch.set_num_threads(before)
