"""``clothcurate annotate``: full mask edits in a real annotation tool (Label Studio; CVAT untested).

``send`` uploads the photos of a view (or of some keys) with their current 15-class masks as
pre-annotations, through FiftyOne's annotation API (``view.annotate``); ``load`` brings the edited
masks back (``dataset.load_annotations``) and stores every mask that differs as a correction
(:func:`clothcurate.curation.fix.versions.commit`, ``how`` = ``annotation tool``: versioned,
logged, undoable with ``clothcurate fix --key K --undo``); an unchanged mask makes no version.

FiftyOne's Label Studio converter carries one class per segmentation, so a mask travels as one
brush region per class (:mod:`.regions`, exact both ways) in the sample field
``annotate_<anno_key>`` (FiftyOne ``Detections``, the run's label field). What was sent is kept in
``<workspace>/datasets/<dataset>/annotate/<anno_key>.json`` (``{"sent": {key: mask_path}}``): a
sample whose mask was corrected after the send is left alone at load (its edit was made on an
older version), and overlapping brushes are resolved against the mask sent.

Example::

    from clothcurate.curation.annotate import load, send
    print(send("clothcurate", anno_key="round1", view="suspicious", url="http://localhost:8080",
               api_key="...").summary())
    # ... edit in Label Studio ...
    print(load("clothcurate", anno_key="round1", api_key="...").summary())
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from clothcurate.atomic import write_json
from clothcurate.curation.annotate.backends import BACKENDS, check_server, resolve
from clothcurate.curation.annotate.regions import to_mask, to_regions
from clothcurate.errors import BadInputError, ClothcurateError
from clothcurate.labelmaps import TARGET_CLASSES
from clothcurate.workspace import dataset_dir
from clothcurate.timestamps import utc_now

__all__ = ["BACKENDS", "AnnotateReport", "label_field", "load", "send", "sent_path"]

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
#: ``corrections[].how`` of a mask edited in an annotation tool
HOW = "annotation tool"


def label_field(anno_key: str) -> str:
    """The run's label field: ``annotate_<anno_key>`` (one brush region per class)."""
    return f"annotate_{anno_key}"


def sent_path(dataset: str, anno_key: str) -> Path:
    """What a run sent: ``<workspace>/datasets/<dataset>/annotate/<anno_key>.json``."""
    return dataset_dir(dataset) / "annotate" / f"{anno_key}.json"


@dataclass
class AnnotateReport:
    """What ``annotate send`` / ``load`` did.

    Attributes:
        dataset, anno_key, backend, url: the run.
        action: ``send`` or ``load``.
        samples: samples sent, or returned by the tool.
        project: the tool's project id (Label Studio) or task ids (CVAT), as FiftyOne records it.
        lines: one line per sample changed (load).
        records: the ``corrections`` records written (load).
        left: ``{reason: [keys]}`` of samples not loaded or not sent.
        cleaned: the run was deleted (``--cleanup``).
    """

    dataset: str
    anno_key: str
    action: str
    backend: str
    url: str
    samples: int = 0
    project: str = ""
    lines: list[str] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    left: dict[str, list[str]] = field(default_factory=dict)
    cleaned: bool = False

    def summary(self) -> str:
        title = BACKENDS[self.backend].title
        if self.action == "send":
            out = [f"dataset {self.dataset!r}: sent {self.samples} sample{'' if self.samples == 1 else 's'} to "
                   f"{title} at {self.url} ({self.project}, anno key {self.anno_key!r})",
                   f"  edit the masks there, then: clothcurate annotate load --dataset {self.dataset} "
                   f"--anno-key {self.anno_key}"]
        else:
            n = len(self.lines)
            out = [f"dataset {self.dataset!r}: {self.samples} sample{'' if self.samples == 1 else 's'} back from "
                   f"{title} (anno key {self.anno_key!r}); changed {n} sample{'' if n == 1 else 's'}",
                   *(f"  {line}" for line in self.lines)]
            if self.records:
                out.append("  (`clothcurate fix --key K --undo` goes back one version)")
        for why, keys in self.left.items():
            if keys:
                more = f" ... (+{len(keys) - 5})" if len(keys) > 5 else ""
                out.append(f"  left alone: {len(keys)} {why}: {', '.join(keys[:5])}{more}")
        if self.cleaned:
            out.append(f"  run {self.anno_key!r} deleted (here and on the server)")
        return "\n".join(out)


def _check_key(anno_key: str) -> None:
    if not _KEY.fullmatch(anno_key or ""):
        raise BadInputError(f"--anno-key {anno_key!r}: give a name of letters, digits and '_' (not starting with a "
                            "digit, at most 63), e.g. round1")


def _quiet_fiftyone_loggers() -> None:
    # FiftyOne logs "Uploading media..." and per-field progress at INFO; the CLI prints its own summary
    for name in ("fiftyone.utils.labelstudio", "fiftyone.utils.cvat", "fiftyone.utils.annotations",
                 "fiftyone.core.collections"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # the Label Studio client logs every HTTP error as a multi-line block before raising it; the
    # error is reported once, as one line, by the caller
    logging.getLogger("label_studio_sdk").setLevel(logging.CRITICAL)


def _credentials(backend: str, url: str, api_key: str | None) -> dict:
    """The keyword arguments FiftyOne's backend takes for the server."""
    if backend == "cvat":
        return {"url": url, **({"headers": {"Authorization": f"Token {api_key}"}} if api_key else {})}
    return {"url": url, "api_key": api_key}


class _ProjectGone(BadInputError):
    """The run's project is no longer on the server."""


def _tool_error(b, url: str, e: BaseException, what: str, anno_key: str) -> ClothcurateError:
    from clothcurate.curation.db import _first_line

    text = _first_line(e) or type(e).__name__
    if "404" in text or "Not Found" in text:
        return _ProjectGone(f"{b.title} at {url}: {what}: {text} (the project may have been deleted there; "
                             f"`clothcurate annotate load --anno-key {anno_key} --cleanup` forgets the run)")
    return ClothcurateError(f"{b.title} at {url}: {what}: {text}")


def send(dataset: str, *, anno_key: str, backend: str = "labelstudio", view: str | None = None,
         keys: list[str] | tuple[str, ...] = (), url: str | None = None, api_key: str | None = None) -> AnnotateReport:
    """Upload samples with their current masks (one brush region per class) to an annotation tool.

    Args:
        dataset: FiftyOne dataset name.
        anno_key: names the run (FiftyOne's annotation key); not in use yet.
        backend: ``labelstudio`` or ``cvat``.
        view: a saved view (``suspicious`` ...) to send; None with no ``keys`` = every sample.
        keys: only these samples (of ``view`` if given).
        url, api_key: the server (default: FiftyOne's ``FIFTYONE_<BACKEND>_URL`` / ``_API_KEY``).

    Returns:
        The report (``project``: where to open it).

    Raises:
        BadInputError: unknown dataset, view, key or backend; ``anno_key`` in use or malformed; no
            sample with a mask; the server not reachable or refusing the key. Nothing is written then.
        ClothcurateError: the tool failed during the upload (the run is removed again).
    """
    from fiftyone import ViewField as F

    from clothcurate.curation.db import load_dataset, load_saved_view
    from clothcurate.curation.fix import versions

    _check_key(anno_key)
    b, url, api_key = resolve(backend, url=url, api_key=api_key)
    ds = load_dataset(dataset)
    if not ds.has_sample_field("key"):
        raise BadInputError(f"dataset {dataset!r} has no samples made by clothcurate ingest; run `clothcurate ingest` "
                            "first or pass another --dataset")
    if ds.has_annotation_run(anno_key) or ds.has_sample_field(label_field(anno_key)):
        raise BadInputError(f"--anno-key {anno_key!r} is already used in dataset {dataset!r}; load it "
                            f"(`clothcurate annotate load --anno-key {anno_key}`, --cleanup to forget it) or pick "
                            "another name")
    samples = load_saved_view(ds, view) if view is not None else ds
    if keys:
        known = set(ds.match(F("key").is_in(list(keys))).values("key"))
        unknown = [k for k in keys if k not in known]
        if unknown:
            example = ds.first()["key"] if len(ds) else "ccp_0001"
            raise BadInputError(f"dataset {dataset!r} has no sample with key {unknown[0]!r} (keys look like "
                                f"{example!r}); check --key")
        samples = samples.match(F("key").is_in(list(keys)))
        if view is not None and len(samples) < len(set(keys)):
            missing = sorted(set(keys) - set(samples.values("key")))
            raise BadInputError(f"--key {missing[0]!r} is not in view {view!r}; drop --view or the key")
    with_mask = samples.exists(f"{versions.GROUND_TRUTH}.mask_path")
    left = sorted(set(samples.values("key")) - set(with_mask.values("key")))
    if not len(with_mask):
        raise BadInputError(f"no sample to send: the {len(samples)} selected have no ground_truth mask (tag-only "
                            "photos); choose another --view or --key")
    check_server(b, url, api_key)  # before anything is written

    _quiet_fiftyone_loggers()
    states = versions.read_states(with_mask)
    fld = label_field(anno_key)
    _write_regions(ds, fld, states)
    try:
        results = with_mask.annotate(anno_key, backend=b.name, label_field=fld, label_type="instances",
                                     classes=list(TARGET_CLASSES[1:]), attributes=False,
                                     project_name=_project_title(dataset, anno_key),
                                     **_credentials(b.name, url, api_key))
    except BaseException as e:  # Ctrl-C too: the run is not kept half made
        _forget(ds, anno_key)
        if not isinstance(e, Exception):
            raise
        raise _tool_error(b, url, e, "upload failed (nothing kept here)", anno_key) from e
    sent = {"at": utc_now(), "backend": b.name, "url": url,
            "sent": {st.key: st.mask_path for st in states.values()}}
    write_json(sent_path(dataset, anno_key), sent)
    project = (f"project {results.project_id}: {url}/projects/{results.project_id}"
               if getattr(results, "project_id", None) is not None else
               f"tasks {', '.join(map(str, getattr(results, 'task_ids', []) or []))}")
    report = AnnotateReport(dataset, anno_key, "send", b.name, url, samples=len(states), project=project)
    report.left = {"samples without a ground_truth mask": left}
    return report


def _project_title(dataset: str, anno_key: str) -> str:
    # Label Studio titles hold 50 characters, and FiftyOne appends "_<timestamp>" (11) to a taken one
    title = f"{dataset}/{anno_key}"
    return title if len(title) <= 39 else title[:36] + "..."


def _write_regions(ds, fld: str, states: dict) -> None:
    """Fill the run's label field: each sample's mask as one FiftyOne Detection per class."""
    import fiftyone as fo

    from clothcurate.curation.fix import versions

    values = {}
    for st in tqdm(list(states.values()), desc="regions", unit="sample", disable=len(states) < 20):
        mask = versions.read_current(st)
        values[st.id] = fo.Detections(detections=[fo.Detection(label=name, bounding_box=box, mask=m)
                                                  for name, box, m in to_regions(mask)])
    ds.add_sample_field(fld, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections,
                        description="clothcurate annotate: the mask sent, one region per class (the run's label field)")
    ds.set_values(fld, values, key_field="id")


def _forget(ds, anno_key: str) -> None:
    """Remove the run here: its FiftyOne record, label field and sent-list."""
    if ds.has_annotation_run(anno_key):
        ds.delete_annotation_run(anno_key)
    if ds.has_sample_field(label_field(anno_key)):
        ds.delete_sample_field(label_field(anno_key))
    sent_path(ds.name, anno_key).unlink(missing_ok=True)


def _run_or_error(ds, dataset: str, anno_key: str, *, cleanup: bool) -> dict | None:
    """What the run sent (None: unreadable, and ``cleanup`` asks to forget the run anyway)."""
    _check_key(anno_key)
    if not ds.has_annotation_run(anno_key):
        runs = ", ".join(ds.list_annotation_runs()) or "none; `clothcurate annotate send` makes one"
        raise BadInputError(f"dataset {dataset!r} has no annotation run {anno_key!r} (runs: {runs}); check --anno-key")
    path = sent_path(dataset, anno_key)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        if cleanup:
            return None
        raise BadInputError(f"annotation run {anno_key!r}: {path} is missing or unreadable ({type(e).__name__}); the "
                            f"run was not made by `clothcurate annotate send`; --cleanup forgets it") from None


def load(dataset: str, *, anno_key: str, url: str | None = None, api_key: str | None = None,
         cleanup: bool = False) -> AnnotateReport:
    """Bring the masks of an annotation run back; each that differs becomes a correction.

    Args:
        dataset: FiftyOne dataset name.
        anno_key: the run (``annotate send --anno-key``).
        url, api_key: the server (default: the run's URL; FiftyOne's ``FIFTYONE_<BACKEND>_API_KEY``).
        cleanup: afterwards delete the run (its project on the server, its field and record here).

    Returns:
        The report: one line per sample changed; samples left alone and why.

    Raises:
        BadInputError: unknown dataset or run; the server not reachable, refusing the key or no
            longer holding the project; a brush outside the classes or the photo. Nothing is
            written then.
        ClothcurateError: the tool failed while answering.
    """
    from clothcurate.curation.db import load_dataset
    from clothcurate.curation.fix import versions

    ds = load_dataset(dataset)
    sent = _run_or_error(ds, dataset, anno_key, cleanup=cleanup)
    info = ds.get_annotation_info(anno_key)
    b, url, api_key = resolve(info.config.name, url=url or getattr(info.config, "url", None), api_key=api_key)
    check_server(b, url, api_key)
    _quiet_fiftyone_loggers()
    report = AnnotateReport(dataset, anno_key, "load", b.name, url)
    if sent is None:  # not made (completely) by `annotate send`: nothing to load, only to forget
        _cleanup(ds, anno_key, b, url, api_key)
        report.cleaned = True
        return report
    tmp = f"annotate_{anno_key}_loading"
    with versions.correction_lock(dataset):
        if ds.has_sample_field(tmp):  # left by a crash
            ds.delete_sample_field(tmp)
        changes = []
        try:
            try:
                ds.load_annotations(anno_key, dest_field=tmp, unexpected="ignore", progress=False,
                                    **_credentials(b.name, url, api_key))
            except Exception as e:
                err = _tool_error(b, url, e, f"loading run {anno_key!r} failed (nothing was changed)", anno_key)
                if not (cleanup and isinstance(err, _ProjectGone)):
                    raise err from e
                report.left = {"samples: the project is gone from the server (nothing loaded)": sorted(sent["sent"])}
            else:
                changes = _changes(ds, dataset, anno_key, tmp, sent["sent"], report, b.name)
        finally:
            if ds.has_sample_field(tmp):
                ds.delete_sample_field(tmp)
        report.records = versions.commit(ds, dataset, changes)
    for ch, rec in zip(changes, report.records):
        what = ", ".join(f"{c['from']} -> {c['to']} {c['pixels']:,} px" for c in ch.changes)
        report.lines.append(f"{ch.state.key} v{rec['version']}: {what}")
    if cleanup:
        _cleanup(ds, anno_key, b, url, api_key)
        report.cleaned = True
    return report


def _changes(ds, dataset: str, anno_key: str, tmp: str, sent: dict[str, str], report: AnnotateReport,
             backend: str) -> list:
    """The corrections a loaded run makes (read only; :func:`load` commits them)."""
    from fiftyone import ViewField as F

    from clothcurate.curation.fix import versions
    from clothcurate.curation.fix.versions import Change, class_changes

    view = ds.match(F("key").is_in(list(sent)))
    states = versions.read_states(view)
    keys, regions = view.values("key"), view.values(tmp) if ds.has_sample_field(tmp) else [None] * len(view)
    left: dict[str, list[str]] = {"samples changed here since the send (their edit was made on an older mask)": [],
                                  "samples that came back without any brush region (unlabeled or emptied)": [],
                                  "samples no longer in the dataset": sorted(set(sent) - set(keys))}
    changes = []
    for key, dets in tqdm(list(zip(keys, regions)), desc="load", unit="sample", disable=len(keys) < 20):
        st = states[key]
        if st.mask_path != sent[key]:
            left["samples changed here since the send (their edit was made on an older mask)"].append(key)
            continue
        if dets is None or not dets.detections:
            left["samples that came back without any brush region (unlabeled or emptied)"].append(key)
            continue
        report.samples += 1
        before = versions.read_current(st)
        try:
            new = to_mask([(d.label, d.bounding_box, d.mask) for d in dets.detections if d.mask is not None],
                          shape=before.shape, before=before, sample=key)
        except ValueError as e:
            raise BadInputError(f"annotation run {anno_key!r}: {e}; fix it in the tool and load again; nothing "
                                "was changed") from None
        moved = class_changes(before, new)
        if moved:
            changes.append(Change(st, new, HOW, moved, {"anno_key": anno_key, "backend": backend}))
    report.left = left
    return changes


def _cleanup(ds, anno_key: str, b, url: str, api_key: str | None) -> None:
    """Delete the run: its project on the server (if still there), then everything here."""
    try:
        results = ds.load_annotation_results(anno_key, **_credentials(b.name, url, api_key))
        results.cleanup()
    except Exception as e:  # the project may be gone already; the run here is still forgotten
        logging.getLogger(__name__).warning("could not delete the run's project on %s: %s", url, e)
    _forget(ds, anno_key)
