"""Searching a gallery index with a CCR model: text -> image (optionally re-ranked by the fusion encoder)
and image -> captions per language, with the gold caption's rank when the image is a benchmark item."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from evaluate_mrv.rank_variance import rank_spread_per_instance

from ...evaluation.ranks import gold_ranks
from ...evaluation.rerank import RERANK_MODES
from .gallery import GalleryIndex


@dataclass
class ImageHit:
    """One text -> image result: gallery item ``index``, its ``score`` (cosine similarity; when ``reranked``
    the ITM "matches" logit, or with "combine" similarity + ITM weight * logit) and the first-stage
    ``similarity``."""

    index: int
    score: float
    similarity: float
    reranked: bool


@torch.inference_mode()
def encode_queries(model, processor, queries: list[str]) -> torch.Tensor:
    """Texts ``[Q]`` -> L2-normalised text embeddings ``[Q, D]`` (float32, CPU)."""
    encoded = processor(text=queries, return_tensors="pt")
    features = model.get_text_features(encoded["input_ids"].to(model.device),
                                       encoded["attention_mask"].to(model.device))
    return features.float().cpu()


@torch.inference_mode()
def encode_images(model, processor, images: list) -> torch.Tensor:
    """Images ``[B]`` (PIL images or paths) -> L2-normalised image embeddings ``[B, D]`` (float32, CPU)."""
    pixels = processor(images=images, return_tensors="pt")["pixel_values"].to(model.device, model.dtype)
    return model.get_image_features(pixels).float().cpu()


@torch.inference_mode()
def candidate_image_tokens(model, processor, index: GalleryIndex, items: list[int]) -> torch.Tensor:
    """Image tokens ``[N, P, Cv]`` (on the model's device, in its dtype) of the N gallery ``items``: those the
    index keeps (``ccr index --keep-image-tokens``; float16, so rounded to 11 significant bits), else the
    images read, decoded and encoded again."""
    stored = index.stored_image_tokens(items)
    if stored is not None:
        return stored.to(model.device, model.dtype)
    pixels = processor(images=[str(index.image_path(i)) for i in items], return_tensors="pt")["pixel_values"]
    return model.get_image_tokens(pixels.to(model.device, model.dtype))


@torch.inference_mode()
def search_text(model, processor, index: GalleryIndex, query: str, k: int = 10, rerank: int = 0,
                mode: str = "replace", rerank_weight: float = 1.0) -> list[ImageHit]:
    """The top ``k`` gallery images for ``query``, best first.

    With ``rerank = N > 0`` the first-stage top ``max(k, N)`` are retrieved and the best N of them are
    re-scored by the fusion encoder (ITM "matches" logit: ``model.itm_logits`` of the query, encoded once,
    against the N images' tokens, :func:`candidate_image_tokens`): with ``mode`` "replace"
    the logit is their score, with "combine" similarity + ``rerank_weight`` * logit (as in evaluation,
    :mod:`modeling_ccr.evaluation.rerank`); they are ordered by that score (ties: higher similarity first)
    above the remaining candidates, which keep their similarity order.
    """
    if k < 1 or rerank < 0:
        raise ValueError(f"k must be >= 1 and rerank >= 0, got k={k}, rerank={rerank}")
    if mode not in RERANK_MODES:
        raise ValueError(f"unknown re-ranking mode {mode!r}: use one of {', '.join(RERANK_MODES)}")
    text = processor(text=[query], return_tensors="pt")
    ids, mask = text["input_ids"].to(model.device), text["attention_mask"].to(model.device)
    states = model.encode_text(ids, mask)  # [1, L, H]: for the first stage and for the fusion encoder
    scores, indices = index.search(model.project_text_states(states, mask).float().cpu(), max(k, rerank))
    hits = [ImageHit(int(i), float(s), float(s), False) for s, i in zip(scores[0], indices[0], strict=True) if i >= 0]
    n = min(rerank, len(hits))
    if n:
        tokens = candidate_image_tokens(model, processor, index, [hit.index for hit in hits[:n]])
        logits = model.itm_logits(tokens, None, mask, text_states=states,
                                  text_index=torch.zeros(n, dtype=torch.long, device=model.device))[:, 1]
        weight = rerank_weight if mode == "combine" else None
        rescored = [ImageHit(hit.index, float(logit) if weight is None else hit.similarity + weight * float(logit),
                             hit.similarity, True)
                    for hit, logit in zip(hits[:n], logits.float().cpu(), strict=True)]
        hits = sorted(rescored, key=lambda hit: -hit.score) + hits[n:]  # sorted() is stable
    return hits[:k]


@dataclass
class CaptionRanking:
    """Image -> text over a gallery's captions: per language, the ``top`` (item index, cosine) pairs, best
    first. ``gold_ranks`` ``{language: 0-based rank}`` of the item's own caption and ``rank_std`` (its
    share of MRV: the population std of those ranks) when the image is gallery item ``item``."""

    top: dict[str, list[tuple[int, float]]]
    item: int | None = None
    gold_ranks: dict[str, int] | None = None
    rank_std: float | None = None


def rank_captions(index: GalleryIndex, image_embed: torch.Tensor, top: int = 5,
                  item: int | None = None) -> CaptionRanking:
    """Rank the gallery's captions of each language for one image embedding ``[D]``.

    Captions are ``index.caption_embeds [n*K, D]``, image-major. With ``item`` (the image is gallery item
    ``item``) the gold caption's rank per language is computed as in evaluation (ties: lower index first).
    """
    if index.caption_embeds is None:
        raise ValueError("this gallery has no captions: build the index from a benchmark split to rank captions")
    num_languages = len(index.languages)
    per_language = index.caption_embeds.view(len(index), num_languages, -1)
    scores = torch.einsum("nkd,d->kn", per_language, image_embed.float())  # [K, n]
    values, order = scores.topk(min(top, len(index)), dim=1)
    ranking = CaptionRanking(top={
        language: [(int(i), float(v)) for v, i in zip(values[row], order[row], strict=True)]
        for row, language in enumerate(index.languages)
    })
    if item is not None:
        ranks = gold_ranks(scores, torch.full((num_languages,), item, dtype=torch.long))
        ranking.item = item
        ranking.gold_ranks = dict(zip(index.languages, ranks.tolist(), strict=True))
        if num_languages >= 2:
            ranking.rank_std = float(rank_spread_per_instance(ranks[None].numpy())[0])
    return ranking
