"""Loading a model folder that is not a whole CCR model: another model type, a truncated weight file."""

from __future__ import annotations

import re

import pytest
import torch
from transformers import AutoModel, BertConfig

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
