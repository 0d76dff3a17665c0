"""What an ingest did: :class:`IngestReport`, and the one shape of a bad sample's entry in it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from clothcurate.errors import BadInputError

__all__ = ["IngestReport", "PHASES", "bad_entry", "nothing_ingested", "strict_error"]

#: worker phases timed per sample (summed over worker processes), in the order a worker returns them
PHASES = ("decode", "remap", "png")


class _Problem(Protocol):
    """A sample found unusable: a scan's ``ScanProblem`` or a worker's ``BadSampleError``."""

    source_id: str
    reason: str
    path: str | None


def bad_entry(source: str, problem: _Problem) -> dict:
    """The report entry of one bad sample (also its line in ``ingest_report.json``).

    Args:
        source: the source name (``ccp``, ``cfpd``).
        problem: what the scan or a worker found wrong with the sample.

    Returns:
        ``{"source", "source_id", "path", "reason"}``.
    """
    return {"source": source, "source_id": problem.source_id, "path": problem.path, "reason": problem.reason}


def strict_error(bad: dict) -> BadInputError:
    """The error that stops a ``--strict`` ingest at its first bad sample.

    Args:
        bad: the sample's :func:`bad_entry`.

    Returns:
        The one-line error naming the sample, its file and what is wrong (for the caller to raise).
    """
    return BadInputError(f"{bad['source']} sample {bad['source_id']} ({bad['path']}): {bad['reason']} (--strict)")


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
        """The report as written to ``ingest_report.json`` (without ``report_path``).

        Returns:
            A JSON-ready dict.
        """
        return {"dataset": self.dataset, "added": self.added, "tag_only": self.tag_only,
                "already_present": self.already_present, "restored": self.restored,
                "left_out": self.left_out, "bad": self.bad, "timings": self.timings}

    def summary(self) -> str:
        """The report for people: per source what was added, present, restored and left out,
        the first 20 bad samples and the rate.

        Returns:
            Several lines, without a trailing newline.
        """
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


def nothing_ingested(dataset: str, roots: list[str], report: IngestReport, existed: bool) -> str:
    """The one-line error of an ingest that leaves the dataset without samples.

    Args:
        dataset: the dataset name.
        roots: the source folders scanned.
        report: the report so far (its bad samples are why nothing was added, if any).
        existed: the dataset existed before this ingest.

    Returns:
        The message, naming the folders, the first bad sample and the dataset's state.
    """
    end = f"dataset {dataset!r} " + ("is still empty" if existed else "was not created")
    if report.bad:
        b = report.bad[0]
        where = f", {b['path']}" if b.get("path") else ""
        return (f"nothing ingested: all {len(report.bad)} samples in {', '.join(roots)} are bad (first: "
                f"{b['source']} {b['source_id']}: {b['reason']}{where}); fix them and run again; {end}")
    return f"nothing ingested: no annotated sample found in {', '.join(roots)}; {end}"
