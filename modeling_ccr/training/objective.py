"""The pre-training objective of CCR: contrastive (1-to-K or a baseline style) + hard-negative ITM + MLM.

``CCRObjective`` is called by :meth:`CCRModel.forward` (``model(**batch, objective=objective)``), so a
DistributedDataParallel wrapper sees the whole step. Texts are image-major: row ``j*K + k`` of
``input_ids`` is caption k of image j.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ..losses import (
    CrossLingualContrastiveLoss,
    CrossModalContrastiveLoss,
    OneToKContrastiveLoss,
    build_itm_pairs,
    distributed_rank_and_world_size,
    itm_loss,
    mask_tokens_for_mlm,
    mlm_loss,
    sample_itm_triplets,
)
from ..losses.mlm import IGNORE_INDEX
from .feature_cache import FrozenFeatureCache, leading_frozen_layers

LOSS_STYLES = ("one-to-k", "cross-modal", "cross-lingual")
COMPONENTS = ("contrastive", "itm", "mlm")


class CCRObjective:
    """Sum of the weighted components; returns ``{"loss", "contrastive", "itm", "mlm", ...}`` (0-dim tensors).

    Args:
        loss_style: ``"one-to-k"`` (the paper), ``"cross-modal"`` (one sampled language per image, 1-to-1
            InfoNCE) or ``"cross-lingual"`` (image-English plus English-other InfoNCE).
        weighting: the 1-to-K weighting, ``"released"`` or ``"symmetric"``.
        weights: component weights, default 1 each (the paper: L = L_KCL + L_ITM + L_MLM); a zero weight
            skips that component's computation.
        english_index: position of English among the K languages (cross-lingual style).
        mask_token_id, special_token_ids, vocab_size: from the tokenizer, for MLM masking.
        mlm_probability, mlm_max_masks: MLM masking (0.4, at most 12 per caption).
        seed: seeds the sampling (language choice, ITM negatives, masks); each process adds its rank.
        cache_frozen_features: compute what frozen parts give once and reuse it (see ``FrozenFeatureCache``):
            the image tokens of a frozen image tower (keyed by the ``image_ids`` the collator passes) and
            the states after the frozen lower text layers (keyed by token ids), computed without dropout.
            Everything stays in memory (about 250 kB per image for EfficientNet-Lite0 at 224 px, 6 kB per
            caption token row for e5-small), so leave it off for corpora that do not fit.
    """

    def __init__(
        self,
        loss_style: str = "one-to-k",
        weighting: str = "released",
        weights: dict[str, float] | None = None,
        english_index: int = 0,
        mask_token_id: int | None = None,
        special_token_ids: list[int] | None = None,
        vocab_size: int | None = None,
        mlm_probability: float = 0.4,
        mlm_max_masks: int = 12,
        seed: int = 0,
        cache_frozen_features: bool = False,
    ):
        if loss_style not in LOSS_STYLES:
            raise ValueError(f"unknown loss style {loss_style!r}: use one of {', '.join(LOSS_STYLES)}")
        self.weights = {name: 1.0 for name in COMPONENTS}
        unknown = set(weights or {}) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown loss components {sorted(unknown)}: the components are {COMPONENTS}")
        self.weights.update({name: float(value) for name, value in (weights or {}).items()})
        if self.weights["mlm"] and (mask_token_id is None or vocab_size is None):
            raise ValueError("MLM needs mask_token_id and vocab_size (from the tokenizer), or weights={'mlm': 0}")
        # The process group may not exist yet (the Trainer starts it): torchrun's RANK says the rank then.
        rank = distributed_rank_and_world_size()[0] or int(os.environ.get("RANK", "0"))
        self.generator = torch.Generator().manual_seed(seed + rank)
        self.loss_style = loss_style
        self.weighting = weighting
        if loss_style == "one-to-k":
            self.contrastive = OneToKContrastiveLoss(weighting=weighting)
        elif loss_style == "cross-modal":
            self.contrastive = CrossModalContrastiveLoss(generator=self.generator)
        else:
            self.contrastive = CrossLingualContrastiveLoss(english_index=english_index)
        self.mask_token_id = mask_token_id
        self.special_token_ids = list(special_token_ids or [])
        self.vocab_size = vocab_size
        self.mlm_probability = mlm_probability
        self.mlm_max_masks = mlm_max_masks
        self.feature_cache = FrozenFeatureCache() if cache_frozen_features else None

    def get_config_dict(self) -> dict[str, Any]:
        """What defines this objective, for logs and model cards."""
        return {
            "loss_style": self.loss_style,
            "weighting": self.weighting if self.loss_style == "one-to-k" else None,
            "weights": dict(self.weights),
            "mlm_probability": self.mlm_probability,
            "mlm_max_masks": self.mlm_max_masks,
            "contrastive": self.contrastive.get_config_dict(),
        }

    def __call__(
        self,
        model,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        image_ids: list[str] | None = None,
        **unused: Any,
    ) -> dict[str, torch.Tensor]:
        """pixel_values ``[N, 3, H, W]``, image-major input_ids / attention_mask ``[N*K, L]`` -> losses.

        ``image_ids`` (N strings, from the collator) key the image-token cache when it is on.
        """
        vision_frozen = not any(p.requires_grad for p in model.vision_model.parameters())
        if vision_frozen:
            model.vision_model.eval()  # frozen batch-norm statistics stay as loaded
        if vision_frozen and self.feature_cache is not None and image_ids is not None:
            image_tokens = self.feature_cache.images(model, pixel_values, image_ids)
        elif vision_frozen:
            with torch.no_grad():
                image_tokens = model.get_image_tokens(pixel_values)
        else:
            image_tokens = model.get_image_tokens(pixel_values)
        image_embeds = model.project_image_tokens(image_tokens)
        n_frozen = leading_frozen_layers(model) if self.feature_cache is not None else 0
        if model.text_model.config._attn_implementation not in (None, "eager", "sdpa"):
            n_frozen = 0  # the cached path builds an additive mask, which only eager and SDPA attention take
        if n_frozen:
            text_states = self.feature_cache.texts(model, input_ids, attention_mask, n_frozen)
        else:
            text_states = model.encode_text(input_ids, attention_mask)
        text_embeds = model.project_text_states(text_states, attention_mask)
        temperature = model.clamped_temperature()

        parts = {"contrastive": self.contrastive(image_embeds, text_embeds, temperature)}
        if self.weights["itm"] or self.weights["mlm"]:
            triplets = sample_itm_triplets(image_embeds, text_embeds, temperature, generator=self.generator)
        if self.weights["itm"]:
            image_index, text_index, labels = build_itm_pairs(triplets)
            fused = model.fuse(text_states[text_index], attention_mask[text_index], image_tokens[image_index])
            parts["itm"] = itm_loss(model.itm_head(fused[:, 0]), labels)
        if self.weights["mlm"]:
            parts["mlm"] = self._mlm(model, input_ids, attention_mask, image_tokens, triplets.positive_text)
        loss = sum(self.weights[name] * value for name, value in parts.items())
        return {"loss": loss, **parts, "temperature": temperature.detach()}

    def _mlm(self, model, input_ids, attention_mask, image_tokens, chosen) -> torch.Tensor:
        """Cross-modal MLM on each image's chosen caption ``[N, L]``, attending to its image."""
        ids, mask = input_ids[chosen], attention_mask[chosen]
        masked, labels = mask_tokens_for_mlm(
            ids, mask, self.special_token_ids, self.mask_token_id, self.vocab_size,
            mask_probability=self.mlm_probability, max_masks=self.mlm_max_masks, generator=self.generator,
        )
        fused = model.fuse(model.encode_text(masked, mask), mask, image_tokens)
        targets = labels != IGNORE_INDEX
        # Vocabulary logits only at the targets: [n_targets, V] instead of [N, L, V].
        logits = model.mlm_logits(fused[targets].unsqueeze(0))
        return mlm_loss(logits, labels[targets].unsqueeze(0))
