"""The result of one ``flag-errors`` run: counts per reason and the worst samples."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FlagReport:
    """What ``flag-errors`` found.

    Attributes:
        dataset: the FiftyOne dataset name.
        samples: number of samples scored.
        tag_only: samples skipped because they have image-level tags only (no mask to check).
        counts: ``{check name: samples flagged}`` for every check run (0 included).
        descriptions: ``{check name: description}``.
        bg_only: samples tagged ``bg_only``.
        suspicious: samples tagged ``suspicious``.
        worst: the worst samples, ``{"key", "label_quality", "issues"}`` each, worst first.
        seconds: wall time of the run.
    """

    dataset: str
    samples: int
    counts: dict[str, int]
    descriptions: dict[str, str]
    bg_only: int
    suspicious: int
    worst: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    tag_only: int = 0

    def to_dict(self) -> dict:
        """A JSON-able dict of every attribute."""
        return {"dataset": self.dataset, "samples": self.samples, "tag_only": self.tag_only,
                "counts": dict(self.counts),
                "bg_only": self.bg_only, "suspicious": self.suspicious, "worst": list(self.worst),
                "seconds": round(self.seconds, 2), "descriptions": dict(self.descriptions)}

    def summary(self) -> str:
        """A printable table: samples flagged per reason, then the worst samples."""
        width = max([len(n) for n in self.counts] + [len("reason")])
        lines = [f"flag-errors on {self.dataset!r}: {self.samples} samples in {self.seconds:.1f} s; "
                 f"{self.suspicious} tagged suspicious, {self.bg_only} bg_only"
                 + (f"; {self.tag_only} with image-level tags only skipped (no mask)" if self.tag_only else ""),
                 "", f"{'reason':<{width}}  samples", f"{'-' * width}  -------"]
        lines += [f"{name:<{width}}  {n:7d}" for name, n in self.counts.items()]
        if self.worst:
            kw = max(len(w["key"]) for w in self.worst)
            lines += ["", f"{len(self.worst)} lowest label_quality (worst first; tagged ones are in the saved view 'suspicious'):",
                      f"{'key':<{kw}}  quality  issues"]
            lines += [f"{w['key']:<{kw}}  {w['label_quality']:7.3f}  {', '.join(w['issues']) or '-'}"
                      for w in self.worst]
        return "\n".join(lines)
