"""Checks of the source's own labels: what the label map sent to background.

Needs the raw mask (field ``raw_<source>``) and the ids the label map maps to background (CCP
``accessories``, ``belt``, ``bra``, ``gloves`` ...). A small belt is expected; a large region of
such a label usually means a garment was labelled with the wrong source label and is now a
background hole in the 15-class mask. Only the pixels still background in the mask in force count:
a region that ``clothcurate fix`` gave a class is a deliberate correction, not a lost garment (for
an uncorrected sample every such pixel is background, so this changes nothing there).
"""

from __future__ import annotations

import numpy as np

from clothcurate.curation.flags.calibration import fit_tail
from clothcurate.curation.flags.registry import Check, register
from clothcurate.curation.flags.sample import SampleMasks, histogram_u8


def _measure_raw_background(s: SampleMasks) -> float:
    """Pixels of source labels mapped to background (other than the source's own background, id 0)
    that are background in the 15-class mask, as a share of those pixels plus the foreground; NaN
    when the sample has no raw mask."""
    if s.raw is None:
        return float("nan")
    if not s.raw_background_ids:
        return 0.0
    sent_to_background = np.zeros(256, np.uint8)
    sent_to_background[list(s.raw_background_ids)] = 1
    lost = int(histogram_u8(sent_to_background[s.raw] * ~s.foreground)[1])
    return lost / max(lost + s.foreground_pixels, 1)


raw_background_area = register(Check(
    name="raw_background_area",
    description="Source labels that the label map sends to background (accessories, belt, bra, "
                "gloves ...) cover an unusually large area: a garment was probably given one of "
                "these labels and is now missing from the 15-class mask.",
    measure=_measure_raw_background,
    fit=lambda ms: fit_tail(ms, floor=0.01),
    score=lambda m, tail: 0.0 if np.isnan(m) else tail.score(m),
    weight=0.7,
    needs=frozenset({"raw"}),
    family="raw",
))
