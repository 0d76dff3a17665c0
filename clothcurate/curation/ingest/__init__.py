"""Ingest CCP and CFPD into one FiftyOne dataset, remapped to the 15 classes of Table I.

Per sample (in worker processes): decode the source annotation, check the photo, remap the label
mask through the label map's lookup table, write the 15-class mask and every raw mask as PNG under
the workspace (atomically), and measure classes, pixel counts and the person box. The main process
adds finished samples to FiftyOne in bulk. A sample enters the database only after its masks are on
disk, so an interrupted ingest leaves a consistent dataset and a re-run completes it; a re-run
also writes again the mask files of samples already present that were lost. The dataset is created
with its first sample: an ingest that adds none fails and leaves no empty dataset. Photos annotated
only with image-level tags (CCP 1005-1998) become tag-only samples: their tags remapped through the
same label map into ``image_tags``, no mask (see :mod:`clothcurate.curation.annotation`).

The parts, in the order an ingest runs them:

- :mod:`.scan`: read the source folders and check the user's input (label maps, key clashes);
- :mod:`.plan`: check against the existing dataset, split samples into new ones and ones to restore;
- :mod:`.folders`: the workspace's mask folders;
- :mod:`.write` with :mod:`.worker` (one sample, in a worker process) and :mod:`.dataset`
  (FiftyOne): write the masks and add the samples;
- :mod:`.report`: :class:`IngestReport`, written to ``ingest_report.json``.

Example::

    from clothcurate.curation.ingest import ingest
    report = ingest(ccp="../shared/datasets/ccp", dataset="clothcurate")
    print(report.summary())
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from pathlib import Path

from clothcurate.atomic import write_json
from clothcurate.curation.ingest.dataset import Target, declare_source, remove_source
from clothcurate.curation.ingest.folders import make_mask_dirs, mask_outputs
from clothcurate.curation.ingest.plan import check_dataset, plan_source, tag_only_added
from clothcurate.curation.ingest.report import PHASES, IngestReport, bad_entry, nothing_ingested
from clothcurate.curation.ingest.scan import scan_sources
from clothcurate.curation.ingest.write import write_samples
from clothcurate.errors import BadInputError
from clothcurate.workspace import dataset_dir

__all__ = ["ingest", "IngestReport"]


def ingest(*, ccp: str | Path | None = None, cfpd: str | Path | None = None, dataset: str = "clothcurate",
           labelmaps: list[Path] | tuple = (), overwrite: bool = False, strict: bool = False,
           workers: int | None = None, progress: bool = True) -> IngestReport:
    """Ingest the given sources into the FiftyOne dataset ``dataset``.

    Args:
        ccp: CCP folder (``photos/``, ``annotations/pixel-level/``, ``label_list.mat``; the photos
            annotated only in ``annotations/image-level/`` become tag-only samples).
        cfpd: CFPD folder (``fashon_parsing_data.mat``, ``image/``).
        dataset: FiftyOne dataset name (created persistent if missing).
        labelmaps: user label maps (YAML) replacing the built-in map of their ``source``.
        overwrite: delete the samples (and masks) of the given sources first, then rebuild.
        strict: raise at the first bad sample instead of skipping it.
        workers: decoding processes (default: CPU count).
        progress: show a progress bar.

    Returns:
        The report; also written to ``<workspace>/datasets/<dataset>/ingest_report.json``.

    Raises:
        BadInputError: missing folder, wrong layout, bad label map, two samples whose keys name one
            mask file, an unwritable workspace, no sample added to a dataset that has none, or
            (strict) a bad sample.
    """
    t_start = time.perf_counter()
    # Validate everything the user passed before touching the database.
    roots = {name: root for name, root in (("ccp", ccp), ("cfpd", cfpd)) if root is not None}
    if not roots:
        raise BadInputError("nothing to ingest: pass ccp=DIR and/or cfpd=DIR")
    scanned = scan_sources(roots, list(labelmaps), strict=strict)

    target = Target(dataset)
    existed = target.ds is not None
    if existed:  # refuse before writing anything
        check_dataset(target.ds, scanned, overwrite=overwrite)
    outputs_of = {s.source.name: mask_outputs(dataset, s.source.name, s.vocab) for s in scanned}
    made_home = make_mask_dirs(dataset, [d for outputs in outputs_of.values() for _, d in outputs.values()])
    report = IngestReport(dataset=dataset)
    times = Counter()
    workers = workers or os.cpu_count() or 1
    try:
        for s in scanned:
            name, outputs = s.source.name, outputs_of[s.source.name]
            if overwrite and target.ds is not None:
                remove_source(target.ds, name, list(outputs))
            target.configure(lambda ds, s=s: declare_source(ds, s.source.name, s.labelmap, s.vocab))
            plan = plan_source(target.ds, s, list(outputs))
            report.left_out[name] = plan.left_out
            report.bad += [bad_entry(name, p) for p in s.problems]
            report.already_present[name] = plan.already_present
            report.added[name] = report.restored[name] = 0
            if plan.jobs:
                report.added[name], report.restored[name] = write_samples(
                    target, s.source, s.labelmap, outputs, plan.jobs, report, times, restore=plan.restore,
                    workers=workers, strict=strict, progress=progress)
            report.tag_only[name] = tag_only_added(plan, {b["source_id"] for b in report.bad if b["source"] == name})
        if target.ds is None or not len(target.ds):
            raise BadInputError(nothing_ingested(dataset, [str(s.source.root) for s in scanned], report, existed))
    except BaseException:
        if target.ds is None and made_home:  # nothing of this dataset existed before: leave nothing
            shutil.rmtree(dataset_dir(dataset), ignore_errors=True)
        raise
    report.timings = {**{k: round(times[k], 3) for k in (*PHASES, "database")},
                      "total": round(time.perf_counter() - t_start, 3)}
    path = dataset_dir(dataset) / "ingest_report.json"
    write_json(path, report.to_dict())
    report.report_path = str(path)
    return report
