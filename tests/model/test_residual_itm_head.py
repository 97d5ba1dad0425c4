"""The residual ITM head (``config.itm_residual``): untrained, it ranks pairs exactly as the dual encoder; trained,
its "matches" logit is the MLP's plus ``a * cos + b``; every scoring path (``itm_logits``, ``score_pairs``, the
batched scorer, the ITM diagnostics, the training objective) gives it the same similarities."""

from __future__ import annotations

import pytest
import torch

from modeling_ccr.evaluation.itm import ModelPairScorer
from modeling_ccr.testing import tiny_ccr_model, tiny_ccr_processor

TEXTS = ["a red square", "ein blaues Quadrat mit Rand", "猫", "a cat on a mat in the sun"]


def _inputs(model, seed: int = 0):
    """Three images' pixels and tokens, the four texts' ids / mask, and the dual encoder's cosines [3, 4]
    computed through the public feature methods (the reference)."""
    processor = tiny_ccr_processor()
    size = model.config.vision_config.image_size
    pixels = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(seed))
    text = processor(text=TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        cosine = model.get_image_features(pixels) @ model.get_text_features(text["input_ids"], text["attention_mask"]).T
        tokens = model.get_image_tokens(pixels)
    return processor, tokens, text["input_ids"], text["attention_mask"], cosine


def _all_pairs():
    image_index = torch.arange(3).repeat_interleave(4)
    return image_index, torch.arange(4).repeat(3)


def test_an_untrained_residual_head_scores_ten_times_the_dual_encoders_cosine_on_every_path():
    model = tiny_ccr_model(seed=3, itm_residual=True).eval()
    processor, tokens, ids, mask, cosine = _inputs(model)
    image_index, text_index = _all_pairs()
    expected = 10.0 * cosine[image_index, text_index]
    with torch.no_grad():
        logits = model.itm_logits(tokens, ids[text_index], mask[text_index], image_index=image_index)
        pairs = model.score_pairs(tokens[image_index], ids[text_index], mask[text_index])
    torch.testing.assert_close(logits[:, 1], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits[:, 0], torch.zeros_like(expected))
    torch.testing.assert_close(pairs, expected, atol=1e-5, rtol=1e-5)
    for batch_size in (2, 16):  # the batched re-ranking scorer, pairs split across batches or not
        scorer = ModelPairScorer(model, processor, tokens, TEXTS, batch_size=batch_size)
        torch.testing.assert_close(scorer(image_index, text_index), expected, atol=1e-5, rtol=1e-5)
    # re-ranking any candidate list by the head gives the dual encoder's order
    for image in range(3):
        assert pairs.view(3, 4)[image].argsort().tolist() == cosine[image].argsort().tolist()


def test_a_trained_residual_head_adds_the_scaled_similarity_to_the_mlp_of_the_papers_head():
    residual = tiny_ccr_model(seed=3, itm_residual=True).eval()
    with torch.no_grad():
        torch.nn.init.normal_(residual.itm_head.classifier.weight, std=0.3)
        torch.nn.init.normal_(residual.itm_head.classifier.bias, std=0.3)
        residual.itm_head.log_similarity_scale.fill_(0.7)
        residual.itm_head.similarity_bias.fill_(-1.25)
    paper = tiny_ccr_model(seed=3).eval()  # the same weights but the two scalars
    missing, unexpected = paper.load_state_dict(residual.state_dict(), strict=False)
    assert not missing and sorted(unexpected) == ["itm_head.log_similarity_scale", "itm_head.similarity_bias"]
    _, tokens, ids, mask, cosine = _inputs(residual, seed=1)
    image_index, text_index = _all_pairs()
    with torch.no_grad():
        got = residual.itm_logits(tokens, ids[text_index], mask[text_index], image_index=image_index)
        mlp = paper.itm_logits(tokens, ids[text_index], mask[text_index], image_index=image_index)
    shift = torch.exp(torch.tensor(0.7)) * cosine[image_index, text_index] - 1.25
    torch.testing.assert_close(got, mlp + torch.stack([torch.zeros_like(shift), shift], dim=1), atol=1e-5, rtol=1e-5)


def test_reset_itm_head_switches_the_kind_and_a_residual_head_refuses_to_score_without_similarities():
    model = tiny_ccr_model(seed=2).eval()
    _, tokens, ids, mask, cosine = _inputs(model)
    model.reset_itm_head(True)
    assert model.config.itm_residual and not model.itm_head.classifier.weight.any()
    with torch.no_grad():
        torch.testing.assert_close(model.score_pairs(tokens, ids[:3], mask[:3]), 10.0 * cosine.diagonal(),
                                   atol=1e-5, rtol=1e-5)
        with pytest.raises(ValueError, match="residual ITM head .* needs the pairs' cosine similarities"):
            model.itm_head(torch.zeros(3, model.config.text_config.hidden_size))
    model.reset_itm_head(False)
    assert not model.config.itm_residual and not hasattr(model.itm_head, "similarity_bias")
    assert model.itm_head.classifier.weight.any()  # the paper's head starts random
