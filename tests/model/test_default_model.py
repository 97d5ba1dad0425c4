"""The embedded default model: built from the real shipped weights, multilingual, usable end to end."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModel, AutoProcessor

from modeling_ccr import CCRModel
from modeling_ccr.app.cli import main as ccr_main
from modeling_ccr.data import load_benchmark
from modeling_ccr.default_model import ensure_default_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_model():
    folder = ensure_default_model()
    return AutoModel.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)


def _tower_embeddings(model, processor, texts):
    """Mean-pooled, L2-normalised text-tower states [T, H]: the multilingual e5 space, before the projection."""
    batch = processor(text=texts)
    with torch.no_grad():
        states = model.encode_text(batch["input_ids"], batch["attention_mask"])
    weights = batch["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((states * weights).sum(1) / weights.sum(1), dim=-1)


def test_german_and_japanese_captions_of_one_emoji_are_closest(default_model):
    model, processor = default_model
    rows = load_benchmark("cldr-emoji", split="test", languages=["de", "ja"]).select(range(40))
    german = _tower_embeddings(model, processor, [row["captions"]["de"] for row in rows])
    japanese = _tower_embeddings(model, processor, [row["captions"]["ja"] for row in rows])
    similarity = german @ japanese.T  # [40, 40]
    pair = similarity.diagonal()
    # how often the translation is closer than an unrelated caption (chance: 0.5); measured 0.87
    beats_unrelated = (similarity < pair[:, None]).sum() / (len(rows) * (len(rows) - 1))
    assert beats_unrelated >= 0.8
    ranks = (similarity > pair[:, None]).sum(dim=1)
    assert ranks.median() == 0  # for most German captions the Japanese one is the closest of all 40
    top1 = (ranks == 0).float().mean()
    assert top1 >= 0.4, f"German -> Japanese top-1 {top1:.2f} (chance 0.025; measured 0.57)"


def test_default_model_encodes_real_images_and_captions(default_model):
    model, processor = default_model
    assert isinstance(model, CCRModel) and model.config.vision_config.model_type == "efficientnet_lite"
    rows = load_benchmark("cldr-emoji", split="validation", languages=["en", "zh"]).select(range(3))
    batch = processor(images=[row["image"] for row in rows], captions=[row["captions"] for row in rows])
    assert batch["pixel_values"].shape == (3, 3, 224, 224)
    with torch.no_grad():
        out = model(**batch, return_loss=True)
        tokens = model.get_image_tokens(batch["pixel_values"])
        scores = model.score_pairs(tokens.repeat_interleave(2, dim=0), batch["input_ids"], batch["attention_mask"])
    assert out.image_embeds.shape == (3, 256) and out.text_embeds.shape == (6, 256)
    assert tokens.shape == (3, 50, 1280)  # the pooled CLS + a 7 x 7 map of EfficientNet-Lite0 features
    assert torch.isfinite(out.loss) and scores.shape == (6,)


def test_build_default_command_writes_an_ordinary_model_folder(tmp_path, capsys):
    assert ccr_main(["build-default", "--output", str(tmp_path / "model")]) == 0
    assert "saved the default CCR model" in capsys.readouterr().out
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["model_type"] == "ccr" and config["text_config"]["num_hidden_layers"] == 12
    licences = (tmp_path / "model" / "LICENSES.md").read_text()
    assert "Apache-2.0" in licences and "MIT" in licences
    reloaded = AutoModel.from_pretrained(tmp_path / "model")
    assert reloaded.config.projection_dim == 256
    assert not any(name.startswith("mlm_head.") for name in reloaded.state_dict())
    with safe_open(tmp_path / "model" / "model.safetensors", "pt") as weights:  # the MLM head ccr train starts from
        assert {name for name in weights.keys() if name.startswith("mlm_head.")} == {
            "mlm_head.bias", "mlm_head.dense.bias", "mlm_head.dense.weight", "mlm_head.layer_norm.bias",
            "mlm_head.layer_norm.weight"}
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    assert ccr_main(["build-default", "--output", str(tmp_path / "other")]) == 2
    assert "not a CCR model folder" in capsys.readouterr().err
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep me"
