"""``clothcurate pseudo-label``: pseudo-masks of the tag-only photos from a run's own fold models.

CCP's 994 tag-only photos (``annotation == "image"``, :mod:`clothcurate.curation.annotation`) have
no mask, only the Table I classes their image-level tags name (``image_tags``). For each:

1. the person is detected (:mod:`clothcurate.detection`; :func:`subject_crop_box`: the largest
   box, :func:`main_person`, widened by the detector's box calibration as ``predict`` widens it;
   a photo without a person is listed and not used) and cropped as the export crops (:func:`clothcurate.geometry.crop_box`:
   5 % margin, grown to the export crops' aspect ratio), resized to the export's size H x W;
2. for every fold k with a ``folds/<k>/best.pt``, fold k's model predicts the crop
   (:class:`~clothcurate.inference.segmenter.Segmenter`, raw softmax, no post-processing) and
   :func:`filter_pseudo` gives a pixel a class the photo allows (its tags, plus
   :data:`~clothcurate.folders.pseudo.ALWAYS_ALLOWED`) as the tag rule says (:data:`TAG_RULES`:
   the most probable allowed class, or the argmax only where it is allowed) and keeps it when its
   probability is at least the threshold; every other pixel gets
   :data:`~clothcurate.folders.pseudo.IGNORE_INDEX`.
   Fold k's student (``train-eval --pseudo``) trains on fold k's masks only: tag-only photos are in
   no test fold, and fold k's teacher never saw fold k's test images, so nothing leaks into a test.

Files go under ``RUN_DIR/pseudo/`` (:class:`~clothcurate.folders.pseudo.PseudoFolder`,
docs/contracts.md). The dataset gets ``pseudo_<arch>`` on the tag-only samples: a Segmentation of
the lowest fold's pseudo-mask pasted into the photo frame (255 = ignore, also outside the crop;
the mask PNGs live in the workspace, ``masks/pseudo_<arch>/``), for browsing, never ``ground_truth``.

Re-running is idempotent: crops whose photo, detector and size are unchanged are kept, and masks
whose fold checkpoint (sha256), threshold and tags are unchanged are kept; anything else is made
again.

Example::

    report = pseudo_label(run_dir="runs/fpn", dataset="clothcurate", threshold=0.8)
    print(report.summary())
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from clothcurate.atomic import write_bytes
from clothcurate.detection import DEFAULT_DETECTOR, DETECTORS, box_rule, create_detector
from clothcurate.detection.registry import PersonBox
from clothcurate.errors import BadInputError
from clothcurate.folders.pseudo import (
    ALWAYS_ALLOWED,
    DEFAULT_TAG_RULE,
    IGNORE_INDEX,
    PSEUDO_VERSION,
    PseudoFolder,
    PseudoSample,
    TAG_RULES,
    folds_digest,
)
from clothcurate.folders.run import RunFolder
from clothcurate.folders.export import size_to_json
from clothcurate.geometry import Size, aspect_of, crop_box, crop_image, paste_back, resize_image
from clothcurate.images import read_image
from clothcurate.masks import write_mask_png
from clothcurate.timestamps import utc_now

__all__ = ["DEFAULT_THRESHOLD", "PseudoReport", "allowed_classes", "filter_pseudo", "main_person", "pseudo_label",
           "subject_crop_box"]

#: the softmax a pixel's class needs to be kept (0.8: a teacher's low-confidence pixels are mostly
#: its errors; a usual self-training choice, not tuned here)
DEFAULT_THRESHOLD = 0.8
_ARCH = re.compile(r"^[a-z0-9_]+$")  # becomes part of a field name
_JPEG = [cv2.IMWRITE_JPEG_QUALITY, 95]
#: which detected person is cropped (:func:`main_person`, its box widened as ``predict`` widens it: the
#: detector's :class:`~clothcurate.detection.BoxCalibration`); recorded so that crops of another rule are remade
PERSON_RULE = "largest, calibrated"


@dataclass
class PseudoReport:
    """What :func:`pseudo_label` did.

    Attributes:
        run_dir: the teacher's run folder.
        dataset: the FiftyOne dataset read.
        field: the dataset field written (``pseudo_<arch>``).
        samples: tag-only samples in the dataset.
        cropped: person crops made now (the others were kept from an earlier run).
        no_person: keys of photos where no person was found (not used).
        skipped: ``(key, reason)`` of photos that could not be read.
        folds: ``{k: masks written now}`` for every fold with a checkpoint.
        kept_share: ``{k: mean share of labelled (not ignored) pixels}`` over the fold's masks.
        seconds: wall time.
    """

    run_dir: Path
    dataset: str
    field: str
    samples: int = 0
    cropped: int = 0
    no_person: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    folds: dict[int, int] = field(default_factory=dict)
    kept_share: dict[int, float] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        """A few lines for the terminal."""
        used = self.samples - len(self.no_person) - len(self.skipped)
        lines = [f"pseudo-label: {used} of {self.samples} tag-only photo(s) of {self.dataset!r} have pseudo-masks "
                 f"in {self.run_dir / 'pseudo'} ({self.cropped} crop(s) made now, {self.seconds:.1f} s)"]
        for k, n in sorted(self.folds.items()):
            lines.append(f"  fold {k}: {n} mask(s) written now, {100 * self.kept_share.get(k, 0.0):.1f} % of pixels "
                         "labelled (the rest ignored)")
        lines.append(f"  dataset field {self.field} (tag-only samples); train with "
                     f"`clothcurate train-eval --pseudo {self.run_dir}`")
        if self.no_person:
            lines.append(f"  no person found in {len(self.no_person)} photo(s), not used: "
                         + ", ".join(self.no_person[:10]) + (" ..." if len(self.no_person) > 10 else ""))
        for key, why in self.skipped[:20]:
            lines.append(f"  skipped {key}: {why}")
        return "\n".join(lines)


def main_person(people: Sequence[PersonBox]) -> PersonBox:
    """The photo's subject: the largest detected person (by box area).

    A CCP photo shows one person, full length; the best-scoring box is often a smaller passer-by
    behind them (e.g. ccp_1700: a 78 x 232 px passer-by at 0.97, the 227 x 779 px subject at 0.88).

    Args:
        people: at least one detected person.
    """
    return max(people, key=lambda p: (p.box[2] * p.box[3], p.score))


def subject_crop_box(image: np.ndarray, people: Sequence[PersonBox], *,
                     size: Size) -> tuple[PersonBox, tuple[int, int, int, int]] | None:
    """The crop box of a tag-only photo's subject, as the export crops its training photos.

    Args:
        image: (H, W, 3) uint8 RGB, the photo.
        people: what the detector found in it (pixel boxes).
        size: ``(h, w)`` of the crops; the box is grown to this aspect ratio.

    Returns:
        ``(the subject, its pixel crop box (x0, y0, x1, y1))``: the :func:`main_person`, its box
        widened by the detector's box calibration as ``predict`` widens it, with the export's
        margin; ``None`` when nobody was detected.
    """
    if not people:
        return None
    height, width = image.shape[:2]
    person = main_person(people)
    widened = box_rule(person.detector).calibration.apply(person.box, width=width, height=height)
    box = crop_box(replace(person, box=widened).relative(width=width, height=height), width=width,
                   height=height, aspect=aspect_of(size))
    return person, box


def allowed_classes(tags: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Which classes a tag-only photo's pseudo-mask may hold.

    Args:
        tags: the Table I classes its image-level tags name.
        classes: the K class names of the model.

    Returns:
        (K,) bool: the tagged classes and :data:`ALWAYS_ALLOWED`.
    """
    names = set(tags) | set(ALWAYS_ALLOWED)
    return np.array([c in names for c in classes], dtype=bool)


def filter_pseudo(probs: torch.Tensor, allowed: torch.Tensor, *, threshold: float,
                  rule: str = DEFAULT_TAG_RULE) -> torch.Tensor:
    """Pseudo-masks from softmax maps: an allowed, confident class per pixel, else ignore.

    Args:
        probs: (N, K, H, W) float softmax.
        allowed: (N, K) bool, the classes each image may hold (:func:`allowed_classes`); each
            image allows at least one.
        threshold: the probability the chosen class needs.
        rule: a key of :data:`TAG_RULES`. ``restrict``: the argmax of the softmax renormalised
            over the allowed classes, with that renormalised probability; ``drop``: the argmax of
            all K classes, ignored where it is not allowed.

    Returns:
        (N, H, W) uint8: the chosen class, or :data:`IGNORE_INDEX` where it is not allowed for
        that image or its probability is below ``threshold``.

    Raises:
        ValueError: an unknown ``rule``.
    """
    if rule not in TAG_RULES:
        raise ValueError(f"tag rule {rule!r}: choose one of {', '.join(TAG_RULES)}")
    allowed = allowed.to(probs.device)
    if rule == "restrict":
        probs = probs * allowed[:, :, None, None]                                # (N, K, H, W)
        probs = probs / probs.sum(1, keepdim=True).clamp_min(torch.finfo(probs.dtype).tiny)
    conf, label = probs.max(1)                                               # (N, H, W) x2
    ok = allowed.gather(1, label.flatten(1)).view_as(label)                  # (N, H, W) bool
    keep = ok & (conf >= threshold)
    return torch.where(keep, label, torch.full_like(label, IGNORE_INDEX)).to(torch.uint8)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tag_only_samples(dataset: str) -> tuple[object, list[tuple[str, str, tuple[str, ...]]]]:
    """The dataset and ``(key, photo, tags)`` of its tag-only samples, in key order.

    Raises:
        BadInputError: no such dataset, or it has no tag-only sample.
    """
    from clothcurate.curation.annotation import IMAGE_TAGS_FIELD, tag_only
    from clothcurate.curation.db import load_dataset

    ds = load_dataset(dataset)
    view = tag_only(ds)
    if len(view) == 0:
        raise BadInputError(f"dataset {dataset!r} has no tag-only samples (annotation == 'image'); ingest CCP "
                            "with its annotations/image-level/ folder (`clothcurate ingest --ccp DIR`) first")
    keys, paths, labels = view.values(["key", "filepath", f"{IMAGE_TAGS_FIELD}.classifications.label"])
    rows = [(str(k), str(p), tuple(labels_ or ())) for k, p, labels_ in zip(keys, paths, labels)]
    return ds, sorted(rows)


def _settings(*, detector: str, size: Size, threshold: float, tag_rule: str) -> dict:
    return {"detector": detector, "person": PERSON_RULE, "size": size_to_json(size), "threshold": threshold,
            "tag_rule": tag_rule, "always_allowed": list(ALWAYS_ALLOWED), "ignore_index": IGNORE_INDEX}


def _crop_all(rows, *, pf: PseudoFolder, old: dict[str, PseudoSample], detector: str, size: Size,
              segmenter, report: PseudoReport, progress: bool) -> list[PseudoSample]:
    """Detect and crop every photo that has no up-to-date crop; returns every sample's record."""
    out: list[PseudoSample] = []
    finder = None
    pf.images_dir.mkdir(parents=True, exist_ok=True)
    for key, photo, tags in tqdm(rows, desc="detect + crop", unit="photo", disable=not progress, leave=False):
        prev = old.get(key)
        if prev is not None and prev.photo == photo and (prev.crop_box is None or pf.image_path(key).is_file()):
            out.append(PseudoSample(key=key, photo=photo, orig_size=prev.orig_size, crop_box=prev.crop_box,
                                    tags=tags, person_score=prev.person_score))
            if prev.crop_box is None:
                report.no_person.append(key)
            continue
        try:
            image = read_image(photo, sample=key, hint="restore the photo or re-run ingest")
        except BadInputError as e:
            report.skipped.append((key, str(e)))
            continue
        if finder is None:  # loaded only when a photo needs it (a re-run may need none)
            finder = create_detector(detector, segmenter=segmenter, device=segmenter.device)
        subject = subject_crop_box(image, finder.detect(image), size=size)
        height, width = image.shape[:2]
        if subject is None:
            report.no_person.append(key)
            out.append(PseudoSample(key=key, photo=photo, orig_size=(width, height), crop_box=None, tags=tags,
                                    person_score=None))
            continue
        person, box = subject
        crop = crop_image(image, box=box, size=size)
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), _JPEG)
        if not ok:
            raise OSError(f"cannot encode {pf.image_path(key)} as JPEG")
        write_bytes(pf.image_path(key), data.tobytes())
        for k_dir in pf.root.glob("masks/*"):  # a new crop: every fold's mask of it is stale
            (k_dir / f"{key}.png").unlink(missing_ok=True)
        report.cropped += 1
        out.append(PseudoSample(key=key, photo=photo, orig_size=(width, height), crop_box=box, tags=tags,
                                person_score=round(float(person.score), 4)))
    return out


def _label_fold(k: int, samples: list[PseudoSample], *, pf: PseudoFolder, segmenter, classes: list[str],
                size: Size, threshold: float, tag_rule: str, batch_size: int,
                progress: bool) -> tuple[int, float]:
    """Write fold k's missing pseudo-masks; returns (written now, mean labelled share of all)."""
    todo = [s for s in samples if not pf.mask_path(k, s.key).is_file()]
    pf.masks_dir(k).mkdir(parents=True, exist_ok=True)
    model_size = tuple(segmenter.input_size or size)
    for start in tqdm(range(0, len(todo), batch_size), desc=f"pseudo-label fold {k}", unit="batch",
                      disable=not progress, leave=False):
        chunk = todo[start:start + batch_size]
        crops = [read_image(pf.image_path(s.key), sample=s.key, hint="re-run pseudo-label") for s in chunk]
        # the teacher's input size, as its training resized the export
        crops = [resize_image(c, model_size) for c in crops]
        images = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()    # (N, 3, h, w) uint8
        probs = segmenter.probabilities(images)                                         # (N, K, h, w)
        if tuple(probs.shape[-2:]) != tuple(size):
            probs = F.interpolate(probs, size=tuple(size), mode="bilinear", align_corners=False)
        allowed = torch.from_numpy(np.stack([allowed_classes(s.tags, classes) for s in chunk]))
        masks = filter_pseudo(probs, allowed, threshold=threshold, rule=tag_rule).cpu().numpy()
        for s, mask in zip(chunk, masks):
            write_mask_png(pf.mask_path(k, s.key), mask)
    shares = []
    for s in samples:
        mask = cv2.imread(str(pf.mask_path(k, s.key)), cv2.IMREAD_UNCHANGED)
        shares.append(float((mask != IGNORE_INDEX).mean()))
    return len(todo), float(np.mean(shares)) if shares else 0.0


def _write_field(ds, samples: list[PseudoSample], *, pf: PseudoFolder, fold: int, field_name: str,
                 dataset: str, classes: list[str]) -> None:
    """``pseudo_<arch>``: fold ``fold``'s pseudo-masks in the photo frame, on the tag-only samples."""
    from clothcurate.curation.annotation import tag_only
    from clothcurate.curation.db import fiftyone
    from clothcurate.labelmaps import mask_targets
    from clothcurate.workspace import mask_dir

    fo = fiftyone()
    out_dir = mask_dir(dataset, field_name)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_key = {s.key: s for s in samples if s.crop_box is not None}
    for s in by_key.values():
        mask = cv2.imread(str(pf.mask_path(fold, s.key)), cv2.IMREAD_UNCHANGED)
        full = paste_back(mask, crop_box=s.crop_box, orig_size=s.orig_size, fill=IGNORE_INDEX)
        write_mask_png(out_dir / f"{s.key}.png", full)
    view = tag_only(ds)
    keys = view.values("key")
    view.set_values(field_name, [fo.Segmentation(mask_path=str(out_dir / f"{k}.png")) if k in by_key else None
                                 for k in keys])
    for stale in out_dir.glob("*.png"):
        if stale.stem not in by_key:
            stale.unlink(missing_ok=True)
    ds.mask_targets = {**ds.mask_targets, field_name: {**mask_targets(classes), IGNORE_INDEX: "ignore"}}
    ds.save()


def pseudo_label(*, run_dir: str | Path, dataset: str, threshold: float = DEFAULT_THRESHOLD,
                 tag_rule: str = DEFAULT_TAG_RULE, detector: str = DEFAULT_DETECTOR, device: str = "auto",
                 batch_size: int = 16, progress: bool = True) -> PseudoReport:
    """Pseudo-label a dataset's tag-only photos with a run's fold models (module docstring).

    Args:
        run_dir: the teacher's train-eval run folder (``folds/<k>/best.pt``); gets ``pseudo/``.
        dataset: the FiftyOne dataset holding the tag-only samples (``annotation == "image"``).
        threshold: the softmax a pixel's class needs, in (0, 1].
        tag_rule: a key of :data:`TAG_RULES`.
        detector: a key of :data:`clothcurate.detection.DETECTORS`.
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: crops per forward pass.
        progress: tqdm bars.

    Returns:
        The report.

    Raises:
        BadInputError: not a run folder or no checkpoint, a bad threshold, tag rule, detector or
            device, a dataset that is missing or has no tag-only sample.
    """
    from clothcurate.inference.segmenter import Segmenter

    t0 = time.perf_counter()
    if not 0 < threshold <= 1:
        raise BadInputError(f"--threshold {threshold}: must be in (0, 1] (a softmax probability)")
    if tag_rule not in TAG_RULES:
        raise BadInputError(f"--tag-rule {tag_rule!r}: unknown; choose one of {', '.join(TAG_RULES)}")
    if batch_size < 1:
        raise BadInputError(f"--batch-size {batch_size}: must be at least 1")
    if detector not in DETECTORS:
        raise BadInputError(f"--detector {detector!r}: unknown; choose one of {', '.join(sorted(DETECTORS))}")
    run = RunFolder.open(run_dir)
    checkpoints = run.checkpoints()
    if not checkpoints:
        raise BadInputError(f"{run.folds_dir}: no folds/<k>/best.pt checkpoint; train the run first "
                            "(clothcurate train-eval), or copy its .pt files with the run folder")
    arch = str(run.arch or "")
    if not _ARCH.match(arch):
        raise BadInputError(f"{run.config_path}: arch {arch!r} cannot name a dataset field; {run.root} is not "
                            "a train-eval run folder")
    export = run.export()  # its folds.json: which test fold each labelled sample is in
    size = export.crop_size or run.input_size
    if size is None:
        raise BadInputError(f"{run.config_path}: no export size or image_size; re-run train-eval")
    ds, rows = _tag_only_samples(dataset)
    field_name = f"pseudo_{arch}"
    report = PseudoReport(run_dir=run.root.resolve(), dataset=dataset, field=field_name, samples=len(rows))

    pf = PseudoFolder(run.root)
    settings = _settings(detector=detector, size=size, threshold=float(threshold), tag_rule=tag_rule)
    doc = pf.manifest()
    same = doc.get("settings", {})
    if doc and any(same.get(k) != settings[k] for k in ("detector", "person", "size")):
        shutil.rmtree(pf.root)  # other crops: nothing is reusable
        doc = {}
    mask_settings = ("threshold", "tag_rule", "always_allowed", "ignore_index")
    masks_valid = bool(doc) and all(same.get(k) == settings[k] for k in mask_settings)
    old = {s.key: s for s in pf.samples()} if doc else {}
    fold_docs = dict(doc.get("folds", {})) if masks_valid else {}
    if doc and not masks_valid and (pf.root / "masks").exists():
        shutil.rmtree(pf.root / "masks")

    segmenters = {k: Segmenter.from_run(run.root, fold=k, device=device) for k in checkpoints}
    first = segmenters[min(segmenters)]
    classes = list(first.spec.classes)
    samples = _crop_all(rows, pf=pf, old=old, detector=detector, size=size, segmenter=first, report=report,
                        progress=progress)
    for s in samples:  # changed tags: that photo's masks are stale
        prev = old.get(s.key)
        if prev is not None and prev.tags != s.tags:
            for k_dir in pf.root.glob("masks/*"):
                (k_dir / f"{s.key}.png").unlink(missing_ok=True)
    base = {"version": PSEUDO_VERSION, "run_dir": str(run.root.resolve()), "dataset": dataset, "arch": arch,
            "settings": settings, "classes": classes,
            "folds_digest": folds_digest((s.key, s.fold) for s in export.samples),
            "export_created": export.meta.get("created"), "folds": {},
            "samples": [s.to_dict() for s in samples]}
    pf.write_manifest(base)  # no fold counts as finished until its masks are checked below
    usable = [s for s in samples if s.crop_box is not None]
    for k, seg in segmenters.items():
        sha = _sha256(checkpoints[k])
        entry = fold_docs.get(str(k), {})
        if entry.get("checkpoint_sha256") != sha and pf.masks_dir(k).exists():
            shutil.rmtree(pf.masks_dir(k))  # another teacher: every mask of the fold is stale
        written, share = _label_fold(k, usable, pf=pf, segmenter=seg, classes=classes, size=size,
                                     threshold=float(threshold), tag_rule=tag_rule, batch_size=batch_size,
                                     progress=progress)
        report.folds[k], report.kept_share[k] = written, share
        fold_docs[str(k)] = {"checkpoint_sha256": sha, "masks": len(usable), "labelled_share": round(share, 4),
                             "finished": utc_now() if written or not entry.get("finished") else entry["finished"]}
        pf.write_manifest({**base, "folds": {kk: fold_docs[kk] for kk in sorted(fold_docs) if int(kk) in segmenters}})
    if usable:
        _write_field(ds, samples, pf=pf, fold=min(segmenters), field_name=field_name, dataset=dataset, classes=classes)
    report.seconds = time.perf_counter() - t0
    return report
