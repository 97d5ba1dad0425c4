"""End-to-end retrieval evaluation of a CCR model on a benchmark, from Python.

``evaluate_retrieval(model, processor, dataset)`` encodes the images and captions, ranks the gold item
of every query (TR and IR, per language), optionally re-ranks the top ``k_test`` with the ITM head, and
returns the metrics with the ranks. Inside a ``torch.distributed`` job (see ``distributed.py``) pass the
context: each process encodes and ranks its block of images and the results are gathered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evaluate_mrv.rank_variance import SpreadKind

from ..captions import check_captions, image_major_captions
from .distributed import DistributedContext
from .encode import EncodedBenchmark, encode_benchmark
from .itm import MAX_CACHED_TEXT_BYTES, EncodedTexts, ModelPairScorer
from .metrics import retrieval_metrics
from .ranks import RetrievalRanks, retrieval_ranks
from .rerank import DEFAULT_RERANK_WEIGHT_GRID, CachedPairScorer, TwoStageReranker


@dataclass
class RetrievalEvaluation:
    """Metrics (see :func:`~modeling_ccr.evaluation.metrics.retrieval_metrics`), 0-based ranks ``[N, K]``
    per direction, the K languages, and the ``k_test`` used (None: similarity only)."""

    metrics: dict
    ranks: RetrievalRanks
    languages: list[str]
    k_test: int | None


def _encode_all(model, processor, dataset, languages, context, batch_size, keep_tokens, encode_texts, progress):
    """Encode this process's images (and captions, with ``encode_texts``), then gather every process's
    embeddings (and tokens) in image order."""
    shard = encode_benchmark(
        model,
        processor,
        dataset,
        languages,
        rows=context.shard(len(dataset)),
        batch_size=batch_size,
        keep_image_tokens=keep_tokens,
        encode_texts=encode_texts,
        progress=progress,
    )
    return EncodedBenchmark(
        image_embeds=context.gather_rows(shard.image_embeds),
        text_embeds=None if shard.text_embeds is None else context.gather_rows(shard.text_embeds),
        image_tokens=None if shard.image_tokens is None else context.gather_rows(shard.image_tokens),
    )


def evaluate_retrieval(
    model,
    processor,
    dataset,
    *,
    languages: Sequence[str] | None = None,
    k_test: int | None = 128,
    rerank_mode: str = "replace",
    rerank_weight: float = 1.0,
    batch_size: int = 32,
    itm_batch_size: int = 256,
    chunk_size: int | None = None,
    mrv_kind: SpreadKind = "std",
    context: DistributedContext | None = None,
    progress: bool = False,
) -> RetrievalEvaluation:
    """Evaluate ``model`` on ``dataset`` (a ``datasets.Dataset`` in the common schema).

    Args:
        model, processor: a CCR model (on its device, in eval mode) and its processor.
        dataset: rows with ``image`` and ``captions`` (language -> caption). It is checked once, before
            anything is encoded: an image without a caption (missing, empty or blank) in one of the
            languages raises a ValueError naming the image and the language.
        languages: caption languages in layout order (default: the ``captions`` struct's fields).
        k_test: candidates per query re-ranked by the ITM head (capped at N); None ranks by similarity.
        rerank_mode, rerank_weight: how the ITM logit scores the top ``k_test``: ``"replace"`` (the paper) or
            ``"combine"`` (similarity + rerank_weight * logit); see :mod:`~modeling_ccr.evaluation.rerank`.
        batch_size: images per encoding step; itm_batch_size: pairs per ITM forward pass.
        chunk_size: images whose queries are scored at once (default: about 2**22 scores per block).
        mrv_kind: ``"std"`` (the paper's scale) or ``"variance"``.
        context: the distributed context (default: one process on the model's device).
        progress: show progress bars (pass False on all but one process).

    Every process returns the complete, gathered result.
    """
    prepared = PreparedEvaluation(model, processor, dataset, languages=languages, k_test=k_test,
                                  batch_size=batch_size, itm_batch_size=itm_batch_size, context=context,
                                  progress=progress)
    return prepared.evaluate(rerank_mode if k_test is not None else None, rerank_weight, chunk_size, mrv_kind)


def choose_rerank_weight(
    prepared: PreparedEvaluation, weights: Sequence[float] = DEFAULT_RERANK_WEIGHT_GRID
) -> tuple[float, dict[float, float]]:
    """The ``rerank_weight`` of ``"combine"`` re-ranking with the best mean recall on a prepared (validation)
    split, and the mean recall of every weight tried; ties go to the smaller weight, and weight 0 is the
    dual encoder alone. Every (query, candidate) pair goes through the fusion encoder once, whatever the
    number of weights."""
    if not weights:
        raise ValueError("weights is empty: give the rerank_weight values to try")
    if prepared.scorer is None:
        raise ValueError("the split was prepared without re-ranking (k_test=None): prepare it with a k_test")
    recall = {float(w): prepared.evaluate("combine", float(w)).metrics["mean_recall"] for w in weights}
    best = min(recall, key=lambda w: (-recall[w], w))
    return best, recall


def choose_reranking(
    prepared: PreparedEvaluation, name: str, weights: Sequence[float] = DEFAULT_RERANK_WEIGHT_GRID
) -> tuple[dict, float, dict[float, float]]:
    """The second stage with the best mean recall on a prepared (validation) split ``name``, as a CCR config's
    ``reranking`` entry (:func:`~modeling_ccr.configuration_ccr.check_reranking`): similarity only (the
    "combine" weight 0), "combine" with the best weight of ``weights`` (:func:`choose_rerank_weight`) or the
    paper's "replace"; ties go to the simpler (similarity, then the smaller weight, then "replace").
    Returns ``(entry, best "combine" weight, {weight: mean recall})``."""
    weight, recall = choose_rerank_weight(prepared, weights)
    replace = prepared.evaluate("replace").metrics["mean_recall"]
    baseline = recall[0.0] if 0.0 in recall else prepared.evaluate(None).metrics["mean_recall"]
    if replace > recall[weight]:
        choice, best = {"mode": "replace", "k_test": prepared.k_test}, replace
    elif weight == 0 or recall[weight] <= baseline:
        choice, best = {"mode": "similarity"}, baseline
    else:
        choice, best = {"mode": "combine", "k_test": prepared.k_test, "rerank_weight": weight}, recall[weight]
    choice["chosen_on"] = (f"{name}, mean recall {best:.2f} (similarity {baseline:.2f}, replace {replace:.2f}, "
                           f"combine with the best ITM weight {recall[weight]:.2f})")
    return choice, weight, recall


class PreparedEvaluation:
    """A split encoded once, with a pair scorer that remembers its ITM logits, ready to rank in several
    ways (similarity only, "replace" or "combine" re-ranking) without encoding or scoring pairs again.

    Arguments as :func:`evaluate_retrieval`; ``k_test=None`` prepares for similarity ranking only.
    """

    def __init__(self, model, processor, dataset, *, languages=None, k_test: int | None = 128, batch_size: int = 32,
                 itm_batch_size: int = 256, context: DistributedContext | None = None, progress: bool = False):
        self.languages = list(languages) if languages is not None else list(dataset.features["captions"])
        self.context = context or DistributedContext(device=model.device)
        if len(dataset) == 0:
            raise ValueError("the benchmark split has no images: choose another split or dataset")
        if len(dataset) < self.context.world_size:
            raise ValueError(
                f"the split has {len(dataset)} images but {self.context.world_size} processes were launched: "
                "launch at most as many processes as images"
            )
        if k_test is not None and k_test < 1:
            raise ValueError(f"k_test must be >= 1 (or None for similarity only), got {k_test}")
        captions = dataset["captions"]  # checked once here; the encoding loops trust them
        check_captions(captions, self.languages, lambda j: f"image {j}", "choose the languages with --languages")
        self.num_images = len(dataset)
        self.k_test = None if k_test is None else min(k_test, len(dataset))
        self.progress = progress
        # Re-ranking encodes every caption once for the fusion encoder; when those states are kept, the dual
        # encoder's text embeddings are projected from them instead of encoding the captions a second time.
        texts = None
        if k_test is not None:
            texts = EncodedTexts(model, processor, image_major_captions(captions, self.languages), itm_batch_size,
                                 MAX_CACHED_TEXT_BYTES)
        reuse_states = texts is not None and texts.cached is not None
        self.encoded = _encode_all(model, processor, dataset, self.languages, self.context, batch_size,
                                   k_test is not None, not reuse_states, progress)
        if reuse_states:
            self.encoded.text_embeds = texts.embeddings()
        self.scorer = None
        if texts is not None:
            scorer = ModelPairScorer(model, processor, self.encoded.image_tokens, texts, batch_size=itm_batch_size)
            self.scorer = CachedPairScorer(scorer, num_texts=texts.input_ids.shape[0])

    def evaluate(self, rerank_mode: str | None = "replace", rerank_weight: float = 1.0,
                 chunk_size: int | None = None, mrv_kind: SpreadKind = "std") -> RetrievalEvaluation:
        """Ranks and metrics; ``rerank_mode`` None ranks by similarity only (``k_test`` is then None)."""
        reranker = None
        if rerank_mode is not None:
            if self.scorer is None:
                raise ValueError("this split was prepared with k_test=None: it can only be ranked by similarity")
            reranker = TwoStageReranker(self.scorer, k_test=self.k_test, mode=rerank_mode,
                                         rerank_weight=rerank_weight)
        context = self.context
        shard_ranks = retrieval_ranks(
            self.encoded.image_embeds.to(context.device),
            self.encoded.text_embeds.to(context.device),
            len(self.languages),
            queries=context.shard(self.num_images),
            reranker=reranker,
            chunk_size=chunk_size,
            progress=self.progress,
        )
        ranks = RetrievalRanks(tr=context.gather_rows(shard_ranks.tr), ir=context.gather_rows(shard_ranks.ir))
        return RetrievalEvaluation(
            metrics=retrieval_metrics(ranks, self.languages, mrv_kind=mrv_kind),
            ranks=ranks,
            languages=self.languages,
            k_test=self.k_test if rerank_mode is not None else None,
        )
