"""Loading a model folder that is not a whole CCR model: another model type, a truncated weight file, weights
holding NaN or infinities, a config.json that does not fit the weights or lacks a tower's settings."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, BertConfig

from modeling_ccr import CCRConfig, CCRModel
from modeling_ccr.testing import save_tiny_model, tiny_ccr_model


@pytest.fixture
def bert_folder(tmp_path):
    folder = tmp_path / "bert"
    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8).save_pretrained(folder)
    return folder


def test_config_of_another_model_type_is_refused_by_name(bert_folder):
    message = (
        f"{bert_folder} holds a 'bert' model (model_type in its config.json), not a CCR model (model_type 'ccr')"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        CCRConfig.from_pretrained(bert_folder)


def test_model_of_another_model_type_is_refused_before_any_weights(bert_folder):
    with pytest.raises(ValueError, match=re.escape(f"{bert_folder} holds a 'bert' model")):
        CCRModel.from_pretrained(bert_folder)


def test_ccr_folder_still_loads_with_its_weights(tmp_path):
    save_tiny_model(tmp_path / "model")
    loaded = CCRModel.from_pretrained(tmp_path / "model")
    expected = tiny_ccr_model().state_dict()
    assert all(torch.equal(value, expected[name]) for name, value in loaded.state_dict().items())


@pytest.mark.parametrize("load", [CCRModel.from_pretrained, AutoModel.from_pretrained], ids=["CCRModel", "AutoModel"])
def test_truncated_safetensors_names_the_file(tmp_path, load):
    folder = save_tiny_model(tmp_path / "model")
    weights = folder / "model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 2])
    expected = f"{weights} holds {len(whole) // 2} bytes where its header describes {len(whole)}"
    with pytest.raises(ValueError, match=re.escape(expected)) as caught:
        load(folder)
    assert "truncated or corrupt" in str(caught.value)


def test_safetensors_cut_inside_its_header_names_the_file(tmp_path):
    folder = save_tiny_model(tmp_path / "model")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:20])
    with pytest.raises(ValueError, match=re.escape(f"{weights} ends inside its header (20 bytes)")):
        CCRModel.from_pretrained(folder)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("load", [CCRModel.from_pretrained, AutoModel.from_pretrained], ids=["CCRModel", "AutoModel"])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, load, bad):
    folder = save_tiny_model(tmp_path / "model")
    weights = load_file(folder / "model.safetensors")
    # Large finite values in a tensor checked before the bad one: their float32 sum overflows, and the check
    # must not take that for an infinity (it would then name vision_projection.weight).
    weights["vision_projection.weight"][:2] = 3e38
    weights["text_projection.weight"][3, 5] = bad
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    expected = f"the weights of {folder} hold NaN or infinite values in text_projection.weight: "
    with pytest.raises(ValueError, match=re.escape(expected)) as caught:
        load(folder)
    assert "\n" not in str(caught.value) and "download the model again" in str(caught.value)


def test_a_buffer_with_nan_is_refused_too(tmp_path):
    """EfficientNet-Lite's batch-norm statistics are buffers, not parameters: they are weights all the same."""
    folder = tmp_path / "model"
    tiny_ccr_model("efficientnet_lite").save_pretrained(folder)
    weights = load_file(folder / "model.safetensors")
    name = next(key for key in weights if key.endswith("running_var"))
    weights[name][0] = float("nan")
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=re.escape(f"NaN or infinite values in {name}:")):
        CCRModel.from_pretrained(folder)


def _edit_config(folder, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            del config[key]
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("load", [CCRModel.from_pretrained, AutoModel.from_pretrained], ids=["CCRModel", "AutoModel"])
def test_projection_dim_that_does_not_fit_the_weights_names_the_field(tmp_path, load):
    folder = save_tiny_model(tmp_path / "model")  # projection_dim 16
    _edit_config(folder, projection_dim=32)
    expected = (f"config.json of {folder} and its weights disagree on projection_dim (32 in config.json): "
                "model.safetensors holds ")
    with pytest.raises(ValueError, match=re.escape(expected)) as caught:
        load(folder)
    assert "of shape [16" in str(caught.value) and "config.json makes it [32" in str(caught.value)


def test_a_tower_that_does_not_fit_the_weights_names_its_sub_config(tmp_path):
    folder = save_tiny_model(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    _edit_config(folder, text_config={**config["text_config"], "intermediate_size": 48})
    with pytest.raises(ValueError,
                       match=re.escape("its weights disagree on text_config: model.safetensors holds text_model.")):
        CCRModel.from_pretrained(folder)


@pytest.mark.parametrize("missing", ["text_config", "vision_config"])
@pytest.mark.parametrize("load", [CCRConfig.from_pretrained, AutoConfig.from_pretrained, CCRModel.from_pretrained,
                                  AutoModel.from_pretrained], ids=["CCRConfig", "AutoConfig", "CCRModel", "AutoModel"])
def test_config_without_a_sub_config_names_it(tmp_path, load, missing):
    folder = save_tiny_model(tmp_path / "model")
    _edit_config(folder, **{missing: None})
    with pytest.raises(ValueError, match=f"config.json(?: of {re.escape(str(folder))})? has no '{missing}' mapping"):
        load(folder)
