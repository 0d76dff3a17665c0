"""The timestamp every record clothcurate writes carries (config.json, export.json, corrections,
annotation runs, flag-errors and report runs): UTC, ISO 8601, to the second."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> str:
    """Now as ``2026-11-30T09:46:09+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
