"""Plan an ingest against the dataset as it is: what to refuse, add, restore and report as left out.

Nothing here writes. The checks run before anything is written, so a refused ingest changes
nothing; the per-source plan reads which samples the dataset already holds and which of their mask
files were lost.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from clothcurate.curation.annotation import ANNOTATION_FIELD, IMAGE, PIXEL
from clothcurate.curation.annotation import tag_only as tag_only_view
from clothcurate.curation.fix.versions import ORIGINAL, refuse_dropping_corrections
from clothcurate.curation.ingest.dataset import source_view
from clothcurate.curation.ingest.scan import ScannedSource
from clothcurate.curation.sources import SampleRef, Source
from clothcurate.errors import BadInputError
from clothcurate.labelmaps import LabelMap
from clothcurate.workspace import sample_key

__all__ = ["SourcePlan", "check_dataset", "plan_source", "tag_only_added"]

#: ``left_out`` reason of tag-only samples whose photo now has a pixel annotation
GAINED_MASK = "tag-only in the dataset but now pixel-annotated (--overwrite rebuilds them)"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the last chunk of every PNG file


@dataclass
class SourcePlan:
    """What an ingest does with one source's samples.

    Attributes:
        todo: the samples not in the dataset yet (to add).
        restore: ``{key: {mask field: stored mask path or None}}`` of the samples in the dataset
            whose mask files vanished or were cut short (written again, the sample left as it is).
        jobs: the samples to process: ``todo``, then the ones to restore.
        already_present: how many of the source's samples the dataset holds.
        left_out: ``{reason: count}`` of samples skipped on purpose, zero counts dropped.
    """

    todo: list[SampleRef]
    restore: dict[str, dict[str, str | None]]
    jobs: list[SampleRef]
    already_present: int
    left_out: dict[str, int]


def check_dataset(ds, scanned: list[ScannedSource], *, overwrite: bool) -> None:
    """Refuse, before anything is written, an ingest the existing dataset cannot take.

    Args:
        ds: the existing FiftyOne dataset.
        scanned: the sources to ingest.
        overwrite: their samples are to be rebuilt (deleted first).

    Raises:
        BadInputError: (adding) a source's samples were built with another label map, or a key or
            source id is held under another pairing; (overwrite) a source has mask corrections,
            which a rebuild cannot redo.
    """
    for s in scanned:
        if overwrite:
            refuse_dropping_corrections(ds, s.source.name)
        else:
            _check_same_labelmap(ds, s.source.name, s.labelmap)
            _refuse_reused_keys(ds, s.source, s.refs)


def plan_source(ds, scanned: ScannedSource, fields: list[str]) -> SourcePlan:
    """Split a source's samples into those to add and those whose lost masks to restore.

    A photo ingested tag-only that has gained a pixel annotation stays tag-only (a re-run never
    replaces a sample, whose review tags it would lose): it is counted as left out, and
    ``--overwrite`` rebuilds it.

    Args:
        ds: the dataset, or None while it does not exist.
        scanned: the source.
        fields: its mask fields (``ground_truth``, ``raw_<source>`` ...).

    Returns:
        The plan.
    """
    name = scanned.source.name
    present = _present(ds, name, fields)
    key_of = {r.source_id: sample_key(name, r.source_id) for r in scanned.refs}
    gained = sum(1 for r in scanned.refs if r.annotation == PIXEL and present.get(key_of[r.source_id]) == {})
    left_out = {**scanned.left_out, GAINED_MASK: gained}
    todo = [r for r in scanned.refs if key_of[r.source_id] not in present]
    restore = {key: paths for key, paths in present.items()
               if not all(p and _mask_intact(p) for p in paths.values())}
    return SourcePlan(todo=todo, restore=restore,
                      jobs=todo + [r for r in scanned.refs if key_of[r.source_id] in restore],
                      already_present=len(scanned.refs) - len(todo),
                      left_out={k: v for k, v in left_out.items() if v})


def tag_only_added(plan: SourcePlan, bad_ids: set[str]) -> int:
    """How many of the samples added were tag-only.

    Args:
        plan: the source's plan.
        bad_ids: the source ids of its samples found bad (not added).

    Returns:
        The count.
    """
    return sum(1 for r in plan.todo if r.annotation == IMAGE and r.source_id not in bad_ids)


def _check_same_labelmap(ds, source: str, labelmap: LabelMap) -> None:
    """Refuse to add samples of ``source`` with a map other than the one its samples were built with.

    Args:
        ds: the dataset.
        source: the source name.
        labelmap: the label map of this ingest.

    Raises:
        BadInputError: naming both maps and what to do.
    """
    recorded = (ds.info.get("labelmap_targets") or {}).get(source)
    if recorded is None or list(recorded) == list(labelmap.targets):
        return
    n = source_view(ds, source).count()
    if n:
        was = (ds.info.get("labelmaps") or {}).get(source, "another label map")
        raise BadInputError(f"dataset {ds.name!r}: its {n} {source} samples were remapped with {was}, not "
                            f"{labelmap.path}; drop --labelmap, or pass --overwrite to rebuild them with it (this "
                            "deletes their reject/ok tags, findings and predictions)")


def _refuse_reused_keys(ds, source: Source, refs: list[SampleRef]) -> None:
    """Refuse a sample whose key or source id the dataset holds under another pairing (keys made by
    an older clothcurate merged names such as ``00 01`` and ``00-01``).

    Args:
        ds: the dataset.
        source: the source's reader.
        refs: its samples.

    Raises:
        BadInputError: naming the photo, the key and the sample it belongs to.
    """
    keys, ids = source_view(ds, source.name).values(["key", "source_id"])
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
    """The samples of ``source`` already in the dataset and the masks ingest wrote for them.

    Args:
        ds: the dataset, or None while it does not exist.
        source: the source name.
        fields: its mask fields.

    Returns:
        ``{key: {mask field: mask path or None}}`` (``{}`` for a tag-only sample: it has no mask
        to lose).
    """
    if ds is None:
        return {}
    view = source_view(ds, source)
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
    """Whether a mask PNG exists and ends with its IEND chunk (not removed, not cut short).

    Args:
        path: the mask file.

    Returns:
        True when intact.
    """
    try:
        with open(path, "rb") as f:
            f.seek(-len(_PNG_END), os.SEEK_END)
            return f.read() == _PNG_END
    except OSError:
        return False
