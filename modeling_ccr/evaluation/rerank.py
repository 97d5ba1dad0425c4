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

Two ways to turn the ITM logit into the second-stage score (``mode``):
- ``"replace"`` (the paper's protocol): the ITM "matches" logit replaces the similarity;
- ``"combine"``: similarity + ``rerank_weight`` * ITM logit, with ``rerank_weight`` chosen on a validation
  split (:func:`~modeling_ccr.evaluation.pipeline.choose_rerank_weight`). Where the fusion encoder is weaker
  than the dual encoder (a small training budget) "replace" can lower recall; "combine" with a weight chosen
  on validation keeps what each knows.

Consequences used below: a query whose gold item is outside its top ``k_test`` keeps its first-stage rank
(>= k_test) and needs no ITM call; otherwise its rank is the gold item's position among the ``k_test``
ITM logits (ties: lower candidate index first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..configuration_ccr import RERANKING_MODES, check_reranking
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


RERANK_MODES = ("replace", "combine")
DEFAULT_RERANK_WEIGHT_GRID = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
PAPER_K_TEST = 128  # candidates the paper re-ranks per query (256 on COCO)


@dataclass(frozen=True)
class Reranking:
    """How one run ranks: ``mode`` None (similarity only), ``"replace"`` or ``"combine"`` over the top
    ``k_test`` candidates, ``rerank_weight``, the ITM logit's weight (``"combine"`` only), and ``source``,
    where that came from."""

    mode: str | None
    k_test: int | None
    rerank_weight: float | None
    source: str

    def describe(self) -> str:
        """One line, e.g. "combine over the top 16, ITM weight 0.05 (the model's saved choice: ...)"."""
        if self.mode is None:
            return f"similarity only ({self.source})"
        weight = f", ITM weight {self.rerank_weight:g}" if self.mode == "combine" else ""
        return f"{self.mode} over the top {self.k_test}{weight} ({self.source})"


def resolve_reranking(config, mode: str | None = None, k_test: int | None = None,
                      rerank_weight: float | None = None) -> Reranking:
    """The ranking of a run: what is given wins; the rest comes from ``config.reranking`` (the model's saved
    choice, read by :func:`~modeling_ccr.configuration_ccr.check_reranking`, so an entry saved with the old
    ``"itm_weight"`` key counts too), else from the paper ("replace" over the top 128; ITM weight 1 for
    "combine"). ``mode``: ``"similarity"``, ``"replace"``, ``"combine"`` or None (the saved mode, else
    "replace"); a saved ``"similarity"`` choice with a ``k_test`` or ``rerank_weight`` given re-ranks
    ("combine" with a weight, else "replace")."""
    saved = check_reranking(getattr(config, "reranking", None)) or {}
    given = mode is not None or k_test is not None or rerank_weight is not None
    if mode is None:
        mode = saved.get("mode", "replace")
        if mode == "similarity" and given:
            mode = "combine" if rerank_weight is not None else "replace"
    if mode not in RERANKING_MODES:
        raise ValueError(f"unknown re-ranking mode {mode!r}: use {', '.join(RERANKING_MODES)}")
    saved_weight = saved.get("rerank_weight") if saved.get("mode") == "combine" else None
    used_saved = (not given and bool(saved)) or (mode != "similarity" and k_test is None and "k_test" in saved) or (
        mode == "combine" and rerank_weight is None and saved_weight is not None)
    note = "the model's saved choice" + (f": {saved['chosen_on']}" if saved.get("chosen_on") else "")
    source = note if used_saved and not given else ("the paper's protocol" if not given else "as asked")
    if used_saved and given:
        source += f"; the rest from {note}"
    if mode == "similarity":
        return Reranking(None, None, None, source)
    k_test = k_test if k_test is not None else saved.get("k_test", PAPER_K_TEST)
    if mode == "combine":
        if rerank_weight is None:
            rerank_weight = saved_weight if saved_weight is not None else 1.0
    return Reranking(mode, k_test, rerank_weight if mode == "combine" else None, source)


class CachedPairScorer:
    """A pair scorer that remembers every pair's logit, so re-ranking the same split again (for example with
    another ``rerank_weight``) runs the fusion encoder only on pairs it has not seen."""

    def __init__(self, pair_scorer: PairScorer, num_texts: int):
        self.pair_scorer = pair_scorer
        self.num_texts = num_texts
        self.logits: dict[int, float] = {}

    def __call__(self, image_index: torch.Tensor, text_index: torch.Tensor) -> torch.Tensor:
        keys = (image_index.cpu() * self.num_texts + text_index.cpu()).tolist()
        new = sorted({key for key in keys if key not in self.logits})
        if new:
            new_keys = torch.tensor(new)
            scores = self.pair_scorer(new_keys // self.num_texts, new_keys % self.num_texts)
            self.logits.update(zip(new, scores.tolist(), strict=True))
        return torch.tensor([self.logits[key] for key in keys], dtype=torch.float32)


class TwoStageReranker:
    """Second stage for :func:`~modeling_ccr.evaluation.ranks.retrieval_ranks`: ITM re-ranking of the top k.

    Args:
        pair_scorer: maps (image indices ``[M]``, text indices ``[M]``) to the ITM "matches" logit ``[M]``
            (``itm_logits[:, 1]``), e.g. :class:`~modeling_ccr.evaluation.itm.ModelPairScorer`.
        k_test: candidates re-ranked per query (128 in the paper; 256 on COCO). Capped at the number of
            candidates.
        mode: ``"replace"`` (the paper) or ``"combine"`` (similarity + ``rerank_weight`` * logit).
        rerank_weight: the logit's weight in ``"combine"`` mode.
    """

    def __init__(self, pair_scorer: PairScorer, k_test: int = 128, mode: str = "replace",
                 rerank_weight: float = 1.0):
        if k_test < 1:
            raise ValueError(f"k_test must be >= 1, got {k_test}")
        if mode not in RERANK_MODES:
            raise ValueError(f"unknown re-ranking mode {mode!r}: use one of {', '.join(RERANK_MODES)}")
        self.pair_scorer = pair_scorer
        self.k_test = k_test
        self.mode = mode
        self.rerank_weight = float(rerank_weight)
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
        second_stage = logits.view(-1, k).to(scores.device)
        if self.mode == "combine":
            second_stage = scores[rerank].gather(1, candidates).float() + self.rerank_weight * second_stage
        gold_position = (candidates == gold[:, None]).int().argmax(dim=1)
        ranks = first_stage.clone()
        ranks[rerank] = gold_ranks(second_stage, gold_position)
        return ranks
