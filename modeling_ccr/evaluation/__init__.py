"""Retrieval evaluation: Recall@K per language, mean / median rank, MRV, two-stage ITM re-ranking.

- :func:`evaluate_retrieval` (``pipeline``): a CCR model on a benchmark, end to end.
- :func:`retrieval_ranks` / :func:`retrieval_ranks_from_similarity` (``ranks``): vectorised, chunked gold
  ranks from embeddings or a score matrix; :class:`TwoStageReranker` (``rerank``) adds the ITM stage
  through any pair-scoring callable.
- :func:`retrieval_metrics` (``metrics``); ``report`` writes JSON, Markdown and plots; ``cli`` is
  ``ccr evaluate``.
"""

from .distributed import DistributedContext, setup_distributed
from .metrics import RECALL_KS, recall_at_k, retrieval_metrics
from .pipeline import RetrievalEvaluation, evaluate_retrieval
from .ranks import RetrievalRanks, gold_ranks, retrieval_ranks, retrieval_ranks_from_similarity
from .rerank import TwoStageReranker, top_k_candidates

__all__ = [
    "RECALL_KS",
    "DistributedContext",
    "RetrievalEvaluation",
    "RetrievalRanks",
    "TwoStageReranker",
    "evaluate_retrieval",
    "gold_ranks",
    "recall_at_k",
    "retrieval_metrics",
    "retrieval_ranks",
    "retrieval_ranks_from_similarity",
    "setup_distributed",
    "top_k_candidates",
]
