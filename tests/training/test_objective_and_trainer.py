"""The CCR objective and CCRTrainer on a tiny model: components, logging, GA scaling, clamping, learning."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from accelerate import PartialState
from PIL import Image
from transformers import TrainingArguments

from modeling_ccr.losses import one_to_k_contrastive_loss
from modeling_ccr.testing import tiny_ccr_model, tiny_ccr_processor
from modeling_ccr.training import (
    CCRDataCollator,
    CCRForPreTraining,
    CCRObjective,
    CCRTrainer,
    CCRTrainingArguments,
    set_trainable,
)
from modeling_ccr.training.run import warmup_steps_for

LANGUAGES = ["en", "de", "fr"]
WORDS = {"en": ["red", "green", "blue", "black", "white", "pink", "gray", "brown"],
         "de": ["rot", "grün", "blau", "schwarz", "weiß", "rosa", "grau", "braun"],
         "fr": ["rouge", "vert", "bleu", "noir", "blanc", "rose", "gris", "brun"]}
COLOURS = [(220, 20, 20), (20, 200, 20), (20, 20, 220), (0, 0, 0), (255, 255, 255), (255, 150, 200),
           (128, 128, 128), (120, 70, 20)]


def tiny_dataset() -> datasets.Dataset:
    rows = {"id": [], "image": [], "captions": [], "keywords": []}
    for i, colour in enumerate(COLOURS):
        rows["id"].append(f"c{i}")
        rows["image"].append(Image.new("RGB", (16, 16), colour))
        rows["captions"].append({lang: f"a {WORDS[lang][i]} square" for lang in LANGUAGES})
        rows["keywords"].append({lang: [WORDS[lang][i]] for lang in LANGUAGES})
    return datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image())


def objective_for(processor, **options) -> CCRObjective:
    tokenizer = processor.tokenizer
    return CCRObjective(mask_token_id=tokenizer.mask_token_id, special_token_ids=tokenizer.all_special_ids,
                        vocab_size=len(tokenizer), **options)


def batch_of(rows, processor):
    return CCRDataCollator(processor, LANGUAGES)([rows[i] for i in range(len(rows))])


def test_objective_components_and_weighted_sum():
    processor, model = tiny_ccr_processor(), tiny_ccr_model("vit")
    batch = batch_of(tiny_dataset().select(range(4)), processor)
    objective = objective_for(processor, weights={"itm": 0.5, "mlm": 2.0})
    pretraining = CCRForPreTraining.from_ccr_model(model, objective)
    output = pretraining(**batch)
    parts = {"loss": output.loss, **output.components()}
    assert set(parts) == {"loss", "contrastive", "itm", "mlm", "temperature"}
    assert set(output.diagnostics()) == {"itm_accuracy", "itm_negatives_same_text"}
    # 4 images: 12 pairs, 8 hard negatives (tiny captions may coincide)
    for name, count in (("itm_accuracy", 12), ("itm_negatives_same_text", 8)):
        share = float(getattr(output, name))
        assert 0.0 <= share <= 1.0 and share * count == pytest.approx(round(share * count)), (name, share)
    expected = parts["contrastive"] + 0.5 * parts["itm"] + 2.0 * parts["mlm"]
    assert torch.allclose(parts["loss"], expected)
    # the contrastive part is the 1-to-K loss of the model's own embeddings
    with torch.no_grad():
        image_embeds = model.get_image_features(batch["pixel_values"])
        text_embeds = model.get_text_features(batch["input_ids"], batch["attention_mask"])
    assert torch.allclose(parts["contrastive"], one_to_k_contrastive_loss(image_embeds, text_embeds, 0.07), atol=1e-5)
    parts["loss"].backward()
    assert model.itm_head.classifier.weight.grad is not None and pretraining.mlm_head.dense.weight.grad is not None


def test_zero_weight_skips_a_component_and_bad_settings_fail_early():
    processor, model = tiny_ccr_processor(), tiny_ccr_model("vit")
    batch = batch_of(tiny_dataset().select(range(3)), processor)
    output = CCRForPreTraining.from_ccr_model(
        model, objective_for(processor, weights={"itm": 0.0, "mlm": 0.0}))(**batch)
    assert set(output.keys()) == {"loss", "contrastive_loss", "temperature"}
    with pytest.raises(ValueError, match="unknown loss style"):
        objective_for(processor, loss_style="one-to-one")
    with pytest.raises(ValueError, match="unknown loss components"):
        objective_for(processor, weights={"itc": 1.0})
    with pytest.raises(ValueError, match="itm_negative_temperature must be > 0"):
        objective_for(processor, itm_negative_temperature=0.0)
    with pytest.raises(ValueError, match="itm_negative_temperature must be > 0"):
        CCRTrainingArguments(output_dir="unused", itm_negative_temperature=-1.0)


def test_the_default_recipe_and_the_papers_itm_draw():
    """ccr train's ITM: negatives at temperature 0.3 from 32 images per step, MLM off; 0 is the paper's draw
    (the model's contrastive temperature), and the paper's weights stay selectable."""
    args = CCRTrainingArguments(output_dir="unused")
    assert (args.itm_negative_draw_temperature(), args.fusion_batch_size) == (0.3, 32)
    assert args.objective_weights() == {"contrastive": 1.0, "itm": 1.0, "mlm": 0.0}
    paper = CCRTrainingArguments(output_dir="unused", itm_negative_temperature=0.0, mlm_weight=1.0)
    assert paper.itm_negative_draw_temperature() is None and paper.objective_weights()["mlm"] == 1.0


def test_a_warm_up_below_1_is_a_ratio_of_max_steps_whatever_the_transformers_version():
    """transformers 5 reads warmup_steps < 1 as a ratio of the steps, 4.x as that many steps (none): the
    arguments turn a ratio into ceil(ratio * max_steps) steps, so every version warms up as long."""
    assert (warmup_steps_for(0.03, 600), warmup_steps_for(0.03, 20), warmup_steps_for(0.5, 3)) == (18, 1, 2)
    assert (warmup_steps_for(0, 600), warmup_steps_for(50, 600)) == (0, 50)  # no warm-up, a count: kept
    args = CCRTrainingArguments(output_dir="unused", max_steps=600)  # the default, 0.03
    assert args.warmup_steps == 18 and args.get_warmup_steps(600) == 18


def test_the_objective_takes_the_process_index_and_creates_no_accelerate_state(monkeypatch):
    """Each process draws from seed + its index (``train`` passes ``args.process_index``); building the
    objective sets up no distributed state as a side effect."""

    def refuse(*args, **kwargs):
        raise AssertionError("CCRObjective created an accelerate PartialState")

    monkeypatch.setattr(PartialState, "__init__", refuse)
    processor = tiny_ccr_processor()
    seeds = [objective_for(processor, seed=3, process_index=i).generator.initial_seed() for i in (0, 2)]
    assert seeds == [3, 5] and objective_for(processor, seed=3).generator.initial_seed() == 3


def test_collator_refuses_a_missing_language():
    processor = tiny_ccr_processor()
    rows = [dict(r) for r in tiny_dataset().select(range(2))]
    rows[1]["captions"] = {"en": "x", "de": "y"}
    with pytest.raises(ValueError, match=r"caption 'fr' of image 1 is empty or not a string"):
        CCRDataCollator(processor, LANGUAGES)(rows)


def _trainer(tmp_path, model, processor, objective, arguments=TrainingArguments, **args):
    options = dict(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=1, logging_steps=1,
                   learning_rate=0.0, report_to=[], remove_unused_columns=False, dataloader_drop_last=True,
                   save_strategy="no", disable_tqdm=True, seed=0, lr_scheduler_type="constant")
    options.update(args)
    return CCRTrainer(model=CCRForPreTraining.from_ccr_model(model, objective), args=arguments(**options),
                      train_dataset=tiny_dataset(), data_collator=CCRDataCollator(processor, LANGUAGES))


def test_gradient_accumulation_logs_the_mean_of_the_micro_batches(tmp_path):
    processor, model = tiny_ccr_processor(), tiny_ccr_model("vit", seed=1)
    objective = objective_for(processor, weights={"itm": 0.0, "mlm": 0.0})  # deterministic
    trainer = _trainer(tmp_path, model, processor, objective, gradient_accumulation_steps=2,
                       per_device_train_batch_size=2)
    seen = []
    collate = trainer.data_collator
    trainer.data_collator = lambda rows: seen.append(collate(rows)) or seen[-1]
    trainer.train()  # learning rate 0: the weights stay as they were
    with torch.no_grad():
        micro = [float(CCRForPreTraining.from_ccr_model(model, objective)(**batch).loss) for batch in seen[:2]]
    logged = [entry for entry in trainer.state.log_history if "loss" in entry][0]
    assert logged["loss"] == pytest.approx(sum(micro) / 2, rel=1e-4)
    assert logged["loss_contrastive"] == pytest.approx(sum(micro) / 2, rel=1e-4)


def test_trainer_logs_each_component_clamps_temperature_and_learns(tmp_path):
    processor, model = tiny_ccr_processor(), tiny_ccr_model("vit", seed=2)
    dataset = tiny_dataset()
    fixed = batch_of(dataset, processor)
    contrastive_only = objective_for(processor, weights={"itm": 0.0, "mlm": 0.0})
    with torch.no_grad():
        before = float(CCRForPreTraining.from_ccr_model(model.eval(), contrastive_only)(**fixed).contrastive_loss)
    model.temperature.data.fill_(0.0001)  # below the floor: clamped after the first step
    trainer = _trainer(tmp_path, model, processor, objective_for(processor, seed=3), max_steps=25,
                       learning_rate=3e-3, logging_steps=5)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 5
    for entry in logs:
        assert {"loss_contrastive", "loss_itm", "loss_mlm", "temperature", "itm_accuracy",
                "itm_negatives_same_text"} <= set(entry)
        assert 0.0 <= entry["itm_accuracy"] <= 1.0 and 0.0 <= entry["itm_negatives_same_text"] <= 1.0
        assert np.isfinite(entry["loss"])
    assert float(model.temperature) >= model.config.temperature_min
    with torch.no_grad():
        after = float(CCRForPreTraining.from_ccr_model(model.eval(), contrastive_only)(**fixed).contrastive_loss)
    assert after < before - 0.1, (before, after)


def test_set_trainable_freezes_the_lower_text_layers_and_the_image_tower():
    model = tiny_ccr_model("vit")
    counts = set_trainable(model, train_text_layers=1, train_vision_layers=0)
    layers = model.text_model.encoder.layer
    assert not any(p.requires_grad for p in layers[0].parameters())
    assert all(p.requires_grad for p in layers[1].parameters())
    assert not any(p.requires_grad for p in model.text_model.embeddings.parameters())
    assert not any(p.requires_grad for p in model.vision_model.parameters())
    assert all(p.requires_grad for p in model.fusion.parameters()) and model.temperature.requires_grad
    assert counts["trainable"] + counts["frozen"] == sum(p.numel() for p in model.parameters())


def test_image_token_cache_gives_the_same_losses_and_skips_the_frozen_tower():
    processor = tiny_ccr_processor()
    model = tiny_ccr_model("efficientnet_lite")
    set_trainable(model, train_text_layers=1, train_vision_layers=0)
    batch = batch_of(tiny_dataset().select(range(4)), processor)
    assert batch["image_ids"] == ["c0", "c1", "c2", "c3"]
    calls = []
    model.vision_model.register_forward_hook(lambda module, args, output: calls.append(args))
    weights = {"itm": 0.0, "mlm": 0.0}
    plain = CCRForPreTraining.from_ccr_model(model, objective_for(processor, weights=weights))(**batch).loss
    cached = CCRForPreTraining.from_ccr_model(
        model, objective_for(processor, weights=weights, cache_frozen_features=True))
    first = cached(**batch).loss
    calls.clear()
    second = cached(**batch).loss
    assert calls == []  # every image came from the cache
    assert torch.allclose(plain, first, atol=1e-6) and torch.allclose(first, second, atol=1e-6)


def test_cached_frozen_text_layers_give_the_text_encoder_states():
    from modeling_ccr.training.feature_cache import FrozenFeatureCache, leading_frozen_layers

    processor = tiny_ccr_processor()
    model = tiny_ccr_model("vit")
    set_trainable(model, train_text_layers=1, train_vision_layers=0)
    assert leading_frozen_layers(model) == 1
    batch = batch_of(tiny_dataset().select(range(5)), processor)
    cache = FrozenFeatureCache()
    with torch.no_grad():
        expected = model.encode_text(batch["input_ids"], batch["attention_mask"])
        got = cache.texts(model, batch["input_ids"], batch["attention_mask"], n_frozen=1)
        again = cache.texts(model, batch["input_ids"][:4], batch["attention_mask"][:4], n_frozen=1)
    real = batch["attention_mask"].bool()
    assert torch.allclose(got[real], expected[real], atol=1e-5)
    assert len(cache.text_states) == len({tuple(r[m].tolist()) for r, m in zip(batch["input_ids"], real, strict=True)})
    length = int(batch["attention_mask"][:4].sum(1).max())
    assert torch.allclose(again[:, :length][real[:4, :length]], expected[:4, :length][real[:4, :length]], atol=1e-5)


@pytest.mark.parametrize("train_vision_layers", [0, 1])  # image tokens of a frozen tower / maps of frozen blocks
def test_a_cache_filled_before_training_holds_what_the_steps_would_compute(train_vision_layers):
    processor = tiny_ccr_processor()
    model = tiny_ccr_model("efficientnet_lite")
    set_trainable(model, train_text_layers=1, train_vision_layers=train_vision_layers)
    model.train()  # as the Trainer runs it: frozen parts must still give their eval-mode features
    rows = tiny_dataset()
    weights = {"itm": 0.0, "mlm": 0.0}
    stepped = objective_for(processor, weights=weights, cache_frozen_features=True)
    for start in range(0, len(rows), 3):  # steps of 3, 3 and 2 images
        stepped(model, **{key: value for key, value in batch_of(rows.select(range(start, min(start + 3, len(rows)))),
                                                                    processor).items() if key in STEP_INPUTS})
    prefilled = objective_for(processor, weights=weights, cache_frozen_features=True)
    sizes = prefilled.prefill_feature_cache(model, [batch_of(rows, processor)])  # all 8 images in one batch

    step_cache, fill_cache = stepped.feature_cache, prefilled.feature_cache
    images = fill_cache.image_tokens if train_vision_layers == 0 else fill_cache.image_maps
    assert sizes == {"images": 8, "texts": len(fill_cache.text_states)} and len(images) == 8
    assert len(fill_cache.text_states) == 8 * len(LANGUAGES)  # every caption differs
    for kind in ("image_tokens", "image_maps", "text_states"):
        expected, got = getattr(step_cache, kind), getattr(fill_cache, kind)
        assert expected.keys() == got.keys()
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-6)

    # Training on the filled cache computes no frozen feature.
    def refuse(*args, **kwargs):
        raise AssertionError("a frozen feature was computed during a step")

    fill_cache._fill = refuse
    model.vision_model.lower_features = refuse
    model.get_image_tokens = refuse
    collator = CCRDataCollator(processor, LANGUAGES, images_cached=fill_cache.holds_images)
    batch = collator([rows[i] for i in range(4)])
    assert batch["pixel_values"] is None  # cached images are not decoded or resized
    loss = prefilled(model, **{key: value for key, value in batch.items() if key in STEP_INPUTS})["loss"]
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="pass the pixels"):
        objective_for(processor, weights=weights)(model, **{key: value for key, value in batch.items()
                                                             if key in STEP_INPUTS})
    fill_cache.image_tokens.clear()
    fill_cache.image_maps.clear()
    assert collator([rows[i] for i in range(4)])["pixel_values"].shape[0] == 4  # not cached: pixels again


STEP_INPUTS = ("pixel_values", "input_ids", "attention_mask", "image_ids")


def test_cutting_padding_columns_and_unused_images_leaves_the_fusion_output_unchanged():
    from modeling_ccr.modeling_ccr import trim_padding

    processor = tiny_ccr_processor()
    model = tiny_ccr_model("vit")
    batch = batch_of(tiny_dataset().select(range(4)), processor)
    rows = torch.tensor([0, 5, 7])
    pad = processor.tokenizer.pad_token_id
    ids = torch.nn.functional.pad(batch["input_ids"][rows], (0, 6), value=pad)  # 6 more padding columns
    mask = torch.nn.functional.pad(batch["attention_mask"][rows], (0, 6))
    cut_mask, cut_ids = trim_padding(mask, ids)
    assert cut_mask.shape[1] == int(mask.sum(dim=1).max()) and torch.equal(cut_ids, ids[:, : cut_mask.shape[1]])
    with torch.no_grad():
        tokens = model.get_image_tokens(batch["pixel_values"])  # 4 images, 2 of them used below
        full = model.fuse(model.encode_text(ids, mask), mask, tokens, torch.tensor([3, 3, 1]))
        cut = model.fuse(model.encode_text(cut_ids, cut_mask), cut_mask, tokens[[1, 3]], torch.tensor([1, 1, 0]))
    real = cut_mask.bool()
    torch.testing.assert_close(cut[real], full[:, : cut_mask.shape[1]][real], rtol=0, atol=1e-5)


def test_fusion_groups_in_one_pass_equal_each_group_alone_with_keys_once_per_image():
    from modeling_ccr.modeling_ccr import trim_padding
    from modeling_ccr.training.objective import fuse_groups

    processor = tiny_ccr_processor()
    model = tiny_ccr_model("vit").eval()
    batch = batch_of(tiny_dataset().select(range(4)), processor)
    with torch.no_grad():
        tokens = model.get_image_tokens(batch["pixel_values"])
        states = model.encode_text(batch["input_ids"], batch["attention_mask"])
    short = torch.tensor([0, 3, 6])  # two groups of different lengths sharing image 1
    long_mask, long_states = trim_padding(batch["attention_mask"][[10, 2]], states[[10, 2]])
    short_mask, short_states = trim_padding(batch["attention_mask"][short], states[short])
    assert long_mask.shape[1] > short_mask.shape[1]  # group b is padded in the common pass
    groups = {"a": (long_states, long_mask, torch.tensor([1, 3])),
              "b": (short_states, short_mask, torch.tensor([1, 1, 2]))}
    key_rows = []
    hook = model.fusion.layer[0].crossattention.self.key.register_forward_hook(
        lambda module, args, output: key_rows.append(args[0].shape[0]))
    with torch.no_grad():
        together = fuse_groups(model, tokens, groups)
    hook.remove()
    assert key_rows == [3]  # images 1, 2 and 3, once each, in one pass
    for name, (group_states, mask, index) in groups.items():
        with torch.no_grad():
            alone = model.fuse(group_states, mask, tokens, index)
        assert together[name].shape == alone.shape
        real = mask.bool()
        torch.testing.assert_close(together[name][real], alone[real], rtol=0, atol=1e-5)
    assert fuse_groups(model, tokens, {}) == {}


def test_detached_fusion_image_tokens_leave_the_image_tower_to_the_contrastive_loss():
    processor = tiny_ccr_processor()
    batch = batch_of(tiny_dataset().select(range(4)), processor)

    def tower_gradients(**options) -> dict[str, torch.Tensor]:
        model = tiny_ccr_model("vit", seed=3).eval()  # eval: no dropout, the same model each time
        CCRForPreTraining.from_ccr_model(model, objective_for(processor, seed=5, **options))(**batch).loss.backward()
        return {name: p.grad.clone() for name, p in model.vision_model.named_parameters() if p.grad is not None}

    contrastive_only = tower_gradients(weights={"itm": 0.0, "mlm": 0.0})
    detached = tower_gradients(detach_fusion_image_tokens=True)
    joint = tower_gradients()
    assert contrastive_only and detached.keys() == contrastive_only.keys() == joint.keys()
    for name, gradient in contrastive_only.items():
        torch.testing.assert_close(detached[name], gradient, atol=1e-6, rtol=1e-5)
    assert any(not torch.allclose(joint[name], gradient, atol=1e-6) for name, gradient in contrastive_only.items())


@pytest.mark.parametrize("detach", [True, False])
def test_a_residual_itm_head_trains_the_embeddings_through_its_similarity_only_when_not_detached(detach):
    processor = tiny_ccr_processor()
    batch = batch_of(tiny_dataset().select(range(4)), processor)
    model = tiny_ccr_model("vit", seed=3, itm_residual=True).eval()
    objective = objective_for(processor, seed=5, weights={"contrastive": 0.0, "mlm": 0.0}, detach_itm_similarity=detach)
    CCRForPreTraining.from_ccr_model(model, objective)(**batch).loss.backward()
    # ITM alone: the head's scalars learn; the text projection (which feeds nothing but the similarity, the
    # fusion reads the text states) gets a gradient only through the similarity
    assert model.itm_head.log_similarity_scale.grad.abs() > 0 and model.itm_head.similarity_bias.grad.abs() > 0
    projection = model.text_projection.weight.grad
    assert (projection is None or not projection.any()) if detach else projection.abs().sum() > 0
    assert objective.get_config_dict()["detach_itm_similarity"] is detach


def test_optimizer_groups_scale_the_learning_rate_by_parameter_origin(tmp_path):
    from modeling_ccr.training import parameter_group

    processor, model = tiny_ccr_processor(), tiny_ccr_model("vit")
    set_trainable(model, train_text_layers=1, train_vision_layers=0)
    set_trainable(model, train_text_layers=1, train_vision_layers=1)
    trainer = _trainer(tmp_path, model, processor, objective_for(processor), arguments=CCRTrainingArguments,
                       learning_rate=1e-4)
    optimizer = trainer.create_optimizer()
    lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    expected = {"pretrained": 1e-4, "new": 2e-4, "projection": 1e-3, "vision": 1e-3}
    assert any(parameter_group(n) == "vision" and p.requires_grad for n, p in model.named_parameters())
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert lr_of[id(parameter)] == pytest.approx(expected[parameter_group(name)]), name
        else:
            assert id(parameter) not in lr_of, name
    assert parameter_group("fusion.layer.0.crossattention.self.key.weight") == "new"
    assert parameter_group("fusion.layer.0.attention.self.key.weight") == "pretrained"
    assert parameter_group("text_projection.weight") == "projection"
    assert parameter_group("ccr.itm_head.log_similarity_scale") == "projection"  # a residual head's calibration
    assert parameter_group("ccr.itm_head.similarity_bias") == "projection"
    assert parameter_group("ccr.itm_head.classifier.weight") == "new"
