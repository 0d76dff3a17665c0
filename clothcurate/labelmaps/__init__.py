"""Table I as data: the 15 target classes and one label map per source vocabulary.

The maps are YAML files beside this module (``ccp.yaml``, ``cfpd.yaml``); a user copies one,
edits it and passes it with ``--labelmap FILE``. Every map is validated on load: each source
label id ``0..n-1`` is mapped exactly once, to a valid target class.

Example::

    from clothcurate.labelmaps import TARGET_CLASSES, load_labelmap
    lm = load_labelmap("ccp")
    target_mask = lm.remap(raw_mask, where="0001.mat")   # (H, W) uint8 in 0..14
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import yaml

from clothcurate.errors import BadInputError, BadSampleError

__all__ = ["TARGET_CLASSES", "NUM_CLASSES", "BACKGROUND", "LabelMap", "load_labelmap", "mask_targets"]

UNMAPPED = 255  # lookup-table value of a source id outside the vocabulary


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node, deep=False):  # noqa: D102 - yaml API
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise BadInputError(
                    f"{getattr(self, 'name', '<labelmap>')}: line {key_node.start_mark.line + 1}: "
                    f"label id {key!r} is mapped twice; map each source label exactly once")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as e:
        raise BadInputError(f"{path}: cannot read label map ({e.strerror}); pass an existing YAML file") from e
    loader = _UniqueKeyLoader(text)
    loader.name = str(path)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as e:
        raise BadInputError(f"{path}: not valid YAML ({str(e).splitlines()[0]}); fix the syntax") from e
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: expected a mapping with 'source' and 'labels'")
    return data


def _builtin(name: str) -> Path:
    return Path(str(resources.files(__name__).joinpath(name)))


TARGET_CLASSES: tuple[str, ...] = tuple(_load_yaml(_builtin("target.yaml"))["classes"])
NUM_CLASSES = len(TARGET_CLASSES)
BACKGROUND = 0


def mask_targets(classes: tuple[str, ...] | list[str] = TARGET_CLASSES) -> dict[int, str]:
    """``{id: name}`` as FiftyOne's ``mask_targets`` wants it."""
    return {i: c for i, c in enumerate(classes)}


@dataclass(frozen=True)
class LabelMap:
    """One source vocabulary and its map onto the target classes.

    Attributes:
        source: ``ccp`` or ``cfpd``.
        names: source label names; position = source label id.
        targets: target class id of each source label id (same length as ``names``).
        path: the file it was loaded from.
    """

    source: str
    names: tuple[str, ...]
    targets: tuple[int, ...]
    path: str = ""
    lut: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        lut = np.full(256, UNMAPPED, dtype=np.uint8)
        lut[: len(self.targets)] = self.targets
        object.__setattr__(self, "lut", lut)

    def remap(self, raw: np.ndarray, *, source_id: str, where: str | None = None) -> np.ndarray:
        """Map a raw source mask to target class ids.

        Args:
            raw: (H, W) integer source label ids.
            source_id: the sample, named in the error.
            where: the file, named in the error.

        Returns:
            (H, W) uint8 target ids in ``0..NUM_CLASSES-1``.

        Raises:
            BadSampleError: a label id the vocabulary does not know (never silently background).
        """
        if raw.dtype != np.uint8:
            lo, hi = int(raw.min()), int(raw.max())
            if lo < 0 or hi >= len(self.names):
                bad = lo if lo < 0 else hi
                raise BadSampleError(source_id, f"label id {bad} is outside the {self.source} vocabulary "
                                     f"(0..{len(self.names) - 1})", where)
            raw = raw.astype(np.uint8)
        out = cv2.LUT(raw, self.lut)  # several times faster than self.lut[raw]
        if (out == UNMAPPED).any():
            bad = int(raw[out == UNMAPPED].max())
            raise BadSampleError(source_id, f"label id {bad} is outside the {self.source} vocabulary "
                                 f"(0..{len(self.names) - 1})", where)
        return out

    def check_vocabulary(self, names: list[str], *, where: str) -> None:
        """Refuse a dataset whose own label list differs from the map's vocabulary."""
        if [n.lower() for n in names] != [n.lower() for n in self.names]:
            diff = next((i for i, (a, b) in enumerate(zip(names, self.names)) if a.lower() != b.lower()),
                        min(len(names), len(self.names)))
            got = names[diff] if diff < len(names) else "<end>"
            want = self.names[diff] if diff < len(self.names) else "<end>"
            raise BadInputError(
                f"{where}: label {diff} is {got!r} but the label map {self.path} has {want!r} "
                f"({len(names)} vs {len(self.names)} labels); use a label map made for this vocabulary")


def load_labelmap(source_or_path: str | Path, *, source: str | None = None) -> LabelMap:
    """Load and validate a label map.

    Args:
        source_or_path: a built-in source name (``ccp``, ``cfpd``) or a YAML file.
        source: when given, the map must be for this source.

    Raises:
        BadInputError: unreadable file, duplicate or missing ids, unknown target class.
    """
    p = Path(source_or_path)
    if not p.suffix and not p.exists():
        p = _builtin(f"{source_or_path}.yaml")
        if not p.exists():
            raise BadInputError(f"no built-in label map {source_or_path!r}; use ccp, cfpd or a YAML file")
    data = _load_yaml(p)
    src = data.get("source")
    if not isinstance(src, str):
        raise BadInputError(f"{p}: missing 'source:' (ccp or cfpd)")
    if source is not None and src != source:
        raise BadInputError(f"{p}: label map is for source {src!r}, not {source!r}; pass the {source} map")
    labels = data.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise BadInputError(f"{p}: 'labels' must map each source id to [name, target class]")
    ids = sorted(labels)
    if not all(isinstance(i, int) for i in ids) or ids != list(range(len(ids))):
        missing = sorted(set(range(len(ids))) - set(i for i in ids if isinstance(i, int)))
        raise BadInputError(f"{p}: label ids must be 0..{len(ids) - 1}, each once "
                            f"(missing {missing[:5] or 'none'}, got {[i for i in ids if not isinstance(i, int) or i >= len(ids)][:5]})")
    if len(ids) > UNMAPPED:
        raise BadInputError(f"{p}: at most {UNMAPPED} source labels are supported")
    names, targets = [], []
    for i in ids:
        entry = labels[i]
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, str) for x in entry)):
            raise BadInputError(f"{p}: label {i}: expected [\"source name\", \"target class\"], got {entry!r} "
                                "(quote names such as \"null\")")
        name, tgt = entry
        if tgt not in TARGET_CLASSES:
            raise BadInputError(f"{p}: label {i} ({name}) maps to unknown class {tgt!r}; "
                                f"use one of {', '.join(TARGET_CLASSES)}")
        names.append(name)
        targets.append(TARGET_CLASSES.index(tgt))
    if len(set(n.lower() for n in names)) != len(names):
        dup = next(n for n in names if [m.lower() for m in names].count(n.lower()) > 1)
        raise BadInputError(f"{p}: source label {dup!r} appears more than once; map each label exactly once")
    return LabelMap(source=src, names=tuple(names), targets=tuple(targets), path=str(p))
