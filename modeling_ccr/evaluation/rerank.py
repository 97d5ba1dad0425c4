"""The two-stage retrieval protocol of CCR^k (and X-VLM / CCLM), model-agnostic.

For every query (both directions):
1. keep the top ``k_test`` candidates by first-stage similarity;
2. score each kept (query, candidate) pair with the fusion encoder; the ITM "matches" logit replaces the
   similarity of those candidates;
3. every other candidate is placed below all re-ranked ones.

The paper fills the rest with -100, which leaves their order to the sort's tie handling. Here the rest
keep their first-stage order (as if the fill were their similarity shifted below the lowest ITM logit),
and all ties go to the lower candidate index, so ranks are deterministic. Recall@K for K <= k_test is the
same under either fill; ranks past ``k_test`` (mean rank, MRV) are the first-stage ranks.

Consequences used below: a query whose gold item is outside its top ``k_test`` keeps its first-stage rank
(>= k_test) and needs no ITM call; otherwise its rank is the gold item's position among the ``k_test``
ITM logits (ties: lower candidate index first).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .ranks import PairIndexer, gold_ranks

# (image indices [M], text indices [M]) -> ITM "matches" logit [M] of each pair (image-major text indices).
PairScorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def top_k_candidates(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The first ``k`` candidates of each row in (score descending, index ascending) order.

    scores ``[Q, C]`` -> candidate indices ``[Q, k]``, each row in ascending index order. Ties at the
    k-th score are resolved towards lower indices, matching :func:`~modeling_ccr.evaluation.ranks.gold_ranks`.
    """
    num_queries, num_candidates = scores.shape
    if not 1 <= k <= num_candidates:
        raise ValueError(f"k must be in [1, {num_candidates}], got {k}")
    kth = scores.topk(k, dim=1).values[:, -1:]
    above = scores > kth
    tied = scores == kth
    free_slots = k - above.sum(dim=1, keepdim=True)
    chosen = above | (tied & (tied.cumsum(dim=1) <= free_slots))
    return chosen.nonzero()[:, 1].view(num_queries, k)


class TwoStageReranker:
    """Second stage for :func:`~modeling_ccr.evaluation.ranks.retrieval_ranks`: ITM re-ranking of the top k.

    Args:
        pair_scorer: maps (image indices ``[M]``, text indices ``[M]``) to the ITM "matches" logit ``[M]``
            (``itm_logits[:, 1]``), e.g. :class:`~modeling_ccr.evaluation.itm.ModelPairScorer`.
        k_test: candidates re-ranked per query (128 in the paper; 256 on COCO). Capped at the number of
            candidates.
    """

    def __init__(self, pair_scorer: PairScorer, k_test: int = 128):
        if k_test < 1:
            raise ValueError(f"k_test must be >= 1, got {k_test}")
        self.pair_scorer = pair_scorer
        self.k_test = k_test
        self.pairs_scored = 0

    def __call__(self, scores: torch.Tensor, queries: torch.Tensor, to_pairs: PairIndexer) -> torch.Tensor:
        """Gold ranks ``[Q]`` after re-ranking; scores ``[Q, C]``; query q's gold candidate is ``queries[q]``.

        Only queries whose gold item is in their top ``k_test`` are sent to the pair scorer.
        """
        first_stage = gold_ranks(scores, queries)
        k = min(self.k_test, scores.shape[1])
        rerank = (first_stage < k).nonzero()[:, 0]
        if rerank.numel() == 0:
            return first_stage
        candidates = top_k_candidates(scores[rerank], k)
        gold = queries.to(scores.device)[rerank]
        image_index, text_index = to_pairs(gold[:, None].expand(-1, k).reshape(-1), candidates.reshape(-1))
        logits = self.pair_scorer(image_index, text_index)
        if logits.shape != (rerank.numel() * k,):
            raise ValueError(
                f"the pair scorer returned shape {tuple(logits.shape)} for {rerank.numel() * k} pairs: it "
                "must return one ITM 'matches' logit per (image, text) pair, e.g. itm_logits[:, 1]"
            )
        self.pairs_scored += logits.numel()
        gold_position = (candidates == gold[:, None]).int().argmax(dim=1)
        ranks = first_stage.clone()
        ranks[rerank] = gold_ranks(logits.view(-1, k).to(scores.device), gold_position)
        return ranks
