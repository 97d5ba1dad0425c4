"""Hard-sample ITM: who can be drawn, with what frequencies, and the 3N pairs and their loss."""

from __future__ import annotations

import math

import pytest
import torch
from loss_reference import random_batch

from modeling_ccr.losses import (
    ItmTriplets,
    build_itm_pairs,
    itm_accuracy,
    itm_loss,
    negatives_sharing_text,
    positive_language_weights,
    sample_itm_triplets,
)


def _softmax(values: list[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    return [e / sum(exps) for e in exps]


def _orthonormal_batch(n: int, cosines_of) -> tuple[torch.Tensor, torch.Tensor]:
    """Images e_j (orthonormal, dimension n + 1); caption k of image j has cosine cosines_of(j)[k]
    with it and 0 with every other image (the rest of its norm lies on a spare axis)."""
    images = torch.eye(n, n + 1, dtype=torch.float64)
    spare_axis = torch.zeros(n + 1, dtype=torch.float64)
    spare_axis[-1] = 1.0
    texts = torch.stack([c * images[j] + math.sqrt(1 - c * c) * spare_axis for j in range(n) for c in cosines_of(j)])
    return images, texts


def test_own_items_are_never_drawn_as_negatives():
    n, k = 60, 3
    images, texts = random_batch(n, k, dim=8, seed=50)
    temperature = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    generator = torch.Generator().manual_seed(0)
    own = torch.arange(n)
    seen_languages = set()
    for _ in range(30):
        t = sample_itm_triplets(images.requires_grad_(), texts, temperature, generator)
        assert all(x.dtype == torch.long and x.shape == (n,) and not x.requires_grad for x in t)
        assert torch.equal(t.positive_text // k, own)
        assert not (t.negative_image == own).any()
        assert not (t.negative_text // k == own).any()
        seen_languages.update((t.negative_text % k).tolist())
    assert seen_languages == {0, 1, 2}  # negatives come in every language


def test_masking_survives_a_tiny_temperature():
    # Own captions dominate by 2000 logits: the other texts' softmax weights underflow to 0
    # unless the own items are removed before normalising.
    n, k = 3, 2
    images = torch.eye(n)
    texts = images.repeat_interleave(k, dim=0)
    t = sample_itm_triplets(images, texts, 0.001, torch.Generator().manual_seed(1))
    assert not (t.negative_image == torch.arange(n)).any()
    assert not (t.negative_text // k == torch.arange(n)).any()


def test_positive_language_favours_the_least_similar_caption():
    # Orthonormal images e_j; caption k of every image has cosine c_k with it, and 0 with all
    # other images, so each image draws its language from softmax(-c / tau).
    n, tau = 400, 0.5
    cosines = [0.9, 0.5, 0.1]
    k = len(cosines)
    images, texts = _orthonormal_batch(n, lambda j: cosines)
    expected = _softmax([-c / tau for c in cosines])  # ~ (0.12, 0.27, 0.61)

    generator = torch.Generator().manual_seed(2)
    counts = torch.zeros(k)
    for _ in range(10):
        counts += torch.bincount(
            sample_itm_triplets(images, texts, tau, generator, "hardest").positive_text % k, minlength=k
        )
    frequencies = (counts / counts.sum()).tolist()

    assert frequencies == pytest.approx(expected, abs=0.03)
    assert frequencies[0] < frequencies[1] < frequencies[2]


def _released_weights_by_loops(images: torch.Tensor, texts: torch.Tensor, tau: float) -> list[list[float]]:
    """The authors' rule written out: p = softmax over each image's row of all N*K texts; the
    weight of caption k of image j is max over the whole matrix p, + 1e-5, - p[j][j*K + k]."""
    n, k = len(images), len(texts) // len(images)
    rows = [_softmax([float(images[j] @ texts[i]) / tau for i in range(n * k)]) for j in range(n)]
    top = max(max(row) for row in rows)
    weights = [[top + 1e-5 - rows[j][j * k + kk] for kk in range(k)] for j in range(n)]
    return [[w / sum(row) for w in row] for row in weights]


def test_released_positive_weights_equal_a_loop_implementation():
    images, texts = random_batch(5, 4, dim=6, seed=53)
    tau = 0.3
    expected = torch.tensor(_released_weights_by_loops(images, texts, tau), dtype=torch.float32)
    got = positive_language_weights(images, texts, tau)  # "released" is the default
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    # "hardest" is softmax(-s) over the image's own captions
    hardest = torch.tensor(
        [_softmax([-float(images[j] @ texts[j * 4 + kk]) / tau for kk in range(4)]) for j in range(5)]
    )
    torch.testing.assert_close(positive_language_weights(images, texts, tau, "hardest"), hardest, rtol=0, atol=1e-6)


def test_released_positive_draws_follow_the_weights_and_reach_every_language():
    # Orthonormal images e_j. Image 0 (the "spike") has K captions of cosine 0.95 with it; every other
    # image has captions of cosines c_k; cosines across images are 0. Then every row of
    # p = softmax(s) is known in closed form, max(p) is the spike's, and images 1..n-1 all share one
    # weight vector, so one call yields n - 1 draws of it.
    n, tau, spike = 400, 0.5, 0.95
    cosines = [0.9, 0.6, 0.3]
    k = len(cosines)
    images, texts = _orthonormal_batch(n, lambda j: [spike] * k if j == 0 else cosines)
    others = (n - 1) * k  # texts of cosine 0 in every row
    p = [math.exp(c / tau) / (sum(math.exp(x / tau) for x in cosines) + others) for c in cosines]
    top = math.exp(spike / tau) / (k * math.exp(spike / tau) + others)
    raw = [top + 1e-5 - q for q in p]
    expected = torch.tensor([w / sum(raw) for w in raw], dtype=torch.float64)  # ~ (0.07, 0.38, 0.55)

    calls = 10
    generator = torch.Generator().manual_seed(4)
    counts = torch.zeros(k, dtype=torch.float64)
    for _ in range(calls):
        t = sample_itm_triplets(images, texts, tau, generator, positive_language="released")
        counts += torch.bincount(t.positive_text[1:] % k, minlength=k).double()
    draws = calls * (n - 1)
    # each language's count is binomial(draws, w): within 4.5 standard deviations
    tolerance = 4.5 * (expected * (1 - expected) / draws).sqrt()
    assert ((counts / draws - expected).abs() <= tolerance).all(), (counts / draws, expected)
    assert (counts > 0).all()  # every language is drawn, the most similar one too
    torch.testing.assert_close(
        positive_language_weights(images, texts, tau)[1:], expected.float().expand(n - 1, k), rtol=0, atol=1e-5
    )


def test_unknown_positive_language_rule_is_refused():
    images, texts = random_batch(3, 2, dim=4, seed=0)
    with pytest.raises(ValueError, match="'released'.*'hardest'"):
        sample_itm_triplets(images, texts, 0.07, positive_language="worst")
    with pytest.raises(ValueError, match="unknown positive_language 'worst'"):
        positive_language_weights(images, texts, 0.07, "worst")


def test_negatives_follow_the_masked_similarity_softmax():
    # 500 copies ("blocks") of one small problem of 4 images with one caption each: an item is
    # sqrt(0.95) * its block's own axis + sqrt(0.05) * a local unit vector, so similarities are
    # 0.95 + 0.05 u.u' inside a block and 0.05 u.u' across blocks. With tau = 0.02 the other blocks
    # get a share below exp(-40) of the mass, and one draw yields 500 samples of each local row.
    blocks, n_local, local_dim, tau = 500, 4, 5, 0.02
    g = torch.Generator().manual_seed(51)
    u_image = torch.nn.functional.normalize(
        torch.randn(n_local, local_dim, generator=g, dtype=torch.float64), dim=1
    )
    u_text = torch.nn.functional.normalize(
        torch.randn(n_local, local_dim, generator=g, dtype=torch.float64), dim=1
    )

    def embed(local: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(blocks * n_local, blocks + local_dim, dtype=torch.float64)
        for b in range(blocks):
            out[b * n_local : (b + 1) * n_local, b] = math.sqrt(0.95)
            out[b * n_local : (b + 1) * n_local, blocks:] = math.sqrt(0.05) * local
        return out

    images, texts = embed(u_image), embed(u_text)  # K = 1: the positive is fixed
    s = [
        [(0.95 + 0.05 * float(u_image[i] @ u_text[t])) / tau for t in range(n_local)] for i in range(n_local)
    ]
    expected_image = torch.zeros(n_local, n_local, dtype=torch.float64)
    expected_text = torch.zeros(n_local, n_local, dtype=torch.float64)
    for j in range(n_local):
        others = [i for i in range(n_local) if i != j]
        for i, p in zip(others, _softmax([s[i][j] for i in others]), strict=True):
            expected_image[j, i] = p  # caption j -> image i
        for i, p in zip(others, _softmax([s[j][i] for i in others]), strict=True):
            expected_text[j, i] = p  # image j -> caption i

    calls = 4
    own_block = torch.arange(blocks * n_local) // n_local
    local_row = torch.arange(blocks * n_local) % n_local
    counts_image = torch.zeros(n_local, n_local, dtype=torch.float64)
    counts_text = torch.zeros(n_local, n_local, dtype=torch.float64)
    generator = torch.Generator().manual_seed(3)
    for _ in range(calls):
        t = sample_itm_triplets(images, texts, tau, generator)
        assert torch.equal(t.negative_image // n_local, own_block)
        assert torch.equal(t.negative_text // n_local, own_block)
        counts_image.index_put_(
            (local_row, t.negative_image % n_local), torch.ones(len(local_row)).double(), True
        )
        counts_text.index_put_(
            (local_row, t.negative_text % n_local), torch.ones(len(local_row)).double(), True
        )

    draws_per_row = calls * blocks
    torch.testing.assert_close(counts_image / draws_per_row, expected_image, atol=0.035, rtol=0)
    torch.testing.assert_close(counts_text / draws_per_row, expected_text, atol=0.035, rtol=0)


def test_draws_are_reproducible_with_a_seeded_generator():
    images, texts = random_batch(5, 4, dim=6, seed=52)
    first = sample_itm_triplets(images, texts, 0.1, torch.Generator().manual_seed(9))
    second = sample_itm_triplets(images, texts, 0.1, torch.Generator().manual_seed(9))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_pairs_layout_and_labels():
    triplets = ItmTriplets(
        positive_text=torch.tensor([1, 3, 4]),
        negative_image=torch.tensor([2, 0, 1]),
        negative_text=torch.tensor([5, 0, 2]),
    )
    image_index, text_index, labels = build_itm_pairs(triplets)
    pairs = list(zip(image_index.tolist(), text_index.tolist(), labels.tolist(), strict=True))
    assert pairs == [
        (0, 1, 1), (1, 3, 1), (2, 4, 1),  # image j with its chosen caption
        (2, 1, 0), (0, 3, 0), (1, 4, 0),  # a hard negative image with that caption
        (0, 5, 0), (1, 0, 0), (2, 2, 0),  # image j with a hard negative text
    ]  # fmt: skip


def test_a_single_image_is_refused():
    images, texts = random_batch(1, 3, dim=4, seed=0)
    with pytest.raises(ValueError, match="at least 2 images"):
        sample_itm_triplets(images, texts, 0.07)


def test_itm_loss_is_the_mean_two_way_cross_entropy():
    logits = torch.tensor([[0.2, 1.5], [2.0, -1.0], [0.0, 0.3]], dtype=torch.float64)
    labels = torch.tensor([1, 0, 0])
    expected = (
        -sum(
            math.log(_softmax(row)[label])
            for row, label in zip(logits.tolist(), labels.tolist(), strict=True)
        )
        / 3
    )
    assert itm_loss(logits, labels).item() == pytest.approx(expected, abs=1e-12)
    # balanced: the positive's loss and the negatives' mean loss, half each
    each = [-math.log(_softmax(row)[label]) for row, label in zip(logits.tolist(), labels.tolist(), strict=True)]
    assert itm_loss(logits, labels, balanced=True).item() == pytest.approx((each[0] + (each[1] + each[2]) / 2) / 2,
                                                                          abs=1e-12)
    constant = torch.zeros(6, 2, dtype=torch.float64)  # no answer at all: ln 2 either way
    assert itm_loss(constant, torch.tensor([1, 0, 0, 1, 0, 0]), balanced=True).item() == pytest.approx(math.log(2))
    only_negatives = torch.tensor([0, 0, 0])
    assert itm_loss(logits, only_negatives, balanced=True).item() == pytest.approx(
        itm_loss(logits, only_negatives).item(), abs=1e-12)
    with pytest.raises(ValueError, match=r"\[M, 2\]"):
        itm_loss(torch.zeros(3, 3), labels)
    with pytest.raises(ValueError, match="labels must be"):
        itm_loss(logits, labels[:2])


def test_itm_accuracy_counts_the_argmax_against_the_label():
    logits = torch.tensor([[0.0, 1.0], [2.0, -1.0], [0.5, 0.4], [0.1, 0.3]])
    labels = torch.tensor([1, 0, 1, 0])  # right, right, wrong, wrong
    assert float(itm_accuracy(logits, labels)) == 0.5
    prior = torch.tensor([[0.7, 0.0]]).expand(6, 2)  # a head that always says "no match"
    assert float(itm_accuracy(prior, torch.tensor([1, 0, 0, 1, 0, 0]))) == pytest.approx(2 / 3)


def test_negatives_sharing_text_counts_negatives_that_read_as_the_positive():
    """3 images x 2 languages; image 1's second caption and image 2's first read as image 0's first
    ("ok"), padded differently; every other caption is distinct."""
    pad = 0
    texts = [[5, 6, pad], [7, 8, 9],  # image 0: "ok" (en), another (de)
             [10, pad, pad], [5, 6, pad],  # image 1: its own (en), "ok" (de)
             [5, 6, pad], [11, 12, pad]]  # image 2: "ok" (en), its own (de)
    input_ids = torch.tensor(texts)
    attention_mask = (input_ids != pad).long()
    input_ids[3, 2] = 99  # padding under a zero mask is not compared
    k = 2

    def share(positive, negative_image, negative_text):
        triplets = ItmTriplets(*(torch.tensor(v) for v in (positive, negative_image, negative_text)))
        return float(negatives_sharing_text(triplets, input_ids, attention_mask, k))

    # image 0's positive is "ok" (row 0): its negative image 1 has "ok" in de, its negative text row 4 is "ok".
    assert share([0], [1], [4]) == 1.0
    assert share([0], [1], [5]) == 0.5  # the negative text differs
    assert share([1], [2], [2]) == 0.0  # row 1 is read nowhere else
    # two images: positive rows 0 and 2 ("ok", image 1's own); only image 0's negative image shares text
    assert share([0, 2], [2, 0], [2, 5]) == pytest.approx(1 / 4)
    different_mask = attention_mask.clone()
    different_mask[4, 2] = 1  # row 4 is now "ok" plus a token: another text
    triplets = ItmTriplets(torch.tensor([0]), torch.tensor([1]), torch.tensor([4]))
    assert float(negatives_sharing_text(triplets, input_ids, different_mask, k)) == 0.5


def _draw_counts(images, texts, k: int, tau: float, seed: int, draws: int, **options):
    """How often each item is drawn over ``draws`` calls of ``sample_itm_triplets(..., **options)``:
    ``(negative texts [N, N*K], negative images [N, N] (by the positive caption's image), positive languages
    [N, K])``, float64; every call is checked to draw no image's own items as its negatives."""
    n = images.shape[0]
    own = torch.arange(n)
    text_counts = torch.zeros(n, n * k, dtype=torch.float64)
    image_counts = torch.zeros(n, n, dtype=torch.float64)
    positive_counts = torch.zeros(n, k, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(draws):
        t = sample_itm_triplets(images, texts, tau, generator, **options)
        assert ((t.negative_text // k) != own).all() and (t.negative_image != own).all()
        text_counts[own, t.negative_text] += 1
        image_counts[own, t.negative_image] += 1
        positive_counts[own, t.positive_text % k] += 1
    return text_counts, image_counts, positive_counts


def test_a_negative_temperature_of_their_own_sets_the_negatives_softmax_only():
    n, k, tau, negative_tau = 4, 2, 0.05, 0.5
    images, texts = random_batch(n, k, dim=6, seed=52)
    s = (images @ texts.T).double()
    draws = 3000
    text_counts, image_counts, positive_counts = _draw_counts(images, texts, k, tau, 9, draws,
                                                              negative_temperature=negative_tau)
    for j in range(n):
        others = [i for i in range(n * k) if i // k != j]
        expected = torch.zeros(n * k, dtype=torch.float64)
        expected[others] = torch.tensor(_softmax([float(s[j, i]) / negative_tau for i in others]), dtype=torch.float64)
        torch.testing.assert_close(text_counts[j] / draws, expected, atol=0.03, rtol=0)
    # the positive language still follows the contrastive temperature's weights
    torch.testing.assert_close(positive_counts / draws, positive_language_weights(images, texts, tau).double(),
                               atol=0.03, rtol=0)
    assert (image_counts.diagonal() == 0).all()


@pytest.mark.parametrize("share", [0.25, 1.0])
def test_a_random_share_mixes_uniform_draws_into_the_hard_negatives(share):
    n, k, tau = 4, 2, 0.05
    images, texts = random_batch(n, k, dim=6, seed=53)
    s = (images @ texts.T).double()
    draws = 4000
    text_counts, image_counts, _ = _draw_counts(images, texts, k, tau, 10, draws, random_share=share)
    for j in range(n):
        others = [i for i in range(n * k) if i // k != j]  # every caption of the other images
        expected = torch.zeros(n * k, dtype=torch.float64)
        hard = _softmax([float(s[j, i]) / tau for i in others])
        expected[others] = torch.tensor([(1 - share) * p + share / len(others) for p in hard], dtype=torch.float64)
        torch.testing.assert_close(text_counts[j] / draws, expected, atol=0.03, rtol=0)
    if share == 1.0:  # uniform over the other images, whatever the similarities
        expected_images = (1 - torch.eye(n, dtype=torch.float64)) / (n - 1)
        torch.testing.assert_close(image_counts / draws, expected_images, atol=0.03, rtol=0)


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_a_random_share_outside_zero_to_one_is_refused(share):
    images, texts = random_batch(3, 2, dim=6, seed=54)
    with pytest.raises(ValueError, match="random_share must be in \\[0, 1\\]"):
        sample_itm_triplets(images, texts, 0.05, random_share=share)
