"""Worker processes for the CPU-bound per-sample work of ingest and flag-errors.

Workers live and die with the command that started them. The process tree on Linux is::

    clothcurate (main)
    ├── resource tracker      exits once every holder of its pipe has exited
    └── forkserver            exits once every holder of its "alive" pipe has exited
        ├── worker            holds both pipes; exits when the main process is gone (below)
        └── worker

A worker blocked on the task queue never sees the main process die (it holds the queue's write end
itself), and it keeps the forkserver and the resource tracker alive, so without help a killed
command (SIGKILL, or SIGTERM without a handler) leaves all of them running. Each worker therefore
watches its parent-process sentinel (a pipe whose write end only the main process holds) and exits
when it closes; the forkserver and the resource tracker then see EOF and exit by themselves. A
parent-death signal (``PR_SET_PDEATHSIG``) would not do: a worker's parent is the forkserver, which
outlives the main process for as long as the worker does.

Ctrl-C signals the whole foreground process group; only the main process reports it (one line).
Workers ignore SIGINT from their first instruction: the forkserver is started with SIGINT ignored,
an ignored signal stays ignored across ``exec``, and the forkserver gives its children the
dispositions it started with. A worker that died of it would break the pool and print tracebacks.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import cv2


def _exit_with_main_process() -> None:
    """In a worker: exit as soon as the process that created it is gone (even by SIGKILL)."""
    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        mp.connection.wait([parent.sentinel])
        os._exit(1)  # nobody is left to take a result; unwinding could block on the dead queue

    threading.Thread(target=watch, name="exit-with-main-process", daemon=True).start()


def _init(initializer: Callable | None, initargs: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # already so under the forkserver; also under spawn
    _exit_with_main_process()
    cv2.setNumThreads(1)  # one process per core; OpenCV's own threads would only fight them
    if initializer is not None:
        initializer(*initargs)


def _start_forkserver() -> None:
    """Start the forkserver (once per process) with SIGINT ignored, so its workers inherit that.

    Only the main thread may change signal handlers; elsewhere the forkserver starts as is and
    each worker ignores SIGINT from its initializer on.
    """
    from multiprocessing import forkserver

    handler = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or handler is None:
        forkserver.ensure_running()
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, handler)


class _Pool(ProcessPoolExecutor):
    """Leaving its ``with`` block by an exception (Ctrl-C, an error) drops the work still queued
    instead of waiting for all of it."""

    def __exit__(self, exc_type, exc_val, exc_tb) -> bool:
        self.shutdown(wait=True, cancel_futures=exc_type is not None)
        return False


def process_pool(workers: int, *, initializer: Callable | None = None, initargs: tuple = ()) -> ProcessPoolExecutor:
    """A pool of ``workers`` fresh processes that exit with the calling process and ignore Ctrl-C.

    Never ``fork``: a child forked from a process that has used OpenCV's thread pool can hang
    inside OpenCV, and pymongo's client (FiftyOne's connection) is not fork-safe. ``forkserver``
    starts workers from a clean server process (``spawn`` where it is unavailable). Shut the pool
    down (``with`` or ``shutdown``) in a ``finally``, so an interrupted command stops its workers.

    Args:
        workers: number of processes.
        initializer: called once in each worker with ``initargs`` (after OpenCV is set to one thread).
    """
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    if method == "forkserver":
        _start_forkserver()
    return _Pool(max_workers=workers, mp_context=mp.get_context(method),
                 initializer=_init, initargs=(initializer, initargs))
