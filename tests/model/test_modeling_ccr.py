"""CCR model: shapes, heads, save/load round trips and the fusion layer against a BERT reference."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel, BertConfig
from transformers.models.bert.modeling_bert import BertLayer

from modeling_ccr import CCRConfig, CCRModel
from modeling_ccr.modeling_ccr import CCRFusionLayer
from modeling_ccr.testing import TINY_IMAGE_SIZE, tiny_ccr_model, tiny_ccr_processor, tiny_pretraining_model


def _batch(n_images: int = 3, k: int = 2, length: int = 7, vocab: int = 100, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    pixel_values = torch.randn(n_images, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, generator=generator)
    input_ids = torch.randint(5, vocab, (n_images * k, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 4:] = 0  # one padded row
    return pixel_values, input_ids, attention_mask


@pytest.mark.parametrize("vision", ["vit", "swin", "clip", "efficientnet_lite"])
def test_tiny_model_shapes_and_normalisation(vision):
    pretraining = tiny_pretraining_model(vision)
    model = pretraining.ccr
    pixel_values, input_ids, attention_mask = _batch()
    with torch.no_grad():
        out = model(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask, return_loss=True)
        tokens = model.get_image_tokens(pixel_values)
        itm = model.itm_logits(tokens[[0, 0, 1]], input_ids[:3], attention_mask[:3])
        fused = model.fuse(model.encode_text(input_ids[:3], attention_mask[:3]), attention_mask[:3], tokens[[0, 1, 2]])
        mlm = pretraining.mlm_logits(fused)
    assert out.image_embeds.shape == (3, 16) and out.text_embeds.shape == (6, 16)
    assert torch.allclose(out.image_embeds.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(out.text_embeds.norm(dim=-1), torch.ones(6), atol=1e-5)
    assert out.logits_per_image.shape == (3, 6) and torch.equal(out.logits_per_text, out.logits_per_image.t())
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert tokens.shape[0] == 3 and tokens.shape[2] == model.config.vision_config.hidden_size
    assert itm.shape == (3, 2)
    assert mlm.shape == (3, input_ids.shape[1], model.config.text_config.vocab_size)
    # the public feature methods agree with forward
    with torch.no_grad():
        assert torch.allclose(model.get_image_features(pixel_values), out.image_embeds, atol=1e-6)
        assert torch.allclose(model.get_text_features(input_ids, attention_mask), out.text_embeds, atol=1e-6)
    # logits are the cosine similarities over the temperature
    expected = out.image_embeds @ out.text_embeds.t() / model.config.temperature_init
    assert torch.allclose(out.logits_per_image, expected, atol=1e-5)


def test_padding_does_not_change_a_text_embedding():
    model = tiny_ccr_model("vit", text_pooling="mean")
    ids = torch.tensor([[0, 10, 11, 12, 2]])
    padded = torch.tensor([[0, 10, 11, 12, 2, 1, 1]])
    with torch.no_grad():
        a = model.get_text_features(ids, torch.ones_like(ids))
        b = model.get_text_features(padded, torch.tensor([[1, 1, 1, 1, 1, 0, 0]]))
    assert torch.allclose(a, b, atol=1e-5)


def test_score_pairs_batches_equal_one_shot():
    model = tiny_ccr_model("efficientnet_lite")
    pixel_values, input_ids, attention_mask = _batch(n_images=3, k=2)
    with torch.no_grad():
        tokens = model.get_image_tokens(pixel_values).repeat_interleave(2, dim=0)
        one_shot = model.itm_logits(tokens, input_ids, attention_mask)[:, 1]
    batched = model.score_pairs(tokens, input_ids, attention_mask, batch_size=4)
    assert batched.shape == (6,)
    assert torch.allclose(batched, one_shot, atol=1e-5)


def test_fusion_layer_matches_a_bert_cross_attention_layer():
    """Our fusion layer computes what a BERT layer with cross-attention computes (bidirectional self-attention)."""
    torch.manual_seed(0)
    bert_config = BertConfig(hidden_size=32, num_attention_heads=4, intermediate_size=64, is_decoder=True,
                             add_cross_attention=True, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    bert_config._attn_implementation = "eager"
    reference = BertLayer(bert_config).eval()
    reference.attention.self.is_causal = False
    config = CCRConfig(vision_config={"model_type": "vit", "hidden_size": 32, "num_attention_heads": 4},
                       text_config=bert_config.to_dict())
    ours = CCRFusionLayer(config).eval()
    missing, unexpected = ours.load_state_dict(reference.state_dict(), strict=False)
    assert missing == [] and unexpected == []
    hidden, memory = torch.randn(2, 5, 32), torch.randn(2, 4, 32)
    with torch.no_grad():
        expected = reference(hidden, encoder_hidden_states=memory)
        expected = expected[0] if isinstance(expected, tuple) else expected
        got = ours(hidden, torch.ones(2, 5), ours.crossattention.self.key_values(memory))
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("vision", ["vit", "efficientnet_lite"])
def test_save_load_round_trip_gives_identical_outputs(tmp_path, vision):
    model = tiny_ccr_model(vision)
    pixel_values, input_ids, attention_mask = _batch()
    model.save_pretrained(tmp_path)
    for loader in (CCRModel, AutoModel):
        reloaded = loader.from_pretrained(tmp_path).eval()
        assert type(reloaded) is CCRModel
        with torch.no_grad():
            a = model(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask)
            b = reloaded(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask)
            tokens = model.get_image_tokens(pixel_values)
            itm_a = model.itm_logits(tokens[:2], input_ids[:2], attention_mask[:2])
            itm_b = reloaded.itm_logits(tokens[:2], input_ids[:2], attention_mask[:2])
        assert torch.allclose(a.logits_per_image, b.logits_per_image, atol=1e-6)
        assert torch.allclose(itm_a, itm_b, atol=1e-6)
        assert torch.equal(model.temperature, reloaded.temperature)


def test_forward_rejects_missing_inputs_and_bad_layouts():
    model = tiny_ccr_model("vit")
    pixel_values, input_ids, attention_mask = _batch(n_images=3, k=2)
    with pytest.raises(ValueError, match="both pixel_values and input_ids"):
        model(pixel_values=pixel_values)
    with pytest.raises(ValueError, match="same number K of captions"):
        model(pixel_values=pixel_values, input_ids=input_ids[:5], attention_mask=attention_mask[:5], return_loss=True)


def test_config_validation_and_sub_config_round_trip():
    with pytest.raises(ValueError, match="text_pooling"):
        CCRConfig(text_pooling="max")
    with pytest.raises(ValueError, match="unknown model_type"):
        CCRConfig(vision_config={"model_type": "no-such-tower"})
    config = tiny_ccr_model("swin").config
    again = CCRConfig.from_dict(config.to_dict())
    assert again.vision_config.model_type == "swin" and again.text_config.model_type == "xlm-roberta"
    assert again.num_text_layers == config.num_text_layers == 2
    assert again.num_fusion_layers == 2 and again.projection_dim == 16


def test_processor_and_model_work_together():
    from PIL import Image

    processor = tiny_ccr_processor()
    model = tiny_ccr_model("vit")
    images = [Image.new("RGB", (40, 30), (255, 0, 0)), Image.new("RGB", (20, 20), (0, 0, 255))]
    batch = processor(images=images, captions=[["a red box", "eine rote Box"], ["a blue box", "eine blaue Box"]])
    with torch.no_grad():
        out = model(**batch, return_loss=True)
    assert out.logits_per_image.shape == (2, 4)


def test_forward_reads_return_dict_not_the_deprecated_use_return_dict(monkeypatch):
    """transformers 5 warns on every first read of ``config.use_return_dict`` (deprecated): forward must not read it."""
    from transformers import PretrainedConfig

    reads = []
    monkeypatch.setattr(PretrainedConfig, "use_return_dict", property(lambda config: reads.append(1) or True))
    model = tiny_ccr_model()
    pixel_values, input_ids, attention_mask = _batch()
    with torch.no_grad():
        as_dict = model(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask)
        as_tuple = model(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask,
                         return_dict=False)
    assert reads == [] and isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], as_dict.logits_per_image)
