"""Contrastive styles chosen once by name (modeling_ccr.training.styles): every registered style gives the
losses the objective gave before the registry, an unknown name is refused with the list, and a style
registered outside the package trains through CCRObjective."""

from __future__ import annotations

import pytest
import torch
from test_objective_and_trainer import LANGUAGES, batch_of, objective_for, tiny_dataset

from modeling_ccr.losses import cross_modal_contrastive_loss
from modeling_ccr.testing import tiny_ccr_model, tiny_ccr_processor, tiny_pretraining_model
from modeling_ccr.training import (
    CONTRASTIVE_STYLES,
    LOSS_STYLES,
    CCRForPreTraining,
    CCRTrainingArguments,
    StyleOptions,
    register_style,
    style_class,
)
from modeling_ccr.training.styles import CrossModalStyle

RELEASED_1_TO_K = {"weighting": "released", "gather_with_grad": "exact", "local_loss": False}
CROSS_MODAL = {"language_sampling": "uniform, one per image per step", "gather_with_grad": "exact",
               "local_loss": False}
BASELINE = {"weighting": None, "itm_positive_language": None, "fusion_captions": "the style's own, 1-to-1"}
ONE_OF_K = "one of K per image"

# Objective options -> (the step's outputs, the style's entries of get_config_dict()), recorded with the code
# of commit ec7947e, where objective.py compared the style's name (5 images, tiny ViT model seed 4 whose ITM
# classifier is redrawn with seed 1, objective seed 7).
PINNED = {
    "one-to-k": (
        {},
        {"loss": 9.7181644, "contrastive": 1.6915823, "itm": 2.6817355, "mlm": 5.3448472},
        {"weighting": "released", "itm_positive_language": "released", "fusion_captions": ONE_OF_K,
         "contrastive": RELEASED_1_TO_K}),
    "one-to-k symmetric, hardest": (
        {"loss_style": "one-to-k", "weighting": "symmetric", "itm_positive_language": "hardest"},
        {"loss": 10.394001, "contrastive": 2.3658924, "itm": 2.6832325, "mlm": 5.3448768},
        {"weighting": "symmetric", "itm_positive_language": "hardest", "fusion_captions": ONE_OF_K,
         "contrastive": {**RELEASED_1_TO_K, "weighting": "symmetric"}}),
    "one-to-k, 3 fusion images": (
        {"fusion_batch_size": 3, "itm_negative_temperature": 0.5, "mlm_masking": "tokens"},
        {"loss": 9.6261616, "contrastive": 1.6915823, "itm": 2.6375585, "mlm": 5.2970204},
        {"weighting": "released", "itm_positive_language": "released", "fusion_captions": ONE_OF_K,
         "contrastive": RELEASED_1_TO_K}),
    "cross-modal": (
        {"loss_style": "cross-modal"},
        {"loss": 9.8555679, "contrastive": 1.8156649, "itm": 2.6710396, "mlm": 5.3688631},
        {**BASELINE, "contrastive": CROSS_MODAL}),
    "cross-modal, no MLM, 2 fusion images": (
        {"loss_style": "cross-modal", "weights": {"mlm": 0.0, "itm": 0.5}, "fusion_batch_size": 2},
        {"loss": 3.1183426, "contrastive": 1.8156649, "itm": 2.6053555},
        {**BASELINE, "contrastive": CROSS_MODAL}),
    "cross-lingual, English second": (
        {"loss_style": "cross-lingual", "english_index": 1},
        {"loss": 9.7356472, "contrastive": 1.7121782, "itm": 2.6800535, "mlm": 5.3434153},
        {**BASELINE, "contrastive": {"english_index": 1, "gather_with_grad": "exact", "local_loss": False}}),
    "cross-lingual, half random negatives": (
        {"loss_style": "cross-lingual", "itm_random_negative_share": 0.5},
        {"loss": 9.7040052, "contrastive": 1.7134328, "itm": 2.6564186, "mlm": 5.3341541},
        {**BASELINE, "contrastive": {"english_index": 0, "gather_with_grad": "exact", "local_loss": False}}),
}


def step(options: dict, processor, batch) -> tuple[dict[str, float], dict]:
    """One objective step of the pinned set-up: ``({output name: value}, objective.get_config_dict())``."""
    objective = objective_for(processor, seed=7, **options)
    model = tiny_pretraining_model("vit", seed=4, objective=objective)  # its MLM head too is the pinned one
    torch.manual_seed(1)
    model.ccr.itm_head.classifier.weight.data.normal_(0.0, 1.0)  # an untrained head scores every pair alike
    with torch.no_grad():
        output = model(**batch)
    values = {"loss": float(output.loss), **output.components(), **output.diagnostics()}
    return {name: float(value) for name, value in values.items()}, objective.get_config_dict()


@pytest.mark.parametrize("case", list(PINNED))
def test_every_style_gives_the_losses_it_gave_before_the_registry(case):
    options, expected, style_config = PINNED[case]
    processor = tiny_ccr_processor()
    values, config = step(options, processor, batch_of(tiny_dataset().select(range(5)), processor))
    assert {name: values[name] for name in expected} == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert values["temperature"] == pytest.approx(0.07)
    assert (values["itm_accuracy"], values["itm_negatives_same_text"]) == (pytest.approx(1 / 3), 0.0)
    assert config["loss_style"] == options.get("loss_style", "one-to-k")
    assert {key: config[key] for key in style_config} == style_config


def test_the_pinned_cases_cover_every_built_in_style():
    assert {options.get("loss_style", "one-to-k") for options, _, _ in PINNED.values()} == set(LOSS_STYLES)
    assert LOSS_STYLES == ("one-to-k", "cross-modal", "cross-lingual")  # ccr train's choices, in this order


def test_an_unknown_style_is_refused_with_the_list_of_styles():
    processor = tiny_ccr_processor()
    listed = "use one of one-to-k, cross-modal, cross-lingual$"
    with pytest.raises(ValueError, match=f"unknown loss style 'one-to-one': {listed}"):
        objective_for(processor, loss_style="one-to-one")
    with pytest.raises(ValueError, match=f"unknown loss style 'one-to-one': {listed}"):
        style_class("one-to-one")
    with pytest.raises(ValueError, match="already registered"):
        register_style(CrossModalStyle)


@pytest.fixture()
def registry():
    """The style registry, as it was before the test once the test is over."""
    before = dict(CONTRASTIVE_STYLES)
    yield CONTRASTIVE_STYLES
    CONTRASTIVE_STYLES.clear()
    CONTRASTIVE_STYLES.update(before)


def test_a_style_registered_outside_the_package_trains_through_the_objective(registry):
    """A new style is one class and one line: here 1-to-1 InfoNCE on the English captions, whose ITM and MLM
    read only them; CCRObjective and CCRTrainingArguments take it by name (objective.py is not edited)."""
    @register_style
    class EnglishOnlyStyle(CrossModalStyle):
        name = "english-only"
        needs_english = True

        def caption_languages(self, n_images, k, device):
            return torch.full((n_images,), self.options.english_index, dtype=torch.long, device=device)

    assert style_class("english-only") is registry["english-only"] is EnglishOnlyStyle
    assert CCRTrainingArguments(output_dir="unused", loss_style="english-only").loss_style == "english-only"
    processor, model = tiny_ccr_processor(), tiny_ccr_model("vit", seed=6)
    batch = batch_of(tiny_dataset().select(range(4)), processor)
    english = LANGUAGES.index("en")
    objective = objective_for(processor, loss_style="english-only", english_index=english, seed=3)
    assert isinstance(objective.style, EnglishOnlyStyle) and isinstance(objective.style.options, StyleOptions)
    output = CCRForPreTraining.from_ccr_model(model, objective)(**batch)
    with torch.no_grad():
        image_embeds = model.get_image_features(batch["pixel_values"])
        text_embeds = model.get_text_features(batch["input_ids"], batch["attention_mask"])
    temperature = model.clamped_temperature()
    expected = cross_modal_contrastive_loss(image_embeds, text_embeds, temperature,
                                            languages=torch.full((4,), english))
    torch.testing.assert_close(output.contrastive_loss, expected, atol=1e-5, rtol=1e-5)
    assert set(output.components()) == {"contrastive", "itm", "mlm", "temperature"}
    k = len(LANGUAGES)
    languages = objective.style.caption_languages(4, k, image_embeds.device)
    triplets = objective.style.itm_triplets(image_embeds, text_embeds, temperature, languages)
    fused = torch.cat([triplets.positive_text, triplets.negative_text])  # ITM's texts; MLM's: the positives
    assert (fused % k == english).all(), fused
    config = objective.get_config_dict()
    assert (config["loss_style"], config["fusion_captions"]) == ("english-only", "the style's own, 1-to-1")
