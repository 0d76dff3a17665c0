"""Pseudo-masks of a run's tag-only photos (``clothcurate pseudo-label``, docs/contracts.md).

``pseudo-label --run RUN_DIR`` writes them under the teacher's run folder and ``train-eval
--pseudo RUN_DIR`` reads them; both go through :class:`PseudoFolder`, the one place that knows the
layout. Imports neither torch nor FiftyOne (a GPU machine trains without FiftyOne)::

    RUN_DIR/pseudo/
      pseudo.json            the manifest (settings, per-fold teacher checkpoint, per-sample facts)
      images/<key>.jpg       H x W person crop of the photo (RGB JPEG, quality 95), shared by folds
      masks/<k>/<key>.png    H x W uint8: the class fold k's teacher predicts, or IGNORE_INDEX

H x W is the teacher's export ``size`` (the model input size for an export of whole photos). A mask
of fold k comes from fold k's own model (``folds/<k>/best.pt``): the student of fold k trains on
it, and that teacher never saw fold k's test images. A pixel holds a class allowed for the photo
(named by its image-level tags, or in :data:`ALWAYS_ALLOWED`), picked as the manifest's
``tag_rule`` says (:data:`TAG_RULES`), when the teacher's softmax for it is at least the
threshold; other pixels hold :data:`IGNORE_INDEX`, which every training loss skips.

Example::

    pf = PseudoFolder.open("runs/fpn")
    pf.check_for(export, folds=[0, 1])         # same test folds as the student's export
    pf.samples()[0].key, pf.mask_path(0, "ccp_1005")
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clothcurate.atomic import write_json
from clothcurate.errors import BadInputError
from clothcurate.folders.export import ExportFolder

__all__ = ["IGNORE_INDEX", "ALWAYS_ALLOWED", "TAG_RULES", "DEFAULT_TAG_RULE", "PSEUDO_VERSION", "PseudoSample",
           "PseudoFolder", "folds_digest"]

#: mask value of a pixel without a pseudo-label (skipped by every training loss)
IGNORE_INDEX = 255
#: classes a pseudo-mask may hold whatever the photo's tags say. Counted on CCP's 994 tag files:
#: "null" (background) is tagged in 992 and ten other labels (belt, bracelet ...) map to
#: background, so background is always allowed; skin is tagged in all 994 and is every person's,
#: so always allowed too. Hair is left to the tags: of the 46 photos whose tags omit hair, 43 are
#: tagged hat (hidden hair, as in 44 of the 1,004 pixel-annotated masks, which hold no hair), so
#: there a "hair" prediction is more likely a mistaken hat than a forgotten tag
ALWAYS_ALLOWED = ("background", "skin")
#: how a photo's image-level tags turn a teacher's softmax into a pseudo-mask
#: (:func:`clothcurate.training.pseudo_label.filter_pseudo`; recorded as the manifest's ``tag_rule``)
TAG_RULES = {
    "restrict": "the most probable of the classes the tags allow (softmax renormalised over them)",
    "drop": "the argmax, ignored where the tags do not allow it",
}
#: ``restrict``: a romper photo's torso, which a teacher calls shirt, becomes romper rather than
#: ignored, so the rare classes a teacher confuses get pixels (docs/results.md, "Self-training")
DEFAULT_TAG_RULE = "restrict"
PSEUDO_VERSION = 1
_HINT = "run `clothcurate pseudo-label --run RUN_DIR --dataset NAME` first"


def folds_digest(pairs: Iterable[tuple[str, int]]) -> str:
    """A fingerprint of a fold assignment: sha256 of the sorted ``key<TAB>fold`` lines.

    Two exports with the same digest put every sample in the same test fold, so the teacher of
    fold k of one never saw the test images of fold k of the other.
    """
    text = "\n".join(f"{key}\t{int(fold)}" for key, fold in sorted(pairs))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class PseudoSample:
    """One tag-only photo of ``pseudo.json``.

    Attributes:
        key: sample key (``ccp_1005``).
        photo: path of the photo.
        orig_size: ``(W, H)`` of the photo.
        crop_box: ``(x0, y0, x1, y1)`` in photo pixels of the person crop, or None when no person
            was found (no crop, no masks: the photo is not used).
        tags: the Table I classes its image-level tags name.
        person_score: the detector's score of the person, or None.
    """

    key: str
    photo: str
    orig_size: tuple[int, int]
    crop_box: tuple[int, int, int, int] | None
    tags: tuple[str, ...]
    person_score: float | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON record of ``pseudo.json``'s ``samples``."""
        return {"key": self.key, "photo": self.photo, "orig_size": list(self.orig_size),
                "crop_box": None if self.crop_box is None else list(self.crop_box), "tags": list(self.tags),
                "person_score": self.person_score}

    @classmethod
    def from_dict(cls, rec: dict[str, Any]) -> PseudoSample:
        """Parse one record (raises KeyError / TypeError / ValueError on a bad one)."""
        box = rec["crop_box"]
        score = rec.get("person_score")
        return cls(key=str(rec["key"]), photo=str(rec["photo"]), orig_size=tuple(int(v) for v in rec["orig_size"]),
                   crop_box=None if box is None else tuple(int(v) for v in box),
                   tags=tuple(str(t) for t in rec.get("tags", ())), person_score=None if score is None else float(score))


class PseudoFolder:
    """The ``pseudo/`` folder of a run folder.

    Args:
        run_dir: the teacher's run folder (``pseudo/`` need not exist yet).
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir).expanduser().resolve()
        self.root = self.run_dir / "pseudo"
        self._manifest: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"PseudoFolder({str(self.run_dir)!r})"

    @classmethod
    def open(cls, run_dir: str | Path) -> PseudoFolder:
        """A run folder's existing pseudo-masks.

        Raises:
            BadInputError: no such folder, or no ``pseudo/pseudo.json`` (pseudo-label not run).
        """
        pf = cls(run_dir)
        if not pf.run_dir.is_dir():
            raise BadInputError(f"{pf.run_dir}: no such run folder; pass --pseudo the run folder that pseudo-label wrote into")
        if not pf.manifest_path.is_file():
            raise BadInputError(f"{pf.manifest_path}: missing, {pf.run_dir} has no pseudo-masks; {_HINT}")
        pf.manifest()
        return pf

    # --- paths
    @property
    def manifest_path(self) -> Path:
        """``pseudo/pseudo.json``."""
        return self.root / "pseudo.json"

    @property
    def images_dir(self) -> Path:
        """``pseudo/images/``."""
        return self.root / "images"

    def masks_dir(self, fold: int) -> Path:
        """``pseudo/masks/<k>/``."""
        return self.root / "masks" / str(int(fold))

    def image_path(self, key: str) -> Path:
        """``pseudo/images/<key>.jpg``: the person crop."""
        return self.images_dir / f"{key}.jpg"

    def mask_path(self, fold: int, key: str) -> Path:
        """``pseudo/masks/<k>/<key>.png``: fold k's pseudo-mask."""
        return self.masks_dir(fold) / f"{key}.png"

    # --- the manifest
    def manifest(self) -> dict[str, Any]:
        """``pseudo.json`` (read once; an empty manifest when there is none yet).

        Raises:
            BadInputError: unreadable, not a JSON object, or of another version.
        """
        if self._manifest is None:
            if not self.manifest_path.exists():
                return {}
            try:
                doc = json.loads(self.manifest_path.read_text())
            except (OSError, ValueError) as e:
                raise BadInputError(f"{self.manifest_path}: unreadable ({e}); delete {self.root} and {_HINT}") from e
            if not isinstance(doc, dict) or doc.get("version") != PSEUDO_VERSION:
                raise BadInputError(f"{self.manifest_path}: not a version-{PSEUDO_VERSION} pseudo-label manifest; "
                                    f"delete {self.root} and {_HINT}")
            self._manifest = doc
        return self._manifest

    def write_manifest(self, doc: dict[str, Any]) -> None:
        """Write ``pseudo.json`` atomically (and keep it as the one read)."""
        write_json(self.manifest_path, doc)
        self._manifest = doc

    def samples(self) -> list[PseudoSample]:
        """Every tag-only photo of the manifest, in key order.

        Raises:
            BadInputError: a malformed record.
        """
        out = []
        for rec in self.manifest().get("samples", []):
            try:
                out.append(PseudoSample.from_dict(rec))
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise BadInputError(f"{self.manifest_path}: a sample record lacks or has a bad {e}; "
                                    f"delete {self.root} and {_HINT}") from e
        return sorted(out, key=lambda s: s.key)

    @property
    def size(self) -> int:
        """S, the side of every crop and mask."""
        return int(self.manifest()["settings"]["size"])

    def finished_folds(self) -> list[int]:
        """Folds whose pseudo-masks are complete (``pseudo.json`` ``folds``), ascending."""
        return sorted(int(k) for k, v in self.manifest().get("folds", {}).items() if v.get("finished"))

    def usable(self) -> list[PseudoSample]:
        """The samples with a person crop (those that have masks)."""
        return [s for s in self.samples() if s.crop_box is not None]

    def check_for(self, export: ExportFolder, *, folds: Sequence[int]) -> None:
        """Refuse pseudo-masks a student on ``export`` must not train with.

        Args:
            export: the student's export folder.
            folds: the folds the student is about to train.

        Raises:
            BadInputError: the teacher's export put samples in other test folds (its fold k may
                have trained on the student's fold k test images), or a fold's masks are missing.
        """
        doc = self.manifest()
        mine = folds_digest((s.key, s.fold) for s in export.samples)
        if doc.get("folds_digest") != mine:
            raise BadInputError(f"{self.manifest_path}: the teacher run was trained on an export with other test "
                                f"folds than {export.root}, so its fold-k model may have seen your fold-k test "
                                "images; train the teacher on this export (or pass --data the teacher's export)")
        done = self.finished_folds()
        missing = [k for k in folds if k not in done]
        if missing:
            raise BadInputError(f"{self.manifest_path}: no pseudo-masks of fold(s) {', '.join(map(str, missing))} "
                                f"(done: {', '.join(map(str, done)) or 'none'}); train those folds of the teacher "
                                f"and re-run pseudo-label, or pass --folds {','.join(map(str, done)) or 'K'}")
        if not self.usable():
            raise BadInputError(f"{self.manifest_path}: no tag-only photo with a person crop; {_HINT}")
