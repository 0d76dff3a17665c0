"""Where ingest writes masks in the workspace: one folder per mask field of a dataset."""

from __future__ import annotations

import os

from clothcurate.curation.ingest.worker import Outputs
from clothcurate.errors import BadInputError
from clothcurate.workspace import dataset_dir, home, mask_dir

__all__ = ["make_mask_dirs", "mask_outputs", "raw_field"]


def raw_field(source: str, raw_key: str) -> str:
    """The FiftyOne field of a raw mask.

    Args:
        source: the source name.
        raw_key: the raw mask key (``""`` for the label mask, ``"color"`` ...).

    Returns:
        ``raw_ccp``, ``raw_cfpd``, ``raw_cfpd_color`` ...
    """
    return f"raw_{source}" + (f"_{raw_key}" if raw_key else "")


def mask_outputs(dataset: str, source: str, vocab: dict[str, list[str]]) -> Outputs:
    """The mask fields of one source and their folders.

    Args:
        dataset: the dataset name.
        source: the source name.
        vocab: ``{raw field suffix: label names}`` of the source.

    Returns:
        ``{field: (raw mask key or None for the 15-class mask, mask folder)}``, ``ground_truth`` first.
    """
    fields = {"ground_truth": None, **{raw_field(source, k): k for k in vocab}}
    return {fld: (raw_key, str(mask_dir(dataset, fld))) for fld, raw_key in fields.items()}


def make_mask_dirs(dataset: str, dirs: list[str]) -> bool:
    """Create the mask folders (before any database change).

    Args:
        dataset: the dataset name.
        dirs: the folders.

    Returns:
        True when the dataset's workspace folder did not exist before (an ingest that fails
        removes it again).

    Raises:
        BadInputError: a folder cannot be created or written (one line naming it).
    """
    made = not dataset_dir(dataset).exists()
    for d in dirs:
        try:
            os.makedirs(d, exist_ok=True)
            problem = None if os.access(d, os.W_OK | os.X_OK) else "permission denied"
        except OSError as e:
            d, problem = e.filename or d, e.strerror or str(e)
        if problem:
            raise BadInputError(f"{d}: cannot write masks there ({problem}); make {home()} writable or set "
                                "CLOTHCURATE_HOME to a writable folder")
    return made
