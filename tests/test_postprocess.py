"""The opening post-processing on crafted probability maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from clothcurate.errors import BadInputError
from clothcurate.training.postprocess import open_predictions

K = 5


def _probs(labels: torch.Tensor, *, confidence: float = 0.8) -> torch.Tensor:
    """(N, K, H, W) probabilities summing to one, argmax = ``labels`` (N, H, W)."""
    one_hot = F.one_hot(labels, K).permute(0, 3, 1, 2).float()
    return one_hot * (confidence - (1 - confidence) / (K - 1)) + (1 - confidence) / (K - 1)


def _scene() -> torch.Tensor:
    """40x40: background 0, a 20x20 square of class 1, a 1-px speck and a 2x2 speck of class 2
    inside it, a 2x2 speck of class 3 on the background."""
    lab = torch.zeros(1, 40, 40, dtype=torch.long)
    lab[0, 5:25, 5:25] = 1
    lab[0, 10, 10] = 2
    lab[0, 15:17, 15:17] = 2
    lab[0, 32:34, 32:34] = 3
    return lab


def test_probabilities_in_labels_out():
    probs = _probs(_scene())
    assert torch.allclose(probs.sum(1), torch.ones(1, 40, 40))
    out = open_predictions(probs)
    assert out.shape == (1, 40, 40) and out.dtype == torch.long
    g = torch.Generator().manual_seed(0)
    random = torch.randn(2, K, 24, 24, generator=g).softmax(1)
    for mode in ("label", "paper"):
        labels = open_predictions(random, mode=mode, threshold=0.2)
        assert labels.min() >= 0 and labels.max() < K


def test_label_mode_removes_specks_and_keeps_large_regions():
    lab = _scene()
    out = open_predictions(_probs(lab), kernel_size=3)
    assert not (out == 2).any() and not (out == 3).any()        # every speck is gone
    assert (out[0, 5:25, 5:25] == 1).all()                       # specks inside the square became 1
    assert (out[0, 32:34, 32:34] == 0).all()                     # the one on the background became 0
    specks = (lab == 2) | (lab == 3)
    assert torch.equal(out[~specks], lab[~specks])               # nothing else moved


def test_region_as_large_as_the_kernel_survives_and_border_is_not_eroded():
    lab = torch.zeros(1, 20, 20, dtype=torch.long)
    lab[0, 0:3, :] = 1              # 3-px band along the top border
    lab[0, 6:11, 6:11] = 4          # 5x5 square
    lab[0, 13:15, :] = 3            # 2-px band inside the image
    lab[0, 16:19, 14:17] = 2        # 3x3 region inside the image
    expected = lab.clone()
    expected[lab == 3] = 0
    assert torch.equal(open_predictions(_probs(lab), kernel_size=3), expected)
    out5 = open_predictions(_probs(lab), kernel_size=5)
    assert (out5[0, 6:11, 6:11] == 4).all()
    assert (out5[0, 0:3] == 1).all()        # outside the image does not erode the band
    assert not (out5 == 2).any()            # 3x3 < 5x5 away from the border


def test_removed_pixels_take_the_most_probable_surviving_neighbour():
    lab = torch.zeros(1, 20, 20, dtype=torch.long)
    lab[0, :, :10] = 1              # left half class 1
    lab[0, :, 10:] = 2              # right half class 2
    lab[0, 9, 9:11] = 3             # a 1x2 speck of class 3 on the border between them
    probs = _probs(lab)
    probs[0, :, 9, 9:11] = torch.tensor([0.05, 0.15, 0.30, 0.50, 0.0]).unsqueeze(1)  # class 2 runner-up
    out = open_predictions(probs, kernel_size=3)
    assert (out[0, 9, 9:11] == 2).all()


def test_paper_mode_is_the_argmax_at_threshold_one_half():
    g = torch.Generator().manual_seed(1)
    probs = (3 * torch.randn(2, K, 32, 32, generator=g)).softmax(1)
    assert torch.equal(open_predictions(probs, mode="paper", threshold=0.5), probs.argmax(1))


def test_paper_mode_below_one_half_opens_thresholded_maps():
    lab = torch.ones(1, 20, 20, dtype=torch.long)
    probs = _probs(lab, confidence=0.9)
    probs[0, :, 10, 10] = torch.tensor([0.05, 0.40, 0.05, 0.45, 0.05])   # a weak speck of class 3
    assert open_predictions(probs, mode="paper", threshold=0.5)[0, 10, 10] == 3
    out = open_predictions(probs, mode="paper", threshold=0.3)
    assert torch.equal(out, lab)     # class 3's map opens away, class 1's (0.40 > 0.3) survives


def test_kernel_one_is_raw_argmax_and_bad_options_raise():
    probs = _probs(_scene())
    assert torch.equal(open_predictions(probs, kernel_size=1), _scene())
    with pytest.raises(BadInputError):
        open_predictions(probs, kernel_size=4)
    with pytest.raises(BadInputError):
        open_predictions(probs, mode="grey")
    with pytest.raises(BadInputError):
        open_predictions(probs[0])


def _scipy_label_opening(probs: np.ndarray, k: int) -> np.ndarray:
    """The ``label`` rule with scipy, pixel by pixel: (K, H, W) probabilities → (H, W) labels."""
    raw = probs.argmax(0)
    square = np.ones((k, k), bool)
    opened = [ndimage.binary_dilation(ndimage.binary_erosion(raw == c, square, border_value=1), square)
              for c in range(probs.shape[0])]
    out = raw.copy()
    r = k                                                    # refill window 2k+1
    for y, x in zip(*np.nonzero(~np.take_along_axis(np.stack(opened), raw[None], 0)[0])):
        window = (slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1))
        near = [c for c in range(probs.shape[0]) if opened[c][window].any()]
        if near:
            out[y, x] = max(near, key=lambda c: probs[c, y, x])
    return out


@pytest.mark.parametrize("k", [3, 5])
def test_label_mode_matches_per_class_scipy_opening(k):
    g = torch.Generator().manual_seed(k)
    coarse = torch.randn(2, K, 6, 6, generator=g)                       # blobs ...
    logits = F.interpolate(coarse, size=(30, 30), mode="bilinear") + 0.8 * torch.randn(2, K, 30, 30, generator=g)
    probs = (4 * logits).softmax(1)                                     # ... with speckles
    out = open_predictions(probs, kernel_size=k)
    assert (out != probs.argmax(1)).any()
    for i in range(2):
        np.testing.assert_array_equal(out[i].numpy(), _scipy_label_opening(probs[i].numpy(), k))
