"""The cross-modal and cross-lingual baselines against direct loop implementations."""

from __future__ import annotations

import pytest
import torch
from loss_reference import cross_lingual_reference, cross_modal_reference, random_batch

from modeling_ccr.losses import (
    CrossLingualContrastiveLoss,
    CrossModalContrastiveLoss,
    cross_lingual_contrastive_loss,
    cross_modal_contrastive_loss,
    one_to_k_contrastive_loss,
    sample_caption_languages,
)


def test_cross_modal_matches_direct_formula_for_given_languages():
    images, texts = random_batch(6, 4, dim=8, seed=21)
    languages = [3, 0, 1, 1, 2, 0]
    expected = cross_modal_reference(images, texts, 0.07, languages)

    got = cross_modal_contrastive_loss(images, texts, 0.07, languages=torch.tensor(languages))

    assert got.ndim == 0 and got.item() == pytest.approx(expected, abs=1e-6)
    module = CrossModalContrastiveLoss()(images, texts, 0.07, languages=torch.tensor(languages))
    assert module.item() == pytest.approx(expected, abs=1e-6)


def test_cross_modal_draws_are_reproducible_and_scored_with_the_drawn_languages():
    images, texts = random_batch(7, 5, dim=8, seed=22)
    drawn = sample_caption_languages(7, 5, torch.Generator().manual_seed(4))
    expected = cross_modal_reference(images, texts, 0.1, drawn.tolist())

    got = cross_modal_contrastive_loss(images, texts, 0.1, generator=torch.Generator().manual_seed(4))
    again = CrossModalContrastiveLoss(generator=torch.Generator().manual_seed(4))(images, texts, 0.1)

    assert got.item() == pytest.approx(expected, abs=1e-6)
    assert again.item() == pytest.approx(expected, abs=1e-6)


def test_language_draws_are_uniform():
    draws = sample_caption_languages(60_000, 6, torch.Generator().manual_seed(0))
    frequencies = torch.bincount(draws, minlength=6).double() / draws.numel()
    assert draws.min() >= 0 and draws.max() <= 5
    torch.testing.assert_close(frequencies, torch.full((6,), 1 / 6, dtype=torch.float64), atol=0.01, rtol=0)


def test_cross_modal_parts_are_the_two_directions():
    images, texts = random_batch(5, 3, dim=8, seed=23)
    languages = torch.tensor([0, 2, 1, 1, 0])
    parts = cross_modal_contrastive_loss(images, texts, 0.2, languages=languages, return_parts=True)
    chosen = texts[torch.arange(5) * 3 + languages]
    clip = one_to_k_contrastive_loss(images, chosen, 0.2, return_parts=True)  # K = 1
    torch.testing.assert_close(parts["i2t"], clip["i2t"])
    torch.testing.assert_close(parts["t2i"], clip["t2i"])
    torch.testing.assert_close(parts["loss"], (parts["i2t"] + parts["t2i"]) / 2)


@pytest.mark.parametrize(("k", "english"), [(2, 0), (4, 0), (5, 2), (3, 2)])
def test_cross_lingual_matches_direct_formula(k, english):
    images, texts = random_batch(5, k, dim=8, seed=30 + k)
    expected_loss, expected_image_english, expected_english_other = cross_lingual_reference(
        images, texts, 0.07, english
    )

    parts = cross_lingual_contrastive_loss(images, texts, 0.07, english_index=english, return_parts=True)
    module = CrossLingualContrastiveLoss(english_index=english)(images, texts, 0.07)

    assert parts["loss"].item() == pytest.approx(expected_loss, abs=1e-6)
    assert parts["image_english"].item() == pytest.approx(expected_image_english, abs=1e-6)
    assert parts["english_other"].item() == pytest.approx(expected_english_other, abs=1e-6)
    assert module.item() == pytest.approx(expected_loss, abs=1e-6)


def test_cross_lingual_ignores_non_english_image_alignment():
    # Moving a non-English caption changes only the text-text half; the image-English half
    # depends on images and English captions alone.
    images, texts = random_batch(4, 3, dim=8, seed=40)
    before = cross_lingual_contrastive_loss(images, texts, 0.1, return_parts=True)
    moved = texts.clone()
    moved[1] = -moved[1]  # image 0, language 1
    after = cross_lingual_contrastive_loss(images, moved, 0.1, return_parts=True)
    assert after["image_english"].item() == pytest.approx(before["image_english"].item(), abs=1e-12)
    assert after["english_other"].item() != pytest.approx(before["english_other"].item(), abs=1e-6)


def test_baseline_temperature_gradients_match_finite_differences():
    images, texts = random_batch(3, 3, dim=4, seed=41)
    temperature = torch.tensor(0.25, dtype=torch.float64, requires_grad=True)
    languages = torch.tensor([2, 0, 1])
    assert torch.autograd.gradcheck(
        lambda v, w, t: cross_modal_contrastive_loss(v, w, t, languages=languages),
        (images.clone().requires_grad_(), texts.clone().requires_grad_(), temperature),
    )
    assert torch.autograd.gradcheck(
        lambda v, w, t: cross_lingual_contrastive_loss(v, w, t, english_index=1),
        (images.clone().requires_grad_(), texts.clone().requires_grad_(), temperature),
    )


def test_configs_and_citations():
    cross_modal = CrossModalContrastiveLoss(local_loss=True)
    assert cross_modal.get_config_dict()["local_loss"] is True
    assert "Zeng" in cross_modal.citation and "2206.00621" in cross_modal.citation
    cross_lingual = CrossLingualContrastiveLoss(english_index=2)
    assert cross_lingual.get_config_dict() == {
        "english_index": 2,
        "gather_with_grad": "exact",
        "local_loss": False,
    }
    assert "2406.18254" in cross_lingual.citation


def test_cross_lingual_bad_input():
    images, texts = random_batch(3, 1, dim=4, seed=0)
    with pytest.raises(ValueError, match="K >= 2"):
        cross_lingual_contrastive_loss(images, texts, 0.07)
    images, texts = random_batch(3, 3, dim=4, seed=0)
    with pytest.raises(ValueError, match=r"english_index .* range\(3\)"):
        cross_lingual_contrastive_loss(images, texts, 0.07, english_index=3)
    with pytest.raises(ValueError, match=r"english_index .* range\(3\)"):
        CrossLingualContrastiveLoss(english_index=5)(images, texts, 0.07)
    with pytest.raises(ValueError, match="non-negative int"):
        CrossLingualContrastiveLoss(english_index=-1)
    with pytest.raises(ValueError, match="same number K"):
        cross_lingual_contrastive_loss(images, texts[:-1], 0.07)


def test_cross_modal_bad_languages():
    images, texts = random_batch(3, 2, dim=4, seed=0)
    with pytest.raises(ValueError, match=r"range\(K\) = range\(2\)"):
        cross_modal_contrastive_loss(images, texts, 0.07, languages=torch.tensor([0, 2, 1]))
    with pytest.raises(ValueError, match=r"one index per image, shape \(3,\)"):
        cross_modal_contrastive_loss(images, texts, 0.07, languages=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="dimension"):
        cross_modal_contrastive_loss(images, texts[:, :3], 0.07)
