"""Two-stage re-ranking: deterministic top k, only the top k_test changes, and the real ITM head is used."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from eval_fixtures import LANGUAGES, tiny_benchmark
from eval_reference import ReferencePairScorer, reference_ranks

from modeling_ccr.captions import image_major_captions
from modeling_ccr.evaluation.encode import encode_benchmark
from modeling_ccr.evaluation.itm import ModelPairScorer
from modeling_ccr.evaluation.ranks import retrieval_ranks, retrieval_ranks_from_similarity
from modeling_ccr.evaluation.rerank import TwoStageReranker, top_k_candidates
from modeling_ccr.testing import tiny_ccr_model, tiny_ccr_processor

N_IMAGES, N_LANGUAGES = 15, 3


def seeded(seed: int, low: int | None = None, high: int | None = None) -> torch.Tensor:
    """Image x text scores ``[N, N*K]``: integers in [low, high) (ties) or continuous (no ties)."""
    generator = torch.Generator().manual_seed(seed)
    shape = (N_IMAGES, N_IMAGES * N_LANGUAGES)
    if low is None:
        return torch.randn(shape, generator=generator, dtype=torch.float64)
    return torch.randint(low, high, shape, generator=generator).double()


class CountingScorer:
    """A stand-in ITM head: looks the pair's logit up in a fixed image x text table and counts the pairs."""

    def __init__(self, table: torch.Tensor):
        self.table = table
        self.pairs = 0

    def __call__(self, image_index: torch.Tensor, text_index: torch.Tensor) -> torch.Tensor:
        self.pairs += image_index.numel()
        return self.table[image_index, text_index]


def test_top_k_candidates_resolves_ties_towards_lower_indices():
    scores = torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0, 2.0]])
    assert top_k_candidates(scores, 2).tolist() == [[1, 2], [0, 1]]
    assert top_k_candidates(scores, 4).tolist() == [[0, 1, 2, 3], [0, 1, 2, 3]]


def test_top_k_candidates_match_a_stable_sort():
    scores = seeded(0, -2, 3)
    for k in (1, 4, scores.shape[1]):
        expected = np.sort(np.argsort(-scores.numpy(), axis=1, kind="stable")[:, :k], axis=1)
        np.testing.assert_array_equal(top_k_candidates(scores, k).numpy(), expected)


@pytest.mark.parametrize("k_test", [1, 4, N_IMAGES, 100])
@pytest.mark.parametrize("seed", [0, 1])
def test_two_stage_matches_loop_reference_with_ties(k_test, seed):
    similarity, itm = seeded(seed, -2, 3), seeded(seed + 10, -2, 3)
    expected = reference_ranks(similarity.numpy(), N_LANGUAGES, k_test, CountingScorer(itm))
    reranker = TwoStageReranker(CountingScorer(itm), k_test=k_test)
    ranks = retrieval_ranks_from_similarity(similarity, N_LANGUAGES, reranker=reranker, chunk_size=4)
    np.testing.assert_array_equal(ranks.tr.numpy(), expected["tr"])
    np.testing.assert_array_equal(ranks.ir.numpy(), expected["ir"])


def test_reranking_changes_only_the_top_k():
    """With ITM logits = minus the similarity (no ties), the top k reverses and the rest stays put."""
    similarity, k_test = seeded(3), 5
    first_stage = retrieval_ranks_from_similarity(similarity, N_LANGUAGES)
    scorer = CountingScorer(-similarity)
    reranker = TwoStageReranker(scorer, k_test)
    ranks = retrieval_ranks_from_similarity(similarity, N_LANGUAGES, reranker=reranker)
    for direction in ("tr", "ir"):
        before, after = getattr(first_stage, direction), getattr(ranks, direction)
        in_top = before < k_test
        assert torch.equal(after[~in_top], before[~in_top])
        assert torch.equal(after[in_top], k_test - 1 - before[in_top])
        assert in_top.any() and (~in_top).any()
    # Only queries whose gold item made the top k are re-ranked: k_test pairs each.
    queries_in_top = int((first_stage.tr < k_test).sum() + (first_stage.ir < k_test).sum())
    assert scorer.pairs == k_test * queries_in_top


def test_pair_scorer_must_return_one_logit_per_pair():
    reranker = TwoStageReranker(lambda images, texts: torch.zeros(images.numel(), 2), k_test=3)
    with pytest.raises(ValueError, match="one ITM 'matches' logit per \\(image, text\\) pair"):
        retrieval_ranks_from_similarity(seeded(0), N_LANGUAGES, reranker=reranker)
    with pytest.raises(ValueError, match="k_test must be >= 1"):
        TwoStageReranker(CountingScorer(seeded(0)), k_test=0)


@pytest.fixture(scope="module")
def tiny_setup():
    model, processor = tiny_ccr_model(seed=1), tiny_ccr_processor()
    dataset = tiny_benchmark(num_images=10, seed=2)
    encoded = encode_benchmark(model, processor, dataset, LANGUAGES, batch_size=4, keep_image_tokens=True)
    texts = image_major_captions(dataset["captions"], LANGUAGES)
    return model, processor, encoded, texts


@pytest.mark.parametrize("scorer_class", [ModelPairScorer, ReferencePairScorer])
@pytest.mark.parametrize("max_cached_bytes", [2**30, 0])  # all text states up front, or per batch
def test_model_pair_scorer_is_the_itm_head(tiny_setup, max_cached_bytes, scorer_class):
    model, processor, encoded, texts = tiny_setup
    scorer = scorer_class(model, processor, encoded.image_tokens, texts, batch_size=4,
                          max_cached_bytes=max_cached_bytes)
    assert (scorer.texts.cached is None) == (max_cached_bytes == 0)
    # Repeated pairs, texts of several images and images of several texts, across batches of 4.
    images = torch.tensor([0, 3, 3, 9, 5, 1, 7, 3, 2, 2])
    text_index = torch.tensor([0, 4, 29, 2, 15, 15, 21, 4, 15, 29])
    batched = scorer(images, text_index)
    with torch.no_grad():
        one_by_one = torch.stack([
            model.itm_logits(
                encoded.image_tokens[i : i + 1], **processor(text=[texts[t]], return_tensors="pt")
            )[0, 1]
            for i, t in zip(images.tolist(), text_index.tolist(), strict=True)
        ])
    torch.testing.assert_close(batched, one_by_one, atol=1e-5, rtol=1e-5)


def test_reranking_with_the_tiny_model_uses_its_itm_head(tiny_setup):
    model, processor, encoded, texts = tiny_setup
    scorer = ModelPairScorer(model, processor, encoded.image_tokens, texts, batch_size=16)
    k_test = 4
    similarity = encoded.image_embeds @ encoded.text_embeds.T
    expected = reference_ranks(similarity.numpy(), len(LANGUAGES), k_test, scorer)
    first_stage = retrieval_ranks(encoded.image_embeds, encoded.text_embeds, len(LANGUAGES))
    ranks = retrieval_ranks(
        encoded.image_embeds, encoded.text_embeds, len(LANGUAGES), reranker=TwoStageReranker(scorer, k_test)
    )
    np.testing.assert_array_equal(ranks.tr.numpy(), expected["tr"])
    np.testing.assert_array_equal(ranks.ir.numpy(), expected["ir"])
    changed = (ranks.tr != first_stage.tr) | (ranks.ir != first_stage.ir)
    assert changed.any(), "the ITM head should reorder some top-k candidates of a random model"
    assert (first_stage.tr[ranks.tr != first_stage.tr] < k_test).all()


def test_one_fusion_layer_scorer_is_the_itm_head():
    """With a single fusion layer, the first layer is also the CLS-only last one."""
    model, processor = tiny_ccr_model(seed=4, num_fusion_layers=1), tiny_ccr_processor()
    dataset = tiny_benchmark(num_images=4, seed=5)
    encoded = encode_benchmark(model, processor, dataset, LANGUAGES, keep_image_tokens=True)
    texts = image_major_captions(dataset["captions"], LANGUAGES)
    images, text_index = torch.tensor([0, 1, 2, 3, 0, 3]), torch.tensor([5, 5, 0, 11, 7, 2])
    expected = ReferencePairScorer(model, processor, encoded.image_tokens, texts)(images, text_index)
    batched = ModelPairScorer(model, processor, encoded.image_tokens, texts, batch_size=3)(images, text_index)
    torch.testing.assert_close(batched, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["replace", "combine"])
@pytest.mark.parametrize("k_test", [3, 10])
def test_batched_reranking_gives_the_ranks_of_the_pair_by_pair_path(tiny_setup, mode, k_test):
    """The batched scorer and today's pair-by-pair scorer rank every query (TR and IR) the same."""
    model, processor, encoded, texts = tiny_setup
    ranks = {}
    for scorer_class in (ModelPairScorer, ReferencePairScorer):
        scorer = scorer_class(model, processor, encoded.image_tokens, texts, batch_size=16)
        reranker = TwoStageReranker(scorer, k_test=k_test, mode=mode, rerank_weight=0.5)
        ranks[scorer_class] = retrieval_ranks(encoded.image_embeds, encoded.text_embeds, len(LANGUAGES),
                                              reranker=reranker, chunk_size=4)
    logits = ReferencePairScorer(model, processor, encoded.image_tokens, texts)(
        torch.arange(10).repeat_interleave(30), torch.arange(30).repeat(10))
    assert logits.unique().numel() == logits.numel(), "the test needs ties-free ITM logits"
    batched, reference = ranks[ModelPairScorer], ranks[ReferencePairScorer]
    assert torch.equal(batched.tr, reference.tr) and torch.equal(batched.ir, reference.ir)
    first_stage = retrieval_ranks(encoded.image_embeds, encoded.text_embeds, len(LANGUAGES))
    assert not torch.equal(batched.tr, first_stage.tr), "re-ranking should reorder some queries"
