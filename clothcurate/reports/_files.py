"""Atomic file writes for the report (nothing half-written: temp file in the same folder, then rename)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    Args:
        path: the final file; its folder must exist.

    Yields:
        The temporary path to write (same suffix, so writers that look at it still work).
    """
    # A plain new file (not mkstemp, whose 0600 mode would survive the rename): the user's umask applies.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
