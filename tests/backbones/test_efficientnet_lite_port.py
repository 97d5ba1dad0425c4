"""The EfficientNet-Lite port on tiny random configurations: shapes, layout, padding, scaling, save/load."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

from modeling_ccr.configuration_efficientnet_lite import EfficientNetLiteConfig
from modeling_ccr.modeling_efficientnet_lite import (
    EfficientNetLiteForImageClassification,
    EfficientNetLiteModel,
    SamePaddingConv2d,
)


def tiny_config(**overrides) -> EfficientNetLiteConfig:
    settings = {"width_coefficient": 0.25, "depth_coefficient": 0.5, "image_size": 32, "hidden_size": 48}
    return EfficientNetLiteConfig(**{**settings, **overrides, "num_labels": overrides.get("num_labels", 5)})


def test_outputs_have_the_documented_shapes_and_token_layout():
    torch.manual_seed(0)
    model = EfficientNetLiteModel(tiny_config()).eval()
    pixels = torch.randn(2, 3, 64, 96)  # feature map 2 x 3: row-major order is observable
    with torch.no_grad():
        output = model(pixels, output_hidden_states=True)
        feature_map = model.head(output.hidden_states[-1])  # [B, C, h, w]
    assert output.last_hidden_state.shape == (2, 2 * 3, 48)
    assert output.pooler_output.shape == (2, 48)
    assert len(output.hidden_states) == 1 + len(model.blocks)
    for token in range(6):
        torch.testing.assert_close(
            output.last_hidden_state[:, token], feature_map[:, :, token // 3, token % 3]
        )
    torch.testing.assert_close(output.pooler_output, feature_map.mean(dim=(2, 3)))
    last, pooled = model(pixels, return_dict=False)
    torch.testing.assert_close(last, output.last_hidden_state)


@pytest.mark.parametrize(("size", "expected"), [(32, 1), (33, 2), (224, 7), (225, 8)])
def test_feature_map_is_ceil_of_size_over_32(size, expected):
    model = EfficientNetLiteModel(tiny_config()).eval()
    with torch.no_grad():
        tokens = model(torch.zeros(1, 3, size, size)).last_hidden_state
    assert tokens.shape[1] == expected * expected


def test_same_padding_puts_the_odd_pixel_bottom_right():
    conv = SamePaddingConv2d(1, 1, kernel_size=3, stride=2)
    torch.nn.init.ones_(conv.weight)
    image = torch.arange(1.0, 17.0).reshape(1, 1, 4, 4)  # 4x4 -> 2x2, total padding 1: none top/left
    with torch.no_grad():
        output = conv(image)
    assert output.shape == (1, 1, 2, 2)
    assert output[0, 0, 0, 0] == image[0, 0, :3, :3].sum()  # window rows 0-2, cols 0-2
    assert output[0, 0, 1, 1] == image[0, 0, 2:, 2:].sum()  # window rows 2-4, the 5th is padding


def test_lite0_layout_matches_the_published_architecture():
    model = EfficientNetLiteForImageClassification(EfficientNetLiteConfig())
    assert len(model.efficientnet_lite.blocks) == 16
    assert sum(p.numel() for p in model.parameters()) == 4_652_008  # EfficientNet-Lite0, 4.65 M
    assert model.efficientnet_lite.stem.conv.out_channels == 32
    assert model.efficientnet_lite.head.conv.out_channels == 1280
    assert model.classifier.out_features == 1000


def test_variants_scale_width_and_depth_but_not_stem_and_head():
    lite4 = EfficientNetLiteConfig(variant="lite4")
    assert (lite4.width_coefficient, lite4.depth_coefficient, lite4.image_size) == (1.4, 1.8, 300)
    model = EfficientNetLiteModel(lite4)
    # stages 2-6 of lite0 have 2,2,3,3,4 blocks; x1.8 rounded up is 4,4,6,6,8; first and last stay 1
    assert len(model.blocks) == 1 + 4 + 4 + 6 + 6 + 8 + 1
    assert model.stem.conv.out_channels == 32 and model.head.conv.out_channels == 1280
    assert model.blocks[0].project.conv.out_channels == 24  # 16 * 1.4 = 22.4, rounded to a multiple of 8
    assert EfficientNetLiteConfig(variant="lite2", image_size=300).image_size == 300


def test_bad_configurations_are_rejected_with_the_fix():
    with pytest.raises(ValueError, match="use one of"):
        EfficientNetLiteConfig(variant="b0")
    with pytest.raises(ValueError, match="same number of entries"):
        EfficientNetLiteConfig(kernel_sizes=[3, 3])
    with pytest.raises(ValueError, match="image processor"):
        EfficientNetLiteModel(tiny_config())(torch.zeros(1, 32, 32))


def test_classification_loss_and_label_checks():
    torch.manual_seed(0)
    model = EfficientNetLiteForImageClassification(tiny_config()).eval()
    pixels, labels = torch.randn(3, 3, 32, 32), torch.tensor([0, 4, 2])
    output = model(pixels, labels=labels)
    assert output.logits.shape == (3, 5)
    torch.testing.assert_close(output.loss, torch.nn.functional.cross_entropy(output.logits, labels))
    with pytest.raises(ValueError, match="one class index per image"):
        model(pixels, labels=torch.zeros(3, 5))


def test_drop_path_acts_only_in_training():
    torch.manual_seed(0)
    model = EfficientNetLiteModel(tiny_config(drop_connect_rate=0.9))
    pixels = torch.randn(8, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(pixels).pooler_output, model(pixels).pooler_output)
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(pixels).pooler_output, model(pixels).pooler_output)


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = EfficientNetLiteForImageClassification(tiny_config()).eval()
    # give the batch norms non-trivial statistics so the round trip checks the buffers too
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 32, 32))
    model.eval()
    model.save_pretrained(tmp_path)
    pixels = torch.randn(2, 3, 40, 40)

    assert type(AutoConfig.from_pretrained(tmp_path)) is EfficientNetLiteConfig
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    backbone = AutoModel.from_pretrained(tmp_path).eval()
    assert (
        type(reloaded) is EfficientNetLiteForImageClassification and type(backbone) is EfficientNetLiteModel
    )
    with torch.no_grad():
        expected = model(pixels, output_hidden_states=True)
        torch.testing.assert_close(reloaded(pixels).logits, expected.logits, rtol=0, atol=0)
        torch.testing.assert_close(
            backbone(pixels).pooler_output, model.efficientnet_lite(pixels).pooler_output, rtol=0, atol=0
        )
    assert reloaded.config.to_dict()["width_coefficient"] == 0.25
