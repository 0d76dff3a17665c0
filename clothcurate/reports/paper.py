"""The seed paper's published figures (Tables II and III, the FPN mIoU), loaded from ``paper.yaml``.

All values are fractions in [0, 1] (the YAML keeps the paper's percentages as printed), so they
compare directly with ``metrics.json``.

Example::

    paper = load_paper()
    paper.table_ii["fpn"]["f1"]                  # 0.779
    paper.table_iii["romper"]["recall"]          # 0.309
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml

from clothcurate.labelmaps import TARGET_CLASSES

__all__ = ["METRICS", "PaperFigures", "load_paper"]

METRICS: tuple[str, ...] = ("precision", "recall", "f1", "iou")


@dataclass(frozen=True)
class PaperFigures:
    """The paper's figures as fractions.

    Attributes:
        source: the paper's citation.
        dataset: what the paper trained and evaluated on.
        table_ii: ``{arch: {metric: value}}``, arch in ``linknet, pspnet, unet, fpn``; metrics that
            the paper does not give are absent (only FPN has ``iou``).
        table_iii_arch: the architecture of Table III (``fpn``).
        table_iii: ``{class name: {"precision", "recall", "f1": value}}`` for the 15 classes.
        iou_satisfactory: the IoU above which the paper calls a class satisfactory (0.5).
    """

    source: str
    dataset: str
    table_ii: dict[str, dict[str, float]]
    table_iii_arch: str
    table_iii: dict[str, dict[str, float]]
    iou_satisfactory: float


def _fractions(d: dict) -> dict[str, float]:
    return {k: round(float(v) / 100.0, 6) for k, v in d.items()}


@lru_cache(maxsize=1)
def load_paper() -> PaperFigures:
    """Load the paper's figures shipped with the package.

    Returns:
        The figures, percentages turned into fractions; Table III in ``TARGET_CLASSES`` order.
    """
    text = resources.files(__package__).joinpath("paper.yaml").read_text()
    data = yaml.safe_load(text)
    t3 = data["table_iii"]["classes"]
    return PaperFigures(
        source=data["source"],
        dataset=data["dataset"],
        table_ii={arch: _fractions(v) for arch, v in data["table_ii"].items()},
        table_iii_arch=data["table_iii"]["arch"],
        table_iii={c: _fractions(t3[c]) for c in TARGET_CLASSES},
        iou_satisfactory=float(data["iou_satisfactory"]) / 100.0,
    )
