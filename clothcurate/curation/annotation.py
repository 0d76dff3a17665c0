"""How a sample is annotated: a pixel mask, or only image-level tags.

CCP annotates 1,004 photos pixel by pixel and 994 more only with the labels present in each
(``annotations/image-level/NNNN.mat``). Ingest adds both; the tag-only ("image") samples carry
no ``ground_truth``, ``classes``, ``class_pixels`` or ``person``, only ``image_tags`` (Table I
classes, background dropped) and ``annotation == "image"``. Everything that reads masks (export,
flag-errors, write-back, reports) selects :func:`pixel_annotated` samples; a sample ingested before
the ``annotation`` field existed has none and counts as pixel-annotated.

Example::

    from clothcurate.curation.annotation import pixel_annotated, tag_only
    print(len(pixel_annotated(ds)), len(tag_only(ds)))
"""

from __future__ import annotations

__all__ = ["ANNOTATION_FIELD", "IMAGE", "IMAGE_TAGS_FIELD", "PIXEL", "pixel_annotated", "tag_only"]

#: sample field holding :data:`PIXEL` or :data:`IMAGE`
ANNOTATION_FIELD = "annotation"
#: a 15-class mask (``ground_truth``) and the fields measured from it
PIXEL = "pixel"
#: image-level tags only (``image_tags``), no mask
IMAGE = "image"
#: ``fo.Classifications`` of the Table I classes a tag-only photo's tags name (background dropped)
IMAGE_TAGS_FIELD = "image_tags"


def tag_only(view):
    """The samples of ``view`` (a FiftyOne dataset or view) annotated with image-level tags only."""
    from fiftyone import ViewField as F

    return view.match(F(ANNOTATION_FIELD) == IMAGE)


def pixel_annotated(view):
    """The samples of ``view`` with a pixel mask (including those ingested before the
    ``annotation`` field existed, which have none)."""
    from fiftyone import ViewField as F

    return view.match(F(ANNOTATION_FIELD) != IMAGE)
