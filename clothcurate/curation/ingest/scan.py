"""Scan the sources an ingest is given and check the user's input, before the database is touched.

Each source folder is read for its vocabularies and its list of samples (no pixel decoded); its
label map is chosen and checked against the vocabulary, and two samples whose keys would name one
mask file are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clothcurate.curation.ingest.report import bad_entry, strict_error
from clothcurate.curation.sources import SampleRef, Source, get_source
from clothcurate.curation.sources.base import ScanProblem
from clothcurate.errors import BadInputError
from clothcurate.labelmaps import LabelMap, load_labelmap
from clothcurate.workspace import key_clashes, sample_key

__all__ = ["ScannedSource", "scan_sources"]


@dataclass
class ScannedSource:
    """One source as scanned, ready to ingest.

    Attributes:
        source: its reader.
        labelmap: the label map its label masks are remapped with.
        vocab: ``{raw field suffix: label names}`` (:meth:`Source.vocabularies`).
        refs: its usable samples, in the dataset's order.
        problems: its samples the scan already found unusable.
        left_out: ``{reason: count}`` of samples skipped on purpose.
    """

    source: Source
    labelmap: LabelMap
    vocab: dict[str, list[str]]
    refs: list[SampleRef]
    problems: list[ScanProblem]
    left_out: dict[str, int]


def scan_sources(roots: dict[str, str | Path], labelmaps: list[Path], *, strict: bool) -> list[ScannedSource]:
    """Scan every source and check everything the user passed.

    Args:
        roots: ``{source name: folder}`` of the sources to ingest (``ccp``, ``cfpd``).
        labelmaps: user label maps (YAML) replacing the built-in map of their ``source``.
        strict: refuse a source whose scan found a bad sample.

    Returns:
        The scanned sources, in the order of ``roots``.

    Raises:
        BadInputError: a missing folder, a wrong layout, a bad or misplaced label map, two samples
            whose keys name one mask file, or (strict) a bad sample.
    """
    chosen = _pick_labelmaps(list(roots), labelmaps)
    scanned = []
    for name, root in roots.items():
        source = get_source(name, root)
        vocab = source.vocabularies()
        labelmap = chosen[name]
        labelmap.check_vocabulary(vocab[""], where=str(source.vocabulary_file()))
        refs, problems, left_out = source.scan()
        if strict and problems:
            raise strict_error(bad_entry(source.name, problems[0]))
        _refuse_key_clashes(source, refs)
        scanned.append(ScannedSource(source, labelmap, vocab, refs, problems, left_out))
    return scanned


def _pick_labelmaps(sources: list[str], labelmaps: list[Path]) -> dict[str, LabelMap]:
    """The label map of each source: the user's (one per source, for a source being ingested) or
    the built-in one.

    Args:
        sources: the names of the sources being ingested.
        labelmaps: the user's label map files.

    Returns:
        ``{source name: label map}`` for every name in ``sources``.

    Raises:
        BadInputError: a label map for a source not being ingested, two for one source, or a bad file.
    """
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


def _refuse_key_clashes(source: Source, refs: list[SampleRef]) -> None:
    """Refuse two samples whose keys name one mask file.

    Args:
        source: the source's reader.
        refs: its samples.

    Raises:
        BadInputError: naming both photos and their keys.
    """
    keys = {r.image_path: sample_key(source.name, r.source_id) for r in refs}
    clashes = key_clashes(keys)
    if clashes:
        a, b = clashes[0]
        more = f" ({len(clashes) - 1} more such pairs)" if len(clashes) > 1 else ""
        raise BadInputError(f"{a} and {b} would share one mask file (sample keys {keys[a]!r}, {keys[b]!r}: "
                            f"their names differ only in letter case or photo extension){more}; rename one of "
                            "them, then run again (nothing was ingested)")
