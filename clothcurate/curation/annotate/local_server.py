"""A private Label Studio server for tests and benchmarks (as :mod:`clothcurate.curation.mongod`
is for MongoDB).

Label Studio pins its own numpy, pandas, OpenCV and Django, so it lives in its own environment
(``.venv-labelstudio``, made by ``make install``) and runs as a separate process, as its users run
it: SQLite in a data folder of the caller's, loopback only, a free port, one user whose legacy API
token is set on the command line (no interactive sign-up). The server and any process it starts
share a new session, stopped together on exit.

Example::

    with private_label_studio(Path("/tmp/ls")) as (url, api_key):
        send("clothcurate", anno_key="r1", url=url, api_key=api_key)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from clothcurate.errors import ClothcurateError

__all__ = ["LABEL_STUDIO", "private_label_studio"]

#: the server's executable in its own environment (``make install``)
LABEL_STUDIO = Path(__file__).resolve().parents[3] / ".venv-labelstudio" / "bin" / "label-studio"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=20)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def private_label_studio(data_dir: Path, *, start_timeout_s: float = 900.0,
                         executable: Path = LABEL_STUDIO) -> Iterator[tuple[str, str]]:
    """Run a Label Studio server while the block runs.

    Args:
        data_dir: its data folder (SQLite database, uploads, ``server.log``); created.
        start_timeout_s: how long to wait for it to answer (a first start migrates a new
            database: minutes on a small shared machine).
        executable: the ``label-studio`` command.

    Yields:
        ``(url, api_key)``: ``http://127.0.0.1:<port>`` and the user's API token.

    Raises:
        ClothcurateError: the executable is missing, or the server exits or stays silent.
    """
    import requests

    if not Path(executable).exists():
        raise ClothcurateError(f"Label Studio is not installed at {executable}; run `make install`")
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    port, token = _free_port(), secrets.token_hex(20)
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir), "DJANGO_DB": "sqlite",
           "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true", "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": ""}
    log_path = data_dir / "server.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [str(executable), "start", "--no-browser", "--data-dir", str(data_dir), "--internal-host", "127.0.0.1",
             "--port", str(port), "--username", "annotator@clothcurate.local", "--password", secrets.token_hex(12),
             "--user-token", token, "--enable-legacy-api-token", "--log-level", "WARNING"],
            cwd=data_dir, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-1500:]
                raise ClothcurateError(f"Label Studio exited ({proc.returncode}) while starting; see {log_path}: "
                                       f"{tail.strip().splitlines()[-1] if tail.strip() else ''}")
            try:
                if requests.get(f"{url}/api/version", headers={"Authorization": f"Token {token}"},
                                timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise ClothcurateError(f"Label Studio did not answer within {start_timeout_s:.0f} s; see {log_path}")
            time.sleep(1)
        yield url, token
    finally:
        _stop(proc)
