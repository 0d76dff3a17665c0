"""Worker processes for the CPU-bound per-sample work of ingest and flag-errors."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import cv2


def _init(initializer: Callable | None, initargs: tuple) -> None:
    cv2.setNumThreads(1)  # one process per core; OpenCV's own threads would only fight them
    if initializer is not None:
        initializer(*initargs)


def process_pool(workers: int, *, initializer: Callable | None = None, initargs: tuple = ()) -> ProcessPoolExecutor:
    """A pool of ``workers`` fresh processes.

    Never ``fork``: a child forked from a process that has used OpenCV's thread pool can hang
    inside OpenCV, and pymongo's client (FiftyOne's connection) is not fork-safe. ``forkserver``
    starts workers from a clean server process (``spawn`` where it is unavailable).

    Args:
        workers: number of processes.
        initializer: called once in each worker with ``initargs`` (after OpenCV is set to one thread).
    """
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method),
                               initializer=_init, initargs=(initializer, initargs))
