"""Cross-modal masked language modelling (MLM): token masking and the loss, on tensors.

Two ways to choose the targets (``mask_tokens_for_mlm(..., masking=...)``), one replacement step:

- ``"skip-gram"`` (``DEFAULT_MLM_MASKING``, as ``ccr train``): the authors' masking generator (X-VLM / CCLM /
  CCRK ``TextMaskingGenerator`` with ``skipgram_prb`` 0.2, ``skipgram_size`` 3): spans of 1 to
  ``skipgram_size`` tokens;
- ``"tokens"``: single positions drawn uniformly without replacement.

The share of tokens to predict and the cap per caption default to
``modeling_ccr.configuration_ccr.DEFAULT_MLM_PROBABILITY`` and ``DEFAULT_MLM_MAX_MASKS``, which a model's
config also starts from.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from ..configuration_ccr import DEFAULT_MLM_MAX_MASKS, DEFAULT_MLM_PROBABILITY
from ._validation import check_choice

IGNORE_INDEX = -100
_MASKING_MEANINGS = {
    "tokens": "single positions",
    "skip-gram": "spans of up to skipgram_size tokens, the authors' masking generator",
}
MASKING_RULES = tuple(_MASKING_MEANINGS)
DEFAULT_MLM_MASKING = "skip-gram"  # the released rule: mask_tokens_for_mlm, CCRObjective and ccr train


def _check_masking_arguments(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    mask_token_id: int,
    vocab_size: int,
    mask_probability: float,
    max_masks: int,
    masking: str,
    skipgram_probability: float,
    skipgram_size: int,
) -> None:
    check_choice("masking", masking, _MASKING_MEANINGS)
    if not 0 <= skipgram_probability <= 1:
        raise ValueError(
            f"skipgram_probability must lie in [0, 1], got {skipgram_probability!r} (0.2 in the authors' code)"
        )
    if isinstance(skipgram_size, bool) or not isinstance(skipgram_size, int) or skipgram_size < 2:
        raise ValueError(f"skipgram_size must be an int >= 2, got {skipgram_size!r} (3 in the authors' code)")
    if input_ids.ndim != 2 or input_ids.dtype not in (torch.int32, torch.int64):
        raise ValueError(
            f"input_ids must be an integer tensor [M, L], got {input_ids.dtype} {tuple(input_ids.shape)}: "
            "pass the tokenizer's padded input_ids"
        )
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask {tuple(attention_mask.shape)} must have the shape of input_ids "
            f"{tuple(input_ids.shape)}: pass the mask returned with these input_ids"
        )
    if not 0 < mask_probability <= 1:
        raise ValueError(f"mask_probability must lie in (0, 1], got {mask_probability!r} "
                         f"({DEFAULT_MLM_PROBABILITY} in the paper)")
    if isinstance(max_masks, bool) or not isinstance(max_masks, int) or max_masks < 1:
        raise ValueError(f"max_masks must be an int >= 1, got {max_masks!r} "
                         f"({DEFAULT_MLM_MAX_MASKS} in the paper)")
    if not 0 <= mask_token_id < vocab_size:
        raise ValueError(
            f"mask_token_id {mask_token_id} lies outside the vocabulary range({vocab_size}): "
            "pass tokenizer.mask_token_id and len(tokenizer)"
        )
    if input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab_size):
        raise ValueError(
            f"input_ids hold ids outside range({vocab_size}): vocab_size must be len(tokenizer) of the "
            "tokenizer that produced them"
        )


def mask_tokens_for_mlm(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    special_token_ids: Iterable[int],
    mask_token_id: int,
    vocab_size: int,
    mask_probability: float = DEFAULT_MLM_PROBABILITY,
    max_masks: int = DEFAULT_MLM_MAX_MASKS,
    generator: torch.Generator | None = None,
    masking: str = DEFAULT_MLM_MASKING,
    skipgram_probability: float = 0.2,
    skipgram_size: int = 3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose the MLM targets of each row and corrupt them the BERT way.

    Args:
        input_ids: long [M, L] token ids (padded).
        attention_mask: [M, L], 1 for real tokens, 0 for padding.
        special_token_ids: ids never masked (e.g. ``tokenizer.all_special_ids``: CLS/BOS, SEP/EOS,
            PAD, ...). Padding is never masked either, whatever its id.
        mask_token_id: the id written over 80% of the targets.
        vocab_size: random replacements are drawn uniformly from range(vocab_size).
        mask_probability: share of a row's maskable tokens to predict (default: the paper's,
            ``DEFAULT_MLM_PROBABILITY``).
        max_masks: cap on the targets per row (default: the paper's, ``DEFAULT_MLM_MAX_MASKS``).
        generator: makes the choice reproducible (draws run on its device).
        masking: ``"skip-gram"`` (default, the released rule, as training) or ``"tokens"``, the rule that
            picks the targets.
        skipgram_probability, skipgram_size: with ``"skip-gram"``, the chance that a span is longer
            than one token, and the longest span (0.2 and 3 in the authors' code).

    Per row, with n the number of maskable tokens (attended and not special), the number of targets
    is t = min(max_masks, max(1, round(mask_probability * n))) (none when n = 0); ``round`` rounds
    half to even.

    - ``"tokens"``: t positions drawn uniformly without replacement.
    - ``"skip-gram"``, as the authors' masking generator: visit the maskable positions in a random
      order until t are chosen; skip a position already chosen; otherwise start a span there whose
      length is 1 with probability 1 - skipgram_probability and uniform on 2..skipgram_size
      otherwise, and choose its positions left to right, stopping early at a position that is not
      maskable (a special token, padding, the end). When the last span overshoots, t of the chosen
      positions are kept uniformly at random. So spans never cover special tokens or padding and
      the cap t holds.

    Each target becomes ``mask_token_id`` with probability 0.8, a uniformly random id with 0.1, and
    stays unchanged with 0.1.

    Returns:
        (masked_input_ids [M, L], labels [M, L]): labels hold the original id at the targets
        and -100 everywhere else (ignored by the loss).
    """
    _check_masking_arguments(
        input_ids, attention_mask, mask_token_id, vocab_size, mask_probability, max_masks,
        masking, skipgram_probability, skipgram_size,
    )
    device = generator.device if generator is not None else input_ids.device
    ids = input_ids.to(device)
    special = torch.tensor(sorted(set(int(i) for i in special_token_ids)), dtype=ids.dtype, device=device)
    maskable = attention_mask.to(device).bool() & ~torch.isin(ids, special)

    n_maskable = maskable.sum(dim=1)
    n_targets = torch.round(n_maskable.double() * mask_probability).long().clamp(min=1, max=max_masks)
    n_targets = torch.where(n_maskable > 0, n_targets, 0)  # round(p * n) <= n for p <= 1

    if masking == "tokens":
        targets = _uniform_targets(maskable, n_targets, generator)
    else:
        targets = _skipgram_targets(maskable, n_targets, skipgram_probability, skipgram_size, generator)

    action = torch.rand(ids.shape, generator=generator, device=device)
    random_ids = torch.randint(vocab_size, ids.shape, generator=generator, device=device, dtype=ids.dtype)
    masked = torch.where(targets & (action < 0.8), torch.full_like(ids, mask_token_id), ids)
    masked = torch.where(targets & (action >= 0.8) & (action < 0.9), random_ids, masked)
    labels = torch.where(targets, ids, torch.full_like(ids, IGNORE_INDEX))
    return masked.to(input_ids.device), labels.to(input_ids.device)


def _random_order(maskable: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Per row of ``maskable`` [M, L], the positions in a uniformly random order, maskable ones first."""
    keys = torch.rand(maskable.shape, generator=generator, device=maskable.device).masked_fill(~maskable, 2.0)
    return keys.argsort(dim=1)


def _uniform_targets(
    maskable: torch.Tensor, n_targets: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """bool [M, L]: ``n_targets[m]`` maskable positions of row m drawn uniformly without replacement."""
    rank_in_row = _random_order(maskable, generator).argsort(dim=1)
    return rank_in_row < n_targets[:, None]


def _skipgram_targets(
    maskable: torch.Tensor,
    n_targets: torch.Tensor,
    skipgram_probability: float,
    skipgram_size: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """bool [M, L]: the skip-gram span rule of :func:`mask_tokens_for_mlm`, row by row."""
    device = maskable.device
    order = _random_order(maskable, generator)
    # One span draw per visited position (index i of the order), and a key per position for the
    # uniform choice among the chosen ones when the last span overshoots.
    is_span = torch.rand(maskable.shape, generator=generator, device=device) < skipgram_probability
    lengths = torch.randint(2, skipgram_size + 1, maskable.shape, generator=generator, device=device)
    span_lengths = torch.where(is_span, lengths, 1)
    keep_keys = torch.rand(maskable.shape, generator=generator, device=device)
    targets = torch.zeros(maskable.shape, dtype=torch.bool)
    for row, wanted in enumerate(n_targets.tolist()):
        allowed = maskable[row].tolist()
        chosen: set[int] = set()
        for start, length in zip(order[row, : sum(allowed)].tolist(), span_lengths[row].tolist(), strict=False):
            if len(chosen) >= wanted:
                break
            if start in chosen:
                continue
            for position in range(start, start + length):
                if position >= len(allowed) or not allowed[position]:
                    break
                chosen.add(position)
        if len(chosen) > wanted:
            keys = keep_keys[row].tolist()
            chosen = set(sorted(chosen, key=keys.__getitem__)[:wanted])
        targets[row, sorted(chosen)] = True
    return targets.to(device)


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the MLM targets.

    Args:
        logits: [M, L, V] token logits.
        labels: long [M, L], the original id at each target, -100 elsewhere.

    Returns:
        A 0-dim tensor; 0 (still attached to the graph) when the batch has no target at all,
        e.g. captions made only of special tokens, where a plain mean would give NaN.
    """
    if logits.ndim != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(
            f"MLM logits must be [M, L, V] and labels [M, L], got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    total = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        labels.reshape(-1).long(),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return total / (labels != IGNORE_INDEX).sum().clamp(min=1)
