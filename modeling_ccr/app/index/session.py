"""Loading an index with its model, and checking what a searcher types, for ``ccr search`` and the demo.

Bad input raises ValueError with a message fit to show a user as it is (what is wrong, what to do).
"""

from __future__ import annotations

import os
from pathlib import Path

from ...data import DEFAULT_LANGUAGES
from ...evaluation.rerank import resolve_reranking
from .gallery import GalleryIndex, model_fingerprint
from .search import search_text

MAX_QUERY_CHARS = 1000
MAX_K = 100


def check_query(query: str | None) -> str:
    """The stripped query; empty or over ``MAX_QUERY_CHARS`` characters raises ValueError."""
    text = (query or "").strip()
    if not text:
        raise ValueError("The query is empty: type a few words in any language, e.g. 'Katze' or '猫'.")
    if len(text) > MAX_QUERY_CHARS:
        raise ValueError(
            f"The query has {len(text):,} characters; queries are limited to {MAX_QUERY_CHARS:,} "
            "(the model reads only the first few dozen words): shorten it."
        )
    return text


def known_languages(index: GalleryIndex) -> list[str]:
    """The language codes a search accepts: the gallery's caption languages, else the model's ten."""
    return index.languages or list(DEFAULT_LANGUAGES)


def check_language(language: str | None, index: GalleryIndex) -> str:
    """A known language code (None or empty: the first known one); an unknown code raises ValueError."""
    known = known_languages(index)
    code = (language or "").strip().lower() or known[0]
    if code not in known:
        raise ValueError(f"Unknown language code {language!r}: use one of {', '.join(known)}.")
    return code


def check_counts(k: int, rerank: int) -> tuple[int, int]:
    """``k`` in [1, MAX_K] and ``rerank`` in [0, MAX_K] as ints, else ValueError."""
    if not 1 <= int(k) <= MAX_K or not 0 <= int(rerank) <= MAX_K:
        raise ValueError(f"Ask for 1 to {MAX_K} results and re-rank 0 to {MAX_K} of them (got k={k}, rerank={rerank}).")
    return int(k), int(rerank)


def load_model(model_dir: str | os.PathLike, device: str | None = None):
    """(model in eval mode on ``device``, processor) from a saved CCR model folder."""
    from transformers import AutoModel, AutoProcessor

    import modeling_ccr  # noqa: F401  (registers the CCR classes with the Auto classes)

    if not (Path(model_dir) / "config.json").is_file():
        raise ValueError(f"{model_dir} is not a saved model folder (no config.json): pass a CCR model folder")
    model = AutoModel.from_pretrained(model_dir).eval()
    if device is not None:
        model = model.to(device)
    return model, AutoProcessor.from_pretrained(model_dir)


def untrained_warning(model, model_dir: str | os.PathLike) -> str | None:
    """One line to show when ``model`` is untrained (``config.untrained``: new random projections and heads,
    as ``ccr build-default`` saves them), else None."""
    if not getattr(model.config, "untrained", False):
        return None
    return (f"{model_dir} is an untrained model (its projections and heads are random, as ccr build-default "
            "saves them): its results are at chance level; train it first (ccr train, or bash scripts/main_job.sh)")


def open_index(index_dir: str | os.PathLike, model_dir: str | os.PathLike | None = None, device: str | None = None):
    """(index, model, processor); the model folder defaults to the one recorded in the index and must
    still have the files the index was built with."""
    index = GalleryIndex(index_dir)
    model_dir = model_dir or index.manifest["model_dir"]
    if not Path(model_dir).is_dir():
        raise ValueError(f"the model folder {model_dir} of index {index_dir} is gone: pass --model")
    if model_fingerprint(model_dir) != index.model_fingerprint:
        raise ValueError(
            f"the model in {model_dir} changed since index {index_dir} was built: rebuild it with "
            f"'ccr index {model_dir} IMAGES --output {index_dir}'"
        )
    model, processor = load_model(model_dir, device)
    return index, model, processor


def text_to_image_rows(query, index: GalleryIndex, model, processor, language=None, k=10, rerank=None) -> list[dict]:
    """Checked text -> image search: rows ``{"index", "id", "path", "score", "similarity", "reranked",
    "caption"}`` best first (caption in ``language`` where the gallery has captions). ``rerank`` N re-ranks
    the top N (0: none) in the mode the model's config saved (:func:`saved_search_reranking`, else "replace");
    None: as the model's saved choice says (none without one)."""
    query = check_query(query)
    language = check_language(language, index)
    saved_n, mode, rerank_weight = saved_search_reranking(model.config)
    k, rerank = check_counts(k, saved_n if rerank is None else rerank)
    return [
        {"index": hit.index, "id": index.items[hit.index]["id"], "path": str(index.image_path(hit.index)),
         "score": hit.score, "similarity": hit.similarity, "reranked": hit.reranked,
         "caption": index.caption(hit.index, language)}
        for hit in search_text(model, processor, index, query, k=k, rerank=rerank, mode=mode,
                               rerank_weight=rerank_weight)
    ]


def saved_search_reranking(config) -> tuple[int, str, float]:
    """``(top N, mode, rerank_weight)`` of search re-ranking by the model's saved choice
    (``config.reranking``, written by ``ccr main-job``): its ``k_test`` capped at ``MAX_K`` and its mode;
    ``(0, "replace", 1.0)`` (similarity only; "replace" where N is asked for) for a model without one or whose
    choice is "similarity"."""
    ranking = resolve_reranking(config)
    if getattr(config, "reranking", None) is None or ranking.mode is None:
        return 0, "replace", 1.0
    weight = ranking.rerank_weight
    return min(ranking.k_test, MAX_K), ranking.mode, weight if weight is not None else 1.0
