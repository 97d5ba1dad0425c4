"""The 1-to-K contrastive loss against a direct loop implementation of the paper's formula."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from loss_reference import one_to_k_reference, random_batch

from modeling_ccr.losses import OneToKContrastiveLoss, one_to_k_contrastive_loss
from modeling_ccr.modeling_ccr import one_to_k_loss_parts


@pytest.mark.parametrize("weighting", ["released", "symmetric"])
@pytest.mark.parametrize(("n_images", "k", "tau"), [(5, 3, 0.07), (4, 1, 0.5), (1, 4, 0.2), (6, 10, 0.05)])
def test_matches_direct_formula(weighting, n_images, k, tau):
    images, texts = random_batch(n_images, k, dim=8, seed=n_images * 100 + k)
    expected_loss, expected_i2t, expected_t2i = one_to_k_reference(images, texts, tau, weighting)

    parts = one_to_k_contrastive_loss(images, texts, tau, weighting=weighting, return_parts=True)

    assert parts["loss"].item() == pytest.approx(expected_loss, abs=1e-6)
    assert parts["i2t"].item() == pytest.approx(expected_i2t, abs=1e-6)
    assert parts["t2i"].item() == pytest.approx(expected_t2i, abs=1e-6)
    plain = one_to_k_contrastive_loss(images, texts, tau, weighting=weighting)
    assert plain.ndim == 0 and plain.item() == pytest.approx(expected_loss, abs=1e-6)


def test_default_weighting_is_released():
    images, texts = random_batch(4, 3, dim=6, seed=1)
    expected, _, _ = one_to_k_reference(images, texts, 0.1, "released")
    assert one_to_k_contrastive_loss(images, texts, 0.1).item() == pytest.approx(expected, abs=1e-6)
    assert OneToKContrastiveLoss().get_config_dict()["weighting"] == "released"


def test_an_unknown_weighting_is_refused_not_read_as_symmetric():
    images, texts = random_batch(3, 2, dim=4, seed=0)
    with pytest.raises(ValueError, match="unknown 1-to-K weighting 'paper': use one of released, symmetric"):
        one_to_k_loss_parts(images, texts, 0.1, "paper")


def test_i2t_reaches_log_k_when_languages_share_the_mass_equally():
    # Image j and its K captions all equal the unit vector e_j: the K positives have equal
    # logits 1/tau, every negative 0, so the positives share the softmax mass equally.
    n_images, k, tau = 5, 4, 0.01
    images = torch.eye(n_images, dtype=torch.float64)
    texts = images.repeat_interleave(k, dim=0)

    parts = one_to_k_contrastive_loss(images, texts, tau, return_parts=True)

    assert parts["i2t"].item() == pytest.approx(math.log(k), abs=1e-9)
    assert parts["t2i"].item() == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_i2t_never_falls_below_log_k(seed):
    # The K positives' probabilities sum to at most 1, so their mean -log is at least log K.
    images, texts = random_batch(6, 5, dim=4, seed=seed)
    i2t = one_to_k_contrastive_loss(images, texts, 0.05, return_parts=True)["i2t"]
    assert i2t.item() >= math.log(5) - 1e-12


def test_unequal_languages_cost_more_than_equal_ones():
    n_images, k, tau = 4, 3, 0.05
    images = torch.eye(n_images, dtype=torch.float64)
    texts = images.repeat_interleave(k, dim=0)
    equal = one_to_k_contrastive_loss(images, texts, tau, return_parts=True)["i2t"]
    texts[1] = torch.nn.functional.normalize(
        texts[1] + 0.5 * torch.eye(n_images, dtype=torch.float64)[2], dim=0
    )
    unequal = one_to_k_contrastive_loss(images, texts, tau, return_parts=True)["i2t"]
    assert unequal.item() > equal.item() + 1e-3


def test_gradients_match_finite_differences_including_the_temperature():
    images, texts = random_batch(3, 2, dim=4, seed=7)
    temperature = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    for weighting in ("released", "symmetric"):
        assert torch.autograd.gradcheck(
            lambda v, w, t, weighting=weighting: one_to_k_contrastive_loss(v, w, t, weighting=weighting),
            (images.clone().requires_grad_(), texts.clone().requires_grad_(), temperature),
        )


def test_learnable_temperature_receives_a_gradient():
    images, texts = random_batch(4, 3, dim=8, seed=3)
    temperature = torch.nn.Parameter(torch.tensor(0.07, dtype=torch.float64))
    one_to_k_contrastive_loss(images, texts, temperature).backward()
    assert temperature.grad is not None and torch.isfinite(temperature.grad) and temperature.grad != 0


def test_module_on_one_process_equals_the_function():
    images, texts = random_batch(5, 3, dim=8, seed=11)
    for weighting in ("released", "symmetric"):
        module = OneToKContrastiveLoss(weighting=weighting, local_loss=True)
        expected = one_to_k_contrastive_loss(images, texts, 0.07, weighting=weighting, return_parts=True)
        got = module(images, texts, 0.07, return_parts=True)
        for key in ("loss", "i2t", "t2i"):
            torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)


def test_module_config_and_citation():
    module = OneToKContrastiveLoss(weighting="symmetric", gather_with_grad=False, local_loss=True)
    assert module.get_config_dict() == {
        "weighting": "symmetric",
        "gather_with_grad": "released",
        "local_loss": True,
    }
    assert OneToKContrastiveLoss(gather_with_grad=True).get_config_dict()["gather_with_grad"] == "exact"
    assert OneToKContrastiveLoss(gather_with_grad="released").gather_with_grad == "released"
    with pytest.raises(ValueError, match="'exact'.*'released'"):
        OneToKContrastiveLoss(gather_with_grad="sum")
    assert "2406.18254" in module.citation and "Nie" in module.citation


def test_unnormalised_inputs_are_scored_as_raw_dot_products_without_warning():
    images, texts = random_batch(4, 2, dim=5, seed=5, normalise=False)
    expected, _, _ = one_to_k_reference(images, texts, 0.5, "released")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = one_to_k_contrastive_loss(images, texts, 0.5)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_float32_matches_float64():
    images, texts = random_batch(8, 6, dim=16, seed=2)
    full = one_to_k_contrastive_loss(images, texts, 0.07)
    single = one_to_k_contrastive_loss(images.float(), texts.float(), 0.07)
    assert single.dtype == torch.float32
    assert single.item() == pytest.approx(full.item(), rel=1e-5)


@pytest.mark.parametrize(
    ("image_shape", "text_shape", "message"),
    [
        ((4, 8), (10, 8), "same number K"),
        ((4, 8), (0, 8), "same number K"),
        ((0, 8), (0, 8), "empty batch"),
        ((4, 8), (8, 6), "dimension 8 but text_embeds 6"),
        ((4, 8, 2), (8, 8), "2-D"),
        ((8,), (8, 8), "2-D"),
    ],
)
def test_bad_shapes_name_the_problem(image_shape, text_shape, message):
    with pytest.raises(ValueError, match=message):
        one_to_k_contrastive_loss(torch.zeros(image_shape), torch.zeros(text_shape), 0.07)
    with pytest.raises(ValueError, match=message):
        OneToKContrastiveLoss()(torch.zeros(image_shape), torch.zeros(text_shape), 0.07)


def test_unknown_weighting_names_the_choices():
    images, texts = random_batch(2, 2, dim=4, seed=0)
    with pytest.raises(ValueError, match="'released'.*'symmetric'"):
        one_to_k_contrastive_loss(images, texts, 0.07, weighting="paper")
    with pytest.raises(ValueError, match="unknown weighting 'mean'"):
        OneToKContrastiveLoss(weighting="mean")


@pytest.mark.parametrize("temperature", [0.0, -0.07, float("nan"), torch.tensor([0.07]), "0.07", True])
def test_bad_temperature(temperature):
    images, texts = random_batch(2, 2, dim=4, seed=0)
    with pytest.raises(ValueError, match="temperature"):
        one_to_k_contrastive_loss(images, texts, temperature)


def test_mixed_dtypes_are_refused():
    images, texts = random_batch(2, 2, dim=4, seed=0)
    with pytest.raises(ValueError, match="cast both"):
        one_to_k_contrastive_loss(images.float(), texts, 0.07)


def test_the_models_return_loss_is_the_released_weighting():
    # CCRModel.forward(return_loss=True) computes the loss with the same terms; it must equal the
    # public loss in its default ("released") weighting.
    from modeling_ccr.testing import tiny_ccr_model

    model = tiny_ccr_model("vit")
    generator = torch.Generator().manual_seed(5)
    pixel_values = torch.randn(3, 3, 32, 32, generator=generator)
    input_ids = torch.randint(5, 60, (6, 7), generator=generator)
    with torch.no_grad():
        out = model(pixel_values=pixel_values, input_ids=input_ids, return_loss=True)
    expected = one_to_k_contrastive_loss(out.image_embeds, out.text_embeds, model.config.temperature_init)
    torch.testing.assert_close(out.loss, expected)
