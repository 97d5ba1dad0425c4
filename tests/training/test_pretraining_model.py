"""CCRForPreTraining: its output equals the objective computed piece by piece; explicit forward arguments;
baseline styles train ITM / MLM on their own caption only; the top image-tower blocks train on cached maps."""

from __future__ import annotations

import pytest
import torch
from test_objective_and_trainer import LANGUAGES, batch_of, objective_for, tiny_dataset

from modeling_ccr.losses import (
    build_itm_pairs,
    itm_loss,
    mask_tokens_for_mlm,
    mlm_loss,
    one_to_k_contrastive_loss,
    sample_caption_languages,
    sample_itm_triplets,
)
from modeling_ccr.losses.mlm import IGNORE_INDEX
from modeling_ccr.testing import tiny_ccr_model, tiny_ccr_processor
from modeling_ccr.training import CCRForPreTraining, set_trainable


@pytest.mark.parametrize("itm_balanced", [False, True])
def test_output_components_equal_the_objective_computed_piece_by_piece(itm_balanced):
    processor, model = tiny_ccr_processor(), tiny_ccr_model("vit", seed=4).eval()  # eval: no dropout
    batch = batch_of(tiny_dataset().select(range(4)), processor)
    objective = objective_for(processor, seed=7, weights={"itm": 0.5, "mlm": 2.0}, itm_balanced=itm_balanced)
    pretraining = CCRForPreTraining.from_ccr_model(model, objective)
    output = pretraining(**batch)

    tokenizer = processor.tokenizer
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        image_tokens = model.get_image_tokens(batch["pixel_values"])
        image_embeds = model.project_image_tokens(image_tokens)
        text_states = model.encode_text(batch["input_ids"], batch["attention_mask"])
        text_embeds = model.project_text_states(text_states, batch["attention_mask"])
        temperature = model.clamped_temperature()
        contrastive = one_to_k_contrastive_loss(image_embeds, text_embeds, temperature, weighting="released")
        triplets = sample_itm_triplets(image_embeds, text_embeds, temperature, generator=generator,
                                       positive_language="released")
        image_index, text_index, labels = build_itm_pairs(triplets)
        mask = batch["attention_mask"]
        fused = model.fuse(text_states[text_index], mask[text_index], image_tokens[image_index])
        itm = itm_loss(model.itm_head(fused[:, 0]), labels, balanced=itm_balanced)
        chosen = triplets.positive_text
        masked, targets = mask_tokens_for_mlm(
            batch["input_ids"][chosen], mask[chosen], tokenizer.all_special_ids, tokenizer.mask_token_id,
            len(tokenizer), mask_probability=model.config.mlm_probability, max_masks=model.config.mlm_max_masks,
            generator=generator, masking="skip-gram")
        logits = pretraining.mlm_logits(model.fuse(model.encode_text(masked, mask[chosen]), mask[chosen], image_tokens))
        mlm = mlm_loss(logits, targets)
    assert (targets != IGNORE_INDEX).any()
    torch.testing.assert_close(output.contrastive_loss, contrastive, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(output.itm_loss, itm, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(output.mlm_loss, mlm, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(output.loss, contrastive + 0.5 * itm + 2.0 * mlm, atol=1e-4, rtol=1e-4)
    assert output.temperature == pytest.approx(float(temperature))


def test_a_misspelt_forward_keyword_raises():
    processor, model = tiny_ccr_processor(), tiny_ccr_model("vit")
    batch = batch_of(tiny_dataset().select(range(2)), processor)
    with pytest.raises(TypeError, match="atention_mask"):
        model(pixel_values=batch["pixel_values"], input_ids=batch["input_ids"], atention_mask=batch["attention_mask"])
    with pytest.raises(TypeError, match="return_los"):
        model(pixel_values=batch["pixel_values"], input_ids=batch["input_ids"], return_los=True)
    head = CCRForPreTraining.from_ccr_model(model, objective_for(processor))
    with pytest.raises(TypeError, match="pixel_value"):
        head(pixel_value=batch["pixel_values"], input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    model(**processor(images=[tiny_dataset()[0]["image"]], captions=[["a", "b"]]), return_loss=True)  # processor keys


def test_without_an_objective_forward_says_how_to_set_one():
    processor, model = tiny_ccr_processor(), tiny_ccr_model("vit")
    batch = batch_of(tiny_dataset().select(range(2)), processor)
    with pytest.raises(ValueError, match="objective=CCRObjective"):
        CCRForPreTraining.from_ccr_model(model)(**batch)


def test_a_saved_head_model_loads_as_a_ccr_model_and_back(tmp_path):
    processor, model = tiny_ccr_processor(), tiny_ccr_model("vit", seed=5).eval()
    model.save_pretrained(tmp_path / "ccr")
    head = CCRForPreTraining.from_pretrained(tmp_path / "ccr", objective=objective_for(processor))
    for name, value in model.state_dict().items():
        torch.testing.assert_close(head.ccr.state_dict()[name], value)
    head.save_pretrained(tmp_path / "head")
    again = type(model).from_pretrained(tmp_path / "head")
    for name, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], value)


def _fused_text_rows(model, objective, batch) -> set[int]:
    """Rows of the image-major text batch that entered the fusion encoder for ITM in one step."""
    with torch.no_grad():
        states = model.encode_text(batch["input_ids"], batch["attention_mask"])
    seen = []
    handle = model.fusion.register_forward_pre_hook(lambda module, args: seen.append((args[0].detach(), args[1])))
    try:
        CCRForPreTraining.from_ccr_model(model, objective)(**batch)
    finally:
        handle.remove()
    (fused_states, fused_mask), = seen  # one fusion pass: ITM's 3N pairs first, then MLM's masked copies
    n_pairs = 3 * batch["pixel_values"].shape[0]
    rows = set()
    for row, mask in zip(fused_states[:n_pairs], fused_mask[:n_pairs], strict=True):
        length = int(mask.sum())  # the fused rows are padded or cut to a common length: compare real tokens
        matches = [i for i in range(states.shape[0]) if int(batch["attention_mask"][i].sum()) == length
                   and torch.allclose(states[i, :length], row[:length], atol=1e-5)]
        assert matches, "a fused text is not a row of the batch"
        rows.update(matches)
    return rows


@pytest.mark.parametrize("style", ["cross-modal", "cross-lingual"])
def test_baseline_styles_fuse_only_their_own_caption(style):
    processor, model = tiny_ccr_processor(), tiny_ccr_model("vit", seed=6).eval()
    batch = batch_of(tiny_dataset().select(range(6)), processor)
    k = len(LANGUAGES)
    objective = objective_for(processor, loss_style=style, seed=11, english_index=0)
    rows = _fused_text_rows(model, objective, batch)
    if style == "cross-modal":  # the languages the step draws first, replayed with the same seed
        languages = sample_caption_languages(6, k, torch.Generator().manual_seed(11))
        allowed = {j * k + int(language) for j, language in enumerate(languages)}
    else:
        allowed = {j * k for j in range(6)}  # English is language 0
    assert rows <= allowed, (rows, allowed)
    one_to_k_rows = _fused_text_rows(model, objective_for(processor, seed=11), batch)
    assert not one_to_k_rows <= {j * k for j in range(6)}  # one-to-k draws among all K languages


def test_top_vision_layers_train_on_cached_lower_maps():
    processor = tiny_ccr_processor()
    model = tiny_ccr_model("efficientnet_lite", seed=8).eval()
    counts = set_trainable(model, train_text_layers=1, train_vision_layers=2)  # the head conv and the last block
    blocks = model.vision_model.blocks
    assert all(p.requires_grad for p in blocks[-1].parameters()) and all(
        p.requires_grad for p in model.vision_model.head.parameters())
    assert not any(p.requires_grad for block in blocks[:-1] for p in block.parameters())
    assert not any(p.requires_grad for p in model.vision_model.stem.parameters())
    assert counts["trainable"] + counts["frozen"] == sum(p.numel() for p in model.parameters())

    batch = batch_of(tiny_dataset().select(range(4)), processor)
    weights = {"itm": 0.0, "mlm": 0.0}
    plain = CCRForPreTraining.from_ccr_model(model, objective_for(processor, weights=weights))
    cached = CCRForPreTraining.from_ccr_model(
        model, objective_for(processor, weights=weights, cache_frozen_features=True))
    stem_calls = []
    model.vision_model.stem.register_forward_hook(lambda module, args, output: stem_calls.append(1))
    expected = plain(**batch).loss
    first = cached(**batch).loss
    stem_calls.clear()
    second = cached(**batch)
    assert stem_calls == []  # the lower blocks' maps came from the cache
    torch.testing.assert_close(first, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(second.loss, expected, atol=1e-5, rtol=1e-5)
    second.loss.backward()
    assert blocks[-1].project.conv.weight.grad is not None and blocks[0].project.conv.weight.grad is None


def test_a_tower_without_a_known_block_stack_is_refused_by_name():
    from modeling_ccr.modeling_ccr import ImageTowerAdapter

    with pytest.raises(ValueError, match="Linear.*train the whole tower"):
        ImageTowerAdapter(torch.nn.Linear(2, 2)).train_top_layers(1)
    model = tiny_ccr_model("vit")
    with pytest.raises(ValueError, match="has 3 layers"):  # 2 blocks and the final norm
        set_trainable(model, train_text_layers=1, train_vision_layers=99)
    set_trainable(model, train_text_layers=1, train_vision_layers=1)
    trainable = {name for name, p in model.vision_model.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("layernorm.") for name in trainable)
