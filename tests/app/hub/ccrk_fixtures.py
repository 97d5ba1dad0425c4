"""A synthetic CCRK checkpoint: the released key names and layout, scaled down.

Names follow the authors' pre-training model (github.com/BUAADreamer/CCRK: models/xvlm.py, xbert.py,
swin_transformer.py): a Swin in the original layout under ``vision_encoder.``, a BertForMaskedLM under
``text_encoder.`` whose top layers carry ``crossattention``, ``vision_proj`` / ``text_proj``, the ITM MLP
``itm_head.{0,1,3}`` and ``temp``. Sizes: 32 px images, patch 4, window 4, Swin dims 8 -> 16, depths
[2, 2]; text hidden 32 with 2 text + 2 fusion layers; retrieval space 16.
"""

from __future__ import annotations

import torch

from modeling_ccr.testing import tiny_tokenizer

IMAGE_SIZE, PATCH, WINDOW, EMBED_DIM, DEPTHS, HEADS = 32, 4, 4, 8, (2, 2), (2, 4)
HIDDEN, TEXT_LAYERS, FUSION_LAYERS, INTERMEDIATE, POSITIONS, TEXT_HEADS, PROJECTION = 32, 2, 2, 64, 42, 4, 16


def _relative_position_index(window: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return relative[..., 0] * (2 * window - 1) + relative[..., 1]


def synthetic_ccrk_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A complete state dict of the released layout with random values (LayerNorm weights near 1)."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def add(name: str, *shape: int, norm: bool = False) -> None:
        value = torch.randn(*shape, generator=generator) * (0.1 if norm else 0.2)
        state[name] = value + 1.0 if norm and name.endswith("weight") else value

    def linear(name: str, out: int, inp: int) -> None:
        add(name + ".weight", out, inp)
        add(name + ".bias", out)

    def layer_norm(name: str, dim: int) -> None:
        add(name + ".weight", dim, norm=True)
        add(name + ".bias", dim, norm=True)

    v = "vision_encoder."
    add(v + "patch_embed.proj.weight", EMBED_DIM, 3, PATCH, PATCH)
    add(v + "patch_embed.proj.bias", EMBED_DIM)
    layer_norm(v + "patch_embed.norm", EMBED_DIM)
    resolution = IMAGE_SIZE // PATCH
    for stage, (depth, heads) in enumerate(zip(DEPTHS, HEADS, strict=True)):
        dim = EMBED_DIM * 2**stage
        for block in range(depth):
            b = f"{v}layers.{stage}.blocks.{block}."
            layer_norm(b + "norm1", dim)
            add(b + "attn.relative_position_bias_table", (2 * WINDOW - 1) ** 2, heads)
            state[b + "attn.relative_position_index"] = _relative_position_index(WINDOW)
            linear(b + "attn.qkv", 3 * dim, dim)
            linear(b + "attn.proj", dim, dim)
            layer_norm(b + "norm2", dim)
            linear(b + "mlp.fc1", 4 * dim, dim)
            linear(b + "mlp.fc2", dim, 4 * dim)
            if block % 2 == 1 and resolution > WINDOW:  # shifted windows keep their mask as a buffer
                windows = (resolution // WINDOW) ** 2
                state[b + "attn_mask"] = torch.zeros(windows, WINDOW * WINDOW, WINDOW * WINDOW)
        if stage < len(DEPTHS) - 1:
            add(f"{v}layers.{stage}.downsample.reduction.weight", 2 * dim, 4 * dim)
            layer_norm(f"{v}layers.{stage}.downsample.norm", 4 * dim)
            resolution //= 2
    vision_width = EMBED_DIM * 2 ** (len(DEPTHS) - 1)
    layer_norm(v + "norm", vision_width)

    t = "text_encoder.bert."
    vocab = len(tiny_tokenizer())
    state[t + "embeddings.position_ids"] = torch.arange(POSITIONS).expand(1, -1).clone()
    add(t + "embeddings.word_embeddings.weight", vocab, HIDDEN)
    add(t + "embeddings.position_embeddings.weight", POSITIONS, HIDDEN)
    add(t + "embeddings.token_type_embeddings.weight", 1, HIDDEN)
    layer_norm(t + "embeddings.LayerNorm", HIDDEN)
    for index in range(TEXT_LAYERS + FUSION_LAYERS):
        layer = f"{t}encoder.layer.{index}."
        for name in ("query", "key", "value"):
            linear(layer + f"attention.self.{name}", HIDDEN, HIDDEN)
        linear(layer + "attention.output.dense", HIDDEN, HIDDEN)
        layer_norm(layer + "attention.output.LayerNorm", HIDDEN)
        if index >= TEXT_LAYERS:
            linear(layer + "crossattention.self.query", HIDDEN, HIDDEN)
            linear(layer + "crossattention.self.key", HIDDEN, vision_width)
            linear(layer + "crossattention.self.value", HIDDEN, vision_width)
            linear(layer + "crossattention.output.dense", HIDDEN, HIDDEN)
            layer_norm(layer + "crossattention.output.LayerNorm", HIDDEN)
        linear(layer + "intermediate.dense", INTERMEDIATE, HIDDEN)
        linear(layer + "output.dense", HIDDEN, INTERMEDIATE)
        layer_norm(layer + "output.LayerNorm", HIDDEN)
    p = "text_encoder.cls.predictions."
    add(p + "bias", vocab)
    linear(p + "transform.dense", HIDDEN, HIDDEN)
    layer_norm(p + "transform.LayerNorm", HIDDEN)
    state[p + "decoder.weight"] = state[t + "embeddings.word_embeddings.weight"]  # tied, as BertForMaskedLM saves it
    state[p + "decoder.bias"] = state[p + "bias"]

    linear("vision_proj", PROJECTION, vision_width)
    linear("text_proj", PROJECTION, HIDDEN)
    linear("itm_head.0", 2 * HIDDEN, HIDDEN)
    layer_norm("itm_head.1", 2 * HIDDEN)
    linear("itm_head.3", 2, 2 * HIDDEN)
    state["temp"] = torch.tensor(0.05)
    return state


def save_checkpoint(state: dict[str, torch.Tensor], path) -> None:
    """Save like the authors' pre-training script: the model beside optimiser state and the epoch."""
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]}, "epoch": 29}, path)
