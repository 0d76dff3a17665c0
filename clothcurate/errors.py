"""Exceptions shared by the library and the CLI (which maps them to exit codes)."""

from __future__ import annotations


class ClothcurateError(Exception):
    """Base class: any failure the CLI reports as one line with exit code 1."""


class BadInputError(ClothcurateError):
    """The user's input is wrong (missing folder, bad layout, bad label map): exit code 2.

    The message is one line naming the file, what was wrong and what to do.
    """


class BadSampleError(ClothcurateError):
    """One sample cannot be used; ingest skips it, names it and goes on (unless ``--strict``).

    Args:
        source_id: the sample's id in its source (``0001``, ``1.jpg``).
        reason: one line saying what is wrong with it.
        path: the offending file, when there is one.
    """

    def __init__(self, source_id: str, reason: str, path: str | None = None):
        self.source_id = source_id
        self.reason = reason
        self.path = path
        where = f" ({path})" if path else ""
        super().__init__(f"sample {source_id}{where}: {reason}")
