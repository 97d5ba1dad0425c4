"""The paper-scale path: pretrained Swin + XLM-R towers, odd layers kept, split text / fusion."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModel

from modeling_ccr import CCRModel, CCRProcessor
from modeling_ccr.modeling_ccr import paper_layer_split
from modeling_ccr.testing import tiny_image_processor, tiny_text_config, tiny_tokenizer, tiny_vision_config


@pytest.fixture(scope="module")
def towers(tmp_path_factory):
    """Tiny Swin and 8-layer XLM-R folders, saved as a user would have them."""
    root = tmp_path_factory.mktemp("towers")
    torch.manual_seed(0)
    swin_config = tiny_vision_config("swin")
    swin = AutoModel.from_config(AutoConfig.for_model(**swin_config))
    swin.save_pretrained(root / "swin")
    tiny_image_processor().save_pretrained(root / "swin")
    tokenizer = tiny_tokenizer()
    xlmr = AutoModel.from_config(AutoConfig.for_model(**tiny_text_config(len(tokenizer), num_layers=8)))
    xlmr.save_pretrained(root / "xlmr")
    tokenizer.save_pretrained(root / "xlmr")
    return root, swin, xlmr


def test_paper_layer_split_of_xlmr_large():
    assert paper_layer_split(24) == ([1, 3, 5, 7, 9, 11], [13, 15, 17, 19, 21, 23])


def test_from_backbones_copies_the_chosen_layers_and_round_trips(towers, tmp_path):
    root, swin, xlmr = towers
    text_layers, fusion_layers = paper_layer_split(8)  # [1, 3], [5, 7]
    model = CCRModel.from_backbones(root / "swin", root / "xlmr", text_layers=text_layers,
                                    fusion_layers=fusion_layers, projection_dim=16).eval()
    assert model.config.num_text_layers == 2 and model.config.num_fusion_layers == 2
    assert model.config.vision_config.model_type == "swin"
    source_layers = xlmr.encoder.layer
    for target, source in enumerate(text_layers):
        for (name, got), (_, want) in zip(model.text_model.encoder.layer[target].state_dict().items(),
                                          source_layers[source].state_dict().items(), strict=True):
            assert torch.equal(got, want), name
    fused = model.fusion.layer[1]
    assert torch.equal(fused.attention.self.query.weight, source_layers[7].attention.self.query.weight)
    assert torch.equal(fused.output.dense.weight, source_layers[7].output.dense.weight)
    assert torch.equal(model.vision_model.embeddings.patch_embeddings.projection.weight,
                       swin.embeddings.patch_embeddings.projection.weight)

    processor = CCRProcessor.from_backbones(root / "swin", root / "xlmr", max_length=16)
    from PIL import Image

    batch = processor(images=[Image.new("RGB", (50, 40), (9, 99, 199))], captions=[["a cat", "eine Katze"]])
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reloaded = CCRModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits_per_image, reloaded(**batch).logits_per_image, atol=1e-6)


def test_from_backbones_rejects_out_of_range_layers(towers):
    root, _, _ = towers
    with pytest.raises(ValueError, match=r"in \[0, 8\)"):
        CCRModel.from_backbones(root / "swin", root / "xlmr", text_layers=[0, 1], fusion_layers=[8])
