"""The pair scorer of the two-stage protocol for CCR models: the fusion encoder's ITM "matches" logit.

Re-ranking scores many (image, text) pairs of few images and texts: each text is a candidate (or the
query) of about ``k_test`` pairs per direction, and so is each image. :class:`ModelPairScorer` therefore
runs every part of the fusion encoder that depends on one side only once per text or image, through the
fusion encoder's own pair API (:class:`~modeling_ccr.modeling_ccr.CCRFusionEncoder`):

- per text: the text encoder (once per split, cached), the first fusion layer's self-attention and its
  cross-attention queries;
- per image: every fusion layer's cross-attention keys and values (once per split);
- per pair: the cross-attention itself and what follows it; in the last fusion layer only the CLS row,
  the one the ITM head reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..modeling_ccr import trim_padding
from .encode import length_sorted_batches

MAX_CACHED_TEXT_BYTES = 2 * 1024**3  # text encoder states kept in memory for re-ranking (float32, CPU)


class EncodedTexts:
    """The N*K captions tokenised once, and their text encoder states cached when they fit.

    ``input_ids`` / ``attention_mask`` ``[T, L]``; ``cached`` text states ``[T, L, H]`` (float32, CPU) when
    they fit in ``max_cached_bytes``, else None (then :meth:`states` encodes the texts asked for). Texts are
    encoded in batches of about the same length (:func:`~modeling_ccr.evaluation.encode.length_sorted_batches`);
    the states at padding positions mean nothing (zeros past the longest text of a batch; the fusion encoder
    masks them).
    """

    def __init__(self, model, processor, texts: Sequence[str], batch_size: int, max_cached_bytes: int):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.batch_size = batch_size
        encoded = processor(text=list(texts), return_tensors="pt")
        self.input_ids = encoded["input_ids"]
        self.attention_mask = encoded["attention_mask"]
        n_texts, length = self.input_ids.shape
        state_bytes = n_texts * length * model.config.text_config.hidden_size * 4
        self.cached = self._encode(torch.arange(n_texts)) if state_bytes <= max_cached_bytes else None

    @torch.inference_mode()
    def _encode(self, text_index: torch.Tensor) -> torch.Tensor:
        """Text encoder states ``[len(text_index), L, H]`` (float32, CPU), in batches of about one length."""
        device = self.model.device
        ids, mask = self.input_ids[text_index], self.attention_mask[text_index]
        states = torch.zeros(*ids.shape, self.model.config.text_config.hidden_size)
        for rows, columns in length_sorted_batches(mask, self.batch_size):
            kept = columns.nonzero().squeeze(1)
            states[rows[:, None], kept] = self.model.encode_text(ids[rows][:, kept].to(device),
                                                                 mask[rows][:, kept].to(device)).float().cpu()
        return states

    def states(self, text_index: torch.Tensor) -> torch.Tensor:
        """Text encoder states ``[M, L, H]`` (float32, CPU) of the texts ``text_index [M]`` (CPU, long)."""
        if self.cached is not None:
            return self.cached[text_index]
        distinct, position = torch.unique(text_index, return_inverse=True)
        return self._encode(distinct)[position]

    @torch.inference_mode()
    def embeddings(self) -> torch.Tensor:
        """The dual encoder's L2-normalised embeddings ``[T, D]`` (float32, CPU) of all T texts, projected
        from the cached states (the text encoder does not run again); requires ``cached``."""
        if self.cached is None:
            raise ValueError("the text states are not cached (they exceed max_cached_bytes): encode the texts instead")
        device, dtype = self.model.device, self.model.dtype
        return torch.cat([
            self.model.project_text_states(self.cached[i : i + self.batch_size].to(device, dtype),
                                           self.attention_mask[i : i + self.batch_size].to(device)).float().cpu()
            for i in range(0, self.cached.shape[0], self.batch_size)
        ])


class ModelPairScorer:
    """(image index, text index) pairs -> the ITM "matches" logit ``model.itm_logits(...)[:, 1]``.

    The pairs of one call (all the queries of a block, see :class:`~modeling_ccr.evaluation.rerank.
    TwoStageReranker`) are deduplicated, sorted by text length and text, and scored ``batch_size`` at a time,
    so each batch holds few texts of similar length; see the module docstring for what runs once per text,
    per image and per pair. Equal to running ``model.itm_logits`` on each pair up to float rounding.

    Args:
        model: a CCR model (``encode_text``, ``fusion``, ``itm_head``) in eval mode.
        processor: its ``CCRProcessor``; every text is tokenised once, up front.
        image_tokens: ``[N, P, Cv]`` image tokens of all N images (``model.get_image_tokens``), any device.
            The cross-attention keys and values of all of them are computed up front and kept on the model's
            device: ``num_fusion_layers * 2 * N * P * H`` values (about the size of the image tokens).
        texts: the N*K captions, image-major (row ``j*K + l`` = image j, language l), or those captions
            already encoded (an :class:`EncodedTexts`, which then keeps its own batch size and cache).
        batch_size: pairs per fusion pass (and texts, when encoding).
        max_cached_bytes: memory allowed for the text states of all texts (float32, on the CPU).
    """

    def __init__(
        self,
        model,
        processor,
        image_tokens: torch.Tensor,
        texts: Sequence[str] | EncodedTexts,
        batch_size: int = 256,
        max_cached_bytes: int = MAX_CACHED_TEXT_BYTES,
    ):
        self.model = model
        self.texts = texts if isinstance(texts, EncodedTexts) else EncodedTexts(model, processor, texts, batch_size,
                                                                                 max_cached_bytes)
        self.batch_size = batch_size
        self.num_images = image_tokens.shape[0]
        self.memory = self._image_memory(image_tokens)
        self.image_embeds = self._image_embeds(image_tokens) if model.config.itm_residual else None
        self.text_length = self.texts.attention_mask.sum(dim=1)

    @torch.inference_mode()
    def _image_memory(self, image_tokens: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per fusion layer, the cross-attention (keys, values) of every image, each ``[N, heads, P, H/heads]``
        (:meth:`CCRFusionEncoder.image_memory`, ``batch_size`` images at a time)."""
        device, dtype = self.model.device, self.model.dtype
        blocks = [self.model.fusion.image_memory(image_tokens[i : i + self.batch_size].to(device, dtype))
                  for i in range(0, image_tokens.shape[0], self.batch_size)]
        return [tuple(torch.cat(parts) for parts in zip(*layer, strict=True)) for layer in zip(*blocks, strict=True)]

    @torch.inference_mode()
    def _image_embeds(self, image_tokens: torch.Tensor) -> torch.Tensor:
        """The dual encoder's image embeddings ``[N, D]`` (on the model's device), which a residual ITM head
        reads beside the fusion CLS (``config.itm_residual``)."""
        device, dtype = self.model.device, self.model.dtype
        return torch.cat([self.model.project_image_tokens(image_tokens[i : i + self.batch_size].to(device, dtype))
                          for i in range(0, image_tokens.shape[0], self.batch_size)])

    @torch.inference_mode()
    def _score_batch(self, image_index: torch.Tensor, text_index: torch.Tensor) -> torch.Tensor:
        """ITM "matches" logits ``[M]`` (float32, CPU) of one batch of pairs (CPU long indices ``[M]``): the
        fusion encoder over the batch's distinct texts, CLS row only in its last layer."""
        device, dtype = self.model.device, self.model.dtype
        distinct, position = torch.unique(text_index, return_inverse=True)
        mask, states = trim_padding(self.texts.attention_mask[distinct], self.texts.states(distinct))
        states, mask, image_index = states.to(device=device, dtype=dtype), mask.to(device), image_index.to(device)
        position = position.to(device)
        fused = self.model.fusion(states, mask, self.memory, image_index, position, cls_only=True)
        similarity = None
        if self.image_embeds is not None:
            similarity = self.model.itm_similarity(self.image_embeds, self.model.project_text_states(states, mask),
                                                   image_index, position)
        return self.model.itm_head(fused[:, 0], similarity)[:, 1].float().cpu()

    def __call__(self, image_index: torch.Tensor, text_index: torch.Tensor) -> torch.Tensor:
        """ITM "matches" logits ``[M]`` (float32, CPU) of the pairs (image_index[m], text_index[m])."""
        image_index, text_index = image_index.cpu(), text_index.cpu()
        pairs, inverse = torch.unique(text_index * self.num_images + image_index, return_inverse=True)
        texts, images = pairs // self.num_images, pairs % self.num_images
        # By length, then text: a batch holds few distinct texts, padded to about the same length.
        order = torch.argsort(self.text_length[texts] * len(self.text_length) + texts, stable=True)
        logits = torch.empty(pairs.numel())
        for start in range(0, order.numel(), self.batch_size):
            batch = order[start : start + self.batch_size]
            logits[batch] = self._score_batch(images[batch], texts[batch])
        return logits[inverse]
