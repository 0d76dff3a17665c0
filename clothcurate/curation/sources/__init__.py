"""Readers of the public datasets, each in its own on-disk format.

A reader knows nothing of FiftyOne: it lists a source's samples cheaply (:meth:`Source.scan`) and
decodes one sample's raw masks (:meth:`Source.read`), so ingest can fan the decoding out over
processes. See :mod:`clothcurate.curation.sources.base` for the interface.
"""

from clothcurate.curation.sources.base import RawSample, SampleRef, Source

__all__ = ["RawSample", "SampleRef", "Source", "get_source"]


def get_source(name: str, root) -> Source:
    """The reader of source ``name`` (``ccp`` or ``cfpd``) over the folder ``root``."""
    if name == "ccp":
        from clothcurate.curation.sources.ccp import CCPSource

        return CCPSource(root)
    if name == "cfpd":
        from clothcurate.curation.sources.cfpd import CFPDSource

        return CFPDSource(root)
    raise ValueError(f"unknown source {name!r}")
