"""Ingest CCP and CFPD into one FiftyOne dataset, remapped to the 15 classes of Table I.

Per sample (in worker processes): decode the source annotation, check the photo, remap the label
mask through the label map's lookup table, write the 15-class mask and every raw mask as PNG under
the workspace (atomically), and measure classes, pixel counts and the person box. The main process
adds finished samples to FiftyOne in bulk. A sample enters the database only after its masks are on
disk, so an interrupted ingest leaves a consistent dataset and a re-run completes it; a re-run
also writes again the mask files of samples already present that were lost. The dataset is created
with its first sample: an ingest that adds none fails and leaves no empty dataset. Photos annotated
only with image-level tags (CCP 1005-1998) become tag-only samples: their tags remapped through the
same label map into ``image_tags``, no mask (see :mod:`clothcurate.curation.annotation`).

Example::

    from clothcurate.curation.ingest import ingest
    report = ingest(ccp="../shared/datasets/ccp", dataset="clothcurate")
    print(report.summary())
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from clothcurate.atomic import write_json
from clothcurate.curation.annotation import ANNOTATION_FIELD, IMAGE, IMAGE_TAGS_FIELD, PIXEL
from clothcurate.curation.annotation import tag_only as tag_only_view
from clothcurate.curation.db import load_dataset, open_or_create
from clothcurate.curation.fix.versions import ORIGINAL, refuse_dropping_corrections
from clothcurate.curation.photos import PhotoInfo, probe_photo
from clothcurate.curation.sources import SampleRef, Source, get_source
from clothcurate.errors import BadInputError, BadSampleError
from clothcurate.images import orientation_name
from clothcurate.labelmaps import BACKGROUND, TARGET_CLASSES, LabelMap, load_labelmap
from clothcurate.mask_facts import mask_facts
from clothcurate.masks import write_mask_png
from clothcurate.parallel import process_pool
from clothcurate.workspace import dataset_dir, home, key_clashes, mask_dir, sample_key

__all__ = ["ingest", "IngestReport"]

_BATCH = 256  # samples per bulk insert
#: ``left_out`` reason of tag-only samples whose photo now has a pixel annotation
_GAINED_MASK = "tag-only in the dataset but now pixel-annotated (--overwrite rebuilds them)"


@dataclass
class IngestReport:
    """What an ingest did.

    Attributes:
        dataset: the FiftyOne dataset name.
        added / already_present: samples per source.
        tag_only: of ``added``, the samples per source with image-level tags only (no mask).
        restored: samples per source already present whose lost (or cut short) mask files were
            written again; the samples themselves (tags, predictions, findings) are untouched.
        left_out: ``{source: {reason: count}}`` for samples skipped on purpose.
        bad: one entry per bad sample: source, source_id, path, reason.
        timings: seconds per phase (``decode``, ``remap``, ``png``, ``database``, ``total``);
            the first three are summed over worker processes.
        report_path: the ``ingest_report.json`` written.
    """

    dataset: str
    added: dict[str, int] = field(default_factory=dict)
    already_present: dict[str, int] = field(default_factory=dict)
    tag_only: dict[str, int] = field(default_factory=dict)
    restored: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, dict[str, int]] = field(default_factory=dict)
    bad: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    report_path: str = ""

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "added": self.added, "tag_only": self.tag_only,
                "already_present": self.already_present, "restored": self.restored,
                "left_out": self.left_out, "bad": self.bad, "timings": self.timings}

    def summary(self) -> str:
        lines = [f"dataset {self.dataset!r}:"]
        for src in self.added:
            restored = self.restored.get(src, 0)
            tags = self.tag_only.get(src, 0)
            lines.append(f"  {src}: {self.added[src]} added"
                         + (f" ({tags} with image-level tags only, no mask)" if tags else "")
                         + f", {self.already_present.get(src, 0)} already present"
                         + (f", {restored} restored (lost mask files written again)" if restored else ""))
            for reason, n in self.left_out.get(src, {}).items():
                lines.append(f"    left out: {n} {reason}")
        if self.bad:
            lines.append(f"  {len(self.bad)} bad sample(s) skipped:")
            lines += [f"    {b['source']} {b['source_id']}: {b['reason']}" + (f" ({b['path']})" if b.get("path") else "")
                      for b in self.bad[:20]]
            if len(self.bad) > 20:
                lines.append(f"    ... and {len(self.bad) - 20} more")
        t = self.timings
        if t.get("total"):
            n = sum(self.added.values())
            lines.append(f"  {t['total']:.1f} s ({n / t['total']:.0f} samples/s); report: {self.report_path}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Worker side: one sample, no database.

_W: dict = {}  # per-process context set by _init_worker


def _init_worker(source: Source, labelmap: LabelMap, outputs: dict[str, tuple[str | None, str]]) -> None:
    """``outputs``: ``{field: (raw mask key or None for the 15-class mask, folder)}``."""
    _W.update(source=source, labelmap=labelmap, outputs=outputs)


def _check_mask_size(mask: np.ndarray, photo: PhotoInfo, name: str, ref: SampleRef, where: str) -> None:
    """A mask must have the photo's stored size (the rule: CCP masks follow the stored pixels; an
    EXIF orientation is never applied, see :mod:`clothcurate.images`).

    Raises:
        BadSampleError: the sizes differ; naming the EXIF orientation when the mask fits only the
            photo's rotated view.
    """
    if mask.shape == (photo.height, photo.width):
        return
    what = f"mask{' ' + name if name else ''} is {mask.shape[1]}x{mask.shape[0]}"
    if photo.orientation in (5, 6, 7, 8) and mask.shape == (photo.width, photo.height):
        raise BadSampleError(ref.source_id, f"{what}, the size of the photo only as shown by its EXIF orientation "
                             f"{photo.orientation} ({orientation_name(photo.orientation)}); masks follow the stored "
                             f"pixels ({photo.width}x{photo.height}): store the photo upright without the tag "
                             "(e.g. `exiftran -ai PHOTO`) or turn the mask to the stored pixels", ref.image_path)
    raise BadSampleError(ref.source_id, f"{what} but the photo is {photo.width}x{photo.height}", where)


def _remap_tags(ids: np.ndarray, labelmap: LabelMap, ref: SampleRef, where: str) -> list[str]:
    """The Table I classes that a photo's source tags name, in class order, background dropped.

    Args:
        ids: (T,) source label ids.

    Raises:
        BadSampleError: an id outside the source vocabulary (never silently background).
    """
    bad = ids[(ids < 0) | (ids >= len(labelmap.names))]
    if bad.size:
        raise BadSampleError(ref.source_id, f"tag id {int(bad[0])} is outside the {labelmap.source} vocabulary "
                             f"(0..{len(labelmap.names) - 1})", where)
    present = np.unique(np.asarray(labelmap.targets, dtype=np.int64)[ids])
    return [TARGET_CLASSES[c] for c in present if c != BACKGROUND]


def _process_tags(ref: SampleRef) -> dict:
    """Read, check and remap one tag-only sample (no mask: nothing is written)."""
    source: Source = _W["source"]
    t0 = time.perf_counter()
    try:
        ids = source.read_tags(ref)
        photo = probe_photo(ref.image_path, ref.source_id)
        t1 = time.perf_counter()
        tags = _remap_tags(ids, _W["labelmap"], ref, ref.locator[0] if ref.locator else ref.image_path)
    except BadSampleError as e:
        return {"bad": {"source": source.name, "source_id": e.source_id, "path": e.path, "reason": e.reason}}
    return {
        "key": sample_key(source.name, ref.source_id), "source_id": ref.source_id, "filepath": ref.image_path,
        "masks": {}, "width": photo.width, "height": photo.height, "size_bytes": os.path.getsize(ref.image_path),
        "mime_type": photo.mime_type, "num_channels": photo.num_channels,
        "exif_orientation": photo.orientation if photo.orientation != 1 else None,
        "annotation": IMAGE, "image_tags": tags,
        "t": (t1 - t0, time.perf_counter() - t1, 0.0),
    }


def _process(ref: SampleRef) -> dict:
    """Decode, check, remap and write one sample; returns its field values or its problem."""
    if ref.annotation == IMAGE:
        return _process_tags(ref)
    source: Source = _W["source"]
    labelmap: LabelMap = _W["labelmap"]
    t0 = time.perf_counter()
    try:
        raw = source.read(ref)
        photo = probe_photo(ref.image_path, ref.source_id)
        width, height = photo.width, photo.height
        t1 = time.perf_counter()
        label = raw.masks[""]
        for name, m in raw.masks.items():
            _check_mask_size(m, photo, name, ref, raw.annotation_path)
        gt = labelmap.remap(label, source_id=ref.source_id, where=raw.annotation_path)
        facts = mask_facts(gt)  # the derived fields, as every writer of ground_truth measures them
        t2 = time.perf_counter()
        key = sample_key(source.name, ref.source_id)
        paths = {}
        for fld, (raw_key, d) in _W["outputs"].items():
            arr = gt if raw_key is None else raw.masks[raw_key]
            paths[fld] = os.path.join(d, f"{key}.png")
            write_mask_png(paths[fld], arr.astype(np.uint8, copy=False))
        t3 = time.perf_counter()
    except BadSampleError as e:
        return {"bad": {"source": source.name, "source_id": e.source_id, "path": e.path, "reason": e.reason}}
    return {
        "key": key, "source_id": ref.source_id, "filepath": ref.image_path, "masks": paths,
        "width": width, "height": height, "size_bytes": os.path.getsize(ref.image_path),
        "mime_type": photo.mime_type, "num_channels": photo.num_channels,
        "exif_orientation": photo.orientation if photo.orientation != 1 else None,
        "classes": facts.classes, "class_pixels": facts.class_pixels, "person": facts.person,
        "t": (t1 - t0, t2 - t1, t3 - t2),
    }


# --------------------------------------------------------------------------------------------
# Main side.


def _raw_field(source: str, raw_key: str) -> str:
    """FiftyOne field of a raw mask: ``raw_ccp``, ``raw_cfpd``, ``raw_cfpd_color``."""
    return f"raw_{source}" + (f"_{raw_key}" if raw_key else "")


def _pick_labelmaps(sources: list[str], labelmaps: list[Path]) -> dict[str, LabelMap]:
    """The label map of each source: the user's (one per source, for a source being ingested) or
    the built-in one."""
    chosen: dict[str, LabelMap] = {}
    for lm in map(load_labelmap, labelmaps):
        if lm.source not in sources:
            raise BadInputError(f"{lm.path}: label map for source {lm.source!r}, but only "
                                f"{', '.join(sources)} {'is' if len(sources) == 1 else 'are'} being ingested; "
                                "fix its 'source:' (ccp or cfpd) or pass that source's folder")
        if lm.source in chosen:
            raise BadInputError(f"two --labelmap files for source {lm.source!r}: {chosen[lm.source].path}, "
                                f"{lm.path}; pass one")
        chosen[lm.source] = lm
    return {name: chosen.get(name) or load_labelmap(name) for name in sources}


def _check_same_labelmap(ds, source: str, labelmap: LabelMap) -> None:
    """Refuse to add samples of ``source`` with a map other than the one its samples were built with."""
    from fiftyone import ViewField as F

    recorded = (ds.info.get("labelmap_targets") or {}).get(source)
    if recorded is None or list(recorded) == list(labelmap.targets):
        return
    n = ds.match(F("source") == source).count()
    if n:
        was = (ds.info.get("labelmaps") or {}).get(source, "another label map")
        raise BadInputError(f"dataset {ds.name!r}: its {n} {source} samples were remapped with {was}, not "
                            f"{labelmap.path}; drop --labelmap, or pass --overwrite to rebuild them with it (this "
                            "deletes their reject/ok tags, findings and predictions)")


def _to_sample(fo, rec: dict, source: str):
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


def _remove_source(ds, source: str, fields: list[str]) -> None:
    from fiftyone import ViewField as F

    keys = ds.match(F("source") == source).values("key")
    ds.delete_samples(ds.match(F("source") == source))
    for fld in fields:
        for k in keys:
            Path(mask_dir(ds.name, fld), f"{k}.png").unlink(missing_ok=True)


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the last chunk of every PNG file


class _Target:
    """The FiftyOne dataset ingested into, created only when its first sample is added: an ingest
    that adds nothing leaves no empty dataset behind for later commands to trip over.

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
        self._setup: list = []

    def configure(self, setup) -> None:
        """Apply ``setup(ds)`` now if the dataset exists, else when it is created."""
        self._setup.append(setup)
        if self.ds is not None:
            setup(self.ds)

    def get(self):
        """The dataset, created (and configured) on first use."""
        if self.ds is None:
            ds = open_or_create(self.name)
            for setup in self._setup:
                setup(ds)
            self.ds = ds
        return self.ds


def _outputs(dataset: str, source: str, vocab: dict[str, list[str]]) -> dict[str, tuple[str | None, str]]:
    """``{field: (raw mask key or None for the 15-class mask, mask folder)}`` of one source."""
    outputs = {"ground_truth": (None, str(mask_dir(dataset, "ground_truth")))}
    outputs.update({_raw_field(source, k): (k, str(mask_dir(dataset, _raw_field(source, k)))) for k in vocab})
    return outputs


def _declare_source(ds, source: str, labelmap: LabelMap, vocab: dict[str, list[str]]) -> None:
    """Record a source's raw vocabularies (mask targets) and label map on the dataset."""
    targets = dict(ds.mask_targets)
    targets.update({_raw_field(source, k): dict(enumerate(v)) for k, v in vocab.items()})
    ds.mask_targets = targets
    ds.info.setdefault("labelmaps", {})[source] = labelmap.path
    ds.info.setdefault("labelmap_targets", {})[source] = list(labelmap.targets)
    ds.save()


def _make_mask_dirs(dataset: str, dirs: list[str]) -> bool:
    """Create the mask folders (before any database change); True when the dataset's workspace
    folder did not exist before.

    Raises:
        BadInputError: a folder cannot be created or written (one line naming it).
    """
    made = not dataset_dir(dataset).exists()
    for d in dirs:
        try:
            os.makedirs(d, exist_ok=True)
            problem = None if os.access(d, os.W_OK | os.X_OK) else "permission denied"
        except OSError as e:
            d, problem = e.filename or d, e.strerror or str(e)
        if problem:
            raise BadInputError(f"{d}: cannot write masks there ({problem}); make {home()} writable or set "
                                "CLOTHCURATE_HOME to a writable folder")
    return made


def _refuse_key_clashes(source: Source, refs: list[SampleRef]) -> None:
    """Refuse two samples whose keys name one mask file.

    Raises:
        BadInputError: naming both photos and their keys.
    """
    keys = {r.image_path: sample_key(source.name, r.source_id) for r in refs}
    clashes = key_clashes(keys)
    if clashes:
        a, b = clashes[0]
        more = f" ({len(clashes) - 1} more such pairs)" if len(clashes) > 1 else ""
        raise BadInputError(f"{a} and {b} would share one mask file (sample keys {keys[a]!r}, {keys[b]!r}: "
                            f"their names differ only in letter case or photo extension){more}; rename one of "
                            "them, then run again (nothing was ingested)")


def _refuse_reused_keys(ds, source: Source, refs: list[SampleRef]) -> None:
    """Refuse a sample whose key or source id the dataset holds under another pairing (keys made by
    an older clothcurate merged names such as ``00 01`` and ``00-01``).

    Raises:
        BadInputError: naming the photo, the key and the sample it belongs to.
    """
    from fiftyone import ViewField as F

    keys, ids = ds.match(F("source") == source.name).values(["key", "source_id"])
    id_of, key_of = dict(zip(keys, ids)), dict(zip(ids, keys))
    for r in refs:
        key = sample_key(source.name, r.source_id)
        old = id_of.get(key, r.source_id), key_of.get(r.source_id, key)
        if old != (r.source_id, key):
            raise BadInputError(f"dataset {ds.name!r}: {r.image_path} ({source.name} id {r.source_id!r}) gets key "
                                f"{key!r}, but the dataset holds {source.name} id {old[0]!r} under key {old[1]!r} "
                                "(keys of an older clothcurate merged such names); ingest into a new --dataset, "
                                f"or pass --overwrite to rebuild the {source.name} samples (this deletes their "
                                "reject/ok tags, findings and predictions)")


def _present(ds, source: str, fields: list[str]) -> dict[str, dict[str, str | None]]:
    """``{key: {mask field: mask path or None}}`` of the samples of ``source`` already in ``ds``
    (``{}`` for a tag-only sample: it has no mask to lose)."""
    from fiftyone import ViewField as F

    if ds is None:
        return {}
    view = ds.match(F("source") == source)
    known = [f for f in fields if ds.has_sample_field(f)]
    columns = view.values(["key", *(f"{f}.mask_path" for f in known)])
    paths = {f: dict(zip(columns[0], col)) for f, col in zip(known, columns[1:])}
    if "ground_truth" in paths and ds.has_sample_field(ORIGINAL):
        # a corrected sample's ground_truth is a later version (clothcurate fix): ingest checks and
        # restores only the mask it wrote, kept as ground_truth_original
        for key, original in zip(*view.values(["key", f"{ORIGINAL}.mask_path"])):
            if original:
                paths["ground_truth"][key] = original
    tag_only = set(tag_only_view(view).values("key")) if ds.has_sample_field(ANNOTATION_FIELD) else set()
    return {key: {} if key in tag_only else {f: paths[f].get(key) if f in paths else None for f in fields}
            for key in columns[0]}


def _mask_intact(path: str) -> bool:
    """The PNG exists and ends with its IEND chunk (not removed, not cut short)."""
    try:
        with open(path, "rb") as f:
            f.seek(-len(_PNG_END), os.SEEK_END)
            return f.read() == _PNG_END
    except OSError:
        return False


def _point_to_restored(fo, ds, rec: dict, stored: dict[str, str | None]) -> None:
    """Point a sample's mask fields at its rewritten masks where they pointed elsewhere (a moved
    workspace, a field never set); nothing else of the sample changes."""
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


def _nothing_ingested(dataset: str, plan: list, report: IngestReport, existed: bool) -> str:
    """The one-line error of an ingest that leaves the dataset without samples."""
    roots = ", ".join(str(source.root) for source, *_ in plan)
    end = f"dataset {dataset!r} " + ("is still empty" if existed else "was not created")
    if report.bad:
        b = report.bad[0]
        where = f", {b['path']}" if b.get("path") else ""
        return (f"nothing ingested: all {len(report.bad)} samples in {roots} are bad (first: {b['source']} "
                f"{b['source_id']}: {b['reason']}{where}); fix them and run again; {end}")
    return f"nothing ingested: no annotated sample found in {roots}; {end}"


def ingest(*, ccp: str | Path | None = None, cfpd: str | Path | None = None, dataset: str = "clothcurate",
           labelmaps: list[Path] | tuple = (), overwrite: bool = False, strict: bool = False,
           workers: int | None = None, progress: bool = True) -> IngestReport:
    """Ingest the given sources into the FiftyOne dataset ``dataset``.

    Args:
        ccp: CCP folder (``photos/``, ``annotations/pixel-level/``, ``label_list.mat``; the photos
            annotated only in ``annotations/image-level/`` become tag-only samples).
        cfpd: CFPD folder (``fashon_parsing_data.mat``, ``image/``).
        dataset: FiftyOne dataset name (created persistent if missing).
        labelmaps: user label maps (YAML) replacing the built-in map of their ``source``.
        overwrite: delete the samples (and masks) of the given sources first, then rebuild.
        strict: raise at the first bad sample instead of skipping it.
        workers: decoding processes (default: CPU count).
        progress: show a progress bar.

    Returns:
        The report; also written to ``<workspace>/datasets/<dataset>/ingest_report.json``.

    Raises:
        BadInputError: missing folder, wrong layout, bad label map, two samples whose keys name one
            mask file, an unwritable workspace, no sample added to a dataset that has none, or
            (strict) a bad sample.
    """
    t_start = time.perf_counter()
    # Validate everything the user passed before touching the database.
    roots = {name: root for name, root in (("ccp", ccp), ("cfpd", cfpd)) if root is not None}
    if not roots:
        raise BadInputError("nothing to ingest: pass ccp=DIR and/or cfpd=DIR")
    chosen = _pick_labelmaps(list(roots), list(labelmaps))
    plan = []
    for name, root in roots.items():
        source = get_source(name, root)
        vocab = source.vocabularies()
        labelmap = chosen[name]
        labelmap.check_vocabulary(vocab[""], where=str(source.vocabulary_file()))
        refs, problems, left_out = source.scan()
        if strict and problems:
            p = problems[0]
            raise BadInputError(f"{source.name} sample {p.source_id} ({p.path}): {p.reason} (--strict)")
        _refuse_key_clashes(source, refs)
        plan.append((source, labelmap, vocab, refs, problems, left_out))

    target = _Target(dataset)
    existed = target.ds is not None
    if target.ds is not None and not overwrite:  # refuse before writing anything
        for source, labelmap, _, refs, *_ in plan:
            _check_same_labelmap(target.ds, source.name, labelmap)
            _refuse_reused_keys(target.ds, source, refs)
    if target.ds is not None and overwrite:  # a rebuild cannot redo people's mask corrections
        for source, *_ in plan:
            refuse_dropping_corrections(target.ds, source.name)
    outputs_of = {source.name: _outputs(dataset, source.name, vocab) for source, _, vocab, *_ in plan}
    made_home = _make_mask_dirs(dataset, [d for outputs in outputs_of.values() for _, d in outputs.values()])
    report = IngestReport(dataset=dataset)
    times = Counter()
    workers = workers or os.cpu_count() or 1
    try:
        for source, labelmap, vocab, refs, problems, left_out in plan:
            outputs = outputs_of[source.name]
            if overwrite and target.ds is not None:
                _remove_source(target.ds, source.name, list(outputs))
            target.configure(lambda ds, source=source, labelmap=labelmap, vocab=vocab:
                             _declare_source(ds, source.name, labelmap, vocab))
            present = _present(target.ds, source.name, list(outputs))
            # a photo ingested tag-only that has gained a pixel annotation stays tag-only (a re-run
            # never replaces a sample, whose review tags it would lose): said here, rebuilt by --overwrite
            gained = sum(1 for r in refs
                         if r.annotation == PIXEL and present.get(sample_key(source.name, r.source_id)) == {})
            left_out = {**left_out, _GAINED_MASK: gained}
            report.left_out[source.name] = {k: v for k, v in left_out.items() if v}
            report.bad += [{"source": source.name, "source_id": p.source_id, "path": p.path, "reason": p.reason}
                           for p in problems]
            todo = [r for r in refs if sample_key(source.name, r.source_id) not in present]
            # Samples already in the dataset whose mask files vanished or were cut short: written again
            # (same paths), the sample itself left as it is (tags, predictions, findings).
            restore = {key: paths for key, paths in present.items()
                       if not all(p and _mask_intact(p) for p in paths.values())}
            report.already_present[source.name] = len(refs) - len(todo)
            report.added[source.name] = report.restored[source.name] = 0
            jobs = todo + [r for r in refs if sample_key(source.name, r.source_id) in restore]
            if jobs:
                report.added[source.name], report.restored[source.name] = _run(
                    target, source, labelmap, outputs, jobs, report, times, restore=restore,
                    workers=workers, strict=strict, progress=progress)
            bad_ids = {b["source_id"] for b in report.bad if b["source"] == source.name}
            report.tag_only[source.name] = sum(1 for r in todo if r.annotation == IMAGE and r.source_id not in bad_ids)
        if target.ds is None or not len(target.ds):
            raise BadInputError(_nothing_ingested(dataset, plan, report, existed))
    except BaseException:
        if target.ds is None and made_home:  # nothing of this dataset existed before: leave nothing
            shutil.rmtree(dataset_dir(dataset), ignore_errors=True)
        raise
    report.timings = {"decode": round(times["decode"], 3), "remap": round(times["remap"], 3),
                      "png": round(times["png"], 3), "database": round(times["database"], 3),
                      "total": round(time.perf_counter() - t_start, 3)}
    path = dataset_dir(dataset) / "ingest_report.json"
    write_json(path, report.to_dict())
    report.report_path = str(path)
    return report


def _run(target, source, labelmap, outputs, todo, report, times, *, restore, workers, strict,
         progress) -> tuple[int, int]:
    """Process ``todo`` in a worker pool and add finished samples in batches (the samples whose key
    is in ``restore`` are in the dataset already: only their masks are written again); returns how
    many were added and restored."""
    fo = __import__("fiftyone")
    added, restored, batch = 0, 0, []

    def flush():
        nonlocal added, batch
        if batch:
            t = time.perf_counter()
            target.get().add_samples(batch, progress=False)
            times["database"] += time.perf_counter() - t
            added += len(batch)
            batch = []

    initargs = (source, labelmap, outputs)
    bar = tqdm(total=len(todo), desc=f"ingest {source.name}", unit="img", disable=not progress)
    pooled = workers > 1 and len(todo) > 16
    pool = process_pool(workers, initializer=_init_worker, initargs=initargs) if pooled else None
    try:  # from the first submitted job on: an interrupt still shuts the pool down (finally)
        if pool is not None:
            results = pool.map(_process, todo, chunksize=8)
        else:
            _init_worker(*initargs)
            results = map(_process, todo)
        for rec in results:
            bar.update()
            if "bad" in rec:
                report.bad.append(rec["bad"])
                if strict:
                    b = rec["bad"]
                    raise BadInputError(f"{b['source']} sample {b['source_id']} ({b['path']}): {b['reason']} (--strict)")
                continue
            times["decode"] += rec["t"][0]
            times["remap"] += rec["t"][1]
            times["png"] += rec["t"][2]
            if rec["key"] in restore:
                _point_to_restored(fo, target.ds, rec, restore[rec["key"]])
                restored += 1
                continue
            batch.append(_to_sample(fo, rec, source.name))
            if len(batch) >= _BATCH:
                flush()
        flush()
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return added, restored
