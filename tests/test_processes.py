"""An interrupted command leaves no process behind: a real ``clothcurate ingest`` of the real CCP
(a subprocess on the session's private MongoDB, via the inherited ``FIFTYONE_DATABASE_URI``) is
stopped by SIGINT (Ctrl-C: the terminal signals the whole process group), SIGTERM or SIGKILL once
its worker processes exist; then neither it nor its forkserver, workers or resource tracker may
still run, and Ctrl-C or SIGTERM is reported in one line, without a traceback.

Every process the command starts inherits a marker variable, so one that outlives it is found even
after it has been re-parented to init.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

MARK = "CLOTHCURATE_TEST_PROCESS_MARK"


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("clothcurate")  # the console script a user runs
    return [str(script)] if script.exists() else [sys.executable, "-m", "clothcurate.cli"]


def _marked(mark: str) -> list[psutil.Process]:
    """Live (not zombie) processes whose environment carries ``MARK=mark``."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get(MARK) == mark and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def _wait_for_workers(proc: subprocess.Popen, mark: str, n: int, timeout: float = 300) -> list[psutil.Process]:
    """The first ``n`` grandchildren of ``proc`` seen (pool workers are children of the forkserver)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = [p for p in _marked(mark) if p.pid != proc.pid and _ppid(p) not in (proc.pid, None)]
        if len(workers) >= n:
            return workers
        assert proc.poll() is None, "ingest ended before its workers started"
        time.sleep(0.02)
    pytest.fail(f"no {n} workers within {timeout} s")


def _ignores(p: psutil.Process, sig: signal.Signals) -> bool:
    """Whether ``p`` ignores ``sig`` (the SigIgn mask of /proc/PID/status)."""
    status = Path(f"/proc/{p.pid}/status").read_text()
    mask = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("SigIgn:")), 16)
    return bool(mask & (1 << (sig - 1)))


def _ppid(p: psutil.Process) -> int | None:
    try:
        return p.ppid()
    except psutil.Error:
        return None


def _survivors(mark: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := _marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    described = []
    for p in left:
        try:
            described.append(f"{p.pid} {' '.join(p.cmdline())[:100]}")
        except psutil.Error:
            pass
    return described


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_interrupted_ingest_leaves_no_process(sig, ccp_dir, tmp_path):
    mark = uuid.uuid4().hex
    env = {**os.environ, MARK: mark, "CLOTHCURATE_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    cmd = [*_cli(), "ingest", "--ccp", str(ccp_dir), "--dataset", f"interrupted-{sig.name.lower()}",
           "--workers", "2"]
    # files, not pipes: a pipe held open by a surviving worker would hang the test instead of failing it
    with open(tmp_path / "stdout", "w") as out, open(tmp_path / "stderr", "w") as err:
        # SIGINT as in a terminal: a shell starts background jobs with it ignored, and an ignored
        # signal stays ignored across exec (Python then never raises KeyboardInterrupt)
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        workers = _wait_for_workers(proc, mark, 2)
        if sig == signal.SIGINT:
            # Ctrl-C is the main process's to report: a worker must ignore it from its first
            # instruction (one that dies of it breaks the pool and prints a traceback)
            assert all(_ignores(w, signal.SIGINT) for w in workers)
            # as a terminal's Ctrl-C: to the whole foreground process group, while workers start
            os.killpg(proc.pid, sig)
        else:  # as `kill PID`: to the command only, while workers are busy with images
            time.sleep(1.0)
            assert proc.poll() is None, (tmp_path / "stderr").read_text()[-3000:]
            proc.send_signal(sig)
        proc.wait(timeout=120)
        left = _survivors(mark, timeout=15)
        assert not left, f"still running after {sig.name} of the ingest: {left}"
    finally:
        for p in _marked(mark):
            p.kill()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    if sig != signal.SIGKILL:  # unwound: workers stopped, the command reports in one line
        stderr = (tmp_path / "stderr").read_text()
        assert "Traceback" not in stderr, stderr
        lines = [ln for ln in stderr.replace("\r", "\n").splitlines() if ln.strip() and not ln.startswith("ingest ")]
        assert len(lines) == 1 and "interrupted" in lines[0], stderr
        assert proc.returncode == 130
