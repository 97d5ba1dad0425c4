"""Straightforward loop implementations of the retrieval metrics, to cross-check the vectorised code.

One Python iteration per query: sort the candidates (stable, descending, so equal scores keep index
order), find the gold item's position; the pair scorer runs the whole fusion encoder on each batch of
pairs in the order given. Slow by design; used by the tests and the ``scripts/bench_*.py`` benchmarks.
Layout as in :mod:`~modeling_ccr.evaluation.ranks`: similarity ``[N, N*K]`` image x text, texts
image-major.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from modeling_ccr.evaluation.itm import EncodedTexts
from modeling_ccr.evaluation.rerank import PairScorer


def _position_of(order: np.ndarray, item: int) -> int:
    return int(np.flatnonzero(order == item)[0])


def _first_stage_order(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-scores, kind="stable")


def _query_scores(similarity: np.ndarray, num_languages: int, direction: str, query: int, language: int):
    """Scores of one query over its N candidates and the (image, text) index of each pair."""
    num_images = similarity.shape[0]
    candidates = np.arange(num_images)
    if direction == "tr":
        texts = candidates * num_languages + language
        return similarity[query, language::num_languages], np.full(num_images, query), texts
    text = query * num_languages + language
    return similarity[:, text], candidates, np.full(num_images, text)


def reference_ranks(
    similarity: np.ndarray,
    num_languages: int,
    k_test: int | None = None,
    pair_scorer: PairScorer | None = None,
) -> dict[str, np.ndarray]:
    """0-based gold ranks ``{"tr": [N, K], "ir": [N, K]}``, optionally after two-stage re-ranking.

    With ``k_test`` and ``pair_scorer``: the top ``k_test`` candidates of the first-stage order are
    re-ordered by their ITM logit (ties: lower index first) and placed first; the others follow in
    first-stage order.
    """
    num_images = similarity.shape[0]
    ranks = {direction: np.zeros((num_images, num_languages), dtype=np.int64) for direction in ("tr", "ir")}
    for direction, table in ranks.items():
        for query in range(num_images):
            for language in range(num_languages):
                scores, images, texts = _query_scores(similarity, num_languages, direction, query, language)
                order = _first_stage_order(scores)
                if pair_scorer is not None and k_test is not None:
                    top = np.sort(order[:k_test])
                    logits = pair_scorer(torch.as_tensor(images[top]), torch.as_tensor(texts[top])).numpy()
                    order = np.concatenate([top[_first_stage_order(logits)], order[k_test:]])
                table[query, language] = _position_of(order, query)
    return ranks


def reference_recall(ranks: np.ndarray, k: int) -> list[float]:
    """Percentage of instances whose gold rank is < k, per language (ranks ``[N, K]``)."""
    num_images, num_languages = ranks.shape
    recalls = []
    for language in range(num_languages):
        hits = 0
        for instance in range(num_images):
            if ranks[instance, language] < k:
                hits += 1
        recalls.append(100.0 * hits / num_images)
    return recalls


def reference_mrv(ranks: np.ndarray, variance: bool = False) -> float:
    """Mean over instances of the population std (or variance) of the gold rank across languages."""
    total = 0.0
    for row in ranks.tolist():
        mean = sum(row) / len(row)
        spread = sum((rank - mean) ** 2 for rank in row) / len(row)
        total += spread if variance else math.sqrt(spread)
    return total / len(ranks)


class ReferencePairScorer:
    """(image index, text index) pairs -> ``model.itm_logits(...)[:, 1]``, in batches of pairs as given: the
    straightforward pair scorer that :class:`~modeling_ccr.evaluation.itm.ModelPairScorer` replaced, kept
    as its reference (the tests compare their ranks; ``scripts/bench_speed.py`` their speed).

    Every text goes through the text encoder once: up front for all texts when their states fit in
    ``max_cached_bytes`` (the pairs then only run the fusion encoder), else once per batch for the
    distinct texts of that batch. The cross-attention keys and values of an image are computed once per
    batch of pairs, however many of its pairs the batch holds.

    Args:
        model: a CCR model (``encode_text``, ``itm_logits(image_tokens, input_ids, attention_mask, text_states)``).
        processor: its ``CCRProcessor``; every text is tokenised once, up front.
        image_tokens: ``[N, P, Cv]`` image tokens of all N images (``model.get_image_tokens``), any device.
        texts: the N*K captions, image-major (row ``j*K + l`` = image j, language l).
        batch_size: pairs (and texts, when encoding) per forward pass.
        max_cached_bytes: memory allowed for the text states of all texts (float32, on the CPU).
    """

    def __init__(
        self,
        model,
        processor,
        image_tokens: torch.Tensor,
        texts: Sequence[str],
        batch_size: int = 64,
        max_cached_bytes: int = 2 * 1024**3,
    ):
        self.model = model
        self.image_tokens = image_tokens
        self.batch_size = batch_size
        self.texts = EncodedTexts(model, processor, texts, batch_size, max_cached_bytes)

    @torch.inference_mode()
    def __call__(self, image_index: torch.Tensor, text_index: torch.Tensor) -> torch.Tensor:
        """ITM "matches" logits ``[M]`` (float32, CPU) of the pairs (image_index[m], text_index[m])."""
        device = self.model.device
        dtype = self.model.dtype
        logits = []
        for start in range(0, image_index.numel(), self.batch_size):
            images = image_index[start : start + self.batch_size].cpu()
            texts = text_index[start : start + self.batch_size].cpu()
            states = self.texts.states(texts)
            mask = self.texts.attention_mask[texts]
            keep = mask.any(dim=0)  # drop columns that are padding in every text of this batch
            distinct_images, image_position = torch.unique(images, return_inverse=True)
            batch_logits = self.model.itm_logits(
                self.image_tokens[distinct_images].to(device),
                None,
                mask[:, keep].to(device),
                text_states=states[:, keep].to(device=device, dtype=dtype),
                image_index=image_position.to(device),
            )
            logits.append(batch_logits[:, 1].float().cpu())
        return torch.cat(logits) if logits else torch.zeros(0)
