"""The pair scorer of the two-stage protocol for CCR models: the fusion encoder's ITM "matches" logit."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class ModelPairScorer:
    """(image index, text index) pairs -> ``model.itm_logits(...)[:, 1]``, in batches.

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
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.image_tokens = image_tokens
        self.batch_size = batch_size
        encoded = processor(text=list(texts), return_tensors="pt")
        self.input_ids = encoded["input_ids"]
        self.attention_mask = encoded["attention_mask"]
        n_texts, length = self.input_ids.shape
        state_bytes = n_texts * length * model.config.text_config.hidden_size * 4
        self.text_states = self._encode(torch.arange(n_texts)) if state_bytes <= max_cached_bytes else None

    @torch.inference_mode()
    def _encode(self, text_index: torch.Tensor) -> torch.Tensor:
        """Text encoder states ``[len(text_index), L, H]`` (float32, CPU), in batches."""
        device = self.model.device
        states = [
            self.model.encode_text(
                self.input_ids[text_index[i : i + self.batch_size]].to(device),
                self.attention_mask[text_index[i : i + self.batch_size]].to(device),
            ).float().cpu()
            for i in range(0, text_index.numel(), self.batch_size)
        ]
        return torch.cat(states)

    @torch.inference_mode()
    def __call__(self, image_index: torch.Tensor, text_index: torch.Tensor) -> torch.Tensor:
        """ITM "matches" logits ``[M]`` (float32, CPU) of the pairs (image_index[m], text_index[m])."""
        device = self.model.device
        dtype = self.model.dtype
        logits = []
        for start in range(0, image_index.numel(), self.batch_size):
            images = image_index[start : start + self.batch_size].cpu()
            texts = text_index[start : start + self.batch_size].cpu()
            if self.text_states is not None:
                states = self.text_states[texts]
            else:
                distinct, position = torch.unique(texts, return_inverse=True)
                states = self._encode(distinct)[position]
            mask = self.attention_mask[texts]
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
