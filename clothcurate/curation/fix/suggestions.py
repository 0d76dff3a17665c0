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

The class a patch lies on is the most frequent class under it (flag-errors labels each map
pixel with the most frequent class of its block, so a finding's patch lies mostly on the class
its line names). Nothing is dropped silently: a finding that changes nothing is returned with the
reason (:class:`LeftAlone`: accepted before, its patch lies on another class than it names, no
patch), and ``fix --accept-suggestions`` counts it under ``left alone``. Shapes: H, W = photo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

from clothcurate.curation.fix.regions import CONNECTIVITY, region_of_pixels
from clothcurate.labelmaps import BACKGROUND, NUM_CLASSES, TARGET_CLASSES

__all__ = ["ALREADY", "ELSEWHERE", "NO_PATCH", "SHOULD_BE_BACKGROUND", "UNREADABLE", "Finding", "LeftAlone", "Plan",
           "Suggestion", "parse_finding", "suggestions"]

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


#: why a finding (or a patch of ``label_issues``) changes nothing; keys of ``FixReport.skipped``
ALREADY = "already done (the patch has the suggested class: accepted before)"
ELSEWHERE = ("whose label_issues patch lies mostly on another class than its line names (a mask of an older "
             "flag-errors: re-run `clothcurate flag-errors --model RUN_DIR`)")
NO_PATCH = "without a patch in label_issues (re-run `clothcurate flag-errors --model RUN_DIR`)"
UNREADABLE = "whose label_findings line is not one flag-errors writes"


@dataclass(frozen=True)
class LeftAlone:
    """A finding, or a patch without one, that changes nothing.

    Attributes:
        reason: one of :data:`ALREADY`, :data:`ELSEWHERE`, :data:`NO_PATCH`, :data:`UNREADABLE`.
        finding: the ``label_findings`` line it concerns (None: a patch without a line, or a line
            that does not parse).
    """

    reason: str
    finding: Finding | None


@dataclass(frozen=True)
class Plan:
    """What one sample's findings propose: every ``label_findings`` line and every patch of
    ``label_issues`` is accounted for exactly once, in one of the two lists.

    Attributes:
        edits: the edits, largest first.
        left_alone: the findings and patches that change nothing, with the reason.
    """

    edits: list[Suggestion]
    left_alone: list[LeftAlone]


def suggestions(gt: np.ndarray, issues: np.ndarray, lines: list[str] | None) -> Plan:
    """The edits one sample's findings propose, and the findings that propose none.

    A patch is matched to a ``label_findings`` line of the same classes (the class under the
    patch, the suggested class; nearest pixel count). A patch that already has its suggested
    class is :data:`ALREADY` done when no pixel of the class its line names is left under it. A
    patch that lies on another class than every line of its suggested class names (or that lies
    on the suggested class while pixels of the named class remain under it) is left alone
    (:data:`ELSEWHERE`): relabelling the class it lies on would be an edit no finding proposed.
    A patch for which no line has its suggested class (a mask painted by hand) is an edit
    without a finding; a line without a patch is :data:`NO_PATCH`.

    Args:
        gt: (H, W) uint8, the sample's mask in force.
        issues: (H, W) uint8, its ``label_issues`` mask.
        lines: its ``label_findings`` lines.

    Returns:
        The plan.

    Raises:
        ValueError: the two masks differ in size, or ``issues`` holds a value that is no class
            (the caller names the file).
    """
    if issues.shape != gt.shape:
        raise ValueError(f"is {issues.shape[1]}x{issues.shape[0]} but the mask is {gt.shape[1]}x{gt.shape[0]}")
    bad = np.setdiff1d(np.unique(issues), [*range(NUM_CLASSES), SHOULD_BE_BACKGROUND])
    if bad.size:
        raise ValueError(f"holds value {int(bad[0])}, neither a class id 1..{NUM_CLASSES - 1} nor {SHOULD_BE_BACKGROUND}")
    parsed = [(line, parse_finding(line)) for line in lines or []]
    findings = [f for _, f in parsed if f is not None]
    left = [LeftAlone(UNREADABLE, None) for _, f in parsed if f is None]
    # (given, suggested, pixels that would change, patch) of every patch: a connected area of one value
    patches: list[tuple[int, int, np.ndarray, np.ndarray]] = []
    for value in np.unique(issues):
        if value == 0:
            continue
        suggested = BACKGROUND if value == SHOULD_BE_BACKGROUND else int(value)
        n, labels = cv2.connectedComponents((issues == value).view(np.uint8), connectivity=CONNECTIVITY)
        for r in range(1, n):
            patch = labels == r
            given = int(np.bincount(gt[patch], minlength=NUM_CLASSES).argmax())
            if given == BACKGROUND and suggested != BACKGROUND:
                pixels = patch & (gt == BACKGROUND)
            else:
                pixels = region_of_pixels(gt, given, patch)
            patches.append((given, suggested, pixels, patch))
    edits, rest = [], []
    for given, suggested, pixels, patch in patches:  # first the patches that lie where their finding says
        f = _match(findings, pixels, given=given, suggested=suggested) if given != suggested else None
        if f is not None:
            edits.append(Suggestion(given, suggested, pixels, f))
        else:
            rest.append((given, suggested, pixels, patch))
    for given, suggested, pixels, patch in rest:
        f = _match(findings, pixels, suggested=suggested)
        if given == suggested:
            # accepted before: the class the line names is gone from under the patch; still
            # there (a shirt region the patch mostly misses), the patch is misplaced
            misplaced = f is not None and bool((gt[patch] == f.given).any())
            left.append(LeftAlone(ELSEWHERE if misplaced else ALREADY, f))
        elif f is not None:
            left.append(LeftAlone(ELSEWHERE, f))
        else:
            edits.append(Suggestion(given, suggested, pixels, None))
    left += [LeftAlone(NO_PATCH, f) for f in findings]
    return Plan(sorted(edits, key=lambda s: -int(s.pixels.sum())), left)


def _match(findings: list[Finding], pixels: np.ndarray, *, suggested: int, given: int | None = None) -> Finding | None:
    """The unused finding of the classes (``given`` None: any given class) whose pixel count is
    nearest that of ``pixels`` (removed from the list)."""
    same = [f for f in findings if f.suggested == suggested and given in (None, f.given)]
    if not same:
        return None
    n = int(pixels.sum())
    best = min(same, key=lambda f: abs(f.pixels - n))
    findings.remove(best)
    return best
