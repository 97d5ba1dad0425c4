"""Batched encoding of a retrieval benchmark with a CCR model.

A benchmark is a ``datasets.Dataset`` in the common schema: ``id`` (string), ``image`` (``Image()``)
and ``captions`` (a struct language -> string, one caption per image and language). Texts come out
image-major: row ``j*K + l`` is the caption of image j in language l (l indexes ``languages``). The
captions are trusted: the loaders and :class:`~modeling_ccr.evaluation.pipeline.PreparedEvaluation` check
them where they enter (:func:`modeling_ccr.captions.check_captions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..captions import image_major_captions

TEXT_BATCH_SIZE = 64  # captions per text-encoder pass, of about the same length


def check_finite_embeddings(embeds, what: str, first_row: int = 0) -> None:
    """Refuse embeddings ``[N, D]`` (a tensor or an array) holding NaN or infinite values, naming the first
    such row as ``what`` number ``first_row + i``: written to an index or scored, they would match nothing.

    The model's weights and pixel values are checked where they enter, so such values come from the
    computation itself (a half-precision overflow, say).
    """
    finite = torch.isfinite(torch.as_tensor(embeds)).all(dim=1)
    if not finite.all():
        row = first_row + int((~finite).nonzero()[0])
        raise ValueError(
            f"the embedding of {what} {row} holds NaN or infinite values, so it would match nothing: the model "
            "computed them; run it in float32 (half precision can overflow)"
        )


@dataclass
class EncodedBenchmark:
    """Embeddings of a block of n images and their n*K captions (CPU tensors).

    ``image_embeds [n, D]`` and ``text_embeds [n*K, D]`` (image-major) are float32 and L2-normalised;
    ``text_embeds`` is None when the texts were not asked for; ``image_tokens [n, P, Cv]`` (the fusion
    encoder's image input, model dtype) only when asked for.
    """

    image_embeds: torch.Tensor
    text_embeds: torch.Tensor | None
    image_tokens: torch.Tensor | None = None


def length_sorted_batches(attention_mask: torch.Tensor, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of texts of about the same length: ``attention_mask [T, L]`` -> ``(rows [B], columns [L'])``
    pairs, rows sorted by length (at most ``batch_size`` each) and the columns that are not padding in
    every one of those rows (bool ``[L]``), so a batch is encoded at its own longest length, not the longest
    of all T. Padding positions never change the states of real tokens: the result is the same as one
    batch padded to L, up to float rounding."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = torch.argsort(attention_mask.sum(dim=1), stable=True)
    return [(rows, attention_mask[rows].any(dim=0)) for rows in order.split(batch_size)]


def text_features_by_length(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                            batch_size: int) -> torch.Tensor:
    """L2-normalised text embeddings ``[T, D]`` (float32, CPU) of ``input_ids`` / ``attention_mask``
    ``[T, L]``, encoded in :func:`length_sorted_batches`."""
    device = model.device
    features = torch.empty(input_ids.shape[0], model.config.projection_dim)
    for rows, columns in length_sorted_batches(attention_mask, batch_size):
        features[rows] = model.get_text_features(input_ids[rows][:, columns].to(device),
                                                 attention_mask[rows][:, columns].to(device)).float().cpu()
    return features


@torch.inference_mode()
def encode_benchmark(
    model,
    processor,
    dataset,
    languages: Sequence[str],
    *,
    rows: range | None = None,
    batch_size: int = 32,
    keep_image_tokens: bool = False,
    encode_texts: bool = True,
    progress: bool = False,
) -> EncodedBenchmark:
    """Encode images ``rows`` of ``dataset`` (default all) and their captions in ``languages``.

    Args:
        model: a CCR model (``get_image_tokens``, ``project_image_tokens``, ``get_text_features``); it runs
            on its own device.
        processor: the model's ``CCRProcessor``.
        dataset: a benchmark in the common schema (``dataset[a:b]`` gives ``image`` and ``captions``).
        languages: the K caption languages, in the order of the text layout.
        rows: a contiguous range of image indices (a shard).
        batch_size: images per step (each step also encodes their ``batch_size * K`` captions, in
            batches of ``TEXT_BATCH_SIZE`` captions of about the same length, see :func:`length_sorted_batches`).
        keep_image_tokens: also return the image tokens, needed for ITM re-ranking.
        encode_texts: False leaves the captions out (``text_embeds`` None), for a caller that has their
            encoder states already (the re-ranker's :class:`~modeling_ccr.evaluation.itm.EncodedTexts`).
        progress: show a progress bar.
    """
    rows = range(len(dataset)) if rows is None else rows
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device, dtype = model.device, model.dtype
    image_embeds, text_embeds, image_tokens = [], [], []
    with tqdm(total=len(rows), desc="encoding", unit="image", disable=not progress) as bar:
        for start in range(rows.start, rows.stop, batch_size):
            stop = min(start + batch_size, rows.stop)
            batch = dataset[start:stop]
            images = processor(images=list(batch["image"]), return_tensors="pt")
            tokens = model.get_image_tokens(images["pixel_values"].to(device, dtype))
            image_embeds.append(model.project_image_tokens(tokens).float().cpu())
            if keep_image_tokens:
                image_tokens.append(tokens.cpu())
            if encode_texts:
                encoded = processor(text=image_major_captions(batch["captions"], languages), return_tensors="pt")
                text_embeds.append(text_features_by_length(model, encoded["input_ids"], encoded["attention_mask"],
                                                           TEXT_BATCH_SIZE))
            bar.update(stop - start)
    if not image_embeds:
        raise ValueError(f"no images to encode in rows {rows}: the benchmark split is empty")
    return EncodedBenchmark(
        image_embeds=torch.cat(image_embeds),
        text_embeds=torch.cat(text_embeds) if encode_texts else None,
        image_tokens=torch.cat(image_tokens) if keep_image_tokens else None,
    )
