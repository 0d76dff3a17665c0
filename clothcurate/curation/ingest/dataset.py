"""The FiftyOne side of ingest: the dataset written to and the samples put in it.

The dataset is created with its first sample (:class:`Target`), so an ingest that adds nothing
leaves no empty dataset behind for later commands to trip over.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from clothcurate.curation.annotation import ANNOTATION_FIELD, IMAGE, IMAGE_TAGS_FIELD, PIXEL
from clothcurate.curation.db import load_dataset, open_or_create
from clothcurate.curation.fix.versions import ORIGINAL
from clothcurate.curation.ingest.folders import raw_field
from clothcurate.errors import BadInputError
from clothcurate.labelmaps import LabelMap
from clothcurate.workspace import mask_dir

__all__ = ["Target", "declare_source", "point_to_restored", "remove_source", "source_view", "to_sample"]


class Target:
    """The FiftyOne dataset ingested into, created only when its first sample is added.

    Attributes:
        name: the dataset name.
        ds: the dataset, None while it does not exist.
    """

    def __init__(self, name: str):
        self.name = name
        try:
            self.ds = load_dataset(name)
        except BadInputError:  # not found
            self.ds = None
        self._setup: list[Callable] = []

    def configure(self, setup: Callable) -> None:
        """Apply ``setup(ds)`` now if the dataset exists, else when it is created.

        Args:
            setup: a function of the dataset.
        """
        self._setup.append(setup)
        if self.ds is not None:
            setup(self.ds)

    def get(self):
        """The dataset, created (and configured) on first use.

        Returns:
            The FiftyOne dataset.
        """
        if self.ds is None:
            ds = open_or_create(self.name)
            for setup in self._setup:
                setup(ds)
            self.ds = ds
        return self.ds


def source_view(ds, source: str):
    """The samples of one source.

    Args:
        ds: the dataset.
        source: the source name (``ccp``, ``cfpd``).

    Returns:
        A FiftyOne view.
    """
    from fiftyone import ViewField as F

    return ds.match(F("source") == source)


def declare_source(ds, source: str, labelmap: LabelMap, vocab: dict[str, list[str]]) -> None:
    """Record a source's raw vocabularies (mask targets) and label map on the dataset.

    Args:
        ds: the dataset.
        source: the source name.
        labelmap: the label map its samples are remapped with (checked by later ingests).
        vocab: ``{raw field suffix: label names}``.
    """
    targets = dict(ds.mask_targets)
    targets.update({raw_field(source, k): dict(enumerate(v)) for k, v in vocab.items()})
    ds.mask_targets = targets
    ds.info.setdefault("labelmaps", {})[source] = labelmap.path
    ds.info.setdefault("labelmap_targets", {})[source] = list(labelmap.targets)
    ds.save()


def remove_source(ds, source: str, fields: list[str]) -> None:
    """Delete a source's samples and their mask files (``--overwrite``).

    Args:
        ds: the dataset.
        source: the source name.
        fields: its mask fields.
    """
    view = source_view(ds, source)
    keys = view.values("key")
    ds.delete_samples(view)
    for fld in fields:
        for k in keys:
            Path(mask_dir(ds.name, fld), f"{k}.png").unlink(missing_ok=True)


def to_sample(fo, rec: dict, source: str):
    """The FiftyOne sample of a worker's record.

    Args:
        fo: the ``fiftyone`` module.
        rec: what :func:`clothcurate.curation.ingest.worker.process` returned for the sample.
        source: the source name.

    Returns:
        A new ``fo.Sample``: a pixel-annotated one with its masks, classes, pixel counts and person
        box, or a tag-only one with its ``image_tags``.
    """
    sample = fo.Sample(
        filepath=rec["filepath"], source=source, source_id=rec["source_id"], key=rec["key"],
        metadata=fo.ImageMetadata(width=rec["width"], height=rec["height"], size_bytes=rec["size_bytes"],
                                  mime_type=rec["mime_type"], num_channels=rec["num_channels"]),
    )
    sample[ANNOTATION_FIELD] = rec.get("annotation", PIXEL)
    if rec["exif_orientation"] is not None:  # ignored by every reader: see clothcurate.images
        sample["exif_orientation"] = rec["exif_orientation"]
    if sample[ANNOTATION_FIELD] == IMAGE:  # no mask, so none of the fields measured from one
        sample[IMAGE_TAGS_FIELD] = fo.Classifications(
            classifications=[fo.Classification(label=c) for c in rec["image_tags"]])
        return sample
    sample["classes"], sample["class_pixels"] = rec["classes"], rec["class_pixels"]
    for fld, path in rec["masks"].items():
        sample[fld] = fo.Segmentation(mask_path=path)
    if rec["person"] is not None:
        sample["person"] = fo.Detection(label="person", bounding_box=rec["person"])
    return sample


def point_to_restored(fo, ds, rec: dict, stored: dict[str, str | None]) -> None:
    """Point a sample's mask fields at its rewritten masks where they pointed elsewhere (a moved
    workspace, a field never set); nothing else of the sample changes.

    Args:
        fo: the ``fiftyone`` module.
        ds: the dataset.
        rec: the worker's record of the sample.
        stored: ``{mask field: path the dataset holds or None}``.
    """
    from fiftyone import ViewField as F

    changed = {f: p for f, p in rec["masks"].items() if stored.get(f) != p}
    if not changed:
        return
    sample = ds.one(F("key") == rec["key"])
    for fld, path in changed.items():
        if fld == "ground_truth" and ds.has_sample_field(ORIGINAL) and sample[ORIGINAL] is not None:
            fld = ORIGINAL  # corrected (clothcurate fix): ground_truth stays on its version
        if sample[fld] is None:
            sample[fld] = fo.Segmentation(mask_path=path)
        else:
            sample[fld].mask_path = path
    sample.save()
