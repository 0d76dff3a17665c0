"""``clothcurate fix``: correct 15-class masks as versions (relabel, accept model suggestions, undo).

Every correction is a new version of the sample's mask (:mod:`.versions`: a new PNG, the ingested
mask kept as ``ground_truth_original``, a ``corrections`` record and a line in the dataset's
``corrections.jsonl``); ``classes``, ``class_pixels`` and ``person`` are measured again as ingest
measures them. Nothing is written before every input is checked: a bad key, class, region number
or an undo without history is a :class:`~clothcurate.errors.BadInputError` and changes nothing.

Example::

    from clothcurate.curation.fix import relabel, undo
    print(relabel("clothcurate", key="ccp_0004", from_class="dress", to_class="coat", region=1).summary())
    print(undo("clothcurate", key="ccp_0004").summary())
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from clothcurate.curation.fix import versions
from clothcurate.curation.fix.regions import Region, all_regions, class_regions
from clothcurate.curation.fix.suggestions import suggestions
from clothcurate.curation.fix.versions import Change, SampleState, class_changes
from clothcurate.errors import BadInputError
from clothcurate.labelmaps import TARGET_CLASSES
from clothcurate.masks import read_mask

__all__ = ["FixReport", "accept_suggestions", "list_regions", "relabel", "undo"]

#: fields written by ``flag-errors --model`` (clothcurate.curation.flags.model)
_FINDINGS, _ISSUES = "label_findings", "label_issues"


@dataclass
class FixReport:
    """What a ``fix`` command did (or, with ``dry_run``, would do).

    Attributes:
        dataset: the dataset.
        action: ``relabel``, ``suggestion``, ``undo`` or ``regions``.
        dry_run: nothing was written.
        lines: one line per sample changed (or region listed).
        records: the ``corrections`` records written (undo: the records undone).
        skipped: ``{reason: count}`` of suggestions left alone (with the findings applied, every
            ``label_findings`` line considered is counted once).
    """

    dataset: str
    action: str
    dry_run: bool = False
    lines: list[str] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        if self.action == "regions":
            return "\n".join(self.lines)
        verb = "would change" if self.dry_run else "changed"
        if self.action == "undo":
            head = f"dataset {self.dataset!r}: undone"
        else:
            n = len(self.lines)
            head = f"dataset {self.dataset!r}: {verb} {n} sample{'' if n == 1 else 's'}"
        out = [head, *(f"  {line}" for line in self.lines)]
        out += [f"  left alone: {n} suggestion(s) {why}" for why, n in self.skipped.items() if n]
        if self.records and not self.dry_run and self.action != "undo":
            out.append("  (re-run `clothcurate flag-errors` to score the corrected masks; "
                       "`clothcurate fix --key K --undo` goes back one version)")
        return "\n".join(out)


def _class_id(name: str, option: str) -> int:
    for i, known in enumerate(TARGET_CLASSES):
        if name.strip().lower() == known:
            return i
    raise BadInputError(f"{option}: unknown class {name!r}; the classes are {', '.join(TARGET_CLASSES)}")


def _state(ds, dataset: str, key: str) -> SampleState:
    from fiftyone import ViewField as F

    if not ds.has_sample_field("key"):
        raise BadInputError(f"dataset {dataset!r} has no samples made by clothcurate ingest; run `clothcurate ingest` "
                            "first or pass another --dataset")
    states = versions.read_states(ds.match(F("key") == key))
    if key not in states:
        example = ds.first()["key"] if len(ds) else "ccp_0001"
        raise BadInputError(f"dataset {dataset!r} has no sample with key {key!r} (keys look like {example!r}); "
                            "check --key")
    return states[key]


def _describe(key: str, version: int | str, changes: list[dict], extra: str = "") -> str:
    what = ", ".join(f"{c['from']} -> {c['to']} {c['pixels']:,} px" for c in changes)
    return f"{key} v{version}: {what}{extra}"


def list_regions(dataset: str, *, key: str, class_name: str | None = None) -> FixReport:
    """Number the connected regions of one sample's mask, as ``--region`` takes them.

    Args:
        dataset: FiftyOne dataset name.
        key: the sample key.
        class_name: only this class's regions.

    Raises:
        BadInputError: unknown dataset, key or class; unreadable mask.
    """
    from clothcurate.curation.db import load_dataset

    cls = None if class_name is None else _class_id(class_name, "--class")
    st = _state(load_dataset(dataset), dataset, key)
    gt = versions.read_current(st)
    regions: list[Region] = all_regions(gt) if cls is None else class_regions(gt, cls)[1]
    version = st.corrections[-1]["version"] if st.corrections else 1
    lines = [f"{key} (version {version}, {st.mask_path}): {len(regions)} regions"]
    lines += [f"  {r.describe()}" for r in regions]
    return FixReport(dataset, "regions", lines=lines)


def relabel(dataset: str, *, key: str, from_class: str, to_class: str, region: int | None = None,
            dry_run: bool = False) -> FixReport:
    """Relabel a class (or one numbered region of it) in one sample, as a new mask version.

    Args:
        dataset: FiftyOne dataset name.
        key: the sample key.
        from_class, to_class: class names (``dress``, ``coat``; ``background`` too).
        region: the region number (:func:`list_regions`; 1 = largest), None = every pixel of the class.
        dry_run: say what would change, write nothing.

    Raises:
        BadInputError: unknown dataset, key or class; ``from_class == to_class``; the sample has no
            pixel of ``from_class``; ``region`` out of range.
    """
    from clothcurate.curation.db import load_dataset

    src, dst = _class_id(from_class, "--relabel FROM"), _class_id(to_class, "--relabel TO")
    if src == dst:
        raise BadInputError(f"--relabel {from_class}:{to_class}: FROM and TO are the same class; give two classes")
    if region is not None and region < 1:
        raise BadInputError(f"--region {region}: regions are numbered from 1 (see `clothcurate fix --key {key} "
                            "--list-regions`)")
    ds = load_dataset(dataset)
    with versions.correction_lock(dataset):
        st = _state(ds, dataset, key)
        gt = versions.read_current(st)
        numbers, regions = class_regions(gt, src)
        if not regions:
            raise BadInputError(f"sample {key} has no {TARGET_CLASSES[src]} pixels (its classes: "
                                f"{', '.join(TARGET_CLASSES[c] for c in np.unique(gt))}); check --relabel FROM")
        if region is not None and region > len(regions):
            raise BadInputError(f"--region {region}: sample {key} has {len(regions)} {TARGET_CLASSES[src]} region"
                                f"{'' if len(regions) == 1 else 's'} (see `clothcurate fix --key {key} --list-regions`)")
        pixels = numbers > 0 if region is None else numbers == region
        new = gt.copy()
        new[pixels] = dst
        change = Change(st, new, "relabel", class_changes(gt, new), {"region": region})
        report = FixReport(dataset, "relabel", dry_run=dry_run)
        version = versions.next_version(dataset, key)
        if not dry_run:
            report.records = versions.commit(ds, dataset, [change])
            version = report.records[0]["version"]
        where = f" (region {region})" if region is not None else ""
        report.lines.append(_describe(key, version, change.changes, where))
        return report


def undo(dataset: str, *, key: str) -> FixReport:
    """Return one sample to the mask version before its last correction (the PNG, and the derived
    fields measured from it, exactly as they were).

    Raises:
        BadInputError: unknown dataset or key; the sample has no correction.
    """
    from clothcurate.curation.db import load_dataset

    ds = load_dataset(dataset)
    with versions.correction_lock(dataset):
        st = _state(ds, dataset, key)
        record = versions.undo_last(ds, dataset, st)
    back = "the ingested mask" if len(st.corrections) == 1 else f"version {st.corrections[-2]['version']}"
    line = f"{key}: version {record['version']} ({record['how']}) undone; back to {back} ({record['previous']})"
    return FixReport(dataset, "undo", lines=[line], records=[record])


def accept_suggestions(dataset: str, *, view: str | None = None, key: str | None = None,
                       min_confidence: float | None = None, dry_run: bool = False,
                       progress: bool = True) -> FixReport:
    """Apply the region findings of ``flag-errors --model``: each region (or missed patch) takes
    the suggested class (:mod:`.suggestions`), one new mask version per sample changed.

    Args:
        dataset: FiftyOne dataset name.
        view: a saved view (``suspicious`` ...) whose samples are considered; None = all.
        key: only this sample.
        min_confidence: apply only findings whose ``p`` is at least this (a patch without a
            matching ``label_findings`` line is then left alone).
        dry_run: list what would change, write nothing.
        progress: show a progress bar.

    Raises:
        BadInputError: unknown dataset, view or key; no model findings; ``min_confidence``
            outside [0, 1]; a ``label_issues`` PNG that does not fit its sample.
    """
    from fiftyone import ViewField as F

    from clothcurate.curation.db import load_dataset, load_saved_view

    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise BadInputError(f"--min-confidence {min_confidence}: give a probability between 0 and 1")
    ds = load_dataset(dataset)
    if not ds.has_sample_field(_ISSUES):
        raise BadInputError(f"dataset {dataset!r} has no model suggestions ({_ISSUES}); run `clothcurate flag-errors "
                            "--model RUN_DIR` first")
    with versions.correction_lock(dataset):
        samples = ds
        if view is not None:
            samples = load_saved_view(ds, view)
        if key is not None:
            _state(ds, dataset, key)  # an unknown key is an error, not an empty selection
            samples = samples.match(F("key") == key)
        samples = samples.exists(f"{_ISSUES}.mask_path")
        states = versions.read_states(samples)
        keys, issue_paths = samples.values(["key", f"{_ISSUES}.mask_path"])
        lines = samples.values(_FINDINGS) if ds.has_sample_field(_FINDINGS) else [None] * len(keys)
        report = FixReport(dataset, "suggestion", dry_run=dry_run)
        skipped = {"below --min-confidence": 0, "without a label_findings line (p unknown)": 0}
        changes: list[Change] = []
        for k, issue_path, found in tqdm(list(zip(keys, issue_paths, lines)), desc="suggestions", unit="sample",
                                         disable=not progress):
            st = states[k]
            gt = versions.read_current(st)
            issues = read_mask(issue_path, sample=k, hint="re-run `clothcurate flag-errors --model RUN_DIR`")
            try:
                plan = suggestions(gt, issues, found)
            except ValueError as e:
                raise BadInputError(f"sample {k}: {_ISSUES} mask {issue_path} {e}; re-run `clothcurate flag-errors "
                                    "--model RUN_DIR`") from None
            for alone in plan.left_alone:  # every finding is counted: applied, or left alone with a reason
                low = min_confidence is not None and alone.finding is not None and alone.finding.p < min_confidence
                why = "below --min-confidence" if low else alone.reason
                skipped[why] = skipped.get(why, 0) + 1
            new, applied = gt.copy(), []
            for s in plan.edits:
                if min_confidence is not None and s.finding is None:
                    skipped["without a label_findings line (p unknown)"] += 1
                elif min_confidence is not None and s.finding.p < min_confidence:
                    skipped["below --min-confidence"] += 1
                else:
                    new[s.pixels] = s.suggested
                    applied.append(s)
            if not applied:
                continue
            changes.append(Change(st, new, "suggestion", class_changes(gt, new),
                                  {"findings": [s.finding.line if s.finding else None for s in applied]}))
        report.skipped = skipped
        if not dry_run:
            report.records = versions.commit(ds, dataset, changes)
        for i, ch in enumerate(changes):
            version = report.records[i]["version"] if report.records else versions.next_version(dataset, ch.state.key)
            report.lines.append(_describe(ch.state.key, version, ch.changes))
        return report
