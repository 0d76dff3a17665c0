"""Write one source's samples: masks by a pool of workers, then the samples into FiftyOne in batches.

A sample enters the database only after its masks are on disk, so an interrupted ingest leaves a
consistent dataset and a re-run completes it.
"""

from __future__ import annotations

import time
from collections import Counter

from tqdm import tqdm

from clothcurate.curation.ingest.dataset import Target, point_to_restored, to_sample
from clothcurate.curation.ingest.report import PHASES, IngestReport, strict_error
from clothcurate.curation.ingest.worker import Outputs, init_worker, process
from clothcurate.curation.sources import SampleRef, Source
from clothcurate.labelmaps import LabelMap
from clothcurate.parallel import process_pool

__all__ = ["write_samples"]

_BATCH = 256  # samples per bulk insert
_MIN_POOLED = 16  # fewer jobs than this run in the main process: starting workers would cost more


def write_samples(target: Target, source: Source, labelmap: LabelMap, outputs: Outputs, jobs: list[SampleRef],
                  report: IngestReport, times: Counter, *, restore: dict[str, dict[str, str | None]],
                  workers: int, strict: bool, progress: bool) -> tuple[int, int]:
    """Process ``jobs`` in a worker pool and add the finished samples in batches.

    Args:
        target: the dataset (created with the first batch).
        source: the source's reader.
        labelmap: its label map.
        outputs: where each mask field is written.
        jobs: the samples to process.
        report: gets an entry per bad sample.
        times: seconds per phase, added to (:data:`~clothcurate.curation.ingest.report.PHASES`
            and ``database``).
        restore: ``{key: {mask field: stored path or None}}`` of the samples already in the dataset:
            only their masks are written again (and their mask fields pointed at them).
        workers: worker processes; 1 runs everything in this process.
        strict: raise at the first bad sample instead of skipping it.
        progress: show a progress bar.

    Returns:
        ``(added, restored)``: how many samples were added and restored.

    Raises:
        BadInputError: (strict) a bad sample.
    """
    fo = __import__("fiftyone")
    added, restored, batch = 0, 0, []

    def flush() -> None:
        nonlocal added, batch
        if batch:
            t = time.perf_counter()
            target.get().add_samples(batch, progress=False)
            times["database"] += time.perf_counter() - t
            added += len(batch)
            batch = []

    initargs = (source, labelmap, outputs)
    bar = tqdm(total=len(jobs), desc=f"ingest {source.name}", unit="img", disable=not progress)
    pooled = workers > 1 and len(jobs) > _MIN_POOLED
    pool = process_pool(workers, initializer=init_worker, initargs=initargs) if pooled else None
    try:  # from the first submitted job on: an interrupt still shuts the pool down (finally)
        if pool is not None:
            results = pool.map(process, jobs, chunksize=8)
        else:
            init_worker(*initargs)
            results = map(process, jobs)
        for rec in results:
            bar.update()
            if "bad" in rec:
                report.bad.append(rec["bad"])
                if strict:
                    raise strict_error(rec["bad"])
                continue
            for phase, seconds in zip(PHASES, rec["t"]):
                times[phase] += seconds
            if rec["key"] in restore:
                point_to_restored(fo, target.ds, rec, restore[rec["key"]])
                restored += 1
                continue
            batch.append(to_sample(fo, rec, source.name))
            if len(batch) >= _BATCH:
                flush()
        flush()
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return added, restored
