"""Ingest CCP and CFPD into one FiftyOne dataset, remapped to the 15 classes of Table I.

Per sample (in worker processes): decode the source annotation, check the photo, remap the label
mask through the label map's lookup table, write the 15-class mask and every raw mask as PNG under
the workspace (atomically), and measure classes, pixel counts and the person box. The main process
adds finished samples to FiftyOne in bulk. A sample enters the database only after its masks are on
disk, so an interrupted ingest leaves a consistent dataset and a re-run completes it.

Example::

    from clothcurate.curation.ingest import ingest
    report = ingest(ccp="../shared/datasets/ccp", dataset="clothcurate")
    print(report.summary())
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from clothcurate.atomic import write_json
from clothcurate.curation.db import open_or_create
from clothcurate.curation.photos import probe_photo
from clothcurate.curation.sources import SampleRef, Source, get_source
from clothcurate.errors import BadInputError, BadSampleError
from clothcurate.labelmaps import NUM_CLASSES, TARGET_CLASSES, LabelMap, load_labelmap
from clothcurate.masks import write_mask_png
from clothcurate.parallel import process_pool
from clothcurate.workspace import dataset_dir, mask_dir, sample_key

__all__ = ["ingest", "IngestReport"]

_BATCH = 256  # samples per bulk insert


@dataclass
class IngestReport:
    """What an ingest did.

    Attributes:
        dataset: the FiftyOne dataset name.
        added / already_present: samples per source.
        left_out: ``{source: {reason: count}}`` for samples skipped on purpose.
        bad: one entry per bad sample: source, source_id, path, reason.
        timings: seconds per phase (``decode``, ``remap``, ``png``, ``database``, ``total``);
            the first three are summed over worker processes.
        report_path: the ``ingest_report.json`` written.
    """

    dataset: str
    added: dict[str, int] = field(default_factory=dict)
    already_present: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, dict[str, int]] = field(default_factory=dict)
    bad: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    report_path: str = ""

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "added": self.added, "already_present": self.already_present,
                "left_out": self.left_out, "bad": self.bad, "timings": self.timings}

    def summary(self) -> str:
        lines = [f"dataset {self.dataset!r}:"]
        for src in self.added:
            lines.append(f"  {src}: {self.added[src]} added, {self.already_present.get(src, 0)} already present")
            for reason, n in self.left_out.get(src, {}).items():
                lines.append(f"    left out: {n} {reason}")
        if self.bad:
            lines.append(f"  {len(self.bad)} bad sample(s) skipped:")
            lines += [f"    {b['source']} {b['source_id']}: {b['reason']}" + (f" ({b['path']})" if b.get("path") else "")
                      for b in self.bad[:20]]
            if len(self.bad) > 20:
                lines.append(f"    ... and {len(self.bad) - 20} more")
        t = self.timings
        if t.get("total"):
            n = sum(self.added.values())
            lines.append(f"  {t['total']:.1f} s ({n / t['total']:.0f} samples/s); report: {self.report_path}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Worker side: one sample, no database.

_W: dict = {}  # per-process context set by _init_worker


def _init_worker(source: Source, labelmap: LabelMap, outputs: dict[str, tuple[str | None, str]]) -> None:
    """``outputs``: ``{field: (raw mask key or None for the 15-class mask, folder)}``."""
    _W.update(source=source, labelmap=labelmap, outputs=outputs)


def _process(ref: SampleRef) -> dict:
    """Decode, check, remap and write one sample; returns its field values or its problem."""
    source: Source = _W["source"]
    labelmap: LabelMap = _W["labelmap"]
    t0 = time.perf_counter()
    try:
        raw = source.read(ref)
        width, height = probe_photo(ref.image_path, ref.source_id)
        t1 = time.perf_counter()
        label = raw.masks[""]
        for name, m in raw.masks.items():
            if m.shape != (height, width):
                raise BadSampleError(ref.source_id, f"mask{' ' + name if name else ''} is {m.shape[1]}x{m.shape[0]} "
                                     f"but the photo is {width}x{height}", raw.annotation_path)
        gt = labelmap.remap(label, source_id=ref.source_id, where=raw.annotation_path)
        counts = cv2.calcHist([gt], [0], None, [NUM_CLASSES], [0, NUM_CLASSES]).ravel().astype(np.int64)
        x0, y0, box_w, box_h = cv2.boundingRect(gt)  # extent of the non-background pixels
        t2 = time.perf_counter()
        key = sample_key(source.name, ref.source_id)
        paths = {}
        for fld, (raw_key, d) in _W["outputs"].items():
            arr = gt if raw_key is None else raw.masks[raw_key]
            paths[fld] = os.path.join(d, f"{key}.png")
            write_mask_png(paths[fld], arr.astype(np.uint8, copy=False))
        t3 = time.perf_counter()
    except BadSampleError as e:
        return {"bad": {"source": source.name, "source_id": e.source_id, "path": e.path, "reason": e.reason}}
    box = [x0 / width, y0 / height, box_w / width, box_h / height] if box_w else None
    present = np.flatnonzero(counts)
    return {
        "key": key, "source_id": ref.source_id, "filepath": ref.image_path, "masks": paths,
        "width": width, "height": height, "size_bytes": os.path.getsize(ref.image_path),
        "classes": [TARGET_CLASSES[i] for i in present],
        "class_pixels": {TARGET_CLASSES[i]: int(counts[i]) for i in present},
        "person": box,
        "t": (t1 - t0, t2 - t1, t3 - t2),
    }


# --------------------------------------------------------------------------------------------
# Main side.


def _raw_field(source: str, raw_key: str) -> str:
    """FiftyOne field of a raw mask: ``raw_ccp``, ``raw_cfpd``, ``raw_cfpd_color``."""
    return f"raw_{source}" + (f"_{raw_key}" if raw_key else "")


def _pick_labelmaps(sources: list[str], labelmaps: list[Path]) -> dict[str, LabelMap]:
    """The label map of each source: the user's (one per source, for a source being ingested) or
    the built-in one."""
    chosen: dict[str, LabelMap] = {}
    for lm in map(load_labelmap, labelmaps):
        if lm.source not in sources:
            raise BadInputError(f"{lm.path}: label map for source {lm.source!r}, but only "
                                f"{', '.join(sources)} {'is' if len(sources) == 1 else 'are'} being ingested; "
                                "fix its 'source:' (ccp or cfpd) or pass that source's folder")
        if lm.source in chosen:
            raise BadInputError(f"two --labelmap files for source {lm.source!r}: {chosen[lm.source].path}, "
                                f"{lm.path}; pass one")
        chosen[lm.source] = lm
    return {name: chosen.get(name) or load_labelmap(name) for name in sources}


def _check_same_labelmap(ds, source: str, labelmap: LabelMap) -> None:
    """Refuse to add samples of ``source`` with a map other than the one its samples were built with."""
    from fiftyone import ViewField as F

    recorded = (ds.info.get("labelmap_targets") or {}).get(source)
    if recorded is None or list(recorded) == list(labelmap.targets):
        return
    n = ds.match(F("source") == source).count()
    if n:
        was = (ds.info.get("labelmaps") or {}).get(source, "another label map")
        raise BadInputError(f"dataset {ds.name!r}: its {n} {source} samples were remapped with {was}, not "
                            f"{labelmap.path}; pass --overwrite to rebuild them with it, or drop --labelmap")


def _to_sample(fo, rec: dict, source: str):
    sample = fo.Sample(
        filepath=rec["filepath"], source=source, source_id=rec["source_id"], key=rec["key"],
        classes=rec["classes"], class_pixels=rec["class_pixels"],
        metadata=fo.ImageMetadata(width=rec["width"], height=rec["height"], size_bytes=rec["size_bytes"],
                                  mime_type="image/jpeg", num_channels=3),
    )
    for fld, path in rec["masks"].items():
        sample[fld] = fo.Segmentation(mask_path=path)
    if rec["person"] is not None:
        sample["person"] = fo.Detection(label="person", bounding_box=rec["person"])
    return sample


def _remove_source(ds, source: str, fields: list[str]) -> None:
    from fiftyone import ViewField as F

    keys = ds.match(F("source") == source).values("key")
    ds.delete_samples(ds.match(F("source") == source))
    for fld in fields:
        for k in keys:
            Path(mask_dir(ds.name, fld), f"{k}.png").unlink(missing_ok=True)


def ingest(*, ccp: str | Path | None = None, cfpd: str | Path | None = None, dataset: str = "clothcurate",
           labelmaps: list[Path] | tuple = (), overwrite: bool = False, strict: bool = False,
           workers: int | None = None, progress: bool = True) -> IngestReport:
    """Ingest the given sources into the FiftyOne dataset ``dataset``.

    Args:
        ccp: CCP folder (``photos/``, ``annotations/pixel-level/``, ``label_list.mat``).
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
        BadInputError: missing folder, wrong layout, bad label map, or (strict) a bad sample.
    """
    t_start = time.perf_counter()
    # Validate everything the user passed before touching the database.
    roots = {name: root for name, root in (("ccp", ccp), ("cfpd", cfpd)) if root is not None}
    if not roots:
        raise BadInputError("nothing to ingest: pass ccp=DIR and/or cfpd=DIR")
    chosen = _pick_labelmaps(list(roots), list(labelmaps))
    plan = []
    for name, root in roots.items():
        source = get_source(name, root)
        vocab = source.vocabularies()
        labelmap = chosen[name]
        labelmap.check_vocabulary(vocab[""], where=str(source.vocabulary_file()))
        refs, problems, left_out = source.scan()
        if strict and problems:
            p = problems[0]
            raise BadInputError(f"{source.name} sample {p.source_id} ({p.path}): {p.reason} (--strict)")
        plan.append((source, labelmap, vocab, refs, problems, left_out))

    ds = open_or_create(dataset)
    if not overwrite:
        for source, labelmap, *_ in plan:
            _check_same_labelmap(ds, source.name, labelmap)
    report = IngestReport(dataset=dataset)
    times = Counter()
    workers = workers or os.cpu_count() or 1
    for source, labelmap, vocab, refs, problems, left_out in plan:
        outputs = {"ground_truth": (None, str(mask_dir(dataset, "ground_truth")))}
        outputs.update({_raw_field(source.name, k): (k, str(mask_dir(dataset, _raw_field(source.name, k))))
                        for k in vocab})
        if overwrite:
            _remove_source(ds, source.name, list(outputs))
        targets = dict(ds.mask_targets)
        targets.update({_raw_field(source.name, k): dict(enumerate(v)) for k, v in vocab.items()})
        ds.mask_targets = targets
        ds.info.setdefault("labelmaps", {})[source.name] = labelmap.path
        ds.info.setdefault("labelmap_targets", {})[source.name] = list(labelmap.targets)
        ds.save()

        from fiftyone import ViewField as F

        present = set(ds.match(F("source") == source.name).values("key"))
        report.left_out[source.name] = {k: v for k, v in left_out.items() if v}
        report.bad += [{"source": source.name, "source_id": p.source_id, "path": p.path, "reason": p.reason}
                       for p in problems]
        todo = [r for r in refs if sample_key(source.name, r.source_id) not in present]
        report.already_present[source.name] = len(refs) - len(todo)
        report.added[source.name] = 0
        for _, d in outputs.values():
            os.makedirs(d, exist_ok=True)
        if not todo:
            continue
        report.added[source.name] = _run(ds, source, labelmap, outputs, todo, report, times,
                                         workers=workers, strict=strict, progress=progress)
    report.timings = {"decode": round(times["decode"], 3), "remap": round(times["remap"], 3),
                      "png": round(times["png"], 3), "database": round(times["database"], 3),
                      "total": round(time.perf_counter() - t_start, 3)}
    path = dataset_dir(dataset) / "ingest_report.json"
    write_json(path, report.to_dict())
    report.report_path = str(path)
    return report


def _run(ds, source, labelmap, outputs, todo, report, times, *, workers, strict, progress) -> int:
    """Process ``todo`` in a worker pool and add finished samples in batches; returns how many."""
    fo = __import__("fiftyone")
    added, batch = 0, []

    def flush():
        nonlocal added, batch
        if batch:
            t = time.perf_counter()
            ds.add_samples(batch, progress=False)
            times["database"] += time.perf_counter() - t
            added += len(batch)
            batch = []

    initargs = (source, labelmap, outputs)
    bar = tqdm(total=len(todo), desc=f"ingest {source.name}", unit="img", disable=not progress)
    if workers > 1 and len(todo) > 16:
        pool = process_pool(workers, initializer=_init_worker, initargs=initargs)
        results = pool.map(_process, todo, chunksize=8)
    else:
        pool = None
        _init_worker(*initargs)
        results = map(_process, todo)
    try:
        for rec in results:
            bar.update()
            if "bad" in rec:
                report.bad.append(rec["bad"])
                if strict:
                    b = rec["bad"]
                    raise BadInputError(f"{b['source']} sample {b['source_id']} ({b['path']}): {b['reason']} (--strict)")
                continue
            times["decode"] += rec["t"][0]
            times["remap"] += rec["t"][1]
            times["png"] += rec["t"][2]
            batch.append(_to_sample(fo, rec, source.name))
            if len(batch) >= _BATCH:
                flush()
        flush()
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return added
