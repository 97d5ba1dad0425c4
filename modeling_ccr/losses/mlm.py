"""Cross-modal masked language modelling (MLM): token masking and the loss, on tensors."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def _check_masking_arguments(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    mask_token_id: int,
    vocab_size: int,
    mask_probability: float,
    max_masks: int,
) -> None:
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
        raise ValueError(f"mask_probability must lie in (0, 1], got {mask_probability!r} (0.4 in the paper)")
    if isinstance(max_masks, bool) or not isinstance(max_masks, int) or max_masks < 1:
        raise ValueError(f"max_masks must be an int >= 1, got {max_masks!r} (12 in the paper)")
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
    mask_probability: float = 0.4,
    max_masks: int = 12,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose the MLM targets of each row and corrupt them the BERT way.

    Args:
        input_ids: long [M, L] token ids (padded).
        attention_mask: [M, L], 1 for real tokens, 0 for padding.
        special_token_ids: ids never masked (e.g. ``tokenizer.all_special_ids``: CLS/BOS, SEP/EOS,
            PAD, ...). Padding is never masked either, whatever its id.
        mask_token_id: the id written over 80% of the targets.
        vocab_size: random replacements are drawn uniformly from range(vocab_size).
        mask_probability: share of a row's maskable tokens to predict (0.4 in the paper).
        max_masks: cap on the targets per row (12 in the paper).
        generator: makes the choice reproducible (draws run on its device).

    Per row, with n the number of maskable tokens (attended and not special), exactly
    min(max_masks, max(1, round(mask_probability * n))) positions are drawn uniformly without
    replacement (none when n = 0), as in the X-VLM / CCLM masking generator; ``round`` rounds
    half to even. Each target becomes ``mask_token_id`` with probability 0.8, a uniformly random
    id with 0.1, and stays unchanged with 0.1.

    Returns:
        (masked_input_ids [M, L], labels [M, L]): labels hold the original id at the targets
        and -100 everywhere else (ignored by the loss).
    """
    _check_masking_arguments(
        input_ids, attention_mask, mask_token_id, vocab_size, mask_probability, max_masks
    )
    device = generator.device if generator is not None else input_ids.device
    ids = input_ids.to(device)
    special = torch.tensor(sorted(set(int(i) for i in special_token_ids)), dtype=ids.dtype, device=device)
    maskable = attention_mask.to(device).bool() & ~torch.isin(ids, special)

    n_maskable = maskable.sum(dim=1)
    n_targets = torch.round(n_maskable.double() * mask_probability).long().clamp(min=1, max=max_masks)
    n_targets = torch.where(n_maskable > 0, n_targets, 0)  # round(p * n) <= n for p <= 1

    # Uniform choice without replacement: the n_targets maskable positions with the lowest random keys.
    keys = torch.rand(ids.shape, generator=generator, device=device).masked_fill(~maskable, 2.0)
    rank_in_row = keys.argsort(dim=1).argsort(dim=1)
    targets = rank_in_row < n_targets[:, None]

    action = torch.rand(ids.shape, generator=generator, device=device)
    random_ids = torch.randint(vocab_size, ids.shape, generator=generator, device=device, dtype=ids.dtype)
    masked = torch.where(targets & (action < 0.8), torch.full_like(ids, mask_token_id), ids)
    masked = torch.where(targets & (action >= 0.8) & (action < 0.9), random_ids, masked)
    labels = torch.where(targets, ids, torch.full_like(ids, IGNORE_INDEX))
    return masked.to(input_ids.device), labels.to(input_ids.device)


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
