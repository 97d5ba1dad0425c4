"""The tower adapters of modeling_ccr.py: every known tower (tiny random configs) passes the same tests.

Text towers (BERT, XLM-R): running the adapter's embeddings and all its layers gives the tower's own forward,
a slice of layers then the rest gives the whole, the embeddings and layers cover the tower's parameters in
order, freezing keeps exactly the top N layers trainable, and a layer selection loads into a shorter tower.
Image towers (EfficientNet-Lite, ViT, Swin, CLIP vision): stem, blocks and head cover the tower's parameters
in order, freezing keeps exactly the top N layers trainable, and a tower that splits runs in two parts as it
runs whole (the others run whole: no cache serves their blocks).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModel

from modeling_ccr.modeling_ccr import ImageTowerAdapter, TextTowerAdapter, build_tower
from modeling_ccr.testing import TINY_IMAGE_SIZE, tiny_ccr_config, tiny_text_config

VOCAB = 60
TEXT_LAYERS = 4
TEXT_TOWERS = ["bert", "xlm-roberta"]
IMAGE_TOWERS = ["efficientnet_lite", "vit", "swin", "clip"]
SPLITS = {"efficientnet_lite": True, "vit": False, "swin": False, "clip": False}  # the others run whole


def text_tower(model_type: str, num_layers: int = TEXT_LAYERS, attention: str = "sdpa") -> nn.Module:
    torch.manual_seed(0)
    config = AutoConfig.for_model(**tiny_text_config(VOCAB, model_type, num_layers=num_layers))
    return AutoModel.from_config(config, add_pooling_layer=False, attn_implementation=attention).eval()


def image_tower(kind: str) -> nn.Module:
    torch.manual_seed(0)
    return build_tower(tiny_ccr_config(kind).vision_config).eval()


def texts() -> tuple[torch.Tensor, torch.Tensor]:
    """Three right-padded texts ``[3, 9]`` of 9, 5 and 2 tokens (ids clear of the special ones)."""
    lengths = [9, 5, 2]
    mask = torch.tensor([[1] * n + [0] * (9 - n) for n in lengths])
    ids = torch.randint(5, VOCAB, (3, 9), generator=torch.Generator().manual_seed(1))
    return ids.masked_fill(mask == 0, 1), mask  # 1: the padding id of the tiny configs


def same_parameters(got: list[nn.Parameter], expected: list[nn.Parameter]) -> bool:
    return len(got) == len(expected) and all(a is b for a, b in zip(got, expected, strict=True))


def trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


# ----- text towers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("model_type", TEXT_TOWERS)
def test_embeddings_and_all_layers_give_the_towers_own_forward(model_type, attention):
    tower = text_tower(model_type, attention=attention)
    adapter = TextTowerAdapter(tower)
    assert adapter.runs_slices
    ids, mask = texts()
    with torch.no_grad():
        expected = tower(input_ids=ids, attention_mask=mask).last_hidden_state
        got = adapter.run_layers(adapter.embed(ids), mask)
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model_type", TEXT_TOWERS)
def test_a_slice_of_text_layers_then_the_rest_gives_the_whole(model_type):
    adapter = TextTowerAdapter(text_tower(model_type))
    ids, mask = texts()
    with torch.no_grad():
        hidden = adapter.embed(ids)
        whole = adapter.run_layers(hidden, mask)
        for cut in range(TEXT_LAYERS + 1):
            lower = adapter.run_layers(hidden, mask, stop=cut)
            assert torch.equal(adapter.run_layers(lower, mask, start=cut), whole), cut


@pytest.mark.parametrize("model_type", TEXT_TOWERS)
def test_embeddings_and_layers_cover_the_text_towers_parameters_in_order(model_type):
    tower = text_tower(model_type)
    adapter = TextTowerAdapter(tower)
    assert len(adapter.layers) == TEXT_LAYERS
    layers = [p for layer in adapter.layers for p in layer.parameters()]
    assert same_parameters(list(adapter.embeddings.parameters()) + layers, list(tower.parameters()))


@pytest.mark.parametrize("model_type", TEXT_TOWERS)
def test_freezing_keeps_exactly_the_top_text_layers_trainable(model_type):
    tower = text_tower(model_type)
    adapter = TextTowerAdapter(tower)
    for count in range(TEXT_LAYERS + 2):  # one more than there are: every layer trains
        adapter.train_top_layers(count)
        top = adapter.layers[max(TEXT_LAYERS - count, 0):]
        assert same_parameters(trainable(tower), list(top.parameters())), count
        assert adapter.leading_frozen_layers() == max(TEXT_LAYERS - count, 0)
    tower.requires_grad_(True)
    assert adapter.leading_frozen_layers() == 0  # trainable embeddings: nothing below the layers is fixed


@pytest.mark.parametrize("model_type", TEXT_TOWERS)
def test_a_layer_selection_loads_into_a_shorter_tower_and_runs_those_layers(model_type):
    source = TextTowerAdapter(text_tower(model_type))
    shorter = text_tower(model_type, num_layers=2)
    shorter.load_state_dict(source.state_dict_with_layers([1, 3]))  # strict: every key matches
    ids, mask = texts()
    with torch.no_grad():
        hidden = source.embed(ids)
        expected = source.run_layers(source.run_layers(hidden, mask, start=1, stop=2), mask, start=3)
        got = shorter(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("model_type", "limit"), [("bert", 80), ("xlm-roberta", 78)])
def test_the_position_limit_counts_where_positions_start(model_type, limit):  # RoBERTa's: after padding
    assert TextTowerAdapter(text_tower(model_type)).position_limit() == limit


def test_flash_attention_cannot_run_a_slice():
    tower = text_tower("bert")
    tower.config._attn_implementation = "flash_attention_2"  # as a tower loaded with it says
    assert not TextTowerAdapter(tower).runs_slices


# ----- image towers --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", IMAGE_TOWERS)
def test_stem_blocks_and_head_cover_the_image_towers_parameters_in_order(kind):
    tower = image_tower(kind)
    stem, blocks, head = ImageTowerAdapter(tower).parts()
    assert len(blocks) >= 2 and stem and head
    in_order = stem + [p for block in blocks for p in block.parameters()] + head
    assert same_parameters(in_order, list(tower.parameters()))
    path = next(name for name, module in tower.named_modules() if module is blocks)
    names = {id(p): name for name, p in tower.named_parameters()}
    assert not any(names[id(p)].startswith(path + ".") for p in stem + head)


@pytest.mark.parametrize("kind", IMAGE_TOWERS)
def test_freezing_keeps_exactly_the_top_image_layers_trainable(kind):
    tower = image_tower(kind)
    adapter = ImageTowerAdapter(tower)
    _, blocks, head = adapter.parts()
    n_layers = len(blocks) + 1  # the head counts as the top layer
    for count in range(n_layers + 1):
        adapter.train_top_layers(count)
        top_blocks = blocks[len(blocks) - max(count - 1, 0):]
        expected = list(top_blocks.parameters()) + (head if count else [])
        assert {id(p) for p in trainable(tower)} == {id(p) for p in expected}, count
    with pytest.raises(ValueError, match=f"has {n_layers} layers"):
        adapter.train_top_layers(n_layers + 1)


@pytest.mark.parametrize("kind", IMAGE_TOWERS)
def test_an_image_tower_that_splits_runs_in_two_parts_as_it_runs_whole(kind):
    tower = image_tower(kind)
    adapter = ImageTowerAdapter(tower)
    assert adapter.splits is SPLITS[kind]
    _, blocks, _ = adapter.parts()
    adapter.train_top_layers(1)  # the head trains, every block is frozen with the stem
    assert adapter.leading_frozen_blocks() == (len(blocks) if adapter.splits else 0)  # what a cache can serve
    if not adapter.splits:
        return
    pixels = torch.randn(2, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = tower(pixel_values=pixels).last_hidden_state
        for cut in range(len(blocks) + 1):
            assert torch.equal(adapter.run_upper(adapter.run_lower(pixels, cut), cut), whole), cut
    adapter.train_top_layers(2)
    assert adapter.leading_frozen_blocks() == len(blocks) - 1
    tower.requires_grad_(True)
    assert adapter.leading_frozen_blocks() == 0  # a trainable stem: no block's output is fixed


def test_a_tower_without_a_known_block_stack_runs_whole():
    tower = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
    adapter = ImageTowerAdapter(tower)
    assert adapter.parts() is None and not adapter.splits and adapter.leading_frozen_blocks() == 0
    adapter.train_top_layers(0)
    assert not trainable(tower)


def test_frozen_batch_norms_keep_their_loaded_statistics_and_trainable_ones_update():
    tower = image_tower("efficientnet_lite")
    adapter = ImageTowerAdapter(tower)
    adapter.train_top_layers(2)  # the head conv and the last block train
    norms = [m for m in tower.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    frozen = [m for m in norms if not any(p.requires_grad for p in m.parameters())]
    assert frozen and len(frozen) < len(norms)
    tower.train()
    adapter.keep_frozen_norm_statistics()
    assert all(not m.training for m in frozen)
    assert all(m.training for m in norms if m not in frozen)
    before = [m.running_mean.clone() for m in frozen]
    with torch.no_grad():
        tower(pixel_values=torch.randn(2, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE))
    assert all(torch.equal(m.running_mean, mean) for m, mean in zip(frozen, before, strict=True))
