"""Replace a folder this tool owns: the one rule of every command that writes a whole folder.

A command that writes a folder (``export-folds --out``, ``report --out``) builds it in a hidden
sibling ``.<name>.partial`` and renames it into place once everything is written, so a failed run
leaves nothing that looks complete. It replaces only a folder that is missing, empty, or carries
the command's own marker file (``export.json`` of an export, ``report.json`` of a report): a user's
photos or workspace given as ``--out`` by mistake are refused, with nothing touched. While it
writes, the command holds an exclusive lock on ``.<name>.lock`` beside the folder, so two commands
writing the same folder at once cannot publish a mix of their files (the second one is refused).

Example::

    EXPORT = FolderKind(what="export folder", marker="export.json", keys=("version", "dataset"))
    with replacing(Path("folds"), EXPORT, overwrite=True) as tmp:
        write_json(tmp / "export.json", {...})      # renamed onto folds/ when the block succeeds
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from clothcurate.errors import BadInputError

__all__ = ["FolderKind", "check_replaceable", "folder_lock", "replacing", "target"]


@dataclass(frozen=True)
class FolderKind:
    """What a command's folder is called and how one made by the command is recognised.

    Attributes:
        what: its name in messages (``export folder``).
        marker: the file the command always writes into it (``export.json``).
        keys: keys the marker, a JSON object, must have (a foreign file of the same name lacks them).
    """

    what: str
    marker: str
    keys: tuple[str, ...]

    def owns(self, folder: Path) -> bool:
        """Whether ``folder`` holds this command's marker file."""
        try:
            doc = json.loads((folder / self.marker).read_text())
        except (OSError, ValueError):
            return False
        return isinstance(doc, dict) and all(k in doc for k in self.keys)


def target(out: str | Path) -> Path:
    """The absolute folder a command will replace (a symlink given as ``out`` stands for its target,
    which is replaced; the link keeps pointing at the new folder)."""
    out = Path(out).expanduser().absolute()
    return out.resolve() if out.is_symlink() else out


def check_replaceable(out: Path, kind: FolderKind, *, overwrite: bool, option: str = "--out") -> None:
    """Refuse, before any work, a folder the command may not replace (reads only).

    Args:
        out: the folder (:func:`target`).
        kind: the command's folder kind.
        overwrite: whether an earlier folder of this kind may be replaced (``--overwrite``).
        option: the command-line option that named ``out``, for the message.

    Raises:
        BadInputError: ``out`` is (or lies under) a file, is a non-empty folder not made by the
            command, or one made by it while ``overwrite`` is false.
    """
    if out.exists() and not out.is_dir():
        raise BadInputError(f"{out}: exists and is not a folder; choose another {option}")
    above = next((p for p in out.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise BadInputError(f"{out}: {above} is a file, not a folder; choose another {option}")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not kind.owns(out):
        raise BadInputError(f"{out}: folder is not empty and is not a clothcurate {kind.what} (no {kind.marker}); "
                            f"nothing was changed; choose a new or empty folder for {option}")
    if not overwrite:
        raise BadInputError(f"{out}: folder is not empty (an earlier {kind.what}); pass --overwrite to replace it "
                            f"or choose another {option}")


@contextmanager
def folder_lock(out: Path, *, option: str = "--out") -> Iterator[None]:
    """Hold ``.<name>.lock`` beside ``out`` (created with its parents): what :func:`replacing` does, for
    a caller that must also do more after the folder is published (e.g. record it) before another
    command may replace it; it then passes ``locked=True`` to :func:`replacing`.

    Raises:
        BadInputError: another command holds the lock (is writing ``out``).
    """
    from filelock import FileLock, SoftFileLock, Timeout

    out = target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.parent / f".{out.name}.lock"
    lock = FileLock(path, blocking=False)
    try:
        lock.acquire()
    except Timeout:
        raise BadInputError(f"{out}: another clothcurate command is writing this folder; wait for it to finish "
                            f"or choose another {option}") from None
    try:
        yield
    finally:
        if not isinstance(lock, SoftFileLock):  # a soft lock (no flock here) removes its own marker
            # unlinked while still held: a contender that opened this file finds it unlinked once it
            # gets the lock and starts over (filelock checks st_nlink); no lock file is left behind
            path.unlink(missing_ok=True)
        lock.release()


def _publish(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` onto ``out`` (missing, empty, or an earlier folder of the command)."""
    try:
        os.replace(tmp, out)  # out missing or an empty folder: one atomic rename
        return
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    old = out.parent / f".{out.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def replacing(out: str | Path, kind: FolderKind, *, overwrite: bool, option: str = "--out",
              locked: bool = False) -> Iterator[Path]:
    """Write a folder in a temporary sibling and rename it onto ``out`` when the block succeeds.

    Checks ``out`` (:func:`check_replaceable`), locks it, and checks again under the lock; on any
    failure inside the block the temporary folder is removed and ``out`` is untouched.

    Args:
        out: the folder to write (created with its parents).
        kind: the command's folder kind; the block must write ``kind.marker``.
        overwrite: whether an earlier folder of this kind may be replaced.
        option: the command-line option that named ``out``, for messages.
        locked: the caller already holds :func:`folder_lock` of ``out``.

    Yields:
        The empty temporary folder to write into.

    Raises:
        BadInputError: ``out`` may not be replaced, or another command is writing it.
        OSError: the folder cannot be created or written (read-only, full disk ...).
    """
    out = target(out)
    check_replaceable(out, kind, overwrite=overwrite, option=option)
    with nullcontext() if locked else folder_lock(out, option=option):
        check_replaceable(out, kind, overwrite=overwrite, option=option)  # another command may have published
        tmp = out.parent / f".{out.name}.partial"
        shutil.rmtree(tmp, ignore_errors=True)  # left by a killed run; ours while we hold the lock
        tmp.mkdir()
        try:
            yield tmp
            _publish(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
