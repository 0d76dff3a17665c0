"""The person-detector registry: one name per detector, the only place the names live.

A detector finds the people in one photo. Built-in detectors register themselves when
:mod:`clothcurate.detection` is imported; a detector defined elsewhere (e.g. the first pass of a
segmentation model) registers the same way, with :func:`register_detector` on its class.

Shapes: H, W = photo rows and columns.

Example::

    @register_detector("mine")
    class MyDetector:
        def __init__(self, *, min_score: float = 0.5): ...
        def detect(self, image: np.ndarray) -> list[PersonBox]: ...

    boxes = create_detector("mine", device="cpu").detect(photo_rgb)   # best first
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from clothcurate.errors import BadInputError

__all__ = ["PersonBox", "Detector", "DETECTORS", "register_detector", "create_detector", "check_image",
           "clip_corners", "best_first"]


@dataclass(frozen=True)
class PersonBox:
    """One detected person.

    Attributes:
        box: ``(x, y, w, h)`` in photo pixels (integers, inside the photo, at least 1 x 1).
        score: the detector's confidence in [0, 1].
        detector: the registry name of the detector that found it.
    """

    box: tuple[int, int, int, int]
    score: float
    detector: str

    def relative(self, *, width: int, height: int) -> list[float]:
        """``[x, y, w, h]`` as fractions of the photo (FiftyOne's Detection form, which
        :func:`clothcurate.geometry.crop_box` takes)."""
        x, y, w, h = self.box
        return [x / width, y / height, w / width, h / height]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``{"box": [x, y, w, h], "score", "detector"}``."""
        return {"box": list(self.box), "score": round(float(self.score), 4), "detector": self.detector}


class Detector(Protocol):
    """What a registered detector provides."""

    name: str
    min_score: float

    def detect(self, image: np.ndarray) -> list[PersonBox]:
        """The people in one photo.

        Args:
            image: (H, W, 3) uint8 RGB.

        Returns:
            Every person scoring at least ``min_score``, best first (empty when none).
        """


D = TypeVar("D", bound=Callable[..., Detector])

#: detector factories (classes) by registry name
DETECTORS: dict[str, Callable[..., Detector]] = {}


def register_detector(name: str) -> Callable[[D], D]:
    """Class decorator adding a detector to :data:`DETECTORS` under ``name`` (and setting its
    ``name`` attribute when it is a class).

    Raises:
        ValueError: ``name`` is taken by another detector.
    """

    def add(factory: D) -> D:
        known = DETECTORS.get(name)
        # re-importing the same module (e.g. importlib.reload) registers the same class again
        if known is not None and _where(known) != _where(factory):
            raise ValueError(f"detector {name!r} is registered twice ({known!r} and {factory!r})")
        if inspect.isclass(factory):
            factory.name = name
        DETECTORS[name] = factory
        return factory

    return add


def _where(factory: Callable) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', repr(factory))}"


def create_detector(name: str, **options: Any) -> Detector:
    """The detector registered as ``name``, built with the options it takes.

    Options a detector's constructor does not take are left out, so that a caller can pass the
    same context (``device=...``, ``segmenter=...``) whichever detector the user chose.

    Args:
        name: a key of :data:`DETECTORS`.
        **options: keyword arguments for the detector's constructor.

    Raises:
        BadInputError: an unknown name, or a detector that cannot run here (e.g. missing weights).
    """
    factory = DETECTORS.get(name)
    if factory is None:
        raise BadInputError(f"detector {name!r} is unknown; choose one of {', '.join(sorted(DETECTORS))}")
    params = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        options = {k: v for k, v in options.items() if k in params}
    return factory(**options)


def check_image(image: np.ndarray) -> None:
    """Raise ValueError unless ``image`` is an (H, W, 3) uint8 array (a programming error: photos are
    decoded by the caller)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        what = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"a detector takes an (H, W, 3) uint8 RGB photo, not {what}")


def clip_corners(x0: float, y0: float, x1: float, y1: float, *, width: int, height: int) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` integer pixels of a corner box ``(x0, y0)-(x1, y1)``, inside a ``width`` x
    ``height`` photo and at least 1 x 1."""
    left = min(max(int(np.floor(x0)), 0), width - 1)
    top = min(max(int(np.floor(y0)), 0), height - 1)
    right = min(max(int(np.ceil(x1)), left + 1), width)
    bottom = min(max(int(np.ceil(y1)), top + 1), height)
    return left, top, right - left, bottom - top


def best_first(boxes: Iterable[PersonBox]) -> list[PersonBox]:
    """The boxes sorted by score, highest first (ties keep their order)."""
    return sorted(boxes, key=lambda b: -b.score)
