"""Number formatting shared by the HTML and Markdown renderers (fractions shown as percentages)."""

from __future__ import annotations

MISSING = "—"


def pct(x: float | None, *, digits: int = 1) -> str:
    """A fraction as a percentage without the sign: ``0.7812`` -> ``78.1``; None -> ``—``."""
    return MISSING if x is None else f"{x * 100:.{digits}f}"


def pm(mean: float | None, std: float | None) -> str:
    """``78.1 ± 2.3`` (percent); just the mean when there is no std."""
    return pct(mean) if std is None or mean is None else f"{pct(mean)} ± {pct(std)}"


def signed(x: float | None) -> str:
    """A difference in percentage points with its sign: ``+1.2`` / ``-3.4``."""
    return MISSING if x is None else f"{x * 100:+.1f}"


def duration(seconds: float | None) -> str:
    """``2 h 03 min 04 s`` / ``5 min 06 s`` / ``not recorded``."""
    if seconds is None:
        return "not recorded"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h} h {m:02d} min {s:02d} s" if h else f"{m} min {s:02d} s"


def left_out(counts: dict[str, int]) -> str:
    """Samples left out of an export and why: ``2 tagged reject, 1 tagged bg_only, 994 with image-level
    tags only``."""
    reasons = {"tag_only": "with image-level tags only (no mask)"}
    return ", ".join(f"{n} {reasons.get(tag, f'tagged {tag}')}" for tag, n in counts.items()) or "none recorded"
