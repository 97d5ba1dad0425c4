"""Gold-item ranks for cross-lingual cross-modal retrieval, vectorised and chunked.

Layout: N images, K languages, one caption per image and language. Texts are image-major: text row
``j*K + l`` is the caption of image j in language l.

- TR (text retrieval, image -> text), per language: for image i and language l, the rank of text
  ``(i, l)`` among the N texts of language l.
- IR (image retrieval, text -> image), per language: for text ``(i, l)``, the rank of image i among the
  N images.

Both directions therefore rank a "diagonal" gold item: query q of language l has candidate q as its
gold. Ranks are 0-based.

Ties are broken deterministically: the rank of the gold item is the number of candidates with a strictly
higher score plus the number of candidates with an equal score and a lower candidate index. This is the
position of the gold item in a stable descending sort, so equal scores are ordered by index.

Scores are computed for blocks of images at a time, every language at once (TR: ``chunk_size`` images
against all N*K texts; IR: their ``chunk_size * K`` texts against the N images), so memory stays bounded
for any N, a score matrix is read in place (no per-language copies) and there is no Python loop over
instances or languages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from tqdm.auto import tqdm

Direction = Literal["tr", "ir"]
DIRECTIONS: tuple[Direction, ...] = ("tr", "ir")
# Scores held at once per block: 2**22 float32 scores = 16 MiB (plus a mask of that many elements). Small
# blocks keep the per-query threshold columns (chunk x chunk x K) a small part of each block.
DEFAULT_BLOCK_ELEMENTS = 2**22

# (query indices [M], candidate indices [M]) -> (image indices [M], text indices [M]) in the full layout.
PairIndexer = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class Reranker(Protocol):
    """Second stage: turns a block of first-stage scores into gold ranks (see ``rerank.TwoStageReranker``).

    ``scores [Q, C]`` are the first-stage scores of Q queries over all C candidates, ``queries [Q]`` the
    global query indices (query q's gold candidate is q), ``to_pairs`` maps (query, candidate) to
    (image, text) indices. Returns the gold ranks ``[Q]``.
    """

    def __call__(
        self, scores: torch.Tensor, queries: torch.Tensor, to_pairs: PairIndexer
    ) -> torch.Tensor: ...


@dataclass
class RetrievalRanks:
    """0-based gold ranks: ``tr`` and ``ir`` are ``[n, K]`` int64 (instance x language)."""

    tr: torch.Tensor
    ir: torch.Tensor


def gold_ranks(scores: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """Rank of each query's gold candidate: scores ``[Q, C]``, gold ``[Q]`` (candidate indices) -> ``[Q]``.

    rank = #{c : s[c] > s[gold]} + #{c : s[c] == s[gold] and c < gold} (0-based, deterministic ties).
    """
    if scores.dim() != 2 or gold.shape != (scores.shape[0],):
        raise ValueError(
            f"need scores [Q, C] and gold [Q]; got {tuple(scores.shape)} and {tuple(gold.shape)}"
        )
    return _language_gold_ranks(scores[:, :, None], gold)[:, 0]


def _language_gold_ranks(scores: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """Gold ranks of Q queries in K languages at once: scores ``[Q, C, K]`` (any strides), gold ``[Q]`` -> ``[Q, K]``.

    Query (q, l) ranks candidate column ``scores[q, :, l]``; its gold candidate is ``gold[q]`` in every
    language. The rank counts candidates c < gold with s >= s_gold and candidates c > gold with s > s_gold;
    for finite float32/64 scores s >= s_gold is s > (the float just below s_gold), so one comparison per
    score against a per-column threshold counts both, in one pass over the block whatever K and ties.
    """
    # One cheap reduction first: a sum is NaN if any score is (or if +inf and -inf both occur).
    if torch.isnan(scores.sum()) and torch.isnan(scores).any():
        raise ValueError(
            "the retrieval scores contain NaN, so ranks would be meaningless: check the model's outputs "
            "(e.g. NaN weights or an fp16 overflow) and rerun"
        )
    gold = gold.to(scores.device)
    if gold.numel() == 0:
        return torch.zeros(0, scores.shape[2], dtype=torch.long, device=scores.device)
    gold_scores = scores[torch.arange(scores.shape[0], device=scores.device), gold]  # [Q, K]
    if scores.dtype not in (torch.float32, torch.float64) or not torch.isfinite(gold_scores).all():
        return _gold_ranks_by_comparison(scores, gold, gold_scores[:, None, :])
    just_below = torch.nextafter(gold_scores, gold_scores.new_tensor(float("-inf")))
    # Candidates below every gold index use the "at or above" threshold, those past every gold index the
    # "above" one; only the columns between the smallest and largest gold index need a per-query choice.
    low, high = int(gold.min()), int(gold.max()) + 1
    ranks = _count(scores[:, :low] > just_below[:, None, :])
    ranks += _count(scores[:, high:] > gold_scores[:, None, :])
    before_gold = torch.arange(low, high, device=scores.device)[None, :, None] < gold[:, None, None]
    threshold = torch.where(before_gold, just_below[:, None, :], gold_scores[:, None, :])
    return (ranks + _count(scores[:, low:high] > threshold)).long()


def _count(above: torch.Tensor) -> torch.Tensor:
    """True values along dim 1 of a boolean ``[Q, C, K]`` -> int32 ``[Q, K]`` (int32: no int64 copy of the mask)."""
    return above.sum(dim=1, dtype=torch.int32)


def _gold_ranks_by_comparison(scores: torch.Tensor, gold: torch.Tensor, gold_scores: torch.Tensor) -> torch.Tensor:
    """:func:`_language_gold_ranks` for any dtype and infinite scores: higher scores, then ties by index."""
    higher = (scores > gold_scores).sum(dim=1)
    lower_index = torch.arange(scores.shape[1], device=scores.device)[None, :, None] < gold[:, None, None]
    return higher + ((scores == gold_scores) & lower_index).sum(dim=1)


def default_chunk_size(num_candidates: int) -> int:
    """Queries per block so that a block holds about ``DEFAULT_BLOCK_ELEMENTS`` scores."""
    return max(1, DEFAULT_BLOCK_ELEMENTS // max(1, num_candidates))


# (direction, first query, stop) -> scores [R, N, K] of queries start..stop: query (r, l) ranks the N
# candidates scores[r, :, l] (TR: image start+r against the texts of language l; IR: text (start+r, l)
# against the images). Any strides: a view of a score matrix is not copied.
BlockScores = Callable[[Direction, int, int], torch.Tensor]


def _rank_block(
    scores: torch.Tensor, start: int, reranker: Reranker | None, indexers: list[PairIndexer]
) -> torch.Tensor:
    """Gold ranks ``[R, K]`` of the block scores ``[R, N, K]`` of queries ``start..start+R``."""
    queries = torch.arange(start, start + scores.shape[0], device=scores.device)
    if reranker is None:
        return _language_gold_ranks(scores, queries)
    return torch.stack(
        [reranker(scores[:, :, language], queries, to_pairs) for language, to_pairs in enumerate(indexers)], dim=1
    )


def _pair_indexers(num_languages: int, language: int) -> dict[Direction, PairIndexer]:
    """(query, candidate) -> (image, text) for TR (query = image) and IR (query = text) of one language."""
    return {
        "tr": lambda query, candidate: (query, candidate * num_languages + language),
        "ir": lambda query, candidate: (candidate, query * num_languages + language),
    }


def _check_queries(queries: range | None, num_images: int) -> range:
    if queries is None:
        return range(num_images)
    if queries.step != 1 or not 0 <= queries.start <= queries.stop <= num_images:
        raise ValueError(f"queries must be a contiguous range inside range({num_images}), got {queries}")
    return queries


def _rank_all(
    block_scores: BlockScores,
    num_images: int,
    num_languages: int,
    queries: range | None,
    reranker: Reranker | None,
    chunk_size: int | None,
    progress: bool,
) -> RetrievalRanks:
    """Blocks of ``chunk_size`` images' queries, all K languages at once (default: about
    ``DEFAULT_BLOCK_ELEMENTS`` scores per block)."""
    queries = _check_queries(queries, num_images)
    chunk = default_chunk_size(num_images * num_languages) if chunk_size is None else chunk_size
    if chunk < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    indexers = [_pair_indexers(num_languages, language) for language in range(num_languages)]
    bar = tqdm(total=2 * num_languages * len(queries), desc="ranking", unit="query", disable=not progress)
    ranks: dict[Direction, list[torch.Tensor]] = {"tr": [], "ir": []}
    with bar:
        for direction in DIRECTIONS:
            for start in range(queries.start, queries.stop, chunk):
                stop = min(start + chunk, queries.stop)
                scores = block_scores(direction, start, stop)
                by_language = [indexer[direction] for indexer in indexers]
                ranks[direction].append(_rank_block(scores, start, reranker, by_language).cpu())
                bar.update(num_languages * (stop - start))
    empty = torch.zeros(0, num_languages, dtype=torch.long)
    return RetrievalRanks(
        tr=torch.cat(ranks["tr"]) if ranks["tr"] else empty, ir=torch.cat(ranks["ir"]) if ranks["ir"] else empty
    )


def retrieval_ranks(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    num_languages: int,
    *,
    queries: range | None = None,
    reranker: Reranker | None = None,
    chunk_size: int | None = None,
    progress: bool = False,
) -> RetrievalRanks:
    """TR and IR gold ranks from embeddings, scored by dot product (cosine for normalised embeddings).

    Args:
        image_embeds: ``[N, D]``.
        text_embeds: ``[N*K, D]``, image-major (row ``j*K + l`` = image j, language l).
        num_languages: K.
        queries: a contiguous range of image indices whose queries to rank (a shard; default all N).
            TR ranks image i's queries, IR ranks the queries of texts (i, l) for every l.
        reranker: an optional second stage, e.g. :class:`~modeling_ccr.evaluation.rerank.TwoStageReranker`.
        chunk_size: images whose queries (every language) are scored at once (default: about 2**22
            scores per block).
        progress: show a progress bar.

    Returns:
        :class:`RetrievalRanks` with ``tr`` and ``ir`` of shape ``[len(queries), K]``.
    """
    num_images = _check_layout(image_embeds.shape[0], text_embeds.shape[0], num_languages)
    if image_embeds.dim() != 2 or text_embeds.dim() != 2 or image_embeds.shape[1] != text_embeds.shape[1]:
        raise ValueError(
            "need image_embeds [N, D] and text_embeds [N*K, D] of the same D; got "
            f"{tuple(image_embeds.shape)} and {tuple(text_embeds.shape)}"
        )

    def block_scores(direction: Direction, start: int, stop: int) -> torch.Tensor:
        if direction == "tr":  # images start..stop against all N*K texts: [R, N*K] -> [R, N, K]
            return (image_embeds[start:stop] @ text_embeds.T).unflatten(1, (num_images, num_languages))
        # texts (start..stop, every language) against the N images: [R*K, N] -> [R, N, K]
        texts = text_embeds[start * num_languages : stop * num_languages]
        return (texts @ image_embeds.T).unflatten(0, (stop - start, num_languages)).transpose(1, 2)

    return _rank_all(block_scores, num_images, num_languages, queries, reranker, chunk_size, progress)


def retrieval_ranks_from_similarity(
    similarity: torch.Tensor,
    num_languages: int,
    *,
    queries: range | None = None,
    reranker: Reranker | None = None,
    chunk_size: int | None = None,
    progress: bool = False,
) -> RetrievalRanks:
    """TR and IR gold ranks from a precomputed image x text score matrix ``[N, N*K]`` (texts image-major).

    TR of language l ranks row i over columns ``j*K + l``; IR ranks column ``i*K + l`` over the N rows.
    Same arguments and result as :func:`retrieval_ranks`.
    """
    if similarity.dim() != 2:
        raise ValueError(f"need a similarity matrix [N, N*K], got shape {tuple(similarity.shape)}")
    num_images = _check_layout(similarity.shape[0], similarity.shape[1], num_languages)

    def block_scores(direction: Direction, start: int, stop: int) -> torch.Tensor:
        if direction == "tr":  # rows start..stop: [R, N*K] -> [R, N, K]
            return similarity[start:stop].unflatten(1, (num_images, num_languages))
        # columns of texts (start..stop, every language): [N, R*K] -> [R, N, K]
        columns = similarity[:, start * num_languages : stop * num_languages]
        return columns.unflatten(1, (stop - start, num_languages)).transpose(0, 1)

    return _rank_all(block_scores, num_images, num_languages, queries, reranker, chunk_size, progress)


def _check_layout(num_images: int, num_texts: int, num_languages: int) -> int:
    if num_languages < 1:
        raise ValueError(f"num_languages must be >= 1, got {num_languages}")
    if num_images < 1:
        raise ValueError("no images to rank: the benchmark split is empty")
    if num_texts != num_images * num_languages:
        raise ValueError(
            f"got {num_images} images but {num_texts} texts; with K={num_languages} languages the texts must "
            f"be N*K = {num_images * num_languages}, image-major (row j*K + l = image j, language l)"
        )
    return num_images
