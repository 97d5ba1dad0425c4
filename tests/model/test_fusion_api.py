"""The fusion encoder's pair API (per-image memory, distinct texts, CLS-only last layer) against a direct
computation: every pair on its own, every layer written out with explicit softmax attention."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from modeling_ccr.evaluation.itm import ModelPairScorer
from modeling_ccr.testing import tiny_ccr_model, tiny_ccr_processor

NUM_IMAGES, NUM_TEXTS, LENGTH, PATCHES = 3, 4, 6, 5


def _linear(x: torch.Tensor, layer: torch.nn.Linear) -> torch.Tensor:
    return x @ layer.weight.T + layer.bias


def _norm(x: torch.Tensor, layer: torch.nn.LayerNorm) -> torch.Tensor:
    return F.layer_norm(x, layer.normalized_shape, layer.weight, layer.bias, layer.eps)


def _attention(queries_from: torch.Tensor, memory: torch.Tensor, projections,
               memory_mask: torch.Tensor) -> torch.Tensor:
    """One example: ``[l, H]`` attends to ``[S, C]`` (mask ``[S]``) -> ``[l, H]``, head by head."""
    q, k, v = (_linear(queries_from, projections.query), _linear(memory, projections.key),
               _linear(memory, projections.value))
    size = q.shape[-1] // projections.num_heads
    out = []
    for head in range(projections.num_heads):
        columns = slice(head * size, (head + 1) * size)
        scores = q[:, columns] @ k[:, columns].T / math.sqrt(size)
        scores = scores.masked_fill(~memory_mask.bool()[None, :], float("-inf"))
        out.append(scores.softmax(dim=-1) @ v[:, columns])
    return torch.cat(out, dim=-1)


def reference_fusion(model, states: torch.Tensor, mask: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
    """One pair: text states ``[L, H]`` with mask ``[L]`` and image tokens ``[P, Cv]`` -> fused states ``[L, H]``."""
    hidden = states
    for layer in model.fusion.layer:
        attended = _attention(hidden, hidden, layer.attention.self, mask)
        hidden = _norm(_linear(attended, layer.attention.output.dense) + hidden, layer.attention.output.LayerNorm)
        attended = _attention(hidden, image_tokens, layer.crossattention.self, torch.ones(image_tokens.shape[0]))
        hidden = _norm(_linear(attended, layer.crossattention.output.dense) + hidden,
                       layer.crossattention.output.LayerNorm)
        inner = layer.activation(_linear(hidden, layer.intermediate.dense))
        hidden = _norm(_linear(inner, layer.output.dense) + hidden, layer.output.LayerNorm)
    return hidden


@pytest.fixture(scope="module")
def setup():
    model = tiny_ccr_model(seed=3)
    generator = torch.Generator().manual_seed(0)
    hidden_size = model.config.text_config.hidden_size
    states = torch.randn(NUM_TEXTS, LENGTH, hidden_size, generator=generator)
    mask = torch.ones(NUM_TEXTS, LENGTH, dtype=torch.long)
    mask[1, 4:] = 0  # texts of several lengths
    mask[3, 2:] = 0
    image_tokens = torch.randn(NUM_IMAGES, PATCHES, model.config.vision_config.hidden_size, generator=generator)
    return model, states, mask, image_tokens


def _expected(model, states, mask, image_tokens, text_index, image_index) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack([reference_fusion(model, states[t], mask[t], image_tokens[i])
                            for t, i in zip(text_index.tolist(), image_index.tolist(), strict=True)])


def _close_on_real_tokens(got, expected, mask_rows):
    real = mask_rows.bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-4)


def test_row_wise_pairs_equal_the_direct_computation(setup):
    model, states, mask, image_tokens = setup
    rows = torch.tensor([0, 1, 2])
    with torch.no_grad():
        got = model.fusion(states[rows], mask[rows], model.fusion.image_memory(image_tokens[rows]))
    _close_on_real_tokens(got, _expected(model, states, mask, image_tokens, rows, rows), mask[rows])


def test_memory_of_distinct_images_and_texts_gives_each_pair_its_own_result(setup):
    """Each image's keys and values once, each text's first self-attention once; pairs index both."""
    model, states, mask, image_tokens = setup
    text_index = torch.tensor([0, 0, 1, 3, 3, 2, 1])
    image_index = torch.tensor([0, 2, 2, 1, 0, 1, 0])
    with torch.no_grad():
        memory = model.fusion.image_memory(image_tokens)
        got = model.fusion(states, mask, memory, image_index, text_index)
        cls = model.fusion(states, mask, memory, image_index, text_index, cls_only=True)
    expected = _expected(model, states, mask, image_tokens, text_index, image_index)
    _close_on_real_tokens(got, expected, mask[text_index])
    assert cls.shape == (len(text_index), 1, states.shape[-1])
    torch.testing.assert_close(cls[:, 0], expected[:, 0], atol=1e-5, rtol=1e-4)


def test_one_fusion_layer_is_first_and_cls_only_last():
    model = tiny_ccr_model(seed=5, num_fusion_layers=1)
    generator = torch.Generator().manual_seed(1)
    states = torch.randn(2, LENGTH, model.config.text_config.hidden_size, generator=generator)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    image_tokens = torch.randn(2, PATCHES, model.config.vision_config.hidden_size, generator=generator)
    text_index, image_index = torch.tensor([1, 0, 1]), torch.tensor([0, 0, 1])
    with torch.no_grad():
        cls = model.fusion(states, mask, model.fusion.image_memory(image_tokens), image_index, text_index,
                           cls_only=True)
    expected = _expected(model, states, mask, image_tokens, text_index, image_index)
    torch.testing.assert_close(cls[:, 0], expected[:, 0], atol=1e-5, rtol=1e-4)


def test_itm_logits_and_score_pairs_read_the_direct_cls(setup):
    model, states, mask, image_tokens = setup
    text_index, image_index = torch.tensor([2, 0, 3]), torch.tensor([1, 1, 0])
    expected = model.itm_head(_expected(model, states, mask, image_tokens, text_index, image_index)[:, 0])
    with torch.no_grad():
        got = model.itm_logits(image_tokens, None, mask[text_index], text_states=states[text_index],
                               image_index=image_index)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("batch_size", [2, 16])
def test_the_pair_scorer_in_both_directions_equals_the_direct_computation(setup, batch_size):
    """Text-to-image (one text, several images) and image-to-text (one image, several texts) blocks of pairs,
    in batches that split them or not; the texts' states are the scorer's own cache."""
    model, _, _, image_tokens = setup
    texts = ["a red square", "ein blaues Quadrat mit Rand", "猫", "a cat on a mat in the sun"]
    scorer = ModelPairScorer(model, tiny_ccr_processor(), image_tokens, texts, batch_size=batch_size)
    states, mask = scorer.texts.cached, scorer.texts.attention_mask
    for text_index, image_index in (
            (torch.tensor([3, 3, 3]), torch.tensor([0, 1, 2])),  # one text, its candidates
            (torch.tensor([0, 1, 2, 3]), torch.tensor([1, 1, 1, 1])),  # one image, its candidates
    ):
        with torch.no_grad():
            got = scorer(image_index, text_index)
            expected = model.itm_head(_expected(model, states, mask, image_tokens, text_index, image_index)[:, 0])[:, 1]
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("residual", [False, True], ids=["paper head", "residual head"])
def test_one_query_encoded_once_against_its_candidates_scores_as_score_pairs_on_the_repeated_query(residual):
    """Search re-ranking: the query's ids ``[1, L]`` and ``text_index`` N zeros through ``itm_logits`` (the text
    tower and the first fusion layer's self-attention once) against N candidate images' tokens, as
    ``score_pairs`` scores the query repeated N times; then two distinct texts of different lengths, paired by
    index with distinct images. A residual head's MLP is made non-zero (untrained, its last layer is zero), so
    that the fused CLS counts as well as the pairs' similarities."""
    model = tiny_ccr_model(seed=4, itm_residual=residual)
    with torch.no_grad():
        torch.nn.init.normal_(model.itm_head.classifier.weight, std=0.3)
    processor = tiny_ccr_processor()
    size = model.config.vision_config.image_size
    pixels = torch.randn(5, 3, size, size, generator=torch.Generator().manual_seed(2))
    texts = processor(text=["ein rotes Herz mit Rand", "猫"], return_tensors="pt")
    ids, mask = texts["input_ids"], texts["attention_mask"]
    n = pixels.shape[0]
    with torch.no_grad():
        tokens = model.get_image_tokens(pixels)
        repeated = torch.stack([model.score_pairs(tokens, ids[[t] * n], mask[[t] * n]) for t in range(2)])  # [2, N]
        once = model.itm_logits(tokens, ids[:1], mask[:1], text_index=torch.zeros(n, dtype=torch.long))
        text_index, image_index = torch.tensor([1, 0, 1, 0]), torch.tensor([1, 0, 0, 1])
        by_index = model.itm_logits(tokens[[3, 0]], None, mask, text_states=model.encode_text(ids, mask),
                                    image_index=image_index, text_index=text_index)
    torch.testing.assert_close(once[:, 1], repeated[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(by_index[:, 1], repeated[text_index, torch.tensor([3, 0])[image_index]],
                               atol=1e-5, rtol=1e-5)


def test_distinct_texts_pair_with_rows_by_index_in_fuse_and_itm_logits(setup):
    model, states, mask, image_tokens = setup
    text_index, image_index = torch.tensor([3, 0, 3, 1]), torch.tensor([1, 1, 0, 2])
    expected = _expected(model, states, mask, image_tokens, text_index, image_index)
    with torch.no_grad():
        fused = model.fuse(states, mask, image_tokens, image_index, text_index=text_index)
        logits = model.itm_logits(image_tokens, None, mask, text_states=states, image_index=image_index,
                                  text_index=text_index)
        rowwise = model.itm_logits(image_tokens[image_index], None, mask[text_index], text_states=states[text_index])
    _close_on_real_tokens(fused, expected, mask[text_index])
    torch.testing.assert_close(logits, model.itm_head(expected[:, 0]), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logits, rowwise, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match=r"text_index must hold text rows in \[0, 4\), got values 0..4"):
        model.itm_logits(image_tokens, None, mask, text_states=states, image_index=image_index,
                         text_index=torch.tensor([0, 1, 4, 2]))
    with pytest.raises(ValueError,
                       match=r"image_index must be a long tensor with one image per text row, shape \(2,\)"):
        model.fuse(states, mask, image_tokens, image_index, text_index=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"fusion pairs row by row: got 2 texts and 3 images"):
        model.fuse(states, mask, image_tokens, text_index=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="text_index must be a long tensor"):
        model.fuse(states, mask, image_tokens, image_index, text_index=text_index.int())
