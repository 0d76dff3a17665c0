"""Every architecture of the registry can fit a handful of real CCP person crops.

A model that cannot overfit 8 training images in a few dozen steps cannot learn the task: this
caught smp's LinkNet decoder, which squeezes EfficientNet-Lite0's thin features to 6 and 4
channels (train mIoU near its untrained value, while FPN reaches ~70 %). Each model is compared
with its own untrained score on the same crops; no figure is hard-coded.

The crops are read in place from the real CCP (no FiftyOne): remapped to the 15 classes of
Table I, cropped to the person box and resized to 64 x 64 as export-folds does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch

from clothcurate.curation.sources.ccp import CCPSource
from clothcurate.geometry import crop_box, crop_resize
from clothcurate.labelmaps import NUM_CLASSES, load_labelmap
from clothcurate.training.metrics import ConfusionMatrix, scores_from_confusion
from clothcurate.training.models import (
    ARCHITECTURES,
    ENCODERS,
    InputNormalizer,
    create_model,
    encoder_normalization,
)
from clothcurate.training.weights import load_imagenet_encoder

SIZE = 64
ENCODER = "tf_efficientnet_lite0"
STEPS = 40
#: the mIoU gain over the untrained model that "fits" means (FPN gains ~0.5 here; old LinkNet < 0.05)
GAIN = 0.15


def ccp_crops(ccp_dir: Path, n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` CCP samples as person crops.

    Returns:
        ``(images, masks)``: (n, 3, size, size) uint8 RGB and (n, size, size) uint8 class ids.
    """
    import cv2

    source = CCPSource(ccp_dir)
    labelmap = load_labelmap("ccp")
    refs, _, _ = source.scan()
    images, masks = [], []
    for ref in refs[:n]:
        gt = labelmap.remap(source.read(ref).masks[""], source_id=ref.source_id)
        photo = cv2.cvtColor(cv2.imread(ref.image_path), cv2.COLOR_BGR2RGB)
        h, w = gt.shape
        x0, y0, bw, bh = cv2.boundingRect(gt)
        box = crop_box([x0 / w, y0 / h, bw / w, bh / h], width=w, height=h)
        img, msk = crop_resize(photo, gt, box=box, size=size)
        images.append(img)
        masks.append(msk)
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(np.stack(masks))


def train_miou(model: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor, *, encoder: str = ENCODER) -> float:
    """mIoU of the model's argmax on the crops (eval mode).

    Args:
        images: (N, 3, S, S) uint8. masks: (N, S, S) uint8.
    """
    norm = InputNormalizer(*encoder_normalization(encoder), device="cpu")
    model.eval()
    with torch.no_grad():
        pred = model(norm(images)).argmax(1)
    cm = ConfusionMatrix(NUM_CLASSES)
    cm.update(pred, masks.long())
    return float(scores_from_confusion(cm.compute())["mean"]["iou"])


def fit(model: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor, *, steps: int = STEPS,
        encoder: str = ENCODER) -> tuple[float, float]:
    """Train ``steps`` full-batch Adam steps (lr 1e-3, cross-entropy) on the crops.

    Returns:
        ``(mIoU before, mIoU after)`` on the same crops.
    """
    before = train_miou(model, images, masks, encoder=encoder)
    norm = InputNormalizer(*encoder_normalization(encoder), device="cpu")
    x, y = norm(images), masks.long()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return before, train_miou(model, images, masks, encoder=encoder)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def crops(ccp_dir) -> tuple[torch.Tensor, torch.Tensor]:
    return ccp_crops(ccp_dir, 8, SIZE)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_every_architecture_fits_a_handful_of_crops(arch, crops):
    torch.manual_seed(0)
    before, after = fit(create_model(arch, encoder=ENCODER, encoder_weights="imagenet"), *crops)
    assert after > before + GAIN, (arch, before, after)


def test_smps_linknet_decoder_does_not_fit_them(crops):
    """The reason for our LinkNet decoder: smp's, same encoder and weights, stays near its start."""
    torch.manual_seed(0)
    old = smp.Linknet(encoder_name=ENCODERS[ENCODER], encoder_weights=None, classes=NUM_CLASSES)
    squeezed = [block.block[0][0].out_channels for block in old.decoder.blocks]
    assert min(squeezed) < 8, squeezed                              # 80, 28, 10, 6, 4 with Lite0
    load_imagenet_encoder(old.encoder, ENCODER)
    before, after = fit(old, *crops)
    assert after < before + GAIN, (before, after)
