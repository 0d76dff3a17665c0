"""Mask corrections stored as versions: a new PNG per version, never an overwrite, and a log.

A correction writes the sample's new 15-class mask to
``<workspace>/datasets/<dataset>/masks/ground_truth_versions/<key>.v<N>.png`` (N = 2, 3, ...; a
folder of its own, so a version never shares a name with an ingested ``<key>.png``) and then, in
bulk for every sample changed:

- ``ground_truth.mask_path`` -> the new PNG (the Segmentation itself, and its id, stay);
- ``ground_truth_original`` (Segmentation) -> the mask ingest wrote, set at the first correction;
- ``corrections`` (list of dicts, oldest first): one record per version in force (:func:`commit`);
- ``classes``, ``class_pixels``, ``person``: measured again by :func:`clothcurate.mask_facts.mask_facts`,
  as ingest measures them (the ``person`` Detection keeps its id).

Every correction and undo is also appended to ``<workspace>/datasets/<dataset>/corrections.jsonl``
(one JSON object a line: ``event`` ``correct`` or ``undo``, ``key`` and the record). An undo points
``ground_truth`` back at the previous version's PNG (kept on disk, so it is restored byte for byte)
and drops the last record; undoing the first correction also clears ``ground_truth_original`` and
``corrections``. An undone version's PNG is kept (the log names it) and its number is not reused.
The order of the writes (PNG, database, log) leaves at worst an unused PNG after a crash.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clothcurate.atomic import write_bytes
from clothcurate.errors import BadInputError
from clothcurate.labelmaps import NUM_CLASSES, TARGET_CLASSES
from clothcurate.mask_facts import mask_facts
from clothcurate.masks import read_mask, write_mask_png
from clothcurate.workspace import dataset_dir, mask_dir
from clothcurate.timestamps import utc_now

__all__ = ["CORRECTIONS", "GROUND_TRUTH", "ORIGINAL", "VERSIONS_DIR", "Change", "SampleState", "class_changes",
           "commit", "correction_lock", "log_path", "next_version", "read_current", "read_states",
           "refuse_dropping_corrections", "undo_last", "versions_dir"]

GROUND_TRUTH = "ground_truth"
#: Segmentation field: the mask ingest wrote, kept once a sample is corrected
ORIGINAL = "ground_truth_original"
#: list-of-dicts field: one record per correction in force, oldest first
CORRECTIONS = "corrections"
#: mask folder (under ``masks/``) of the corrected versions
VERSIONS_DIR = "ground_truth_versions"
_LOG = "corrections.jsonl"
_HINT = "`clothcurate fix --key {key} --undo` returns to the previous version"


def log_path(dataset: str) -> Path:
    """The dataset's correction log: ``<workspace>/datasets/<dataset>/corrections.jsonl``."""
    return dataset_dir(dataset) / _LOG


def versions_dir(dataset: str) -> Path:
    """The folder of corrected mask versions."""
    return mask_dir(dataset, VERSIONS_DIR)


@contextlib.contextmanager
def correction_lock(dataset: str) -> Iterator[None]:
    """Hold the dataset's correction lock: two ``fix`` commands never read and write one history at once.

    Raises:
        BadInputError: another command holds it.
    """
    from filelock import FileLock, SoftFileLock, Timeout

    path = dataset_dir(dataset) / ".corrections.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, blocking=False)
    try:
        lock.acquire()
    except Timeout:
        raise BadInputError(f"dataset {dataset!r}: another `clothcurate fix` is changing its masks; wait for it "
                            "to finish, then run again") from None
    try:
        yield
    finally:
        if not isinstance(lock, SoftFileLock):  # unlinked while held: no lock file is left behind
            path.unlink(missing_ok=True)
        lock.release()


@dataclass
class SampleState:
    """What a correction needs to know of one sample.

    Attributes:
        id: the FiftyOne sample id.
        key: the sample key.
        mask_path: ``ground_truth.mask_path`` (the version in force).
        original_path: ``ground_truth_original.mask_path``, None while uncorrected.
        corrections: the records in force, oldest first.
        person_id: the id of the ``person`` Detection, if any (kept when the box changes).
    """

    id: str
    key: str
    mask_path: str | None
    original_path: str | None = None
    corrections: list[dict] = field(default_factory=list)
    person_id: str | None = None


def read_states(view) -> dict[str, SampleState]:
    """``{key: state}`` of the samples of a FiftyOne dataset or view (bulk reads)."""
    schema = view.get_field_schema()
    ids, keys, paths = view.values(["id", "key", f"{GROUND_TRUTH}.mask_path"])
    n = len(ids)
    originals = view.values(f"{ORIGINAL}.mask_path") if ORIGINAL in schema else [None] * n
    records = view.values(CORRECTIONS) if CORRECTIONS in schema else [None] * n
    persons = view.values("person.id") if "person" in schema else [None] * n
    return {k: SampleState(i, k, p, o, list(c or []), pid)
            for i, k, p, o, c, pid in zip(ids, keys, paths, originals, records, persons)}


def read_current(state: SampleState) -> np.ndarray:
    """(H, W) uint8: the sample's mask in force.

    Raises:
        BadInputError: missing or unreadable PNG, or a value outside the 15 classes.
    """
    if not state.mask_path:
        raise BadInputError(f"sample {state.key} has no ground_truth mask to correct (a photo with image-level tags "
                            "only has none; otherwise re-run `clothcurate ingest` with its source folder: it adds "
                            "missing masks and keeps tags and predictions)")
    hint = (_HINT.format(key=state.key) if state.corrections else
            "re-run `clothcurate ingest` with its source folder (it writes lost masks again)")
    return read_mask(state.mask_path, sample=state.key, hint=hint, num_classes=NUM_CLASSES)


def class_changes(before: np.ndarray, after: np.ndarray) -> list[dict]:
    """Pixels that changed class, per (from, to) pair, most first.

    Args:
        before, after: (H, W) uint8 class ids.

    Returns:
        ``[{"from": name, "to": name, "pixels": n}, ...]``.
    """
    moved = before != after
    pairs = before[moved].astype(np.int32) * 256 + after[moved]
    values, counts = np.unique(pairs, return_counts=True)
    out = [{"from": TARGET_CLASSES[v // 256], "to": TARGET_CLASSES[v % 256], "pixels": int(c)}
           for v, c in zip(values.tolist(), counts.tolist())]
    return sorted(out, key=lambda c: -c["pixels"])


@dataclass
class Change:
    """One sample's new mask, about to be committed.

    Attributes:
        state: the sample as read before the change.
        mask: (H, W) uint8, the new mask.
        how: ``relabel`` or ``suggestion``.
        changes: :func:`class_changes` of the old and new mask.
        detail: what else the record keeps (``{"region": 2}``, ``{"findings": [...]}``).
    """

    state: SampleState
    mask: np.ndarray
    how: str
    changes: list[dict]
    detail: dict = field(default_factory=dict)

    @property
    def pixels(self) -> int:
        """Pixels changed."""
        return sum(c["pixels"] for c in self.changes)


_VERSION = re.compile(r"\.v(\d+)\.png")


def next_version(dataset: str, key: str) -> int:
    """The next version number of a sample: one past every version PNG on disk (2 for the first
    correction; undone and orphaned versions are never reused)."""
    prefix = f"{key}.v"
    used = [int(m.group(1)) for p in versions_dir(dataset).glob(f"{glob_escape(key)}.v*.png")
            if p.name.startswith(prefix) and (m := _VERSION.fullmatch(p.name[len(key):]))]
    return max([1, *used]) + 1


def glob_escape(text: str) -> str:
    """``text`` with glob's special characters escaped (keys may hold ``%`` escapes, never ``/``)."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _declare_fields(ds) -> None:
    import fiftyone as fo

    schema = ds.get_field_schema()
    if ORIGINAL not in schema:
        ds.add_sample_field(ORIGINAL, fo.EmbeddedDocumentField, embedded_doc_type=fo.Segmentation,
                            description="clothcurate fix: the mask ingest wrote, kept once the sample is corrected")
    if CORRECTIONS not in schema:
        ds.add_sample_field(CORRECTIONS, fo.ListField, subfield=fo.DictField,
                            description="clothcurate fix: one record per mask correction in force, oldest first "
                                        "(version, at, how, changes, pixels, previous, mask)")


def _person(facts, person_id: str | None):
    import fiftyone as fo
    from bson import ObjectId

    if facts.person is None:
        return None
    extra = {"_id": ObjectId(person_id)} if person_id else {}
    return fo.Detection(label="person", bounding_box=facts.person, **extra)


def _write_fields(ds, rows: dict[str, dict]) -> None:
    """Bulk-write ``{sample id: {field: value}}``: one ``set_values`` per field, over the samples
    whose row names it."""
    names = dict.fromkeys(name for row in rows.values() for name in row)
    for name in names:
        ds.set_values(name, {i: row[name] for i, row in rows.items() if name in row}, key_field="id")


def _append_log(dataset: str, entries: list[dict]) -> None:
    """Append JSON lines to the log (the whole file replaced atomically: never a half line)."""
    path = log_path(dataset)
    old = path.read_bytes() if path.exists() else b""
    write_bytes(path, old + b"".join(json.dumps(e).encode() + b"\n" for e in entries))


def commit(ds, dataset: str, changes: list[Change]) -> list[dict]:
    """Store each change as the sample's next version.

    Args:
        ds: the FiftyOne dataset.
        dataset: its name (the workspace folder).
        changes: at most one per sample.

    Returns:
        The records written, in the order of ``changes``.
    """
    import fiftyone as fo

    if not changes:
        return []
    out_dir = versions_dir(dataset)
    out_dir.mkdir(parents=True, exist_ok=True)
    _declare_fields(ds)
    rows, records, log = {}, [], []
    for ch in changes:
        st = ch.state
        version = next_version(dataset, st.key)
        path = out_dir / f"{st.key}.v{version}.png"
        write_mask_png(path, ch.mask)
        record = {"version": version, "at": utc_now(), "how": ch.how, "changes": ch.changes, "pixels": ch.pixels,
                  **ch.detail, "previous": st.mask_path, "mask": str(path)}
        facts = mask_facts(ch.mask)
        rows[st.id] = {f"{GROUND_TRUTH}.mask_path": str(path), CORRECTIONS: [*st.corrections, record],
                       "classes": facts.classes, "class_pixels": facts.class_pixels,
                       "person": _person(facts, st.person_id)}
        if not st.corrections:  # the first correction keeps the ingested mask
            rows[st.id][ORIGINAL] = fo.Segmentation(mask_path=st.mask_path)
        records.append(record)
        log.append({"event": "correct", "key": st.key, **record})
    _write_fields(ds, rows)
    _append_log(dataset, log)
    return records


def undo_last(ds, dataset: str, state: SampleState) -> dict:
    """Return one sample to the version before its last correction.

    Returns:
        The record undone.

    Raises:
        BadInputError: the sample has no correction, or the previous version's PNG is lost.
    """
    if not state.corrections:
        raise BadInputError(f"sample {state.key} of dataset {dataset!r} has no correction to undo (its mask is the "
                            "one ingest wrote)")
    last = state.corrections[-1]
    previous = last["previous"]
    mask = read_mask(previous, sample=state.key, num_classes=NUM_CLASSES,
                     hint="the version before the last correction is lost; nothing was changed")
    facts = mask_facts(mask)
    first = len(state.corrections) == 1
    row = {f"{GROUND_TRUTH}.mask_path": previous, CORRECTIONS: None if first else state.corrections[:-1],
           "classes": facts.classes, "class_pixels": facts.class_pixels, "person": _person(facts, state.person_id)}
    if first:  # back to the ingested mask: the sample is uncorrected again
        row[ORIGINAL] = None
    _write_fields(ds, {state.id: row})
    _append_log(dataset, [{"event": "undo", "key": state.key, "at": utc_now(), "version": last["version"],
                           "undone": last["mask"], "restored": previous}])
    return last


def refuse_dropping_corrections(ds, source: str) -> None:
    """Refuse to rebuild (``ingest --overwrite``) the samples of ``source`` while some are corrected:
    the rebuild would delete the corrections, which no source file holds.

    Raises:
        BadInputError: naming how many samples, one of them and what to do.
    """
    from fiftyone import ViewField as F

    if not ds.has_sample_field(ORIGINAL):
        return
    keys = ds.match(F("source") == source).exists(ORIGINAL).values("key")
    if keys:
        raise BadInputError(f"dataset {ds.name!r}: --overwrite would delete the mask corrections of {len(keys)} "
                            f"{source} sample{'' if len(keys) == 1 else 's'} (e.g. {keys[0]}; see "
                            f"{log_path(ds.name)}); undo them first (`clothcurate fix --key KEY --undo`) or ingest "
                            "into a new --dataset; nothing was changed")
