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


@dataclass
class EncodedBenchmark:
    """Embeddings of a block of n images and their n*K captions (CPU tensors).

    ``image_embeds [n, D]`` and ``text_embeds [n*K, D]`` (image-major) are float32 and L2-normalised;
    ``image_tokens [n, P, Cv]`` (the fusion encoder's image input, model dtype) only when asked for.
    """

    image_embeds: torch.Tensor
    text_embeds: torch.Tensor
    image_tokens: torch.Tensor | None = None


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
        batch_size: images per step (each step also encodes their ``batch_size * K`` captions).
        keep_image_tokens: also return the image tokens, needed for ITM re-ranking.
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
            texts = image_major_captions(batch["captions"], languages)
            images = processor(images=list(batch["image"]), return_tensors="pt")
            tokens = model.get_image_tokens(images["pixel_values"].to(device, dtype))
            image_embeds.append(model.project_image_tokens(tokens).float().cpu())
            if keep_image_tokens:
                image_tokens.append(tokens.cpu())
            encoded = processor(text=texts, return_tensors="pt")
            features = model.get_text_features(
                encoded["input_ids"].to(device), encoded["attention_mask"].to(device)
            )
            text_embeds.append(features.float().cpu())
            bar.update(stop - start)
    if not image_embeds:
        raise ValueError(f"no images to encode in rows {rows}: the benchmark split is empty")
    return EncodedBenchmark(
        image_embeds=torch.cat(image_embeds),
        text_embeds=torch.cat(text_embeds),
        image_tokens=torch.cat(image_tokens) if keep_image_tokens else None,
    )
