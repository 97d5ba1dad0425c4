"""MLM masking: target counts, special tokens and padding, BERT 80/10/10, and the loss."""

from __future__ import annotations

import math
from collections import Counter
from itertools import combinations

import pytest
import torch

from modeling_ccr.losses import mask_tokens_for_mlm, mlm_loss

CLS, SEP, PAD, MASK, VOCAB = 0, 2, 1, 3, 1000
SPECIAL = [CLS, PAD, SEP, MASK]


def _batch(lengths: list[int], width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows "CLS w1..wn SEP PAD..." with ordinary ids in [10, VOCAB)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((len(lengths), width), PAD)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, 0] = CLS
        ids[row, 1 : n + 1] = torch.randint(10, VOCAB, (n,), generator=g)
        ids[row, n + 1] = SEP
        mask[row, : n + 2] = 1
    return ids, mask


def _expected_targets(n_maskable: int, probability: float, cap: int) -> int:
    return 0 if n_maskable == 0 else min(cap, max(1, round(probability * n_maskable)))


@pytest.mark.parametrize("masking", ["skip-gram", "tokens"])
@pytest.mark.parametrize("probability", [0.4, 0.5, 0.15])
def test_target_count_per_row(probability, masking):
    lengths = [30, 50, 5, 1, 0, 3, 4, 7]
    ids, attention = _batch(lengths, width=54)
    masked, labels = mask_tokens_for_mlm(
        ids, attention, SPECIAL, MASK, VOCAB, probability, 12, torch.Generator().manual_seed(1),
        masking=masking,
    )
    counts = (labels != -100).sum(dim=1).tolist()
    assert counts == [_expected_targets(n, probability, 12) for n in lengths]


def test_special_tokens_and_padding_are_never_targets():
    ids, attention = _batch([20, 8, 0], width=24, seed=3)
    ids[0, 10] = SEP  # a special token inside the text
    ids[1, 15] = 77  # an ordinary id in the padding: still padding
    for seed in range(50):
        masked, labels = mask_tokens_for_mlm(
            ids, attention, SPECIAL, MASK, VOCAB, 0.9, 30, torch.Generator().manual_seed(seed)
        )
        protected = (attention == 0) | torch.isin(ids, torch.tensor(SPECIAL))
        assert (labels[protected] == -100).all()
        assert torch.equal(masked[protected], ids[protected])


def test_labels_hold_the_original_ids_and_only_targets_change():
    ids, attention = _batch([25, 12], width=28, seed=4)
    masked, labels = mask_tokens_for_mlm(
        ids, attention, SPECIAL, MASK, VOCAB, generator=torch.Generator().manual_seed(5)
    )
    targets = labels != -100
    assert torch.equal(labels[targets], ids[targets])
    assert torch.equal(masked[~targets], ids[~targets])
    assert masked.dtype == ids.dtype and masked.shape == ids.shape


def test_bert_replacement_shares():
    ids, attention = _batch([40] * 3000, width=42, seed=6)
    masked, labels = mask_tokens_for_mlm(
        ids, attention, SPECIAL, MASK, VOCAB, 0.3, 12, torch.Generator().manual_seed(7)
    )
    targets = labels != -100
    total = targets.sum().item()
    assert total == 3000 * 12
    to_mask = (masked[targets] == MASK).sum().item() / total
    unchanged = (masked[targets] == ids[targets]).sum().item() / total
    # random ids hit the mask id or the original id with probability 1/VOCAB each
    assert to_mask == pytest.approx(0.8 + 0.1 / VOCAB, abs=0.01)
    assert unchanged == pytest.approx(0.1 + 0.1 / VOCAB, abs=0.01)
    random_ids = masked[targets & (masked != MASK) & (masked != ids)]
    assert random_ids.numel() / total == pytest.approx(0.1, abs=0.01)
    assert random_ids.min() >= 0 and random_ids.max() < VOCAB


def test_positions_are_drawn_uniformly():
    ids, attention = _batch([10] * 5000, width=12, seed=8)
    _, labels = mask_tokens_for_mlm(
        ids, attention, SPECIAL, MASK, VOCAB, 0.4, 12, torch.Generator().manual_seed(9), masking="tokens"
    )
    per_position = (labels[:, 1:11] != -100).double().mean(dim=0)
    torch.testing.assert_close(per_position, torch.full((10,), 0.4, dtype=torch.float64), atol=0.025, rtol=0)


def test_seeded_generator_reproduces_the_masking():
    ids, attention = _batch([20, 9], width=22, seed=10)
    first = mask_tokens_for_mlm(
        ids, attention, SPECIAL, MASK, VOCAB, generator=torch.Generator().manual_seed(11)
    )
    second = mask_tokens_for_mlm(
        ids, attention, SPECIAL, MASK, VOCAB, generator=torch.Generator().manual_seed(11)
    )
    other = mask_tokens_for_mlm(
        ids, attention, SPECIAL, MASK, VOCAB, generator=torch.Generator().manual_seed(12)
    )
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[1], other[1])


def _runs(positions: list[int]) -> tuple[int, ...]:
    """Sorted lengths of the runs of consecutive positions."""
    ordered = sorted(positions)
    runs: list[int] = [1] if ordered else []
    for before, position in zip(ordered, ordered[1:], strict=False):
        if position == before + 1:
            runs[-1] += 1
        else:
            runs.append(1)
    return tuple(sorted(runs))


def _released_run_distribution(probability: float, size: int, targets: int) -> dict[tuple[int, ...], float]:
    """Run structure of the chosen targets under the authors' rule, enumerated, in a row long enough
    for spans never to touch: span lengths 1 (prob 1 - p) or uniform on 2..size (prob p) are drawn
    until at least ``targets`` positions are chosen, then ``targets`` of them are kept uniformly."""
    distribution: Counter = Counter()

    def visit(lengths: list[int], chance: float) -> None:
        if sum(lengths) >= targets:
            positions = [(span, i) for span, length in enumerate(lengths) for i in range(length)]
            subsets = list(combinations(positions, targets))
            for subset in subsets:
                # spans sit far apart: offset each by 10 * size so runs never join across spans
                structure = _runs([span * 10 * size + i for span, i in subset])
                distribution[structure] += chance / len(subsets)
            return
        for length in range(1, size + 1):
            visit(lengths + [length], chance * ((1 - probability) if length == 1 else probability / (size - 1)))

    visit([], 1.0)
    return dict(distribution)


@pytest.mark.parametrize(("probability", "size", "targets"), [(0.2, 3, 3), (0.6, 4, 4)])
def test_skipgram_spans_follow_the_released_length_distribution(probability, size, targets):
    rows, length = 2000, 1500
    ids, attention = _batch([length] * rows, width=length + 2, seed=6)
    _, labels = mask_tokens_for_mlm(
        ids, attention, SPECIAL, MASK, VOCAB, targets / length, targets,
        torch.Generator().manual_seed(7), masking="skip-gram",
        skipgram_probability=probability, skipgram_size=size,
    )  # fmt: skip
    observed = Counter(_runs((labels[row] != -100).nonzero().flatten().tolist()) for row in range(rows))
    expected = _released_run_distribution(probability, size, targets)
    assert sum(observed.values()) == rows and set(observed) <= set(expected), observed
    for structure, chance in expected.items():
        frequency = observed[structure] / rows
        # binomial noise, plus 0.01 for spans that touch by chance in a finite row
        assert abs(frequency - chance) <= 4 * math.sqrt(chance * (1 - chance) / rows) + 0.01, (
            structure, frequency, chance,
        )  # fmt: skip


def test_skipgram_spans_skip_special_tokens_and_padding_and_keep_the_cap():
    lengths = [20, 8, 0, 30, 2]
    ids, attention = _batch(lengths, width=34, seed=8)
    ids[0, 10] = SEP  # a special token inside the text: spans stop there
    ids[1, 15] = 77  # an ordinary id in the padding: still padding
    maskable_counts = [19, 8, 0, 30, 2]
    protected = (attention == 0) | torch.isin(ids, torch.tensor(SPECIAL))
    lengths_seen = Counter()
    for seed in range(40):
        masked, labels = mask_tokens_for_mlm(
            ids, attention, SPECIAL, MASK, VOCAB, 0.5, 6, torch.Generator().manual_seed(seed),
            masking="skip-gram", skipgram_probability=1.0, skipgram_size=3,
        )  # fmt: skip
        assert (labels[protected] == -100).all() and torch.equal(masked[protected], ids[protected])
        counts = (labels != -100).sum(dim=1).tolist()
        assert counts == [_expected_targets(n, 0.5, 6) for n in maskable_counts]
        for row in range(len(lengths)):
            lengths_seen.update(_runs((labels[row] != -100).nonzero().flatten().tolist()))
    assert max(lengths_seen) > 3  # touching spans join into longer runs, but never across SEP or PAD


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mask_probability": 0.0}, "mask_probability"),
        ({"mask_probability": 1.5}, "mask_probability"),
        ({"max_masks": 0}, "max_masks"),
        ({"mask_token_id": VOCAB}, "mask_token_id"),
        ({"vocab_size": 500}, "outside range"),
        ({"attention_mask": torch.ones(2, 5)}, "shape of input_ids"),
        ({"input_ids": torch.zeros(2, 22)}, "integer tensor"),
        ({"masking": "spans"}, "'tokens'.*'skip-gram'"),
        ({"masking": "skip-gram", "skipgram_probability": 1.5}, "skipgram_probability"),
        ({"masking": "skip-gram", "skipgram_size": 1}, "skipgram_size"),
    ],
)
def test_bad_arguments_name_the_fix(change, message):
    ids, attention = _batch([20, 9], width=22)
    arguments = {
        "input_ids": ids,
        "attention_mask": attention,
        "special_token_ids": SPECIAL,
        "mask_token_id": MASK,
        "vocab_size": VOCAB,
    }
    with pytest.raises(ValueError, match=message):
        mask_tokens_for_mlm(**{**arguments, **change})


def test_mlm_loss_averages_over_targets_only():
    g = torch.Generator().manual_seed(13)
    logits = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    labels = torch.tensor([[-100, 4, -100], [0, -100, 2]])
    expected = 0.0
    targets = [(0, 1), (1, 0), (1, 2)]
    for row, col in targets:
        values = logits[row, col].tolist()
        expected -= values[labels[row, col]] - math.log(sum(math.exp(v) for v in values))
    expected /= len(targets)
    assert mlm_loss(logits, labels).item() == pytest.approx(expected, abs=1e-12)


def test_mlm_loss_without_targets_is_zero_and_differentiable():
    logits = torch.randn(2, 3, 5, requires_grad=True)
    loss = mlm_loss(logits, torch.full((2, 3), -100))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))
    with pytest.raises(ValueError, match=r"\[M, L, V\]"):
        mlm_loss(logits, torch.full((2, 4), -100))
