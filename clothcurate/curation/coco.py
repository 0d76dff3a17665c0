"""Class masks as COCO instances: one RLE segmentation per class present per image (pycocotools).

Shapes: H, W = mask rows and columns.

Conventions of the export's ``coco.json``: category ids are the mask ids 1..14 of the target
classes, so ``category_id`` is the pixel value; background (0) is *not* a category: a pixel that
no annotation covers is background, as in COCO. Each annotation is ``iscrowd: 0`` with a
compressed RLE (``counts`` a string) covering every pixel of its class in the image, so painting
the annotations' masks with their category id onto a zero canvas gives back the 15-class mask.

Example::

    anns = mask_to_annotations(mask)                # [{"category_id", "segmentation", "area", "bbox"}]
    doc = coco_document(images=[{"id": 1, "file_name": "ccp_0001.jpg", "width": W, "height": H}],
                        annotations=[{**a, "image_id": 1} for a in anns])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as mask_utils

from clothcurate.labelmaps import BACKGROUND, TARGET_CLASSES

__all__ = ["categories", "coco_document", "mask_to_annotations"]


def categories(classes: Sequence[str] = TARGET_CLASSES) -> list[dict]:
    """COCO categories: every class but background, ``id`` = its mask value."""
    return [{"id": i, "name": name, "supercategory": "person"} for i, name in enumerate(classes) if i != BACKGROUND]


def mask_to_annotations(mask: np.ndarray) -> list[dict]:
    """One COCO annotation (without ``id``/``image_id``) per non-background class in a mask.

    Args:
        mask: (H, W) uint8 class ids.

    Returns:
        In increasing class id: ``{"category_id": c, "segmentation": {"size": [H, W], "counts": str},
        "area": int, "bbox": [x, y, w, h], "iscrowd": 0}``.
    """
    present = np.flatnonzero(np.bincount(mask.ravel(), minlength=1))
    columns = np.ascontiguousarray(mask.T)  # transposed once: (columns == c).T is Fortran-ordered (H, W)
    out = []
    for c in present:
        if c == BACKGROUND:
            continue
        rle = mask_utils.encode((columns == c).view(np.uint8).T)
        out.append({
            "category_id": int(c),
            "segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")},
            "area": int(mask_utils.area(rle)),
            "bbox": [float(v) for v in mask_utils.toBbox(rle)],
            "iscrowd": 0,
        })
    return out


def coco_document(*, images: list[dict], annotations: list[dict], description: str = "clothcurate export",
                  classes: Sequence[str] = TARGET_CLASSES) -> dict:
    """A COCO instances document; annotations get consecutive ids from 1.

    Args:
        images: ``{"id", "file_name", "width", "height", ...}`` per image.
        annotations: from :func:`mask_to_annotations`, each with its ``image_id`` added.
        description: ``info.description``.
        classes: target class names (mask value = position).

    Returns:
        ``{"info", "licenses", "categories", "images", "annotations"}`` ready for ``json.dump``.
    """
    anns = [{"id": i, **a} for i, a in enumerate(annotations, start=1)]
    return {"info": {"description": description, "version": "1"}, "licenses": [],
            "categories": categories(classes), "images": images, "annotations": anns}
