"""`ccr convert-ccrk` on a synthetic checkpoint with the released key names and scaled-down shapes."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from ccrk_fixtures import HIDDEN, TEXT_HEADS, TEXT_LAYERS, WINDOW, save_checkpoint, synthetic_ccrk_state_dict
from PIL import Image
from transformers import AutoModel, AutoProcessor

from modeling_ccr.app.hub.convert_ccrk import ccrk_config, convert_ccrk, map_state_dict
from modeling_ccr.app.testing import run_ccr_in_process
from modeling_ccr.modeling_ccr import CCRModel
from modeling_ccr.testing import save_tiny_model, tiny_tokenizer
from modeling_ccr.training import CCRForPreTraining


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """(state dict, checkpoint path, tokenizer folder)."""
    folder = tmp_path_factory.mktemp("ccrk")
    state = synthetic_ccrk_state_dict()
    save_checkpoint(state, folder / "ccrk_tiny_epoch_29.th")
    tiny_tokenizer().save_pretrained(folder / "tokenizer")
    return state, folder / "ccrk_tiny_epoch_29.th", folder / "tokenizer"


@pytest.fixture(scope="module")
def converted(released, tmp_path_factory):
    _, checkpoint, tokenizer = released
    output = tmp_path_factory.mktemp("converted") / "ccrk-tiny"
    result = run_ccr_in_process("convert-ccrk", checkpoint, "--output", output, "--tokenizer", tokenizer,
                                "--image-size", "32", "--text-attention-heads", TEXT_HEADS)
    assert result.returncode == 0, result.stderr[-3000:]
    return output, result.stdout


def _attention(x, memory, state, prefix, heads, mask=None, bias=None):
    """Multi-head attention of ``x`` [M, L, H] over ``memory`` [M, S, C] from raw weights."""
    def proj(name, inp):
        return inp @ state[f"{prefix}{name}.weight"].T + state[f"{prefix}{name}.bias"]

    m, length, hidden = x.shape
    size = hidden // heads
    q, k, v = (t.view(m, -1, heads, size).transpose(1, 2)
               for t in (proj("query", x), proj("key", memory), proj("value", memory)))
    scores = q @ k.transpose(-1, -2) / math.sqrt(size)
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = scores.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
    return (scores.softmax(-1) @ v).transpose(1, 2).reshape(m, length, hidden)


def _layer_norm(x, state, name, eps=1e-5):
    return F.layer_norm(x, x.shape[-1:], state[name + ".weight"], state[name + ".bias"], eps)


def _dense(x, state, name):
    return x @ state[name + ".weight"].T + state[name + ".bias"]


def test_every_released_key_is_mapped_or_accounted_for(released, converted):
    state, _, _ = released
    output, stdout = converted
    report = json.loads((output / "conversion_report.json").read_text())
    assert report["unmapped"] == [] and report["missing"] == []
    accounted = set(report["mapped"]) | set(report["split"]) | set(report["recomputed"]) | set(report["tied"])
    assert accounted == set(state)
    assert set(report["tied"]) == {"text_encoder.cls.predictions.decoder.weight",
                                   "text_encoder.cls.predictions.decoder.bias"}
    assert all(key.endswith(("relative_position_index", "attn_mask", "position_ids")) for key in report["recomputed"])
    assert "unmapped" not in stdout and "missing" not in stdout
    provenance = json.loads((output / "provenance.json").read_text())
    assert provenance["license"] == "mit" and "FacebookAI/xlm-roberta-large" in provenance["base_model"]


def test_converted_model_loads_and_runs(converted):
    output, _ = converted
    model = AutoModel.from_pretrained(output).eval()
    processor = AutoProcessor.from_pretrained(output)
    assert model.config.text_config.model_type == "bert" and model.config.vision_config.model_type == "swin"
    assert model.config.num_text_layers == TEXT_LAYERS and model.config.num_fusion_layers == 2
    images = [Image.new("RGB", (50, 40), (200, 30, 30)), Image.new("RGB", (40, 40), (20, 90, 200))]
    batch = processor(images=images, captions=[["red", "rot"], ["blue", "blau"]])
    with torch.no_grad():
        out = model(**batch)
        itm = model.itm_logits(out.image_tokens.repeat_interleave(2, 0), batch["input_ids"], batch["attention_mask"])
    assert out.logits_per_image.shape == (2, 4) and torch.isfinite(out.logits_per_image).all()
    assert itm.shape == (4, 2) and torch.isfinite(itm).all()
    assert model.temperature.item() == pytest.approx(0.05)


def test_the_released_mlm_head_goes_with_the_converted_folder(released, converted):
    state, _, _ = released
    head = CCRForPreTraining.from_pretrained(converted[0]).mlm_head
    released_head = "text_encoder.cls.predictions."
    for ours, theirs in (("dense.weight", "transform.dense.weight"), ("layer_norm.bias", "transform.LayerNorm.bias"),
                         ("bias", "bias")):
        assert torch.equal(head.state_dict()[ours], state[released_head + theirs]), ours
    assert not any("mlm" in name for name in CCRModel.from_pretrained(converted[0]).state_dict())


def test_fusion_layer_matches_a_reference_computation(released, converted):
    state, _, _ = released
    model = CCRModel.from_pretrained(converted[0]).eval()
    generator = torch.Generator().manual_seed(3)
    hidden = torch.randn(2, 5, HIDDEN, generator=generator)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    image_tokens = torch.randn(2, 7, model.config.vision_config.hidden_size, generator=generator)
    released_layer = f"text_encoder.bert.encoder.layer.{TEXT_LAYERS + 1}."  # fusion layer 1
    x = _layer_norm(_dense(_attention(hidden, hidden, state, released_layer + "attention.self.", TEXT_HEADS, mask),
                           state, released_layer + "attention.output.dense") + hidden,
                    state, released_layer + "attention.output.LayerNorm")
    x = _layer_norm(_dense(_attention(x, image_tokens, state, released_layer + "crossattention.self.", TEXT_HEADS),
                           state, released_layer + "crossattention.output.dense") + x,
                    state, released_layer + "crossattention.output.LayerNorm")
    ffn = _dense(F.gelu(_dense(x, state, released_layer + "intermediate.dense")), state,
                 released_layer + "output.dense")
    expected = _layer_norm(ffn + x, state, released_layer + "output.LayerNorm")
    with torch.no_grad():
        got = model.fusion.layer[1](hidden, mask, model.fusion.layer[1].crossattention.self.key_values(image_tokens))
    assert torch.allclose(got[mask.bool()], expected[mask.bool()], atol=1e-5)


def test_swin_block_matches_a_reference_computation(released, converted):
    """Stage 1, block 0: a 4 x 4 token map in one 4 x 4 window, so window attention is full attention
    plus the relative position bias."""
    state, _, _ = released
    model = CCRModel.from_pretrained(converted[0]).eval()
    prefix = "vision_encoder.layers.1.blocks.0."
    dim, heads = state[prefix + "norm1.weight"].shape[0], state[prefix + "attn.relative_position_bias_table"].shape[1]
    inputs = torch.randn(2, WINDOW * WINDOW, dim, generator=torch.Generator().manual_seed(4))
    h = _layer_norm(inputs, state, prefix + "norm1")
    qkv = _dense(h, state, prefix + "attn.qkv").view(2, -1, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    ys, xs = torch.meshgrid(torch.arange(WINDOW), torch.arange(WINDOW), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    index = (ys[:, None] - ys[None, :] + WINDOW - 1) * (2 * WINDOW - 1) + (xs[:, None] - xs[None, :] + WINDOW - 1)
    bias = state[prefix + "attn.relative_position_bias_table"][index].permute(2, 0, 1)  # [heads, N, N]
    attended = ((q @ k.transpose(-1, -2)) / math.sqrt(dim // heads) + bias).softmax(-1) @ v
    x = inputs + _dense(attended.transpose(1, 2).reshape(2, -1, dim), state, prefix + "attn.proj")
    expected = x + _dense(F.gelu(_dense(_layer_norm(x, state, prefix + "norm2"), state, prefix + "mlp.fc1")),
                          state, prefix + "mlp.fc2")
    block = model.vision_model.encoder.layers[1].blocks[0]
    with torch.no_grad():
        got = block(inputs, (WINDOW, WINDOW))
    got = got[0] if isinstance(got, tuple) else got
    assert torch.allclose(got, expected, atol=1e-5)


def test_text_embeddings_count_positions_from_zero(released, converted):
    state, _, _ = released
    model = CCRModel.from_pretrained(converted[0]).eval()
    ids = torch.tensor([[0, 17, 25, 2, 1]])
    t = "text_encoder.bert.embeddings."
    summed = (state[t + "word_embeddings.weight"][ids] + state[t + "position_embeddings.weight"][:5]
              + state[t + "token_type_embeddings.weight"][0])
    expected = _layer_norm(summed, state, t + "LayerNorm")
    with torch.no_grad():
        got = model.text_model.embeddings(input_ids=ids)
    assert torch.allclose(got, expected, atol=1e-5)


def test_extra_and_absent_keys_are_reported(released):
    state = dict(released[0])
    state["bbox_head.0.weight"] = torch.zeros(4, 4)
    del state["itm_head.3.bias"]
    config = ccrk_config(state, image_size=32, text_attention_heads=TEXT_HEADS)
    ours = CCRForPreTraining(config).model_folder_state_dict()
    _, report = map_state_dict(state, ours, config.num_text_layers)
    assert report.unmapped == ["bbox_head.0.weight"]
    assert report.missing == ["itm_head.classifier.bias"]


def test_shape_mismatch_is_refused(released, tmp_path):
    state, _, tokenizer = released
    config = ccrk_config(state, image_size=32, text_attention_heads=TEXT_HEADS)
    ours = CCRForPreTraining(config).model_folder_state_dict()
    bad = dict(state)
    bad["text_encoder.bert.encoder.layer.0.output.dense.weight"] = torch.zeros(HIDDEN, 7)
    with pytest.raises(ValueError,
                       match=r"do not fit the CCR model: text_model\.encoder\.layer\.0\.output\.dense\.weight"):
        map_state_dict(bad, ours, config.num_text_layers)
    save_checkpoint(bad, tmp_path / "bad.th")
    with pytest.raises(ValueError, match="do not fit"):
        convert_ccrk(tmp_path / "bad.th", tmp_path / "out", tokenizer, image_size=32, text_attention_heads=TEXT_HEADS)
    assert not (tmp_path / "out").exists()


def test_an_existing_model_folder_needs_overwrite_and_keeps_other_files(released, converted, tmp_path):
    _, checkpoint, tokenizer = released
    output = tmp_path / "ccrk"
    save_tiny_model(output, seed=9)
    (output / "notes.txt").write_text("mine\n")
    old_weights = (output / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="already exists and holds a CCR model folder.*--overwrite"):
        convert_ccrk(checkpoint, output, tokenizer, image_size=32, text_attention_heads=TEXT_HEADS)
    assert (output / "model.safetensors").read_bytes() == old_weights
    convert_ccrk(checkpoint, output, tokenizer, image_size=32, text_attention_heads=TEXT_HEADS, overwrite=True)
    assert (output / "model.safetensors").read_bytes() == (converted[0] / "model.safetensors").read_bytes()
    assert (output / "notes.txt").read_text() == "mine\n" and (output / "conversion_report.json").is_file()


def test_not_a_checkpoint_is_one_clear_line(tmp_path):
    (tmp_path / "x.th").write_bytes(b"not a checkpoint")
    result = run_ccr_in_process("convert-ccrk", tmp_path / "x.th", "--output", tmp_path / "out")
    assert result.returncode == 2 and result.stderr.startswith("ccr convert-ccrk: ")
    assert result.stderr.strip().count("\n") == 0 and "weights_only=True" in result.stderr


def test_an_empty_checkpoint_is_named_as_empty(tmp_path):
    (tmp_path / "ccrk.th").write_bytes(b"")  # a download cut short before its first byte
    with pytest.raises(ValueError, match=r"ccrk.th is empty \(0 bytes\): the download or copy was cut short"):
        convert_ccrk(tmp_path / "ccrk.th", tmp_path / "out", tmp_path / "no-tokenizer")
    assert not (tmp_path / "out").exists()


def test_converted_folder_exports_with_its_provenance(converted, tmp_path):
    from huggingface_hub import ModelCard

    from modeling_ccr.app.hub.export import export_model

    export_model(converted[0], tmp_path / "hub")
    card = ModelCard.load(tmp_path / "hub" / "README.md")
    assert card.data.license == "mit"
    assert card.data.base_model == ["microsoft/swin-base-patch4-window7-224-in22k", "FacebookAI/xlm-roberta-large"]
