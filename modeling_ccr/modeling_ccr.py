"""CCR model: a dual encoder for retrieval plus a cross-attention fusion encoder for matching.

Layout (as in the paper's CCR^k): an image tower gives image tokens ``[B, P, Cv]`` (token 0 is the
image CLS); a text tower gives token states ``[T, L, H]``; linear projections of the two CLS vectors,
L2-normalised, form the shared retrieval space ``[*, D]``. The fusion encoder (self-attention,
cross-attention to the image tokens, feed-forward; initialised from the top layers of a text backbone)
feeds an image-text matching (ITM) head. Pre-training adds a masked-language-modelling (MLM) head on the
fusion states (``modeling_ccr.training.CCRForPreTraining``, which owns it); a model folder keeps that head's
weights beside the model's, under ``mlm_head.``, and :class:`CCRModel` leaves them out when it loads.

Texts that belong to images are image-major throughout: with K captions per image, text row
``j * K + k`` is caption k of image j.

Part of the remote-code set: imports only torch, the public transformers API and files of this folder.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, PretrainedConfig, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.utils import ModelOutput

from .configuration_ccr import CCRConfig
from .configuration_efficientnet_lite import EfficientNetLiteConfig
from .model_checks import (
    check_fusion_inputs,
    check_pixel_values,
    check_text_inputs,
    check_weights_finite,
    check_weights_readable,
    weights_config_disagreement,
)
from .modeling_efficientnet_lite import EfficientNetLiteModel

ONE_TO_K_WEIGHTINGS = {
    "released": "(L_i2t + L_t2i / K) / 2, the authors' code, default",
    "symmetric": "(L_i2t + L_t2i) / 2, the paper's formula",
}


def one_to_k_loss_terms(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    temperature: float | torch.Tensor,
    image_rows: slice | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two unweighted terms ``(L_i2t, L_t2i)`` of the 1-to-K contrastive loss (Nie et al. 2024), 0-dim.

    Args:
        image_embeds: ``[N, D]`` L2-normalised image embeddings.
        text_embeds: ``[N*K, D]`` L2-normalised texts, image-major (row ``j*K + k`` is caption k of image j).
        temperature: positive float or 0-dim tensor (gradients flow into a learnable one).
        image_rows: a contiguous slice of images used as queries (None: all). L_i2t then averages over those
            images and L_t2i over their captions, each against ALL columns: one process's share of a
            batch gathered across processes.

    Image -> text: one softmax over all N*K texts with K positives (the other K-1 positives stay in the
    denominator, so L_i2t >= log K, reached when the K languages share the mass equally). Text -> image:
    a softmax over the N images with one positive.

    The inputs are trusted: the public entry points check them (:meth:`CCRModel.forward`, and in the
    package ``modeling_ccr.losses.one_to_k_contrastive_loss`` and the loss modules).
    """
    n_images = image_embeds.shape[0]
    k = text_embeds.shape[0] // n_images
    rows = slice(0, n_images) if image_rows is None else image_rows
    own_image = torch.arange(rows.start, rows.stop, device=image_embeds.device)
    n_rows = own_image.numel()

    # image -> text: one softmax over all N*K texts, K positives per image.
    logits_i2t = image_embeds[rows] @ text_embeds.T / temperature  # [n_rows, N*K]
    log_p = logits_i2t.log_softmax(dim=1).view(n_rows, n_images, k)
    loss_i2t = -log_p[torch.arange(n_rows, device=own_image.device), own_image].mean()

    # text -> image: each text has one positive image among the N.
    logits_t2i = text_embeds[rows.start * k : rows.stop * k] @ image_embeds.T / temperature  # [n_rows*K, N]
    loss_t2i = F.cross_entropy(logits_t2i, own_image.repeat_interleave(k))
    return loss_i2t, loss_t2i


def one_to_k_loss_parts(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    temperature: float | torch.Tensor,
    weighting: str = "released",
    image_rows: slice | None = None,
) -> dict[str, torch.Tensor]:
    """The 1-to-K loss in one of :data:`ONE_TO_K_WEIGHTINGS` and its terms: ``{"loss", "i2t", "t2i"}``, 0-dim.

    ``"released"``: (L_i2t + L_t2i / K) / 2, what the authors' code computes and :meth:`CCRModel.forward`
    returns; ``"symmetric"``: (L_i2t + L_t2i) / 2. K = ``len(text_embeds) // len(image_embeds)``; the
    arguments and their trust are those of :func:`one_to_k_loss_terms`. Another ``weighting`` raises
    ValueError.
    """
    if weighting not in ONE_TO_K_WEIGHTINGS:
        allowed = ", ".join(ONE_TO_K_WEIGHTINGS)
        raise ValueError(f"unknown 1-to-K weighting {weighting!r}: use one of {allowed}")
    loss_i2t, loss_t2i = one_to_k_loss_terms(image_embeds, text_embeds, temperature, image_rows)
    t2i_weight = image_embeds.shape[0] / text_embeds.shape[0] if weighting == "released" else 1.0
    return {"loss": (loss_i2t + t2i_weight * loss_t2i) / 2, "i2t": loss_i2t, "t2i": loss_t2i}


@dataclass
class CCROutput(ModelOutput):
    """Output of :meth:`CCRModel.forward`.

    Attributes:
        loss: the 1-to-K contrastive loss, released weighting (L_i2t + L_t2i / K) / 2, when ``return_loss=True``.
        logits_per_image: ``[B, T]`` image-text similarities divided by the temperature.
        logits_per_text: ``[T, B]``, the transpose.
        image_embeds: ``[B, D]`` L2-normalised image embeddings.
        text_embeds: ``[T, D]`` L2-normalised text embeddings.
        image_tokens: ``[B, P, Cv]`` image tokens (token 0 is the image CLS), the fusion encoder's memory.
        text_hidden_state: ``[T, L, H]`` last hidden state of the text encoder.
    """

    loss: torch.Tensor | None = None
    logits_per_image: torch.Tensor | None = None
    logits_per_text: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    image_tokens: torch.Tensor | None = None
    text_hidden_state: torch.Tensor | None = None


def trim_padding(attention_mask: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``attention_mask`` ``[M, L]`` and ``tensors`` ``[M, L, ...]`` without their trailing columns that are
    padding in every row. Rows picked from a larger batch (the pairs of a training step or of a re-ranking
    batch) keep that batch's padded length, and every fusion layer would otherwise compute on the padding;
    masked positions never affect real ones, so the result for the real tokens is the same."""
    columns = attention_mask.any(dim=0).nonzero()
    width = int(columns.max()) + 1 if len(columns) else attention_mask.shape[1]
    return tuple(tensor[:, :width] for tensor in (attention_mask, *tensors))


class CCRAttentionProjections(nn.Module):
    """Query from the text states, key and value from the memory (itself, or the image tokens).

    Named ``query`` / ``key`` / ``value`` like a BERT attention so text-backbone weights load directly.
    """

    def __init__(self, hidden_size: int, memory_size: int, num_heads: int, dropout: float):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden size {hidden_size} is not a multiple of the {num_heads} attention heads")
        self.num_heads = num_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(memory_size, hidden_size)
        self.value = nn.Linear(memory_size, hidden_size)
        self.dropout = dropout

    def split_heads(self, states: torch.Tensor) -> torch.Tensor:
        """``[M, S, H]`` -> ``[M, heads, S, H/heads]``."""
        return states.view(states.shape[0], states.shape[1], self.num_heads, -1).transpose(1, 2)

    def key_values(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory ``[U, S, C]`` -> its keys and values, each ``[U, heads, S, H/heads]``."""
        return self.split_heads(self.key(memory)), self.split_heads(self.value(memory))

    def attend(
        self,
        hidden: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        memory_mask: torch.Tensor | None = None,
        memory_index: torch.Tensor | None = None,
        hidden_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """hidden ``[U, l, H]`` attends to keys / values ``[N, heads, S, H/heads]`` -> ``[M, l, H]``.

        Row m takes its queries from hidden row ``hidden_index[m]`` and attends to memory ``memory_index[m]``
        (long ``[M]``; each None: row m, with M = U or N). Queries are projected once per hidden row and keys
        and values once per memory (:meth:`key_values`), however many rows share them. memory_mask ``[M, S]``
        (1 = attend) or None (attend to all).
        """
        queries = self.split_heads(self.query(hidden))
        if hidden_index is not None:  # index_select copies whole rows: much faster than advanced indexing here
            queries = queries.index_select(0, hidden_index)
        if memory_index is not None:
            keys, values = keys.index_select(0, memory_index), values.index_select(0, memory_index)
        mask = None if memory_mask is None else memory_mask[:, None, None, :].bool()
        attended = F.scaled_dot_product_attention(
            queries, keys, values, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return attended.transpose(1, 2).reshape(attended.shape[0], attended.shape[2], -1)

    def forward(self, hidden: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None) -> torch.Tensor:
        """hidden ``[M, l, H]``, memory ``[M, S, C]``, memory_mask ``[M, S]`` (1 = attend) or None -> ``[M, l, H]``."""
        return self.attend(hidden, *self.key_values(memory), memory_mask)


class CCRResidualOutput(nn.Module):
    """Dense + dropout + residual + LayerNorm (post-LN, as BERT's ``output`` blocks)."""

    def __init__(self, in_size: int, hidden_size: int, dropout: float, eps: float):
        super().__init__()
        self.dense = nn.Linear(in_size, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(states)) + residual)


class CCRAttentionBlock(nn.Module):
    """Attention plus its residual output; ``self.self`` / ``self.output`` mirror BERT's key names."""

    def __init__(self, config: CCRConfig, memory_size: int):
        super().__init__()
        text = config.text_config
        self.self = CCRAttentionProjections(
            text.hidden_size, memory_size, text.num_attention_heads, text.attention_probs_dropout_prob
        )
        self.output = CCRResidualOutput(text.hidden_size, text.hidden_size, text.hidden_dropout_prob,
                                        text.layer_norm_eps)

    def forward(self, hidden: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None) -> torch.Tensor:
        """hidden ``[M, l, H]`` attends to memory ``[M, S, C]`` (mask ``[M, S]`` or None) -> ``[M, l, H]``."""
        return self.output(self.self(hidden, memory, memory_mask), hidden)

    def attend(
        self,
        hidden: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        memory_index: torch.Tensor | None = None,
        hidden_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """As :meth:`CCRAttentionProjections.attend` (no mask), plus the residual output -> ``[M, l, H]``."""
        residual = hidden if hidden_index is None else hidden.index_select(0, hidden_index)
        return self.output(self.self.attend(hidden, keys, values, None, memory_index, hidden_index), residual)


class CCRFusionLayer(nn.Module):
    """Self-attention over the text, cross-attention to the image tokens, feed-forward.

    Parameter names follow a BERT / XLM-R layer (``attention``, ``crossattention``, ``intermediate``,
    ``output``), so the self-attention and feed-forward weights of a text-backbone layer load directly.
    """

    def __init__(self, config: CCRConfig):
        super().__init__()
        text = config.text_config
        self.attention = CCRAttentionBlock(config, text.hidden_size)
        self.crossattention = CCRAttentionBlock(config, config.vision_config.hidden_size)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(text.hidden_size, text.intermediate_size)
        self.activation = ACT2FN[text.hidden_act]
        self.output = CCRResidualOutput(text.intermediate_size, text.hidden_size, text.hidden_dropout_prob,
                                        text.layer_norm_eps)

    def forward(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        image_memory: tuple[torch.Tensor, torch.Tensor],
        image_index: torch.Tensor | None = None,
        text_index: torch.Tensor | None = None,
        cls_only: bool = False,
    ) -> torch.Tensor:
        """hidden ``[U, L, H]`` of U texts, attention_mask ``[U, L]``; image_memory: this layer's cross-attention
        keys and values of N images, each ``[N, heads, P, H/heads]`` (:meth:`CCRFusionEncoder.image_memory`).
        Row m pairs text ``text_index[m]`` with image ``image_index[m]`` (long ``[M]``; each None: row m)
        -> ``[M, L, H]``; with ``cls_only``, only the CLS row goes on: ``[M, 1, H]`` (all of the text is
        still attended to)."""
        queries = hidden[:, :1] if cls_only else hidden
        hidden = self.attention(queries, hidden, attention_mask)  # once per text, before the pairs
        hidden = self.crossattention.attend(hidden, *image_memory, image_index, text_index)
        return self.output(self.activation(self.intermediate.dense(hidden)), hidden)


class CCRFusionEncoder(nn.Module):
    """``num_fusion_layers`` :class:`CCRFusionLayer` s; ``layer.i`` mirrors a text encoder's layer list.

    Pairs of few distinct images and texts (re-ranking, a training step's ITM and MLM rows) are cheap: each
    image's cross-attention keys and values are computed once (:meth:`image_memory`), the first layer's
    self-attention and cross-attention queries once per text, and only the rest per pair.
    """

    def __init__(self, config: CCRConfig):
        super().__init__()
        self.layer = nn.ModuleList(CCRFusionLayer(config) for _ in range(config.num_fusion_layers))

    def image_memory(self, image_tokens: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Image tokens ``[N, P, Cv]`` -> per layer, the cross-attention keys and values of each image, each
        ``[N, heads, P, H/heads]``."""
        return [layer.crossattention.self.key_values(image_tokens) for layer in self.layer]

    def forward(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        image_memory: list[tuple[torch.Tensor, torch.Tensor]],
        image_index: torch.Tensor | None = None,
        text_index: torch.Tensor | None = None,
        cls_only: bool = False,
    ) -> torch.Tensor:
        """Text states ``[U, L, H]`` and attention_mask ``[U, L]`` of U texts; ``image_memory`` of N images
        (:meth:`image_memory`). Row m pairs text ``text_index[m]`` with image ``image_index[m]`` (long ``[M]``;
        each None: row m) -> fused states ``[M, L, H]``, or the CLS row only, ``[M, 1, H]``, with ``cls_only``
        (the last layer then computes nothing else)."""
        last = len(self.layer) - 1
        for number, layer in enumerate(self.layer):
            hidden = layer(hidden, attention_mask, image_memory[number], image_index, text_index,
                           cls_only and number == last)
            if text_index is not None:  # from here on, one row per pair
                attention_mask, text_index = attention_mask.index_select(0, text_index), None
        return hidden


class CCRITMHead(nn.Module):
    """Image-text matching head on the fusion CLS: Linear(H, 2H) -> LayerNorm -> GELU -> Linear(2H, 2).

    With ``config.itm_residual`` the "matches" logit also gets ``a * s + b`` of the pair's dual-encoder cosine
    similarity s, ``a = exp(log_similarity_scale)`` (starts at 10) and ``b`` (starts at 0) learnt; the last
    Linear starts at zero (``CCRPreTrainedModel._init_weights``), so before training the head ranks pairs
    exactly as the dual encoder does.
    """

    INITIAL_SIMILARITY_SCALE = 10.0

    def __init__(self, config: CCRConfig):
        super().__init__()
        hidden = config.text_config.hidden_size
        self.dense = nn.Linear(hidden, config.itm_hidden_size)
        self.LayerNorm = nn.LayerNorm(config.itm_hidden_size, eps=config.text_config.layer_norm_eps)
        self.classifier = nn.Linear(config.itm_hidden_size, 2)
        self.residual = config.itm_residual
        if self.residual:
            self.log_similarity_scale = nn.Parameter(torch.tensor(math.log(self.INITIAL_SIMILARITY_SCALE)))
            self.similarity_bias = nn.Parameter(torch.tensor(0.0))

    def forward(self, cls_state: torch.Tensor, similarity: torch.Tensor | None = None) -> torch.Tensor:
        """``[M, H]`` (and, for a residual head, the pairs' cosine similarities ``[M]``) -> logits ``[M, 2]``
        (column 1 = "matches"). A paper head ignores ``similarity``."""
        logits = self.classifier(F.gelu(self.LayerNorm(self.dense(cls_state))))
        if not self.residual:
            return logits
        if similarity is None or similarity.shape != logits.shape[:1]:
            raise ValueError(
                f"a residual ITM head (config.itm_residual) needs the pairs' cosine similarities [{logits.shape[0]}]; "
                f"got {None if similarity is None else tuple(similarity.shape)}: pass CCRModel.pair_similarity(...)"
            )
        shift = self.log_similarity_scale.exp() * similarity.to(logits.dtype) + self.similarity_bias
        return logits + torch.stack([torch.zeros_like(shift), shift], dim=1)


def build_tower(config) -> PreTrainedModel:
    """An image or text tower (random weights) from its config, without a pooler where one is optional."""
    # Compared by name: remote code may load the config and the model from two copies of the same file.
    if config.model_type == EfficientNetLiteConfig.model_type:
        return EfficientNetLiteModel(config)
    try:
        return AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:  # towers without an optional pooler take no such argument
        return AutoModel.from_config(config)


# ----- tower adapters: the one place that knows what is inside a tower ---------------------------------
def _leading_frozen(modules: nn.ModuleList) -> int:
    """How many modules of a stack, from the bottom, have no trainable parameter."""
    count = 0
    for module in modules:
        if any(p.requires_grad for p in module.parameters()):
            break
        count += 1
    return count


class TextTowerAdapter:
    """A BERT-family text tower (BERT, RoBERTa, XLM-R, E5 ...) as its parts: embeddings, then a stack of
    layers.

    What freezing, the frozen-feature cache and :meth:`CCRModel.from_backbones` need of a tower beyond its
    forward; no other module reaches inside one. Shapes: input_ids and attention_mask ``[T, L]`` (mask 1
    for a token, 0 for padding), hidden states ``[T, L, H]``.
    """

    LAYERS = "encoder.layer"

    def __init__(self, tower: nn.Module):
        self.tower = tower

    @property
    def embeddings(self) -> nn.Module:
        """The embedding module (words, positions, types, norm): input_ids ``[T, L]`` -> ``[T, L, H]``."""
        return self.tower.embeddings

    @property
    def layers(self) -> nn.ModuleList:
        """The encoder layers, bottom first, each ``[T, L, H]`` -> ``[T, L, H]``."""
        return self.tower.get_submodule(self.LAYERS)

    @property
    def runs_slices(self) -> bool:
        """Whether :meth:`run_layers` can run this tower's layers: it hands them an additive mask, which eager
        and SDPA attention take (flash and flex attention do not)."""
        return self.tower.config._attn_implementation in (None, "eager", "sdpa")

    def position_limit(self) -> int | None:
        """The most tokens per text the tower takes: ``max_position_embeddings``, less ``padding_idx + 1`` for
        RoBERTa-family towers (their positions start after the padding index); None without a limit."""
        limit = getattr(self.tower.config, "max_position_embeddings", None)
        padding_idx = getattr(getattr(self.tower, "embeddings", None), "padding_idx", None)
        return None if limit is None else limit - (0 if padding_idx is None else padding_idx + 1)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids ``[T, L]`` -> the embeddings' output ``[T, L, H]``, the input of layer 0."""
        return self.embeddings(input_ids=input_ids)

    def run_layers(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int = 0, stop: int | None = None
    ) -> torch.Tensor:
        """Run layers ``start..stop-1`` (``stop`` None: to the top) on hidden states ``[T, L, H]`` with the
        padding mask ``[T, L]`` -> ``[T, L, H]``. All of them on :meth:`embed`'s output give the tower's
        ``last_hidden_state`` (eager or SDPA attention, see :attr:`runs_slices`)."""
        dtype = hidden.dtype
        mask = (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min  # [T, 1, 1, L]
        for layer in self.layers[start:stop]:
            output = layer(hidden, attention_mask=mask)
            hidden = output[0] if isinstance(output, tuple) else output  # transformers 4.x returns tuples
        return hidden

    def train_top_layers(self, count: int) -> None:
        """Freeze the tower except its top ``count >= 0`` layers (every layer when ``count`` exceeds their
        number), which are made trainable; the embeddings freeze with the layers below."""
        self.tower.requires_grad_(False)
        layers = self.layers
        layers[max(len(layers) - count, 0) :].requires_grad_(True)

    def leading_frozen_layers(self) -> int:
        """How many layers, from the bottom, have no trainable parameter (0 while the embeddings train)."""
        if any(p.requires_grad for p in self.embeddings.parameters()):
            return 0
        return _leading_frozen(self.layers)

    def state_dict_with_layers(self, layers: list[int]) -> dict[str, torch.Tensor]:
        """The tower's state dict keeping the embeddings and the layers of indices ``layers``, renumbered
        0..n-1 in that order, without a pooler: the weights of this tower cut to ``len(layers)`` layers."""
        prefix = self.LAYERS + "."
        renumber = {str(source): str(target) for target, source in enumerate(layers)}
        selected = {}
        for key, value in self.tower.state_dict().items():
            if key.startswith(prefix):
                index, rest = key[len(prefix) :].split(".", 1)
                if index in renumber:
                    selected[f"{prefix}{renumber[index]}.{rest}"] = value
            elif not key.startswith("pooler."):
                selected[key] = value
        return selected


class ImageTowerAdapter:
    """An image tower as its parts: a stem, a stack of blocks and a head, or a tower that runs whole.

    The block stack is found where the known towers keep it: ``blocks`` (EfficientNet-Lite), ``layers``
    (ViT in transformers 5), ``encoder.layer`` (ViT in 4.x), ``encoder.layers`` (Swin stages, CLIP vision);
    the stem is what the tower registers before it (patch embeddings, a stem conv) and the head what it
    registers after (a final norm, a head conv). Another layout has no known block stack (:meth:`parts` is
    None): it trains whole or not at all. A tower whose own code splits its forward at a block
    (``lower_features`` / ``upper_features``, EfficientNet-Lite) also runs in two parts (:attr:`splits`),
    so that the maps of frozen lower blocks can be computed once; the others run whole. Shapes:
    pixel_values ``[B, 3, H, W]``, block maps ``[B, C_i, H_i, W_i]``, tokens ``[B, P, Cv]``.
    """

    BLOCK_PATHS = ("blocks", "layers", "encoder.layer", "encoder.layers")

    def __init__(self, tower: nn.Module):
        self.tower = tower

    def parts(self) -> tuple[list[nn.Parameter], nn.ModuleList, list[nn.Parameter]] | None:
        """``(stem, blocks, head)``: the parameters registered before the block stack, the stack (bottom
        first) and the parameters registered after it; None for a tower without a known block stack."""
        for path in self.BLOCK_PATHS:
            try:
                blocks = self.tower.get_submodule(path)
            except AttributeError:
                continue
            if isinstance(blocks, nn.ModuleList):
                break
        else:
            return None
        stem, head, past_blocks = [], [], False
        for name, parameter in self.tower.named_parameters():
            if name.startswith(path + "."):
                past_blocks = True
            else:
                (head if past_blocks else stem).append(parameter)
        return stem, blocks, head

    @property
    def splits(self) -> bool:
        """Whether the tower runs in two parts at a block boundary (:meth:`run_lower`, :meth:`run_upper`)."""
        return hasattr(self.tower, "lower_features") and hasattr(self.tower, "upper_features")

    def run_lower(self, pixel_values: torch.Tensor, num_blocks: int) -> torch.Tensor:
        """The stem and the first ``num_blocks`` blocks of a tower that :attr:`splits`: pixel_values
        ``[B, 3, H, W]`` -> map ``[B, C_i, H_i, W_i]``."""
        return self.tower.lower_features(pixel_values, num_blocks)

    def run_upper(self, hidden: torch.Tensor, start_block: int) -> torch.Tensor:
        """Blocks ``start_block..`` and the head: map ``[B, C_i, H_i, W_i]`` -> tokens ``[B, P, Cv]``, the
        tower's ``last_hidden_state`` when ``hidden`` is :meth:`run_lower` ``(pixel_values, start_block)``."""
        return self.tower.upper_features(hidden, start_block)

    def train_top_layers(self, count: int) -> None:
        """Freeze the tower except its top ``count >= 0`` layers, counted from the top: the head's parameters
        form the top layer when there are any, then the blocks from the last one down. ``count = 0`` freezes
        it all; a tower without a known block stack, or with fewer layers than ``count``, raises a
        ValueError."""
        self.tower.requires_grad_(False)
        if count == 0:
            return
        found = self.parts()
        if found is None:
            *others, last = map(repr, self.BLOCK_PATHS)
            raise ValueError(
                f"cannot train the top {count} layers of a {type(self.tower).__name__}: its block stack is "
                f"not at {', '.join(others)} or {last}; train the whole tower (-1) or none (0)"
            )
        _, blocks, head = found
        n_blocks = count - 1 if head else count
        if n_blocks > len(blocks):
            raise ValueError(
                f"train_vision_layers={count}, but the image tower has {len(blocks) + bool(head)} layers "
                f"({len(blocks)} blocks{' and the layer after them' if head else ''})"
            )
        for parameter in head:
            parameter.requires_grad_(True)
        blocks[len(blocks) - n_blocks :].requires_grad_(True)

    def keep_frozen_norm_statistics(self) -> None:
        """Put the tower's frozen batch norms (those without a trainable parameter) in eval mode, so a training
        step normalises with their loaded running statistics and does not update them."""
        for module in self.tower.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                    p.requires_grad for p in module.parameters()):
                module.eval()

    def leading_frozen_blocks(self) -> int:
        """How many blocks, from the bottom, are frozen together with the stem, in a tower that :attr:`splits`
        (the maps :meth:`run_lower` gives then stay fixed); 0 otherwise."""
        found = self.parts() if self.splits else None
        if found is None or any(p.requires_grad for p in found[0]):
            return 0
        return _leading_frozen(found[1])


class CCRPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading plumbing shared by the CCR models."""

    config_class = CCRConfig
    base_model_prefix = "ccr"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False
    _no_split_modules = ["CCRFusionLayer"]
    _supports_sdpa = True

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """``PreTrainedModel.from_pretrained`` that raises a one-line ValueError, instead of the loader's
        traceback or a silently broken model, for:

        - weights whose shapes disagree with config.json (a local folder; checked from the weight files'
          headers before loading), naming the config field and a tensor;
        - a weight file that cannot be read (truncated or corrupt, e.g. by an interrupted download or
          copy), naming the file;
        - weights holding NaN or infinite values (one pass over the loaded tensors), naming the tensor.
        """
        folder = Path(pretrained_model_name_or_path, kwargs.get("subfolder", ""))
        if folder.is_dir():
            config = cls._config_to_check(folder, kwargs)
            problem = None if config is None else weights_config_disagreement(folder, config, CCRModel)
            if problem is not None:
                raise ValueError(problem)
        try:
            loaded = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        except Exception as error:
            check_weights_readable(pretrained_model_name_or_path, error)
            raise
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # a tuple: with output_loading_info=True
        check_weights_finite(model, pretrained_model_name_or_path)
        return loaded

    @classmethod
    def _config_to_check(cls, folder: Path, kwargs: dict) -> PretrainedConfig | None:
        """The config ``from_pretrained(folder, **kwargs)`` builds the model from: the ``config`` given, or
        the folder's config.json with the config fields among ``kwargs``; None for a ``config`` given as a path."""
        given = kwargs.get("config")
        if given is not None:
            return given if isinstance(given, PretrainedConfig) else None
        fields = inspect.signature(CCRConfig.__init__).parameters
        return CCRConfig.from_pretrained(folder, **{key: value for key, value in kwargs.items() if key in fields})

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, CCRITMHead) and module.residual:  # after its Linears (apply visits children first)
            nn.init.zeros_(module.classifier.weight)
            nn.init.zeros_(module.classifier.bias)
            nn.init.constant_(module.log_similarity_scale, math.log(module.INITIAL_SIMILARITY_SCALE))
            nn.init.zeros_(module.similarity_bias)
        elif isinstance(module, CCRModel):
            nn.init.constant_(module.temperature, self.config.temperature_init)


class CCRModel(CCRPreTrainedModel):
    """Dual encoder + fusion encoder for cross-lingual cross-modal retrieval.

    Retrieval uses :meth:`get_image_features` / :meth:`get_text_features` (``[*, D]``, L2-normalised, cosine
    similarity = dot product); re-ranking and matching use :meth:`itm_logits` / :meth:`score_pairs`.
    """

    # The MLM head that pre-training adds (``CCRForPreTraining`` loads it): a model folder holds it beside our
    # weights, a pre-training checkpoint beside them or, saved while CCRModel held it, among them. Not ours.
    _keys_to_ignore_on_load_unexpected = [r"^(ccr\.)?mlm_head\."]

    def __init__(self, config: CCRConfig):
        super().__init__(config)
        self.vision_model = build_tower(config.vision_config)
        self.text_model = build_tower(config.text_config)
        self.fusion = CCRFusionEncoder(config)
        self.vision_projection = nn.Linear(config.vision_config.hidden_size, config.projection_dim)
        self.text_projection = nn.Linear(config.text_config.hidden_size, config.projection_dim)
        self.itm_head = CCRITMHead(config)
        self.temperature = nn.Parameter(torch.tensor(config.temperature_init))
        self.post_init()

    @classmethod
    def from_backbones(
        cls,
        vision: str | PreTrainedModel,
        text: str | PreTrainedModel,
        text_layers: list[int] | None = None,
        fusion_layers: list[int] | None = None,
        **config_kwargs,
    ) -> CCRModel:
        """Start a CCR model from pretrained towers (folders, hub ids or loaded models).

        Args:
            vision: an image tower (Swin, ViT, CLIP vision, EfficientNet-Lite ...). A classification
                checkpoint works too: its base model is taken.
            text: a text tower (BERT, XLM-R ...); of a masked-LM model or folder (BertForMaskedLM,
                XLMRobertaForMaskedLM ...) the base model is taken. Its LM head starts the MLM head of
                ``modeling_ccr.training.CCRForPreTraining.from_backbones``.
            text_layers: indices of the text backbone's layers that form the text encoder, in order.
            fusion_layers: indices of the backbone's layers whose self-attention and feed-forward weights
                start the fusion layers (cross-attention starts fresh). By default the backbone's stack
                is split in half, lower half text, upper half fusion, as the paper splits 12 layers 6 / 6.
                The paper's XLM-R-large layout keeps the odd layers: :func:`paper_layer_split` (24) gives
                ``text_layers=[1, 3, ..., 11]`` and ``fusion_layers=[13, ..., 23]``.
            config_kwargs: other :class:`CCRConfig` fields (projection_dim, text_pooling ...).
        """
        vision_model = _load_tower(vision).base_model
        text_tower = _load_tower(text, masked_lm=True)
        text_model = text_tower.base_model
        n_layers = text_model.config.num_hidden_layers
        if text_layers is None and fusion_layers is None:
            text_layers, fusion_layers = list(range(n_layers // 2)), list(range(n_layers // 2, n_layers))
        text_layers = list(range(n_layers)) if text_layers is None else list(text_layers)
        fusion_layers = [] if fusion_layers is None else list(fusion_layers)
        bad = [i for i in text_layers + fusion_layers if not 0 <= i < n_layers]
        if bad or not text_layers or not fusion_layers:
            raise ValueError(
                f"text_layers {text_layers} and fusion_layers {fusion_layers} must be non-empty lists of layer "
                f"indices in [0, {n_layers}) of the text backbone"
            )
        text_config = text_model.config.__class__.from_dict(text_model.config.to_dict())
        text_config.num_hidden_layers = len(text_layers)
        config = CCRConfig(
            vision_config=vision_model.config,
            text_config=text_config,
            num_fusion_layers=len(fusion_layers),
            untrained=True,  # new projections and heads: train before use
            **config_kwargs,
        )
        model = cls(config)
        model.vision_model.load_state_dict(vision_model.state_dict())
        backbone = TextTowerAdapter(text_model)
        model.text_model.load_state_dict(backbone.state_dict_with_layers(text_layers))
        for target, source in zip(model.fusion.layer, fusion_layers, strict=True):
            missing, unexpected = target.load_state_dict(backbone.layers[source].state_dict(), strict=False)
            if unexpected or any(not key.startswith("crossattention.") for key in missing):
                raise ValueError(
                    f"text backbone layer {source} does not match a fusion layer (missing {missing}, "
                    f"unexpected {unexpected}): use a BERT-family text tower"
                )
        return model

    # ----- input checks (the public methods check what they are given; what they compute is trusted) ----
    def text_position_limit(self) -> int | None:
        """The most tokens per text the text tower takes: ``max_position_embeddings``, less ``padding_idx + 1``
        for RoBERTa-family towers (their positions start after the padding index); None without a limit."""
        return TextTowerAdapter(self.text_model).position_limit()

    def _check_texts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        vocab_size = self.text_model.get_input_embeddings().num_embeddings
        check_text_inputs(input_ids, attention_mask, vocab_size, self.text_position_limit())

    def _check_pixel_values(self, pixel_values: torch.Tensor) -> None:
        check_pixel_values(pixel_values, getattr(self.config.vision_config, "num_channels", 3))

    # ----- image side -------------------------------------------------------------------------
    def get_image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values ``[B, 3, H, W]`` -> image tokens ``[B, P, Cv]``; token 0 is the image CLS.

        With ``vision_pooling="mean"`` the CLS is the average of the tower's tokens, prepended to them;
        with ``"cls"`` the tower's own token 0 is used. Convolutional maps ``[B, C, h, w]`` are flattened
        row-major to ``[B, h*w, C]`` first. Any float dtype is taken and cast to the tower's (as transformers'
        ViT and CLIP do). An empty batch or NaN / infinite pixel values raise a ValueError.
        """
        self._check_pixel_values(pixel_values)
        return self._image_tokens(pixel_values)

    def _image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        # In the tower's dtype, as transformers' ViT and CLIP cast them: the processor gives float32 whatever
        # the model's dtype, and a float64 array's tensor is float64; convolutions refuse a mixed pair.
        pixel_values = pixel_values.to(self.vision_model.dtype)
        return self.image_tokens_from_states(self.vision_model(pixel_values=pixel_values).last_hidden_state)

    def image_tokens_from_states(self, states: torch.Tensor) -> torch.Tensor:
        """The tower's ``last_hidden_state`` (``[B, P, Cv]`` tokens or a ``[B, Cv, h, w]`` map) -> image tokens
        ``[B, P', Cv]`` as :meth:`get_image_tokens` returns them (pooled CLS first)."""
        if states.dim() == 4:
            states = states.flatten(2).transpose(1, 2)
        if self.config.vision_pooling == "mean":
            states = torch.cat([states.mean(dim=1, keepdim=True), states], dim=1)
        return states

    def project_image_tokens(self, image_tokens: torch.Tensor) -> torch.Tensor:
        """image tokens ``[B, P, Cv]`` -> L2-normalised image embeddings ``[B, D]`` (from token 0)."""
        return F.normalize(self.vision_projection(image_tokens[:, 0]), dim=-1)

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values ``[B, 3, H, W]`` -> L2-normalised image embeddings ``[B, D]`` (checked as
        :meth:`get_image_tokens`)."""
        return self.project_image_tokens(self.get_image_tokens(pixel_values))

    # ----- text side --------------------------------------------------------------------------
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask ``[T, L]`` -> text encoder states ``[T, L, H]``.

        A ValueError names what the text tower cannot encode: an empty batch, more tokens than
        :meth:`text_position_limit`, ids outside the vocabulary, a mask of another shape or an all-zero mask row.
        """
        self._check_texts(input_ids, attention_mask)
        return self._encode_text(input_ids, attention_mask)

    def _encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def project_text_states(self, text_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """text states ``[T, L, H]`` -> L2-normalised text embeddings ``[T, D]`` (CLS or masked mean)."""
        if self.config.text_pooling == "cls":
            pooled = text_states[:, 0]
        else:
            weights = attention_mask.unsqueeze(-1).to(text_states.dtype)
            pooled = (text_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return F.normalize(self.text_projection(pooled), dim=-1)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids, attention_mask ``[T, L]`` -> L2-normalised text embeddings ``[T, D]`` (checked as
        :meth:`encode_text`; no mask: every token counts)."""
        self._check_texts(input_ids, attention_mask)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self.project_text_states(self._encode_text(input_ids, attention_mask), attention_mask)

    # ----- fusion side ------------------------------------------------------------------------
    def fuse(
        self,
        text_states: torch.Tensor,
        attention_mask: torch.Tensor,
        image_tokens: torch.Tensor,
        image_index: torch.Tensor | None = None,
        cls_only: bool = False,
        text_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fusion encoder: text states ``[M, L, H]`` attend to image tokens -> ``[M, L, H]`` (``[M, 1, H]``, the
        CLS row alone, with ``cls_only``: what the ITM head reads, for less work).

        Without ``image_index`` row m of the text is paired with row m of image_tokens ``[M, P, Cv]``. With
        ``image_index`` (long ``[M]``) image_tokens holds each distinct image once (``[U, P, Cv]``) and text
        row m is paired with image ``image_index[m]``; the cross-attention keys and values are then
        computed once per image, which is what makes scoring many pairs of few images cheap. Likewise with
        ``text_index`` (long ``[M]``) text_states ``[T, L, H]`` and attention_mask ``[T, L]`` hold each distinct
        text once and row m takes text ``text_index[m]``: the first fusion layer's self-attention and
        cross-attention queries then run once per text (one query against its N candidate images: T = 1,
        ``text_index`` N zeros); the fused rows' mask is ``attention_mask[text_index]``. Inputs that do
        not pair up (see :func:`check_fusion_inputs`) raise a ValueError. Images that no row pairs with are
        left out before the keys and values are computed (a training step pairs a few of its batch's images).
        """
        check_fusion_inputs(text_states, attention_mask, image_tokens, image_index, text_index)
        if image_index is not None:
            used, image_index = torch.unique(image_index, return_inverse=True)
            if len(used) < image_tokens.shape[0]:
                image_tokens = image_tokens[used]
        return self.fusion(text_states, attention_mask, self.fusion.image_memory(image_tokens), image_index,
                           text_index, cls_only=cls_only)

    def itm_logits(
        self,
        image_tokens: torch.Tensor,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor,
        text_states: torch.Tensor | None = None,
        image_index: torch.Tensor | None = None,
        text_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ITM logits ``[M, 2]`` for the pairs (image_tokens[m] ``[P, Cv]``, text m); column 1 = "matches".

        ``text_states`` ``[M, L, H]`` (from :meth:`encode_text`) may replace ``input_ids``, so a re-ranker
        encodes every text once however many images it is paired with; ``image_index`` (long ``[M]``)
        pairs text m with image ``image_index[m]`` of distinct image tokens ``[U, P, Cv]``, and ``text_index``
        (long ``[M]``) pairs row m with text ``text_index[m]`` of distinct texts (input_ids / attention_mask
        ``[T, L]``, text_states ``[T, L, H]``; see :meth:`fuse`). Inputs are checked as in :meth:`encode_text`
        and :meth:`fuse`.
        """
        if text_states is None:
            if input_ids is None:
                raise ValueError("itm_logits needs input_ids or text_states (from encode_text)")
            text_states = self.encode_text(input_ids, attention_mask)
        fused = self.fuse(text_states, attention_mask, image_tokens, image_index, cls_only=True, text_index=text_index)
        similarity = self._residual_similarity(image_tokens, text_states, attention_mask, image_index, text_index)
        return self.itm_head(fused[:, 0], similarity)

    def itm_similarity(
        self,
        image_embeds: torch.Tensor,
        text_embeds: torch.Tensor,
        image_index: torch.Tensor | None = None,
        text_index: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """What the ITM head reads beside the fusion CLS: the pairs' cosine similarities ``[M]`` for a residual
        head (``config.itm_residual``), None for the paper's. Embeddings ``[U, D]`` / ``[T, D]`` (L2-normalised);
        row m pairs image ``image_index[m]`` with text ``text_index[m]`` (each None: row m)."""
        if not self.config.itm_residual:
            return None
        if image_index is not None:
            image_embeds = image_embeds[image_index]
        if text_index is not None:
            text_embeds = text_embeds[text_index]
        return (image_embeds * text_embeds).sum(dim=-1)

    def _residual_similarity(self, image_tokens, text_states, attention_mask, image_index=None, text_index=None):
        """:meth:`itm_similarity` from image tokens ``[U, P, Cv]`` and text states ``[T, L, H]`` (row m pairs
        text ``text_index[m]`` with image ``image_index[m]``, each None: row m); the embeddings are projected
        only for a residual head."""
        if not self.config.itm_residual:
            return None
        return self.itm_similarity(self.project_image_tokens(image_tokens),
                                   self.project_text_states(text_states, attention_mask), image_index, text_index)

    @torch.no_grad()
    def score_pairs(
        self,
        image_tokens: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        batch_size: int = 64,
    ) -> torch.Tensor:
        """Batched re-ranking scores: the ITM "matches" logit ``[M]`` of each (image, text) pair, i.e.
        :meth:`itm_logits` ``[:, 1]`` of row-wise pairs, ``batch_size`` pairs at a time.

        image_tokens ``[M, P, Cv]`` (from :meth:`get_image_tokens`), input_ids / attention_mask ``[M, L]``,
        M >= 1; the texts are checked once, as in :meth:`encode_text`, before any batch runs.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self._check_texts(input_ids, attention_mask)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if (not isinstance(image_tokens, torch.Tensor) or image_tokens.dim() != 3
                or image_tokens.shape[0] != input_ids.shape[0]):
            got = tuple(image_tokens.shape) if isinstance(image_tokens, torch.Tensor) else type(image_tokens).__name__
            raise ValueError(
                f"score_pairs pairs row by row: image_tokens must be [M, P, Cv] with M = {input_ids.shape[0]} (one per "
                f"text), got {got}"
            )
        scores = []
        for i in range(0, input_ids.shape[0], batch_size):  # checked above: run the text tower unchecked
            mask = attention_mask[i : i + batch_size]
            states = self._encode_text(input_ids[i : i + batch_size], mask)
            scores.append(self.itm_logits(image_tokens[i : i + batch_size], None, mask, text_states=states)[:, 1])
        return torch.cat(scores)

    def reset_itm_head(self, residual: bool) -> None:
        """Replace the ITM head with a new, untrained one, residual (``config.itm_residual``, see
        :class:`CCRITMHead`) or the paper's, and record the kind in the config: to fine-tune a model with the
        other kind of head. The old head's weights are dropped."""
        self.config.itm_residual = bool(residual)
        parameter = self.itm_head.dense.weight
        head = CCRITMHead(self.config).to(device=parameter.device, dtype=parameter.dtype)
        head.apply(self._init_weights)  # children first, as post_init: the residual head zeroes its last Linear
        self.itm_head = head

    def clamped_temperature(self) -> torch.Tensor:
        """The temperature clamped to ``[temperature_min, temperature_max]`` (gradient flows inside the range)."""
        return self.temperature.clamp(self.config.temperature_min, self.config.temperature_max)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        text_image_index: torch.Tensor | None = None,
        text_language_index: torch.Tensor | None = None,
        return_loss: bool = False,
        return_dict: bool | None = None,
    ) -> CCROutput | tuple:
        """Encode images ``[B, 3, H, W]`` and texts ``[T, L]``; similarity logits between all of them.

        With ``return_loss=True`` the texts must be image-major (``T = B*K``, row ``j*K + k`` is caption k
        of image j) and the 1-to-K contrastive loss (released weighting) is returned; the full training
        objective (contrastive + ITM + MLM) is ``modeling_ccr.training.CCRForPreTraining``.
        ``text_image_index`` / ``text_language_index`` (``[T]``, from the processor) are accepted so that
        ``model(**processor(...))`` works; they only describe the layout. Any other keyword is an error.
        Inputs are checked as in :meth:`get_image_tokens` and :meth:`encode_text`.
        """
        if pixel_values is None or input_ids is None:
            raise ValueError("CCRModel.forward needs both pixel_values and input_ids (see get_*_features for one side)")
        self._check_pixel_values(pixel_values)
        self._check_texts(input_ids, attention_mask)
        if return_loss and input_ids.shape[0] % pixel_values.shape[0]:
            raise ValueError(
                f"{input_ids.shape[0]} texts for {pixel_values.shape[0]} images: return_loss=True needs the same "
                "number K of captions for every image, laid out image-major (row j*K + k is caption k of image j)"
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        image_tokens = self._image_tokens(pixel_values)
        image_embeds = self.project_image_tokens(image_tokens)
        text_states = self._encode_text(input_ids, attention_mask)
        text_embeds = self.project_text_states(text_states, attention_mask)
        temperature = self.clamped_temperature()
        logits_per_image = image_embeds @ text_embeds.t() / temperature
        loss = None
        if return_loss:
            loss = one_to_k_loss_parts(image_embeds, text_embeds, temperature)["loss"]
        output = CCROutput(
            loss=loss,
            logits_per_image=logits_per_image,
            logits_per_text=logits_per_image.t(),
            image_embeds=image_embeds,
            text_embeds=text_embeds,
            image_tokens=image_tokens,
            text_hidden_state=text_states,
        )
        use_dict = return_dict if return_dict is not None else self.config.return_dict
        return output if use_dict else output.to_tuple()


def paper_layer_split(num_backbone_layers: int = 24) -> tuple[list[int], list[int]]:
    """The paper's text/fusion split of a deep text backbone: keep the odd layers, lower half text.

    For XLM-R-large (24 layers): ``([1, 3, 5, 7, 9, 11], [13, 15, 17, 19, 21, 23])``.
    """
    odd = list(range(1, num_backbone_layers, 2))
    return odd[: len(odd) // 2], odd[len(odd) // 2 :]


def _load_tower(tower: str | PreTrainedModel, masked_lm: bool = False) -> PreTrainedModel:
    """A tower from a folder, hub id or loaded model (a loaded model is returned as given).

    From a folder or hub id: with ``masked_lm``, when the checkpoint's ``architectures`` name a class
    with a masked-LM head (``*ForMaskedLM``, ``*ForPreTraining``), the masked-LM model with that head;
    otherwise the base model without its optional pooler. Take ``.base_model`` for the encoder itself.
    """
    if isinstance(tower, PreTrainedModel):
        return tower
    if masked_lm and any(
        name.endswith(("ForMaskedLM", "ForPreTraining"))
        for name in AutoConfig.from_pretrained(tower).architectures or ()
    ):
        return AutoModelForMaskedLM.from_pretrained(tower)
    try:
        return AutoModel.from_pretrained(tower, add_pooling_layer=False)
    except TypeError:  # towers without an optional pooler take no such argument
        return AutoModel.from_pretrained(tower)


CCRModel.register_for_auto_class("AutoModel")  # save_pretrained writes auto_map (trust_remote_code loading)
