"""Confident learning per pixel (Northcutt et al., 2021) on a model's out-of-fold softmax.

Shapes: K = classes; h, w = rows and columns of the confidence map (the crop frame at S/4,
``confidence/<key>.npz`` of a train-eval run); H, W = the photo.

1. Per-class thresholds: ``t_j`` = the model's mean self-confidence ``p(j)`` over every pixel
   labelled ``j`` in the whole run (:func:`self_confidence`, :func:`class_thresholds`).
2. A pixel labelled ``i`` is an *issue* when ``p(i) < t_i`` and some other class ``j`` has
   ``p(j) >= t_j``; its suggested class is the most probable such ``j`` (:func:`issue_pixels`).
3. Issues are aggregated per connected region of the annotation (:func:`findings`): a garment
   region mostly flagged is probably mislabelled (or not there at all), a connected patch of
   background that the model confidently calls a garment is probably a missed garment.
4. One number per sample for ranking: the self-confidence ``p(given label)`` of its pixels pooled
   with a softmin (:func:`pooled_self_confidence`; Lad & Mueller, "Estimating label quality and
   errors in semantic segmentation data via any model", 2023: the least confident pixels
   dominate, so one wrong region weighs even in a large clean annotation).

FiftyOne-free and pure numpy/OpenCV, so tests and the benchmark call it on arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from clothcurate.geometry import paste_back
from clothcurate.labelmaps import BACKGROUND, NUM_CLASSES

#: id that the ``label_issues`` mask gives pixels the model sees as background (0 means "no
#: finding" there)
SHOULD_BE_BACKGROUND = 255
#: a region of the annotation with at least this share of its pixels flagged is a finding
REGION_SHARE = 0.5
#: a finding covers at least this share of the labelled person (and MIN_PIXELS map pixels)
MIN_SHARE = 0.01
MIN_PIXELS = 3
#: softmin temperature of :func:`pooled_self_confidence` (the paper's default)
SOFTMIN_TEMPERATURE = 0.1
#: a finding's suggested class must be the more likely one on its pixels (mean p >= 0.5): for rare
#: classes the self-confidence threshold t_j can be a few percent, and a region "that looks like a
#: romper, p=0.06" is noise for a reviewer, not a finding
MIN_PROBABILITY = 0.5


@dataclass(frozen=True)
class ModelEvidence:
    """One sample's out-of-fold softmax and its given labels at the same resolution.

    Attributes:
        probs: (K, h, w) uint8 quantised softmax (255 = 1.0) in the crop frame.
        labels: (h, w) uint8 given class ids: the annotation cropped to ``frame_box``, each map
            pixel the most frequent class of its block (:func:`block_labels`).
        frame_box: ``(x0, y0, x1, y1)`` photo pixels the map covers (x1/y1 exclusive).
        orig_size: ``(W, H)`` of the photo.
    """

    probs: np.ndarray
    labels: np.ndarray
    frame_box: tuple[int, int, int, int]
    orig_size: tuple[int, int]

    @property
    def pixel_area(self) -> float:
        """Photo pixels one map pixel stands for."""
        x0, y0, x1, y1 = self.frame_box
        h, w = self.labels.shape
        return (x1 - x0) * (y1 - y0) / (h * w)


@dataclass(frozen=True)
class IssuePixels:
    """The pixel-level verdict on one sample.

    Attributes:
        flagged: (h, w) bool, the given label is confidently contradicted.
        suggested: (h, w) uint8, the suggested class where flagged (0 elsewhere).
        p_suggested: (h, w) float32, ``p(suggested)`` where flagged (0 elsewhere).
        p_given: (h, w) float32, ``p(given label)`` everywhere.
    """

    flagged: np.ndarray
    suggested: np.ndarray
    p_suggested: np.ndarray
    p_given: np.ndarray


@dataclass(frozen=True)
class Finding:
    """A region a reviewer should look at.

    Attributes:
        given: the class the annotation gives the region.
        suggested: the class the model confidently sees there instead.
        region_pixels: map pixels of the annotation region (for a missed garment: of the patch).
        pixels: map pixels of the region flagged with ``suggested``.
        p: mean ``p(suggested)`` over those pixels.
        mask: (h, w) bool, those pixels.
    """

    given: int
    suggested: int
    region_pixels: int
    pixels: int
    p: float
    mask: np.ndarray

    @property
    def missing(self) -> bool:
        """True when background was given: the suggested class looks unlabelled."""
        return self.given == BACKGROUND


def evidence_from_mask(gt: np.ndarray, probs: np.ndarray, *, frame_box, orig_size) -> ModelEvidence:
    """Pair a full-frame annotation with a confidence map.

    Args:
        gt: (H, W) uint8 given class ids, the full photo frame.
        probs: (K, h, w) uint8 quantised softmax in the crop frame.
        frame_box: ``(x0, y0, x1, y1)`` the map covers (the export's ``crop_box`` or the photo).
        orig_size: ``(W, H)``.

    Returns:
        The evidence, labels the most frequent class of each map pixel's block
        (:func:`block_labels`).
    """
    x0, y0, x1, y1 = (int(v) for v in frame_box)
    h, w = probs.shape[1:]
    labels = block_labels(np.ascontiguousarray(gt[y0:y1, x0:x1]), (h, w))
    return ModelEvidence(np.ascontiguousarray(probs, dtype=np.uint8), labels, (x0, y0, x1, y1),
                         tuple(int(v) for v in orig_size))


def block_labels(crop: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The given label of each map pixel: the most frequent class of the block of photo pixels
    that the map pixel stands for.

    A map pixel is the mean softmax over a block of the crop (train-eval averages the S x S
    softmax over 4 x 4 pixels, and the S x S crop is an area resize of the photo), and
    :func:`~clothcurate.geometry.paste_back` draws it back over exactly such a block. A single
    nearest-neighbour sample (OpenCV's takes each block's top-left corner) says little about a
    block of ~34 x 52 photo pixels (a 64 px crop of a CCP photo): at every outline it named a class
    that covers a sliver of the block, so the model's (right) view of the block was flagged, and
    the finding's patch, pasted back, lay mostly on another class than the one its line names.
    With the majority, each patch of a finding holds more pixels of its given class than of any
    other (summed block by block).

    Args:
        crop: (H, W) uint8 class ids, the annotation inside the map's frame box.
        shape: ``(h, w)`` of the map.

    Returns:
        (h, w) uint8 class ids (ties: the lowest id). A block without any photo pixel (a map
        larger than its box) takes the nearest pixel's class.
    """
    h, w = shape
    # which map pixel each photo pixel is drawn from: paste_back's own nearest-neighbour blocks
    blocks = paste_back(np.arange(h * w, dtype=np.int32).reshape(h, w), crop_box=(0, 0, crop.shape[1], crop.shape[0]),
                        orig_size=(crop.shape[1], crop.shape[0]))
    k = max(NUM_CLASSES, int(crop.max()) + 1)
    counts = np.bincount(blocks.ravel().astype(np.int64) * k + crop.ravel(), minlength=h * w * k).reshape(h * w, k)
    labels = counts.argmax(1).astype(np.uint8).reshape(h, w)
    empty = counts.sum(1).reshape(h, w) == 0
    if empty.any():
        labels[empty] = cv2.resize(crop, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)[empty]
    return labels


def _p_given(ev: ModelEvidence) -> np.ndarray:
    """(h, w) float32 ``p(given label)``."""
    return np.take_along_axis(ev.probs, ev.labels[None].astype(np.intp), 0)[0].astype(np.float32) / 255.0


def relative_self_confidence(ev: ModelEvidence, thresholds: np.ndarray) -> np.ndarray:
    """(h, w) float ``min(1, p(given) / t_given)``: each pixel's self-confidence relative to its
    class's threshold (1 = at least as sure as the model usually is of that class)."""
    return np.minimum(_p_given(ev) / np.maximum(np.asarray(thresholds)[ev.labels], 1e-6), 1.0)


def self_confidence(ev: ModelEvidence) -> tuple[np.ndarray, np.ndarray]:
    """Sums of ``p(j)`` over the pixels labelled ``j``, and their counts.

    Returns:
        ``(sums, counts)``: (K,) float64 and (K,) int64.
    """
    lab = ev.labels.ravel()
    sums = np.bincount(lab, weights=_p_given(ev).ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES]
    return sums, np.bincount(lab, minlength=NUM_CLASSES)[:NUM_CLASSES].astype(np.int64)


def class_thresholds(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-class thresholds: mean self-confidence of each class over the run.

    Args:
        sums: (K,) summed ``p(j)`` over pixels labelled ``j`` (all samples).
        counts: (K,) number of those pixels.

    Returns:
        (K,) float64; ``inf`` for a class nobody labelled (it is never suggested).
    """
    sums, counts = np.asarray(sums, np.float64), np.asarray(counts, np.float64)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)


def issue_pixels(ev: ModelEvidence, thresholds: np.ndarray) -> IssuePixels:
    """Pixels whose given label the model confidently contradicts.

    Args:
        ev: the sample's evidence.
        thresholds: (K,) from :func:`class_thresholds`.

    Returns:
        The flagged pixels, their suggested class and probabilities.
    """
    p = ev.probs.astype(np.float32) / 255.0                                   # (K, h, w)
    t = np.asarray(thresholds, np.float64)
    p_given = _p_given(ev)
    above = p >= t[:, None, None]
    np.put_along_axis(above, ev.labels[None].astype(np.intp), False, 0)       # other classes only
    candidate = np.where(above, p, -1.0)
    suggested = candidate.argmax(0).astype(np.uint8)
    p_sug = candidate.max(0)
    flagged = (p_given < t[ev.labels]) & (p_sug >= 0)
    return IssuePixels(flagged, np.where(flagged, suggested, 0).astype(np.uint8),
                       np.where(flagged, p_sug, 0.0).astype(np.float32), p_given)


def findings(ev: ModelEvidence, issues: IssuePixels) -> list[Finding]:
    """Aggregate flagged pixels per connected region of the annotation.

    A region of a non-background class (8-connected) is a finding when at least
    :data:`REGION_SHARE` of its pixels are flagged; its suggested class is the most frequent one
    among them (background: the region looks unlabelled-worthy, e.g. a stray blob). In the
    background, each 8-connected patch of pixels flagged with one class is a finding (a missed
    garment). Findings smaller than :data:`MIN_SHARE` of the labelled person (at least
    :data:`MIN_PIXELS`) or whose suggested class has a mean probability below
    :data:`MIN_PROBABILITY` are dropped.

    Returns:
        The findings, largest first.
    """
    fg = int((ev.labels != BACKGROUND).sum())
    smallest = max(MIN_PIXELS, MIN_SHARE * fg)
    out: list[Finding] = []
    for c in np.unique(ev.labels):
        region_mask = ev.labels == c
        if c == BACKGROUND:
            for j in np.unique(issues.suggested[region_mask & issues.flagged]):
                out += _patches(region_mask & issues.flagged & (issues.suggested == j), int(c), int(j),
                                issues, smallest)
            continue
        n, regions, stats, _ = cv2.connectedComponentsWithStats(region_mask.view(np.uint8), connectivity=8)
        for r in range(1, n):
            area = int(stats[r, cv2.CC_STAT_AREA])
            if area < smallest:
                continue
            inside = regions == r
            hit = inside & issues.flagged
            if hit.sum() < REGION_SHARE * area:
                continue
            j = int(np.bincount(issues.suggested[hit]).argmax())
            pix = hit & (issues.suggested == j)
            out.append(Finding(int(c), j, area, int(pix.sum()), float(issues.p_suggested[pix].mean()), pix))
    return sorted((f for f in out if f.p >= MIN_PROBABILITY), key=lambda f: -f.pixels)


def _patches(mask: np.ndarray, given: int, suggested: int, issues: IssuePixels, smallest: float) -> list[Finding]:
    """One finding per connected patch of ``mask`` of at least ``smallest`` pixels."""
    _, patches, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    out = []
    for r in np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= smallest) + 1:
        pix = patches == r
        area = int(stats[r, cv2.CC_STAT_AREA])
        out.append(Finding(given, suggested, area, area, float(issues.p_suggested[pix].mean()), pix))
    return out


def pooled_self_confidence(p_given: np.ndarray, *, temperature: float = SOFTMIN_TEMPERATURE) -> float:
    """Softmin pooling of the pixels' self-confidence: ``sum(p * e^(-p/T)) / sum(e^(-p/T))``.

    Args:
        p_given: (h, w) ``p(given label)`` per pixel (:attr:`IssuePixels.p_given`).
        temperature: T; small T approaches the minimum, large T the mean.

    Returns:
        A label quality in [0, 1] (1 = the model fully agrees with every pixel).
    """
    p = np.asarray(p_given, np.float64).ravel()
    if p.size == 0:
        return 1.0
    w = np.exp(-(p - p.min()) / temperature)      # shifted by the minimum: no underflow, same ratio
    return float((p * w).sum() / w.sum())


def issue_map(found: list[Finding], shape: tuple[int, int]) -> np.ndarray:
    """(h, w) uint8: each finding's pixels carry its suggested class id
    (:data:`SHOULD_BE_BACKGROUND` for background), 0 elsewhere."""
    out = np.zeros(shape, np.uint8)
    for f in found:  # findings never overlap: each lies in one region of one given class
        out[f.mask] = f.suggested if f.suggested != BACKGROUND else SHOULD_BE_BACKGROUND
    return out
