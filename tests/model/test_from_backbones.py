"""The paper-scale path: pretrained Swin + XLM-R towers, odd layers kept, split text / fusion."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModel

from modeling_ccr import CCRModel, CCRProcessor
from modeling_ccr.modeling_ccr import paper_layer_split
from modeling_ccr.testing import tiny_image_processor, tiny_text_config, tiny_tokenizer, tiny_vision_config
from modeling_ccr.training import CCRForPreTraining


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
    assert model.config.untrained  # new projections and heads: commands warn until it is trained
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


def _masked_lm_folder(root, model_type: str, num_layers: int, seed: int):
    """A tiny random masked-LM text tower (hidden 32) saved as a user would have it."""
    from transformers import AutoModelForMaskedLM

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    config = AutoConfig.for_model(**tiny_text_config(len(tokenizer), model_type=model_type, num_layers=num_layers))
    masked_lm = AutoModelForMaskedLM.from_config(config).eval()
    with torch.no_grad():  # a non-zero bias and LayerNorm, so that loading them is visible
        for name, parameter in masked_lm.named_parameters():
            if "bias" in name or "LayerNorm" in name or "layer_norm" in name:
                parameter.add_(torch.randn_like(parameter))
    folder = root / model_type
    masked_lm.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, masked_lm


@pytest.mark.parametrize(("model_type", "num_layers"), [("bert", 2), ("xlm-roberta", 4)])
def test_from_backbones_starts_the_mlm_head_from_the_backbones_lm_head(towers, tmp_path, model_type, num_layers):
    root, _, _ = towers
    folder, masked_lm = _masked_lm_folder(tmp_path, model_type, num_layers, seed=3)
    states = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(4))
    head = masked_lm.cls if model_type == "bert" else masked_lm.lm_head
    with torch.no_grad():
        expected = head(states)  # the backbone's own LM head on the same states
        for text in (folder, masked_lm):  # a folder or a loaded model
            model = CCRForPreTraining.from_backbones(root / "swin", text, projection_dim=16).eval()
            torch.testing.assert_close(model.mlm_logits(states), expected, rtol=1e-5, atol=1e-5)
            # the CCR model is the one CCRModel.from_backbones builds, and carries no MLM head
            plain = CCRModel.from_backbones(root / "swin", text, projection_dim=16)
            assert model.ccr.state_dict().keys() == plain.state_dict().keys()
            assert not any(name.startswith("mlm_head.") for name in plain.state_dict())
            assert torch.equal(model.ccr.text_model.embeddings.word_embeddings.weight,
                               plain.text_model.embeddings.word_embeddings.weight)

        # a base model (no LM head) keeps the fresh initialisation: zero bias, unit LayerNorm
        base = CCRForPreTraining.from_backbones(root / "swin", masked_lm.base_model, projection_dim=16)
        assert torch.equal(base.mlm_head.bias, torch.zeros_like(base.mlm_head.bias))
        assert torch.equal(base.mlm_head.layer_norm.weight, torch.ones(32))


def test_an_lm_head_that_ccr_cannot_reproduce_is_refused(towers, tmp_path):
    root, _, _ = towers
    _, masked_lm = _masked_lm_folder(tmp_path, "bert", 2, seed=5)
    masked_lm.config.hidden_act = "relu"
    with pytest.raises(ValueError, match="activation 'relu'.*pass the base model"):
        CCRForPreTraining.from_backbones(root / "swin", masked_lm, projection_dim=16)


def test_a_pretraining_checkpoint_gives_its_lm_head_too(towers, tmp_path):
    from transformers import BertForPreTraining

    root, _, _ = towers
    torch.manual_seed(6)
    config = AutoConfig.for_model(**tiny_text_config(len(tiny_tokenizer()), model_type="bert", num_layers=2))
    pretraining = BertForPreTraining(config).eval()
    with torch.no_grad():
        pretraining.cls.predictions.bias.add_(torch.randn(config.vocab_size))
    pretraining.save_pretrained(tmp_path / "bert-pretraining")
    states = torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(7))
    model = CCRForPreTraining.from_backbones(root / "swin", tmp_path / "bert-pretraining", projection_dim=16).eval()
    with torch.no_grad():
        torch.testing.assert_close(model.mlm_logits(states), pretraining.cls.predictions(states), rtol=1e-5, atol=1e-5)
