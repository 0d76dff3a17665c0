"""Exceptions shared by the library and the CLI (which maps them to exit codes)."""

from __future__ import annotations

import errno
import os
from pathlib import Path


class ClothcurateError(Exception):
    """Base class: any failure the CLI reports as one line with exit code 1."""


class BadInputError(ClothcurateError):
    """The user's input is wrong (missing folder, bad layout, bad label map): exit code 2.

    The message is one line naming the file, what was wrong and what to do.
    """


class StoppedWithOtherRank(ClothcurateError):
    """This ``torchrun`` rank stops because another rank failed; rank 0 prints that rank's error,
    so the CLI exits with ``exit_code`` without printing (one ``error:`` line per job).

    Args:
        exit_code: the failed rank's exit code (2 bad input, 1 other failure).
        message: ``rank R: <its error>`` (shown only under ``--debug``).
    """

    def __init__(self, exit_code: int, message: str):
        self.exit_code = exit_code
        super().__init__(message)


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


# What to do about an operating-system error on a path the user chose (exit code 2); any other
# errno is a failure of the machine (exit code 1).
_PATH_ADVICE = {
    errno.ENOENT: "check the path: it, or a folder on it, does not exist",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EISDIR: "a folder is where a file is expected; choose another path",
    errno.EACCES: "you may not use it; choose another path or change its permissions",
    errno.EPERM: "the operation is not permitted there; choose another path",
    errno.EROFS: "the file system is read-only; choose a path on a writable disk",
    errno.ENOSPC: "the disk is full; free space or choose a path on another disk, then re-run the same command",
    errno.EDQUOT: "the disk quota is used up; free space or choose another disk, then re-run the same command",
    errno.EFBIG: "the file is too large for that file system; choose a path on another disk",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter path",
    errno.ELOOP: "too many symbolic links; check the path",
    errno.EEXIST: "something is already there; choose another path",
    errno.ENOTEMPTY: "the folder is not empty; choose another path",
    errno.EBUSY: "it is in use (a mount point?); choose another path",
    errno.EXDEV: "it is on another file system than its temporary copy; choose a path that is not a mount point",
}
# errnos of a write: the destination (shutil's filename2) is the path to name, not the source
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


def os_error_message(exc: OSError, *, home: str | None = None) -> tuple[int, str]:
    """One line and an exit code for an operating-system error: the path, errno's meaning, what to do.

    Args:
        exc: the error (``errno``, ``strerror``, ``filename``/``filename2`` as Python sets them).
        home: the workspace root (``$CLOTHCURATE_HOME``); a path under it gets a hint to move it.

    Returns:
        ``(exit code, message)``: 2 for a path the user can change (missing, not a folder,
        read-only, disk full ...), 1 otherwise.
    """
    path = exc.filename2 if exc.errno in _WRITE_ERRNOS and exc.filename2 else exc.filename
    path = path if path is not None else exc.filename2
    reason = exc.strerror or str(exc) or type(exc).__name__
    name = errno.errorcode.get(exc.errno) if exc.errno is not None else None
    where = f"{os.fsdecode(path)}: " if path is not None else ""
    what = f"{reason} ({name})" if name else reason
    advice = _PATH_ADVICE.get(exc.errno)
    if advice is None:
        return 1, f"{where}{what}"
    if home and path is not None and Path(os.fsdecode(path)).absolute().is_relative_to(Path(home).absolute()):
        advice += " (the workspace: or set CLOTHCURATE_HOME to a writable folder with free space)"
    return 2, f"{where}{what}; {advice}"


def exit_status(exc: BaseException) -> tuple[int, str]:
    """The exit code and one-line message of an error that ends a command.

    Returns:
        ``(2, message)`` for bad input (``BadInputError``, an ``OSError`` on a path the user
        chose), the failed rank's code for :class:`StoppedWithOtherRank`, ``(1, message)``
        otherwise (an unexpected exception: its type and first line).
    """
    if isinstance(exc, StoppedWithOtherRank):
        return exc.exit_code, str(exc)
    if isinstance(exc, BadInputError):
        return 2, str(exc)
    if isinstance(exc, ClothcurateError):
        return 1, str(exc)
    if isinstance(exc, OSError):
        from clothcurate.workspace import home  # workspace imports nothing of this module's users

        return os_error_message(exc, home=str(home()))
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return 1, f"unexpected {type(exc).__name__}{': ' + first if first else ''}"
