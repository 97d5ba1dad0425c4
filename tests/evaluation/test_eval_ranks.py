"""Vectorised, chunked gold ranks against the loop reference, with ties and K captions per image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from eval_reference import reference_ranks

from modeling_ccr.evaluation.ranks import gold_ranks, retrieval_ranks, retrieval_ranks_from_similarity

N_IMAGES, N_LANGUAGES = 17, 3


def tied_similarity(seed: int, num_images: int = N_IMAGES, num_languages: int = N_LANGUAGES) -> torch.Tensor:
    """Image x text scores ``[N, N*K]`` drawn from 7 values, so most queries have ties with the gold item."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(-3, 4, (num_images, num_images * num_languages), generator=generator).double()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("chunk_size", [1, 5, None])
def test_ranks_match_loop_reference_with_ties(seed, chunk_size):
    similarity = tied_similarity(seed)
    expected = reference_ranks(similarity.numpy(), N_LANGUAGES)
    ranks = retrieval_ranks_from_similarity(similarity, N_LANGUAGES, chunk_size=chunk_size)
    np.testing.assert_array_equal(ranks.tr.numpy(), expected["tr"])
    np.testing.assert_array_equal(ranks.ir.numpy(), expected["ir"])


def test_continuous_scores_match_loop_reference():
    generator = torch.Generator().manual_seed(5)
    image_embeds = torch.nn.functional.normalize(torch.randn(40, 8, generator=generator), dim=1)
    text_embeds = torch.nn.functional.normalize(torch.randn(40 * 4, 8, generator=generator), dim=1)
    expected = reference_ranks((image_embeds @ text_embeds.T).numpy(), 4)
    ranks = retrieval_ranks(image_embeds, text_embeds, 4, chunk_size=7)
    np.testing.assert_array_equal(ranks.tr.numpy(), expected["tr"])
    np.testing.assert_array_equal(ranks.ir.numpy(), expected["ir"])


def test_all_equal_scores_rank_by_index():
    """Every score ties: the gold item of query q is preceded exactly by the q lower-indexed candidates."""
    ranks = retrieval_ranks_from_similarity(torch.zeros(6, 12), 2, chunk_size=4)
    expected = torch.arange(6)[:, None].expand(6, 2)
    assert torch.equal(ranks.tr, expected) and torch.equal(ranks.ir, expected)


def test_embeddings_give_the_same_ranks_as_their_similarity_matrix():
    generator = torch.Generator().manual_seed(3)
    image_embeds = torch.randint(-2, 3, (N_IMAGES, 4), generator=generator).float()
    text_embeds = torch.randint(-2, 3, (N_IMAGES * N_LANGUAGES, 4), generator=generator).float()
    from_embeddings = retrieval_ranks(image_embeds, text_embeds, N_LANGUAGES, chunk_size=3)
    from_similarity = retrieval_ranks_from_similarity(image_embeds @ text_embeds.T, N_LANGUAGES)
    assert torch.equal(from_embeddings.tr, from_similarity.tr)
    assert torch.equal(from_embeddings.ir, from_similarity.ir)


def test_query_shards_concatenate_to_the_full_result():
    similarity = tied_similarity(4)
    full = retrieval_ranks_from_similarity(similarity, N_LANGUAGES)
    shards = [range(0, 6), range(6, 7), range(7, N_IMAGES)]
    parts = [retrieval_ranks_from_similarity(similarity, N_LANGUAGES, queries=shard) for shard in shards]
    assert torch.equal(torch.cat([part.tr for part in parts]), full.tr)
    assert torch.equal(torch.cat([part.ir for part in parts]), full.ir)


def test_gold_ranks_known_values():
    scores = torch.tensor([[0.5, 0.9, 0.5, 0.1], [1.0, 1.0, 1.0, 1.0]])
    # row 0, gold 2: one higher (0.9), one equal with a lower index (0) -> 2; row 1, gold 3: 3 ties before.
    assert gold_ranks(scores, torch.tensor([2, 3])).tolist() == [2, 3]


def test_nan_scores_are_refused():
    scores = torch.tensor([[0.1, float("nan")]])
    with pytest.raises(ValueError, match="contain NaN"):
        gold_ranks(scores, torch.tensor([0]))


@pytest.mark.parametrize(
    ("image_shape", "text_shape", "languages", "message"),
    [
        ((4, 8), (10, 8), 3, "got 4 images but 10 texts; with K=3 languages the texts must be N\\*K = 12"),
        ((4, 8), (12, 6), 3, "of the same D"),
        ((0, 8), (0, 8), 3, "no images to rank"),
        ((4, 8), (12, 8), 0, "num_languages must be >= 1"),
    ],
)
def test_layout_errors(image_shape, text_shape, languages, message):
    with pytest.raises(ValueError, match=message):
        retrieval_ranks(torch.zeros(image_shape), torch.zeros(text_shape), languages)


def test_bad_query_range_and_chunk_size():
    similarity = tied_similarity(0)
    with pytest.raises(ValueError, match="contiguous range inside range\\(17\\)"):
        retrieval_ranks_from_similarity(similarity, N_LANGUAGES, queries=range(10, 20))
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        retrieval_ranks_from_similarity(similarity, N_LANGUAGES, chunk_size=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_embedding_ranks_with_ties_match_loop_reference(dtype):
    """Seeded integer features (exact dot products, many ties) on the default blocks, both directions."""
    generator = torch.Generator().manual_seed(11)
    image_embeds = torch.randint(-1, 2, (60, 3), generator=generator).to(dtype)
    text_embeds = torch.randint(-1, 2, (60 * 4, 3), generator=generator).to(dtype)
    expected = reference_ranks((image_embeds @ text_embeds.T).numpy(), 4)
    for chunk_size in (None, 7):
        ranks = retrieval_ranks(image_embeds, text_embeds, 4, chunk_size=chunk_size)
        np.testing.assert_array_equal(ranks.tr.numpy(), expected["tr"])
        np.testing.assert_array_equal(ranks.ir.numpy(), expected["ir"])


def test_neighbouring_floats_are_not_ties():
    """A score one float below the gold's is lower, one equal to it ties, one float above is higher."""
    gold = torch.tensor(0.3, dtype=torch.float32)
    below, above = torch.nextafter(gold, torch.tensor(-1.0)), torch.nextafter(gold, torch.tensor(1.0))
    scores = torch.stack([below, gold, gold, above, below, gold])[None]
    assert gold_ranks(scores, torch.tensor([2])).tolist() == [2]  # the tie at 1 and the higher at 3; not the tie at 5


def test_infinite_scores_match_loop_reference():
    similarity = tied_similarity(6)
    similarity[similarity == 3] = float("inf")
    similarity[similarity == -3] = -float("inf")
    expected = reference_ranks(similarity.numpy(), N_LANGUAGES)
    ranks = retrieval_ranks_from_similarity(similarity.float(), N_LANGUAGES, chunk_size=5)
    np.testing.assert_array_equal(ranks.tr.numpy(), expected["tr"])
    np.testing.assert_array_equal(ranks.ir.numpy(), expected["ir"])
