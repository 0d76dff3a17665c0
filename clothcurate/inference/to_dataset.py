"""``clothcurate predict --dataset NAME``: predictions on new photos as a FiftyOne dataset.

Each photo becomes (or updates) one sample, matched by its ``filepath``, with:

* ``pred``: Segmentation; its mask is a copy of ``OUT_DIR/<stem>.png`` under the workspace
  (``mask_dir(NAME, "pred")/<key>.png``), so the dataset survives the output folder being moved;
* ``persons``: Detections (``person`` boxes relative to the photo, the detector's confidence and
  name);
* ``garments``: Classifications (garment class, ``confidence`` = its pixel share of the photo,
  ``color`` = its CFPD colour name);
* ``key``: ``photo_<stem>``.

The dataset is created when missing (mask targets: the 15 classes; the App draws them in the
project's class colours). A dataset made by ``clothcurate ingest`` (samples with a
``ground_truth``) is refused: photos without annotations would enter its folds and checks.
FiftyOne is imported only here, so ``predict`` without ``--dataset`` runs without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clothcurate.atomic import write_bytes
from clothcurate.errors import BadInputError
from clothcurate.workspace import mask_dir, sample_key

__all__ = ["PhotoPrediction", "check_dataset", "add_to_dataset"]


@dataclass(frozen=True)
class PhotoPrediction:
    """What predict wrote for one photo.

    Attributes:
        photo: the photo.
        mask: its ``<stem>.png`` (15-class, the photo's size).
        size: ``(W, H)``.
        persons: ``{"box": [x, y, w, h] pixels, "score", "detector"}`` per person.
        garments: ``{"class", "pixel_share", "color"}`` per garment class.
    """

    photo: Path
    mask: Path
    size: tuple[int, int]
    persons: list[dict]
    garments: list[dict]


def check_dataset(name: str) -> None:
    """Refuse, before any work, a dataset name predictions cannot go to.

    Raises:
        BadInputError: an empty name, or a dataset made by ``clothcurate ingest``.
    """
    from clothcurate.curation.db import _list_datasets, fiftyone

    if not name.strip():
        raise BadInputError("--dataset '': pass a dataset name, or leave --dataset out")
    fo = fiftyone()
    if name not in _list_datasets(fo):
        return
    ds = fo.load_dataset(name)
    if ds.has_sample_field("ground_truth") and len(ds.exists("ground_truth")):
        raise BadInputError(f"dataset {name!r} holds annotated samples (made by clothcurate ingest); new photos "
                            "would enter its folds and checks, pass another --dataset name for predictions")


def add_to_dataset(name: str, predictions: Sequence[PhotoPrediction]) -> int:
    """Add or update one sample per photo in the FiftyOne dataset ``name``.

    Args:
        name: the dataset (created when missing).
        predictions: what predict wrote.

    Returns:
        The number of samples in the dataset afterwards.

    Raises:
        BadInputError: see :func:`check_dataset`; or a photo whose key (``photo_<stem>``) the
            dataset already gives to another photo.
    """
    from clothcurate.curation.db import fiftyone, open_or_create
    from clothcurate.curation.review import apply_color_scheme
    from clothcurate.labelmaps import mask_targets

    check_dataset(name)
    fo = fiftyone()
    ds = open_or_create(name)
    masks = mask_dir(name, "pred").resolve()
    masks.mkdir(parents=True, exist_ok=True)
    owner = dict(zip(*ds.values(["key", "filepath"])))
    new, updates = [], {}
    for p in predictions:
        key, filepath = sample_key("photo", p.photo.name), str(p.photo.resolve())
        if owner.get(key, filepath) != filepath:
            raise BadInputError(f"{filepath}: dataset {name!r} already has another photo named {p.photo.stem!r} "
                                f"({owner[key]}); rename one, or pass another --dataset")
        target = masks / f"{key}.png"
        write_bytes(target, p.mask.read_bytes())
        width, height = p.size
        persons = fo.Detections(detections=[
            fo.Detection(label="person", bounding_box=[d["box"][0] / width, d["box"][1] / height,
                                                       d["box"][2] / width, d["box"][3] / height],
                         confidence=d["score"], detector=d["detector"]) for d in p.persons])
        garments = fo.Classifications(classifications=[
            fo.Classification(label=g["class"], confidence=g["pixel_share"], color=g["color"]) for g in p.garments])
        fields = {"key": key, "pred": fo.Segmentation(mask_path=str(target)), "persons": persons,
                  "garments": garments}
        if key in owner:
            updates[filepath] = fields
        else:
            new.append(fo.Sample(filepath=filepath, **fields))
            owner[key] = filepath
    if new:
        ds.add_samples(new, progress=False)
    for field in ("pred", "persons", "garments") if updates else ():
        ds.set_values(field, {fp: f[field] for fp, f in updates.items()}, key_field="filepath")
    if not ds.default_mask_targets and "pred" not in ds.mask_targets:
        ds.mask_targets = {**ds.mask_targets, "pred": mask_targets()}
        ds.save()
    apply_color_scheme(ds)
    return len(ds)
