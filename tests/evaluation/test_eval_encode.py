"""Text encoding for evaluation: batches of about one length, and the re-ranker's text states reused for the
dual encoder's embeddings; each checked against texts encoded one at a time (no padding at all)."""

from __future__ import annotations

import pytest
import torch
from eval_fixtures import LANGUAGES, tiny_benchmark

from modeling_ccr.captions import image_major_captions
from modeling_ccr.evaluation.encode import encode_benchmark, length_sorted_batches
from modeling_ccr.evaluation.itm import EncodedTexts
from modeling_ccr.evaluation.pipeline import PreparedEvaluation
from modeling_ccr.testing import tiny_ccr_model, tiny_ccr_processor


@pytest.fixture(scope="module")
def setup():
    model, processor = tiny_ccr_model(seed=4).eval(), tiny_ccr_processor()
    dataset = tiny_benchmark(num_images=9, seed=5)  # captions of 2-5 words: several lengths
    texts = image_major_captions(dataset["captions"], LANGUAGES)
    with torch.no_grad():
        alone = torch.cat([model.get_text_features(**processor(text=[text], return_tensors="pt")) for text in texts])
    return model, processor, dataset, texts, alone


def test_length_sorted_batches_cover_every_text_once_shortest_first():
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 1, 1, 0]])
    batches = length_sorted_batches(mask, batch_size=2)
    rows = torch.cat([r for r, _ in batches])
    assert sorted(rows.tolist()) == list(range(5)) and [len(r) for r, _ in batches] == [2, 2, 1]
    assert mask[rows].sum(dim=1).tolist() == [1, 2, 2, 3, 5]  # stable: row 3 before row 4
    for batch_rows, columns in batches:
        assert columns.tolist() == mask[batch_rows].any(dim=0).tolist()
    assert batches[0][1].tolist() == [True, True, False, False, False]  # rows 1 and 3 need 2 columns
    assert batches[1][1].tolist() == [True, True, True, True, False]  # left padding too: row 4 starts late
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        length_sorted_batches(mask, 0)


def test_benchmark_text_embeddings_equal_each_text_encoded_alone(setup):
    model, processor, dataset, _, alone = setup
    encoded = encode_benchmark(model, processor, dataset, LANGUAGES, batch_size=4)
    torch.testing.assert_close(encoded.text_embeds, alone, atol=1e-5, rtol=1e-5)
    images_only = encode_benchmark(model, processor, dataset, LANGUAGES, batch_size=4, encode_texts=False)
    assert images_only.text_embeds is None
    torch.testing.assert_close(images_only.image_embeds, encoded.image_embeds)


def test_reranker_states_give_the_dual_encoder_embeddings(setup):
    model, processor, dataset, texts, alone = setup
    encoded_texts = EncodedTexts(model, processor, texts, batch_size=5, max_cached_bytes=2**30)
    torch.testing.assert_close(encoded_texts.embeddings(), alone, atol=1e-5, rtol=1e-5)
    for index in (0, len(texts) - 1):  # the real positions hold the text encoder's states of the text alone
        with torch.no_grad():
            own = model.encode_text(**processor(text=[texts[index]], return_tensors="pt"))[0]
        torch.testing.assert_close(encoded_texts.cached[index, : own.shape[0]], own, atol=1e-5, rtol=1e-5)
    uncached = EncodedTexts(model, processor, texts, batch_size=5, max_cached_bytes=0)
    with pytest.raises(ValueError, match="not cached"):
        uncached.embeddings()
    rows = torch.tensor([3, 0, 3])
    real = encoded_texts.attention_mask[rows, :, None]  # padding states mean nothing: compare real positions
    torch.testing.assert_close(uncached.states(rows) * real, encoded_texts.cached[rows] * real, atol=1e-5, rtol=1e-5)
    reranking = PreparedEvaluation(model, processor, dataset, k_test=3, batch_size=4, itm_batch_size=5)
    similarity_only = PreparedEvaluation(model, processor, dataset, k_test=None, batch_size=4)
    torch.testing.assert_close(reranking.encoded.text_embeds, similarity_only.encoded.text_embeds, atol=1e-5, rtol=1e-5)
