"""Atomic file writes shared by every stage: nothing is ever half-written.

Each writer puts the data in a temporary file beside the target (same folder, so the final
``os.replace`` is atomic) and renames it into place. Dependency-light: importing this module pulls
in neither FiftyOne nor PyTorch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "write_bytes", "write_json"]

@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temporary name keeps the suffix (writers such as OpenCV pick the format from it) and is
    a plain new file, so the user's umask applies (``mkstemp`` would leave mode 0600).

    Args:
        path: the final file; its folder must exist.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically.

    Raises:
        OSError: the file cannot be written (its ``filename`` is ``path``, not the temporary name:
            a failed ``write()``, e.g. disk full, would otherwise name no file at all).
    """
    with atomic_path(path) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as e:
            e.filename = str(path)
            raise


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (creating the folder)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, json.dumps(obj, indent=indent).encode())

