"""The review App's actions on a set of samples: mark ``ok`` / ``reject``, accept the model's
suggestions, undo the last correction.

The FiftyOne plugin ``@clothcurate/review`` (:mod:`clothcurate.plugins`) calls these on the
samples selected in the App (or, confirmed, on the current view). Mask changes go through the
same functions as ``clothcurate fix`` (:func:`clothcurate.curation.fix.accept_suggestions`,
:func:`clothcurate.curation.fix.undo`), one sample key at a time, so a correction made in the App
is the same version, record and log line as one made on the command line.

Every input is checked before anything is written: an undo where a sample has no correction, or
an unknown verdict, is a :class:`~clothcurate.errors.BadInputError` and changes nothing.

Example::

    import fiftyone as fo
    from clothcurate.curation.review_actions import mark, undo_samples

    ds = fo.load_dataset("clothcurate")
    print(mark(ds.match_tags("suspicious").limit(3), "reject").summary())
    print(undo_samples(ds.select(ids)).summary())
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clothcurate.curation.fix import FixReport, accept_suggestions, undo
from clothcurate.curation.fix.versions import read_states
from clothcurate.errors import BadInputError

__all__ = ["VERDICTS", "ActionFixReport", "MarkReport", "accept_suggestions_on", "mark", "undo_samples"]

#: the reviewer's verdicts: one per sample (export leaves ``reject`` out; a sample tagged both
#: would count as ``reject``, so marking one removes the other)
VERDICTS = ("ok", "reject")

#: the model findings mask written by ``flag-errors --model``
_ISSUES = "label_issues"


@dataclass
class MarkReport:
    """What :func:`mark` did.

    Attributes:
        dataset: the dataset.
        verdict: ``ok`` or ``reject``.
        tagged: keys of the samples that gained the verdict.
        switched: keys (among ``tagged``) whose opposite verdict was removed.
        unchanged: how many samples already carried the verdict alone.
    """

    dataset: str
    verdict: str
    tagged: list[str] = field(default_factory=list)
    switched: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def keys(self) -> list[str]:
        """The samples changed."""
        return self.tagged

    def summary(self) -> str:
        n = len(self.tagged)
        out = f"dataset {self.dataset!r}: marked {n} sample{'' if n == 1 else 's'} {self.verdict!r}"
        if self.switched:
            other = next(v for v in VERDICTS if v != self.verdict)
            out += f" ({len(self.switched)} were {other!r}: {', '.join(self.switched[:10])}"
            out += " ...)" if len(self.switched) > 10 else ")"
        if self.unchanged:
            out += f"; {self.unchanged} already {self.verdict!r}"
        return out


def _keys(samples) -> list[str]:
    if not len(samples):
        raise BadInputError("no samples to act on: select samples in the App grid (or open a view that has some)")
    if not samples._root_dataset.has_sample_field("key"):
        raise BadInputError(f"dataset {samples._root_dataset.name!r} has no samples made by clothcurate ingest")
    return samples.values("key")


def mark(samples, verdict: str) -> MarkReport:
    """Tag ``samples`` with the reviewer's verdict, removing the other verdict where present.

    Args:
        samples: a FiftyOne view (the selected samples, or the current view).
        verdict: ``ok`` or ``reject``.

    Returns:
        What changed.

    Raises:
        BadInputError: unknown verdict; no samples.
    """
    if verdict not in VERDICTS:
        raise BadInputError(f"verdict {verdict!r}: give one of {', '.join(VERDICTS)}")
    other = next(v for v in VERDICTS if v != verdict)
    _keys(samples)
    keys, tags = samples.values(["key", "tags"])
    report = MarkReport(samples._root_dataset.name, verdict)
    for key, t in zip(keys, tags):
        t = t or []
        if other in t:
            report.switched.append(key)
        if verdict not in t or other in t:
            report.tagged.append(key)
        else:
            report.unchanged += 1
    # FiftyOne's own bulk tag updates, as the App's tagging menu does
    samples.untag_samples(other)
    samples.tag_samples(verdict)
    return report


@dataclass
class ActionFixReport(FixReport):
    """The :class:`~clothcurate.curation.fix.FixReport` of several samples, one call each.

    Attributes:
        keys: the samples changed, in the order of ``records``.
    """

    keys: list[str] = field(default_factory=list)


def _merge(dataset: str, action: str, reports: dict[str, FixReport]) -> ActionFixReport:
    out = ActionFixReport(dataset, action)
    for key, r in reports.items():
        out.keys += [key] * len(r.records)
        out.lines += r.lines
        out.records += r.records
        for why, n in r.skipped.items():
            out.skipped[why] = out.skipped.get(why, 0) + n
    return out


def accept_suggestions_on(samples, *, min_confidence: float | None = None) -> ActionFixReport:
    """Apply the ``flag-errors --model`` suggestions of ``samples`` (as ``clothcurate fix
    --accept-suggestions [--min-confidence P]``, sample by sample).

    Args:
        samples: a FiftyOne view.
        min_confidence: apply only findings whose ``p`` is at least this; None = all.

    Returns:
        The merged report of :func:`clothcurate.curation.fix.accept_suggestions`.

    Raises:
        BadInputError: no samples; the dataset has no model suggestions; ``min_confidence``
            outside [0, 1]; a bad ``label_issues`` PNG.
    """
    dataset = samples._root_dataset.name
    keys = _keys(samples)
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise BadInputError(f"min confidence {min_confidence}: give a probability between 0 and 1")
    if samples._root_dataset.has_sample_field(_ISSUES):
        keys = samples.exists(f"{_ISSUES}.mask_path").values("key")  # the others have nothing to apply
    else:
        keys = keys[:1]  # the library names what is missing (run flag-errors --model) and changes nothing
    reports = {k: accept_suggestions(dataset, key=k, min_confidence=min_confidence, progress=False) for k in keys}
    return _merge(dataset, "suggestion", reports)


def undo_samples(samples, *, corrected_only: bool = False) -> ActionFixReport:
    """Undo the last correction of each sample (as ``clothcurate fix --key K --undo``).

    Args:
        samples: a FiftyOne view.
        corrected_only: undo the corrected samples among ``samples`` and pass over the others (a
            whole view); False: every sample must have a correction.

    Returns:
        The merged report of :func:`clothcurate.curation.fix.undo`.

    Raises:
        BadInputError: no samples; a sample without a correction (``corrected_only`` False) or
            none corrected (True). Checked before any undo, so nothing is changed.
    """
    dataset = samples._root_dataset.name
    keys = _keys(samples)
    states = read_states(samples)
    bare = [k for k in keys if not states[k].corrections]
    if corrected_only:
        keys = [k for k in keys if states[k].corrections]
        if not keys:
            raise BadInputError(f"dataset {dataset!r}: none of these {len(bare)} samples has a correction to undo "
                                "(their masks are the ones ingest wrote); nothing was changed")
    elif bare:
        more = f" and {len(bare) - 5} more" if len(bare) > 5 else ""
        raise BadInputError(f"dataset {dataset!r}: sample{'s' if len(bare) > 1 else ''} {', '.join(bare[:5])}{more} "
                            "ha" + ("ve" if len(bare) > 1 else "s") + " no correction to undo (the mask is the one "
                            "ingest wrote); deselect it and retry; nothing was changed")
    return _merge(dataset, "undo", {k: undo(dataset, key=k) for k in keys})
