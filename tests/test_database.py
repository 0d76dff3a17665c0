"""Reaching the FiftyOne database: fast, one-line failures that never print a password; the bundled
database started race-free by commands that start together; stdout that carries only a command's
output (FiftyOne's log lines, such as its MongoDB-version notice, go to stderr).

Commands run as real subprocesses. Those on the session's private MongoDB inherit
``FIFTYONE_DATABASE_URI`` from conftest; the bundled-database test drops it and uses a temporary
``FIFTYONE_DATABASE_DIR`` and ``HOME``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ccp_layout import make_ccp_subset

PASSWORD = "s3cret-Pa55"


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("clothcurate")  # the console script a user runs
    return [str(script)] if script.exists() else [sys.executable, "-m", "clothcurate.cli"]


def _closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("uri", [
    "mongodb://alice:{pw}@127.0.0.1:{port}/?authSource=admin",
    "mongodb://alice:{pw}@127.0.0.1:{port}",
])
@pytest.mark.parametrize("command", ["status", "flag-errors", "review"])
def test_unreachable_database_fails_fast_in_one_line_without_the_password(uri, command, tmp_path):
    uri = uri.format(pw=PASSWORD, port=_closed_port())
    command = [command, "--port", str(_closed_port())] if command == "review" else [command]
    env = {**os.environ, "FIFTYONE_DATABASE_URI": uri, "CLOTHCURATE_HOME": str(tmp_path / "home")}
    t0 = time.monotonic()
    run = subprocess.run([*_cli(), *command, "--dataset", "any"], env=env, capture_output=True, text=True,
                         timeout=120)
    took = time.monotonic() - t0
    assert run.returncode in (1, 2), run.stderr
    assert took < 10, f"took {took:.1f} s"
    assert PASSWORD not in run.stderr + run.stdout
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    assert "mongodb://alice:***@127.0.0.1" in lines[0] and "FIFTYONE_DATABASE_URI" in lines[0]
    assert "Traceback" not in run.stderr and run.stdout == ""


def test_mask_uri_hides_only_the_password():
    from clothcurate.curation.db import mask_uri

    assert mask_uri("mongodb://alice:pw@h1:27017,h2/db?authSource=admin") == \
        "mongodb://alice:***@h1:27017,h2/db?authSource=admin"
    assert mask_uri("mongodb+srv://bob:p%40ss@cluster0.example.net/?retryWrites=true") == \
        "mongodb+srv://bob:***@cluster0.example.net/?retryWrites=true"
    assert mask_uri("mongodb://127.0.0.1:27017") == "mongodb://127.0.0.1:27017"
    assert mask_uri("mongodb://carol@h") == "mongodb://carol@h"
    # malformed: a raw '/' or '@' in the password still never shows
    for bad in ("mongodb://dave:pa/ss@h/db", "mongodb://erin:p@ss@h/db?x=1"):
        assert "ss@" not in mask_uri(bad) and "pa/" not in mask_uri(bad), mask_uri(bad)


def test_commands_started_together_share_one_fresh_bundled_database(tmp_path):
    """No FIFTYONE_DATABASE_URI: FiftyOne's bundled mongod is started by whichever command comes
    first and the other attaches to it, never "failed to bind"."""
    env = {k: v for k, v in os.environ.items() if k not in ("FIFTYONE_DATABASE_URI", "FIFTYONE_PRIVATE_DATABASE_PORT")}
    env.update(FIFTYONE_DATABASE_DIR=str(tmp_path / "db"), HOME=str(tmp_path / "user"),
               CLOTHCURATE_HOME=str(tmp_path / "home"))
    cmd = [*_cli(), "status", "--dataset", "not-there"]  # reads only, whichever database it reaches
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 2, err
        assert err.strip().splitlines() == ["error: dataset 'not-there' not found; run "
                                            "`clothcurate ingest --ccp DIR --dataset not-there` first"], err


def test_status_json_stdout_is_only_json(ccp_dir, tmp_path):
    from clothcurate.curation.ingest import ingest

    ingest(ccp=make_ccp_subset(tmp_path / "ccp", ccp_dir, ["0001", "0002"]), dataset="db-stdout", progress=False)
    run = subprocess.run([*_cli(), "status", "--dataset", "db-stdout", "--json"], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["samples"] == 2  # nothing but the JSON object
    assert "oldest supported" not in run.stderr


@pytest.mark.slow
def test_train_eval_stdout_is_only_its_summary(ccp_dir, tmp_path):
    """train-eval imports FiftyOne for the write-back; FiftyOne's MongoDB-version notice must not
    reach stdout (it used to come first there)."""
    from clothcurate.curation.export import export_folds
    from clothcurate.curation.ingest import ingest

    ids = [f"{i:04d}" for i in range(1, 9)]
    ingest(ccp=make_ccp_subset(tmp_path / "ccp", ccp_dir, ids), dataset="db-train", progress=False)
    export_folds(dataset="db-train", out=tmp_path / "folds", folds=2, seed=0, crop="person", size=64,
                 progress=False)
    cmd = [*_cli(), "train-eval", "--arch", "fpn", "--encoder-weights", "none", "--data", str(tmp_path / "folds"),
           "--folds", "0", "--epochs", "1", "--image-size", "64", "--batch-size", "4", "--workers", "0",
           "--device", "cpu", "--out", str(tmp_path / "run"), "--dataset", "db-train"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "MongoDB" not in run.stdout, run.stdout
    assert "train-eval fpn: " in run.stdout
    assert "pred_fpn written for" in run.stdout  # it did reach the dataset


_CLIENT = """
import sys
from clothcurate.curation.db import fiftyone
fiftyone()
print("connected", flush=True)
sys.stdin.read()  # stays a client of the database service until the test closes stdin
"""


def test_a_command_that_started_the_bundled_database_closes_its_output_when_it_exits(tmp_path):
    """The process that starts FiftyOne's bundled database service is not the service's last client:
    the service outlives it while another command still uses the database. Its stdout and stderr
    must reach end-of-file when it exits (``out=$(clothcurate status --json)`` must not wait for an
    unrelated, longer command)."""
    env = {k: v for k, v in os.environ.items() if k not in ("FIFTYONE_DATABASE_URI", "FIFTYONE_PRIVATE_DATABASE_PORT")}
    env.update(FIFTYONE_DATABASE_DIR=str(tmp_path / "db"), HOME=str(tmp_path / "user"),
               CLOTHCURATE_HOME=str(tmp_path / "home"))
    clients = []
    try:
        for _ in range(2):  # the first starts the service, the second attaches to it
            p = subprocess.Popen([sys.executable, "-c", _CLIENT], env=env, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            clients.append(p)
            assert p.stdout.readline() == "connected\n", p.stderr.read() if p.poll() is not None else ""
        first, second = clients
        out, err = first.communicate(input="", timeout=60)  # EOF on its pipes, the second still attached
        assert first.returncode == 0, err
        assert second.poll() is None
        second.communicate(input="", timeout=60)
        assert second.returncode == 0
    finally:
        for p in clients:
            if p.poll() is None:
                p.kill()
                p.wait()
