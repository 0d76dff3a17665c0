"""Clothing Co-Parsing (Yang, Luo, Lin, CVPR 2014), in the public release's own layout::

    photos/NNNN.jpg                      photos (0001..1004 pixel-annotated, more image-level only)
    annotations/pixel-level/NNNN.mat     MATLAB v5 (or v7.3), variable ``groundtruth``: (H, W) uint8 label ids
    annotations/image-level/NNNN.mat     variable ``tags``: 1 x T label ids present (photos without
                                         a pixel-level annotation; optional folder)
    label_list.mat                       variable ``label_list``: 1 x 59 cell of names, 0 = null
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from clothcurate.curation.sources.base import RawSample, SampleRef, ScanProblem, Source
from clothcurate.curation.sources.matlab import load_array
from clothcurate.errors import BadInputError, BadSampleError


class CCPSource(Source):
    """Reader of CCP's pixel-level annotations and, for the other photos, its image-level tags."""

    name = "ccp"

    def _layout(self) -> tuple[Path, Path, Path]:
        if not self.root.is_dir():
            raise BadInputError(f"{self.root}: no such folder; pass --ccp the folder that holds "
                                "photos/, annotations/ and label_list.mat")
        photos, pixel, labels = (self.root / "photos", self.root / "annotations" / "pixel-level",
                                 self.root / "label_list.mat")
        for p in (photos, pixel, labels):
            if not p.exists():
                raise BadInputError(f"{p}: missing; {self.root} is not a CCP folder "
                                    "(expected photos/, annotations/pixel-level/, label_list.mat)")
        return photos, pixel, labels

    def vocabulary_file(self) -> Path:
        return self.root / "label_list.mat"

    def vocabularies(self) -> dict[str, list[str]]:
        _, _, labels = self._layout()
        try:
            cell = scipy.io.loadmat(labels)["label_list"]
        except Exception as e:  # scipy raises several types for a bad file
            raise BadInputError(f"{labels}: cannot read variable 'label_list' ({e}); "
                                "restore label_list.mat from the CCP release") from e
        return {"": [str(np.asarray(x).ravel()[0]) for x in cell.ravel()]}

    def scan(self):
        photos, pixel, _ = self._layout()
        refs, problems = [], []
        # pixel-level first; a photo with both annotations is pixel-annotated (its tags are ignored)
        for kind, folder in (("pixel", pixel), ("image", self.root / "annotations" / "image-level")):
            annotated = {r.source_id for r in refs} | {p.source_id for p in problems}
            for mat in sorted(folder.glob("*.mat")):
                sid = mat.stem
                if sid in annotated:
                    continue
                photo = photos / f"{sid}.jpg"
                if not photo.exists():
                    problems.append(ScanProblem(sid, "photo missing", str(photo)))
                    continue
                refs.append(SampleRef(sid, str(photo), (str(mat),), annotation=kind))
        annotated = {r.source_id for r in refs} | {p.source_id for p in problems}
        bare = sum(1 for p in photos.glob("*.jpg") if p.stem not in annotated)
        return refs, problems, {"photo without annotation": bare}

    @staticmethod
    def _variable(ref: SampleRef, name: str, what: str) -> tuple[np.ndarray, str]:
        """Variable ``name`` of the sample's .mat (MATLAB v5 or v7.3) and the file's path."""
        (mat,) = ref.locator
        try:
            value = load_array(mat, name)
        except Exception as e:  # scipy and h5py raise many types for a truncated or odd file
            raise BadSampleError(ref.source_id, f"unreadable .mat ({type(e).__name__}: {e})", mat) from e
        if value is None:
            raise BadSampleError(ref.source_id, f"no variable {name!r} in the {what}", mat)
        return value, mat

    def read(self, ref: SampleRef) -> RawSample:
        gt, mat = self._variable(ref, "groundtruth", ".mat")
        if gt.ndim != 2 or not np.issubdtype(gt.dtype, np.integer):
            raise BadSampleError(ref.source_id, f"'groundtruth' is {gt.dtype} {gt.shape}, "
                                 "expected a 2-D integer label array", mat)
        return RawSample(masks={"": gt}, annotation_path=mat)

    def read_tags(self, ref: SampleRef) -> np.ndarray:
        tags, mat = self._variable(ref, "tags", "image-level .mat")
        if tags.ndim > 2 or (tags.ndim == 2 and min(tags.shape) > 1):
            raise BadSampleError(ref.source_id, f"'tags' is {tags.dtype} {tags.shape}, expected a vector of "
                                 "label ids", mat)
        # MATLAB saves plain numbers as double: accept whole numbers of any numeric type
        if tags.dtype.kind not in "biuf" or (tags.dtype.kind == "f" and not np.all(np.mod(tags, 1) == 0)):
            raise BadSampleError(ref.source_id, f"'tags' is {tags.dtype}, expected integer label ids", mat)
        return tags.ravel().astype(np.int64)
