"""``ssd`` (SSD300-VGG16, the paper's detector) and ``ssdlite`` (SSDlite320-MobileNetV3): torchvision's
COCO detectors, with their weights read from the user's torch hub cache only.

clothcurate never downloads weights: the file must already be in
``torch.hub.get_dir()/checkpoints/`` (``$TORCH_HOME/hub/checkpoints``), under the name torchvision's
weights enum gives it (e.g. ``ssd300_vgg16_coco-b556d3b4.pth``). The model is built without weights
and the file loaded into it, so a missing or damaged file is a one-line error, never a download.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from clothcurate.detection.registry import PersonBox, best_first, check_image, clip_corners, register_detector
from clothcurate.errors import BadInputError

__all__ = ["SsdDetector", "SsdliteDetector", "cached_weights_path"]

#: registry name -> (torchvision builder, its COCO weights enum)
_VARIANTS = {"ssd": ("ssd300_vgg16", "SSD300_VGG16_Weights"),
             "ssdlite": ("ssdlite320_mobilenet_v3_large", "SSDLite320_MobileNet_V3_Large_Weights")}
_COCO_PERSON = 1  # torchvision's COCO detection label of "person"


def cached_weights_path(variant: str) -> Path:
    """Where torchvision keeps the COCO weights of ``variant`` (``ssd`` or ``ssdlite``) in the torch hub
    cache; the file need not exist."""
    import torch
    import torchvision.models.detection as detection

    weights = getattr(detection, _VARIANTS[variant][1]).COCO_V1
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


class _TorchvisionSsd:
    """A torchvision SSD detector (COCO, 91 labels), keeping its ``person`` boxes.

    Args:
        device: where the model runs (``cpu``, ``cuda``, a torch.device).
        min_score: people scoring below this are dropped.
    """

    name: str

    def __init__(self, *, device: str | object = "cpu", min_score: float = 0.5):
        import torch
        import torchvision.models.detection as detection

        builder, weights_enum = _VARIANTS[self.name]
        self.min_score, self.device = min_score, torch.device(device)
        self.path = cached_weights_path(self.name)
        if not self.path.is_file():
            raise BadInputError(
                f"{self.path}: no cached {self.name} COCO weights (clothcurate never downloads them); on a machine "
                f"with internet run python -c \"import torchvision; torchvision.models.detection.{builder}"
                f"(weights='COCO_V1')\" and copy {self.path.name} into {self.path.parent}, or choose another detector")
        categories = getattr(detection, weights_enum).COCO_V1.meta["categories"]
        self.model = getattr(detection, builder)(weights=None, weights_backbone=None, num_classes=len(categories))
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            self.model.load_state_dict(state)
        except Exception as e:  # noqa: BLE001 - a truncated or foreign file raises many types
            raise BadInputError(f"{self.path}: not torchvision's {self.name} COCO weights "
                                f"({type(e).__name__}); delete it and copy it again") from e
        self.model.eval().to(self.device)

    def detect(self, image: np.ndarray) -> list[PersonBox]:
        """The people in one (H, W, 3) uint8 RGB photo, best first."""
        import torch

        check_image(image)
        rows, cols = image.shape[:2]
        x = torch.from_numpy(image).to(self.device).permute(2, 0, 1).float().div_(255)  # (3, H, W) in [0, 1]
        with torch.inference_mode():
            out = self.model([x])[0]  # the model resizes and normalises itself; boxes in photo pixels
        keep = (out["labels"] == _COCO_PERSON) & (out["scores"] >= self.min_score)
        found = [PersonBox(box=clip_corners(*corners, width=cols, height=rows), score=float(score), detector=self.name)
                 for corners, score in zip(out["boxes"][keep].tolist(), out["scores"][keep].tolist())]
        return best_first(found)


@register_detector("ssd")
class SsdDetector(_TorchvisionSsd):
    """SSD300-VGG16 COCO (the paper's detector), weights from the torch hub cache."""

    name = "ssd"


@register_detector("ssdlite")
class SsdliteDetector(_TorchvisionSsd):
    """SSDlite320-MobileNetV3-Large COCO, weights from the torch hub cache."""

    name = "ssdlite"
