"""Recall@K, mean / median rank and MRV from gold ranks.

Ranks come in as 0-based ``[N, K]`` arrays (instance x language). Recall@k is the percentage of
instances whose gold item ranks < k. Mean and median rank are reported 1-based (1 = retrieved first),
as is usual for MnR / MedR. MRV uses :func:`evaluate_mrv.mean_rank_variance` (shift-invariant, so the
rank base does not matter); it is undefined for a single language and reported as ``None`` then.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from evaluate_mrv.rank_variance import SpreadKind, mean_rank_per_language, mean_rank_variance

from .ranks import DIRECTIONS, RetrievalRanks

RECALL_KS: tuple[int, ...] = (1, 5, 10)


def recall_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """Recall@k in percent per language: ranks ``[N, K]`` (0-based) -> ``[K]``."""
    return 100.0 * (np.asarray(ranks) < k).mean(axis=0)


def direction_metrics(ranks: np.ndarray, languages: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per-language ``{"r1", "r5", "r10", "mean_rank", "median_rank"}`` of one direction; ranks ``[N, K]``."""
    ranks = np.asarray(ranks)
    if ranks.ndim != 2 or ranks.shape[1] != len(languages):
        raise ValueError(
            f"got ranks of shape {ranks.shape} for {len(languages)} languages: need [N, K] with one column "
            "per language, in the order of the language list"
        )
    recalls = {f"r{k}": recall_at_k(ranks, k) for k in RECALL_KS}
    mean_rank = mean_rank_per_language(ranks) + 1.0
    median_rank = np.median(ranks, axis=0) + 1.0
    return {
        language: {
            **{name: float(values[index]) for name, values in recalls.items()},
            "mean_rank": float(mean_rank[index]),
            "median_rank": float(median_rank[index]),
        }
        for index, language in enumerate(languages)
    }


def retrieval_metrics(
    ranks: RetrievalRanks, languages: Sequence[str], mrv_kind: SpreadKind = "std"
) -> dict:
    """All metrics of a retrieval run.

    Returns ``{"tr": {language: {...}}, "ir": {language: {...}}, "mean_recall": float,
    "mrv": {"tr": float | None, "ir": float | None}}``. ``mean_recall`` averages R@1/5/10 of both
    directions over all languages (the paper's "mean of the six", per language, then averaged).
    """
    arrays = {direction: _as_numpy(getattr(ranks, direction)) for direction in DIRECTIONS}
    result: dict = {direction: direction_metrics(arrays[direction], languages) for direction in DIRECTIONS}
    recalls = [
        values[f"r{k}"]
        for direction in DIRECTIONS
        for values in result[direction].values()
        for k in RECALL_KS
    ]
    result["mean_recall"] = float(np.mean(recalls))
    single_language = len(languages) < 2
    result["mrv"] = {
        direction: None if single_language else mean_rank_variance(arrays[direction], kind=mrv_kind)
        for direction in DIRECTIONS
    }
    return result


def _as_numpy(ranks: torch.Tensor | np.ndarray) -> np.ndarray:
    return ranks.cpu().numpy() if isinstance(ranks, torch.Tensor) else np.asarray(ranks)
