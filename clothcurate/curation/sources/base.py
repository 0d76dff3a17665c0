"""The interface every dataset reader implements.

Shapes: H, W = photo rows and columns. Raw masks are (H, W) integer arrays of the source's own
label ids (0-based, id 0 = the source's background), indexing :attr:`Source.vocabularies`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SampleRef:
    """A picklable handle on one sample, cheap to make (no pixel decoded).

    Attributes:
        source_id: the dataset's own id (``0001`` for CCP, the image file name for CFPD).
        image_path: absolute path of the photo (never copied or modified).
        locator: whatever the reader needs to find the annotation (a ``.mat`` path, an HDF5
            reference index ...); opaque to ingest.
        annotation: ``"pixel"`` (:meth:`Source.read` decodes its masks) or ``"image"`` (only
            image-level tags: :meth:`Source.read_tags`).
    """

    source_id: str
    image_path: str
    locator: tuple = ()
    annotation: str = "pixel"


@dataclass
class RawSample:
    """One decoded annotation.

    Attributes:
        masks: ``{raw field suffix: (H, W) integer label ids}``; the key ``""`` is the label mask
            remapped to the target classes (field ``raw_<source>``); other keys are extra raw
            fields (CFPD's colours: key ``"color"`` -> field ``raw_cfpd_color``).
        annotation_path: the file the annotation came from (for error messages).
    """

    masks: dict[str, np.ndarray]
    annotation_path: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class ScanProblem:
    """A sample that the scan already knows is unusable (missing photo, broken record)."""

    source_id: str
    reason: str
    path: str | None = None


class Source(ABC):
    """A dataset reader.

    Attributes:
        name: ``ccp`` / ``cfpd`` (the ``source`` field, and ``raw_<name>``).
        root: the dataset folder.
    """

    name: str = ""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()

    @abstractmethod
    def vocabularies(self) -> dict[str, list[str]]:
        """``{raw field suffix: label names}``; ``""`` is the vocabulary remapped by the label map.

        Raises:
            BadInputError: the folder is missing or not laid out as this dataset.
        """

    def vocabulary_file(self) -> Path:
        """The file the vocabularies come from (named in errors)."""
        return self.root

    @abstractmethod
    def scan(self) -> tuple[list[SampleRef], list[ScanProblem], dict[str, int]]:
        """List the samples.

        Returns:
            ``(refs, problems, skipped)``: usable refs in the dataset's order (pixel-annotated
            first, then tag-only ones), samples known to be unusable, and counts of samples left
            out on purpose (``{"photo without annotation": 2}``).

        Raises:
            BadInputError: the folder is missing or not laid out as this dataset (one line).
        """

    @abstractmethod
    def read(self, ref: SampleRef) -> RawSample:
        """Decode one sample's raw masks.

        Raises:
            BadSampleError: corrupt or truncated file, broken record, ids out of range.
        """

    def read_tags(self, ref: SampleRef) -> np.ndarray:
        """The source label ids an image-level annotation names (a ref with ``annotation="image"``).

        Returns:
            (T,) int64 source label ids, as listed (duplicates and id 0 possible).

        Raises:
            BadSampleError: corrupt file, missing variable, not a vector of integers.
        """
        raise NotImplementedError(f"source {self.name!r} has no image-level annotations")
