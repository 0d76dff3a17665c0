"""Turning the region findings of ``flag-errors --model`` into mask edits (array work, no FiftyOne).

``flag-errors --model`` (:mod:`clothcurate.curation.flags.model`) leaves per sample the lines of
``label_findings`` and the ``label_issues`` mask (full photo frame): a finding's pixels carry the
suggested class id, 255 where the region should be background, 0 elsewhere. The mask was drawn at
the confidence map's resolution and scaled to the photo, so its patches only roughly follow the
annotation's outlines; an edit therefore follows the annotation:

- a patch over a garment region (``region labelled dress ... looks like coat``): the whole
  8-connected region of that class holding most of the patch is relabelled;
- a patch over background (``bag missing? ...``): the patch's background pixels become the class
  (garments it overlaps are left as they are).

The class a patch lies on is the most frequent class under it. A patch whose region already has
the suggested class (a suggestion accepted before) changes nothing. Shapes: H, W = photo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

from clothcurate.curation.fix.regions import CONNECTIVITY, region_of_pixels
from clothcurate.labelmaps import BACKGROUND, NUM_CLASSES, TARGET_CLASSES

__all__ = ["SHOULD_BE_BACKGROUND", "Finding", "Suggestion", "parse_finding", "suggestions"]

#: ``label_issues`` value of "should be background" (clothcurate.curation.flags.internal.confident)
SHOULD_BE_BACKGROUND = 255

_CLASS = {name: i for i, name in enumerate(TARGET_CLASSES)}
_REGION = re.compile(r"region labelled (?P<given>.+) \((?P<px>[\d,]+) px\) looks like (?P<suggested>.+), "
                     r"p=(?P<p>[\d.]+)")
_MISSING = re.compile(r"(?P<suggested>.+) missing\? (?P<px>[\d,]+) px labelled background look like (?P=suggested), "
                      r"p=(?P<p>[\d.]+)")


@dataclass(frozen=True)
class Finding:
    """One ``label_findings`` line, parsed.

    Attributes:
        given, suggested: class ids.
        pixels: the photo pixels it names (the region's, or the missed patch's).
        p: the model's mean probability of the suggested class.
        line: the line itself.
    """

    given: int
    suggested: int
    pixels: int
    p: float
    line: str


def parse_finding(line: str) -> Finding | None:
    """Parse a line written by :func:`clothcurate.curation.flags.model.describe`; None if it is not one."""
    m = _REGION.fullmatch(line)
    given = m and m.group("given")
    if m is None:
        m = _MISSING.fullmatch(line)
        given = TARGET_CLASSES[BACKGROUND]
    if m is None or given not in _CLASS or m.group("suggested") not in _CLASS:
        return None
    return Finding(_CLASS[given], _CLASS[m.group("suggested")], int(m.group("px").replace(",", "")),
                   float(m.group("p")), line)


@dataclass(frozen=True)
class Suggestion:
    """One edit the findings propose.

    Attributes:
        given: the class the patch lies on now.
        suggested: the class it should have.
        pixels: (H, W) bool, the pixels that change.
        finding: the matching ``label_findings`` line, None when there is none (p unknown).
    """

    given: int
    suggested: int
    pixels: np.ndarray
    finding: Finding | None

    def describe(self) -> str:
        """e.g. ``dress -> coat, 12,400 px (region labelled dress (12,380 px) looks like coat, p=0.93)``."""
        why = f" ({self.finding.line})" if self.finding else " (no matching label_findings line)"
        return f"{TARGET_CLASSES[self.given]} -> {TARGET_CLASSES[self.suggested]}, {int(self.pixels.sum()):,} px{why}"


def suggestions(gt: np.ndarray, issues: np.ndarray, lines: list[str] | None) -> list[Suggestion]:
    """The edits one sample's findings propose, largest first.

    Args:
        gt: (H, W) uint8, the sample's mask in force.
        issues: (H, W) uint8, its ``label_issues`` mask.
        lines: its ``label_findings`` lines.

    Returns:
        One suggestion per patch that would change pixels.

    Raises:
        ValueError: the two masks differ in size, or ``issues`` holds a value that is no class
            (the caller names the file).
    """
    if issues.shape != gt.shape:
        raise ValueError(f"is {issues.shape[1]}x{issues.shape[0]} but the mask is {gt.shape[1]}x{gt.shape[0]}")
    bad = np.setdiff1d(np.unique(issues), [*range(NUM_CLASSES), SHOULD_BE_BACKGROUND])
    if bad.size:
        raise ValueError(f"holds value {int(bad[0])}, neither a class id 1..{NUM_CLASSES - 1} nor {SHOULD_BE_BACKGROUND}")
    findings = [f for f in map(parse_finding, lines or []) if f is not None]
    out = []
    for value in np.unique(issues):
        if value == 0:
            continue
        suggested = BACKGROUND if value == SHOULD_BE_BACKGROUND else int(value)
        n, patches = cv2.connectedComponents((issues == value).view(np.uint8), connectivity=CONNECTIVITY)
        for r in range(1, n):
            patch = patches == r
            given = int(np.bincount(gt[patch], minlength=NUM_CLASSES).argmax())
            if given == suggested:
                continue  # already has the suggested class
            if given == BACKGROUND:
                pixels = patch & (gt == BACKGROUND)
            else:
                pixels = region_of_pixels(gt, given, patch)
            out.append(Suggestion(given, suggested, pixels, _match(findings, given, suggested, int(pixels.sum()))))
    return sorted(out, key=lambda s: -int(s.pixels.sum()))


def _match(findings: list[Finding], given: int, suggested: int, pixels: int) -> Finding | None:
    """The unused finding of the same classes whose pixel count is nearest (removed from the list)."""
    same = [f for f in findings if f.given == given and f.suggested == suggested]
    if not same:
        return None
    best = min(same, key=lambda f: abs(f.pixels - pixels))
    findings.remove(best)
    return best
