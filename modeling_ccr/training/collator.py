"""Batches for CCR training: B images and B*K image-major captions.

Rows come from a dataset in the common schema (``image``, ``captions``: language -> caption, optional
``keywords``: language -> list of strings), checked where it was loaded; the processor the collator calls
refuses a missing or blank caption, naming the image and the language.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from ..processing_ccr import CCRProcessor


class CCRDataCollator:
    """Turn dataset rows into ``pixel_values [B, 3, H, W]`` and image-major ``input_ids [B*K, L]``.

    Row ``j*K + k`` of the texts is the caption of image j in ``languages[k]``; ``image_ids`` holds the
    rows' ``id`` values when they have one.

    Args:
        processor: the model's :class:`CCRProcessor`.
        languages: the K language codes, in order.
        keyword_probability: with this probability a caption is replaced by one of its language's keywords
            (CLDR ``default`` lists), a light augmentation; 0 disables it.
        seed: seeds the augmentation.
        images_cached: optional test ``image_ids -> bool``, e.g. the training objective's
            :meth:`~modeling_ccr.training.feature_cache.FrozenFeatureCache.holds_images`: when it is true for
            a batch's ids, the batch carries ``pixel_values=None`` and its images are not decoded or resized
            (the objective reads their features from its cache), which saves a training step on a CPU
            about a tenth of its time.
    """

    def __init__(self, processor: CCRProcessor, languages: Sequence[str], keyword_probability: float = 0.0,
                 seed: int = 0, images_cached: Callable[[list[str]], bool] | None = None):
        if not languages:
            raise ValueError("languages is empty: give the K language codes to train on")
        if not 0.0 <= keyword_probability <= 1.0:
            raise ValueError(f"keyword_probability must lie in [0, 1], got {keyword_probability}")
        self.processor = processor
        self.languages = list(languages)
        self.keyword_probability = keyword_probability
        self.random = random.Random(seed)
        self.images_cached = images_cached

    def _caption(self, row: dict[str, Any], language: str) -> str | None:
        caption = row["captions"].get(language)
        if self.keyword_probability and self.random.random() < self.keyword_probability:
            keywords = [k for k in ((row.get("keywords") or {}).get(language) or []) if k and k.strip()]
            if keywords:
                return self.random.choice(keywords)
        return caption

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        captions = [{language: self._caption(row, language) for language in self.languages} for row in rows]
        image_ids = [str(row["id"]) for row in rows] if all("id" in row for row in rows) else None
        if image_ids is not None and self.images_cached is not None and self.images_cached(image_ids):
            batch = {"pixel_values": None, **self.processor(captions=captions)}
        else:
            batch = dict(self.processor(images=[row["image"] for row in rows], captions=captions))
        if image_ids is not None:
            batch["image_ids"] = image_ids  # keys the objective's image-token cache
        return batch
