"""The pre-training objective of CCR: contrastive (1-to-K or a baseline style) + hard-negative ITM + MLM.

``CCRObjective`` is called by :class:`~modeling_ccr.training.CCRForPreTraining` (``model(**batch)``), so a
DistributedDataParallel wrapper sees the whole step. Texts are image-major: row ``j*K + k`` of
``input_ids`` is caption k of image j.

ITM and MLM follow the contrastive style: with ``one-to-k`` they use one caption per image drawn among
its K languages (``itm_positive_language``); with the baselines they use the caption the style trains on
(the sampled language for ``cross-modal``, English for ``cross-lingual``), 1-to-1, as the released
baselines do, so the comparison of styles is not blurred by multilingual fusion training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F

from ..configuration_ccr import DEFAULT_MLM_MAX_MASKS, DEFAULT_MLM_PROBABILITY
from ..losses import (
    DEFAULT_MLM_MASKING,
    ItmTriplets,
    build_itm_pairs,
    itm_accuracy,
    itm_loss,
    mask_tokens_for_mlm,
    mlm_loss,
    negatives_sharing_text,
)
from ..losses.mlm import IGNORE_INDEX
from ..modeling_ccr import ImageTowerAdapter, trim_padding
from .feature_cache import FrozenFeatureCache, frozen_image_part, leading_frozen_layers
from .styles import StyleOptions, style_class

COMPONENTS = ("contrastive", "itm", "mlm")


class CCRObjective:
    """Sum of the weighted components; returns ``{"loss", "contrastive", "itm", "mlm", "temperature"}`` and,
    with ITM on, two diagnostics of the step's ITM pairs, ``"itm_accuracy"`` (:func:`itm_accuracy`) and
    ``"itm_negatives_same_text"`` (:func:`negatives_sharing_text`); all 0-dim tensors, a skipped component
    left out.

    Args:
        loss_style: a registered contrastive style (:mod:`~modeling_ccr.training.styles`): ``"one-to-k"``
            (the paper), ``"cross-modal"`` (one sampled language per image, 1-to-1 InfoNCE) or
            ``"cross-lingual"`` (image-English plus English-other InfoNCE); it also says which captions ITM
            and MLM read. An unknown name is refused with the list of styles.
        weighting: the 1-to-K weighting, ``"released"`` or ``"symmetric"``.
        weights: component weights, default 1 each (the paper: L = L_KCL + L_ITM + L_MLM); a zero weight
            skips that component's computation.
        english_index: position of English among the K languages (cross-lingual style).
        mask_token_id, special_token_ids, vocab_size: from the tokenizer, for MLM masking.
        mlm_probability, mlm_max_masks: MLM masking: the share of a caption's tokens to predict and the most
            per caption (default: the model config's defaults, as released).
        seed: seeds the sampling (language choice, ITM negatives, masks); each process adds its index.
        process_index: this process's index among the training processes (``args.process_index`` of the
            training arguments; 0 in a single process), so that the processes draw differently.
        itm_positive_language: how ``one-to-k`` picks each image's ITM / MLM caption among its K:
            ``"released"`` (the authors' code, nearly uniform) or ``"hardest"`` (favours the language the
            image matches worst); see :func:`~modeling_ccr.losses.sample_itm_triplets`.
        mlm_masking: ``"skip-gram"`` (spans, as released, default) or ``"tokens"`` (single positions); see
            :func:`~modeling_ccr.losses.mask_tokens_for_mlm`.
        itm_balanced: weigh ITM's positive and negative pairs equally (:func:`~modeling_ccr.losses.itm_loss`);
            False (the paper) averages over the pairs, 1 positive : 2 negatives.
        detach_fusion_image_tokens: the fusion encoder (ITM, MLM) reads the image tokens without sending its
            gradient back into the image tower, which then trains on the contrastive loss alone (False, the
            paper: every loss trains the tower).
        itm_random_negative_share: the share of ITM negatives drawn uniformly instead of from the hard-negative
            softmax (0, the paper: all hard), see :func:`~modeling_ccr.losses.sample_itm_triplets`.
        detach_itm_similarity: a residual ITM head (``config.itm_residual``) reads the pairs' dual-encoder
            similarities without sending ITM's gradient into the embeddings (True), or sends it, so ITM also
            trains the dual encoder on its hard negatives (False). A paper head reads no similarity.
        itm_negative_temperature: the temperature of the ITM hard negatives' draw (None: the model's
            contrastive temperature, as the paper); larger draws easier negatives, see
            :func:`~modeling_ccr.losses.sample_itm_triplets`.
        fusion_batch_size: how many images of each step's batch (the first ones) train ITM and MLM; their
            hard negatives are still drawn from the whole batch. None: all. A smaller share makes the
            fusion objectives cheaper than the contrastive one on a CPU budget.
        gather_with_grad: cross-process gathering of the contrastive loss, see
            :class:`~modeling_ccr.losses.GatheredContrastiveLoss` (exact full-batch gradient by default).
        cache_frozen_features: compute what frozen parts give once and reuse it (see ``FrozenFeatureCache``):
            the image tokens of a frozen image tower, or the output of its frozen lower blocks when only the
            top blocks train (keyed by the ``image_ids`` the collator passes), and
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
        mlm_probability: float = DEFAULT_MLM_PROBABILITY,
        mlm_max_masks: int = DEFAULT_MLM_MAX_MASKS,
        seed: int = 0,
        process_index: int = 0,
        cache_frozen_features: bool = False,
        itm_positive_language: str = "released",
        mlm_masking: str = DEFAULT_MLM_MASKING,
        gather_with_grad: bool | str = True,
        fusion_batch_size: int | None = None,
        itm_negative_temperature: float | None = None,
        itm_balanced: bool = False,
        detach_fusion_image_tokens: bool = False,
        detach_itm_similarity: bool = True,
        itm_random_negative_share: float = 0.0,
    ):
        style = style_class(loss_style)
        self.weights = {name: 1.0 for name in COMPONENTS}
        unknown = set(weights or {}) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown loss components {sorted(unknown)}: the components are {COMPONENTS}")
        self.weights.update({name: float(value) for name, value in (weights or {}).items()})
        if self.weights["mlm"] and (mask_token_id is None or vocab_size is None):
            raise ValueError("MLM needs mask_token_id and vocab_size (from the tokenizer), or weights={'mlm': 0}")
        self.generator = torch.Generator().manual_seed(seed + process_index)  # each process draws its own
        self.style = style(StyleOptions(generator=self.generator, gather_with_grad=gather_with_grad,
                                        weighting=weighting, english_index=english_index,
                                        itm_positive_language=itm_positive_language))
        self.mlm_masking = mlm_masking
        if fusion_batch_size is not None and fusion_batch_size < 1:
            raise ValueError(f"fusion_batch_size must be >= 1 or None (all images), got {fusion_batch_size}")
        self.fusion_batch_size = fusion_batch_size
        if itm_negative_temperature is not None and not itm_negative_temperature > 0:
            raise ValueError("itm_negative_temperature must be > 0 or None (the model's), "
                             f"got {itm_negative_temperature}")
        self.itm_negative_temperature = itm_negative_temperature
        self.itm_balanced = itm_balanced
        self.itm_random_negative_share = float(itm_random_negative_share)
        self.detach_fusion_image_tokens = detach_fusion_image_tokens
        self.detach_itm_similarity = detach_itm_similarity
        self.mask_token_id = mask_token_id
        self.special_token_ids = list(special_token_ids or [])
        self.vocab_size = vocab_size
        self.mlm_probability = mlm_probability
        self.mlm_max_masks = mlm_max_masks
        self.feature_cache = FrozenFeatureCache() if cache_frozen_features else None

    def get_config_dict(self) -> dict[str, Any]:
        """What defines this objective, for logs and model cards."""
        return {
            "loss_style": self.style.name,
            "weights": dict(self.weights),
            "mlm_probability": self.mlm_probability,
            "mlm_max_masks": self.mlm_max_masks,
            "mlm_masking": self.mlm_masking,
            "fusion_batch_size": self.fusion_batch_size,
            "itm_negative_temperature": self.itm_negative_temperature,
            "itm_balanced": self.itm_balanced,
            "itm_random_negative_share": self.itm_random_negative_share,
            "detach_fusion_image_tokens": self.detach_fusion_image_tokens,
            "detach_itm_similarity": self.detach_itm_similarity,
            **self.style.get_config_dict(),
        }

    def __call__(
        self,
        model,
        pixel_values: torch.Tensor | None,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        image_ids: list[str] | None = None,
        mlm_logits: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """pixel_values ``[N, 3, H, W]``, image-major input_ids / attention_mask ``[N*K, L]`` -> losses.

        ``model`` is the CCR model; ``mlm_logits``, the MLM head of the pre-training model that calls this
        (:meth:`~modeling_ccr.training.CCRForPreTraining.mlm_logits`: fused states ``[M, L, H]`` -> vocabulary
        logits ``[M, L, V]``), is needed when MLM is on. ``image_ids`` (N strings, from the collator) key the
        image-token cache when it is on; with every image in the cache, ``pixel_values`` may be None.
        """
        if self.weights["mlm"] and mlm_logits is None:
            raise ValueError("MLM needs the pre-training model's MLM head: compute the objective through "
                             "CCRForPreTraining (model(**batch)), or set weights={'mlm': 0}")
        image_tokens = self._image_tokens(model, pixel_values, image_ids)
        image_embeds = model.project_image_tokens(image_tokens)
        n_frozen = self._cached_text_layers(model)
        if n_frozen:
            text_states = self.feature_cache.texts(model, input_ids, attention_mask, n_frozen)
        else:
            text_states = model.encode_text(input_ids, attention_mask)
        text_embeds = model.project_text_states(text_states, attention_mask)
        temperature = model.clamped_temperature()

        n_images, k = image_embeds.shape[0], text_embeds.shape[0] // max(image_embeds.shape[0], 1)
        languages = self.style.caption_languages(n_images, k, text_embeds.device)
        contrastive = self.style.contrastive_loss(image_embeds, text_embeds, temperature, languages)
        parts = {"contrastive": contrastive}
        if self.weights["itm"] or self.weights["mlm"]:
            triplets = self.style.itm_triplets(image_embeds, text_embeds, temperature, languages,
                                               negative_temperature=self.itm_negative_temperature,
                                               random_share=self.itm_random_negative_share)
            triplets = ItmTriplets(*(indices[: self.fusion_batch_size] for indices in triplets))
        groups = {}  # what the fusion encoder reads: (text states, mask, image index) of each objective
        if self.weights["itm"]:
            image_index, text_index, labels = build_itm_pairs(triplets)
            mask, states = trim_padding(attention_mask[text_index], text_states[text_index])
            groups["itm"] = (states, mask, image_index)
        if self.weights["mlm"]:
            masked, mlm_mask, mlm_labels = self._mask_for_mlm(input_ids, attention_mask, triplets.positive_text)
            groups["mlm"] = (model.encode_text(masked, mlm_mask), mlm_mask, triplets.positive_text // k)
        fused = fuse_groups(model, image_tokens.detach() if self.detach_fusion_image_tokens else image_tokens, groups)
        diagnostics = {}
        if "itm" in fused:
            image_side, text_side = image_embeds, text_embeds
            if self.detach_itm_similarity:
                image_side, text_side = image_embeds.detach(), text_embeds.detach()
            logits = model.itm_head(fused["itm"][:, 0],
                                    model.itm_similarity(image_side, text_side, image_index, text_index))
            parts["itm"] = itm_loss(logits, labels, balanced=self.itm_balanced)
            diagnostics = {"itm_accuracy": itm_accuracy(logits, labels),
                           "itm_negatives_same_text": negatives_sharing_text(triplets, input_ids, attention_mask, k)}
        if "mlm" in fused:
            targets = mlm_labels != IGNORE_INDEX
            # Vocabulary logits only at the targets: [n_targets, V] instead of [N, L, V].
            logits = mlm_logits(fused["mlm"][targets].unsqueeze(0))
            parts["mlm"] = mlm_loss(logits, mlm_labels[targets].unsqueeze(0))
        loss = sum(self.weights[name] * value for name, value in parts.items())
        return {"loss": loss, **parts, "temperature": temperature.detach(), **diagnostics}

    def prefill_feature_cache(self, model, batches: Iterable[dict[str, Any]]) -> dict[str, int]:
        """Fill the frozen-feature cache in one pass before training, so that no training step computes
        frozen features: ``batches`` are collator outputs (``pixel_values``, ``image_ids``, ``input_ids``,
        ``attention_mask``) over the training data, as large as memory allows (no gradients are kept).

        Fills exactly what the steps would look up (the same features, computed the same way): the image
        tokens of a frozen tower or the maps of its frozen lower blocks, and the states after the frozen
        text layers. Texts the steps meet later (keyword captions drawn by the collator's augmentation) are
        still cached when first met. Returns ``{"images": n, "texts": m}``, the cache's sizes; a no-op
        without a cache.
        """
        cache = self.feature_cache
        if cache is None:
            return {"images": 0, "texts": 0}
        n_text_layers = self._cached_text_layers(model)
        tower = model.vision_model
        tower_frozen, n_blocks = frozen_image_part(tower)
        device = next(model.parameters()).device
        for batch in batches:
            image_ids = batch.get("image_ids")
            if image_ids is not None and tower_frozen:
                tower.eval()  # as the steps run a frozen tower
                cache.fill_image_tokens(model, batch["pixel_values"].to(device), image_ids)
            elif image_ids is not None and n_blocks:
                cache.fill_image_maps(model, batch["pixel_values"].to(device), image_ids, n_blocks)
            if n_text_layers:
                cache.fill_texts(model, batch["input_ids"].to(device), batch["attention_mask"].to(device),
                                 n_text_layers)
        return {"images": len(cache.image_tokens) + len(cache.image_maps), "texts": len(cache.text_states)}

    def _cached_text_layers(self, model) -> int:
        """How many bottom text layers the cache serves: the frozen ones, when the cache is on (0 otherwise)."""
        if self.feature_cache is None:
            return 0
        return leading_frozen_layers(model)

    def _image_tokens(self, model, pixel_values: torch.Tensor | None, image_ids: list[str] | None) -> torch.Tensor:
        """Image tokens ``[N, P, Cv]``: a frozen tower's (or its frozen lower blocks') output comes from the
        cache when it is on; frozen parts run in eval mode, so their batch-norm statistics stay as loaded."""
        if pixel_values is None and (self.feature_cache is None or image_ids is None):
            raise ValueError("pixel_values is None, but the images are not in a frozen-feature cache: pass the pixels")
        tower = model.vision_model
        tower_frozen, n_frozen_blocks = frozen_image_part(tower)
        if tower_frozen:
            tower.eval()
            if self.feature_cache is not None and image_ids is not None:
                return self.feature_cache.images(model, pixel_values, image_ids)
            with torch.no_grad():
                return model.get_image_tokens(pixel_values)
        ImageTowerAdapter(tower).keep_frozen_norm_statistics()
        if n_frozen_blocks and self.feature_cache is not None and image_ids is not None:
            return self.feature_cache.image_top_blocks(model, pixel_values, image_ids, n_frozen_blocks)
        return model.get_image_tokens(pixel_values)

    def _mask_for_mlm(self, input_ids, attention_mask, chosen) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The chosen captions (rows ``chosen`` ``[M]`` of the image-major texts) masked for cross-modal MLM:
        ``(masked ids, attention mask, labels)``, each ``[M, L']``, without the padding columns they share."""
        ids, mask = input_ids[chosen], attention_mask[chosen]
        masked, labels = mask_tokens_for_mlm(
            ids, mask, self.special_token_ids, self.mask_token_id, self.vocab_size,
            mask_probability=self.mlm_probability, max_masks=self.mlm_max_masks, generator=self.generator,
            masking=self.mlm_masking,
        )
        mask, masked, labels = trim_padding(mask, masked, labels)  # after masking: the same draws as untrimmed
        return masked, mask, labels


def fuse_groups(model, image_tokens: torch.Tensor,
                groups: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Several sets of fusion inputs through the fusion encoder in one pass: ``groups[name]`` is (text
    states ``[M, L, H]``, attention mask ``[M, L]``, image index long ``[M]`` into image_tokens ``[N, P, Cv]``);
    returns ``{name: fused states [M, L, H]}``. The rows are padded to one length and stacked, so the
    cross-attention keys and values of an image that several groups use (ITM's pairs and MLM's captions
    share the batch's first images) are computed once; every row's result is the one it gets alone."""
    if not groups:
        return {}
    width = max(mask.shape[1] for _, mask, _ in groups.values())
    states = torch.cat([F.pad(s, (0, 0, 0, width - s.shape[1])) for s, _, _ in groups.values()])
    masks = torch.cat([F.pad(mask, (0, width - mask.shape[1])) for _, mask, _ in groups.values()])
    fused = model.fuse(states, masks, image_tokens, torch.cat([index for _, _, index in groups.values()]))
    out, start = {}, 0
    for name, (group_states, mask, _) in groups.items():
        out[name] = fused[start : start + len(group_states), : mask.shape[1]]
        start += len(group_states)
    return out
