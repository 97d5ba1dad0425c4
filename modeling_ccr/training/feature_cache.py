"""Reuse what frozen parts of a CCR model compute, across training steps and epochs.

A frozen image tower gives every image the same tokens at every epoch (and its frozen lower blocks the
same maps, when only the top blocks train), and the frozen lower layers of the text tower give every
caption the same states: ``FrozenFeatureCache`` computes them once (without dropout, with the loaded
batch-norm statistics, as frozen features are) and runs only the trainable part on top at each step.
"""

from __future__ import annotations

import torch
from torch import nn

from ..modeling_ccr import ImageTowerAdapter, TextTowerAdapter

TEXT_FILL_CHUNK = 256  # texts per forward of the frozen text layers when the cache is filled


def leading_frozen_layers(model) -> int:
    """How many text layers, from the bottom, the cache serves: the frozen ones (0 if the embeddings train, or
    if the tower's attention cannot run a slice of its layers, :attr:`TextTowerAdapter.runs_slices`)."""
    text = TextTowerAdapter(model.text_model)
    return text.leading_frozen_layers() if text.runs_slices else 0


def frozen_image_part(tower: nn.Module) -> tuple[bool, int]:
    """What of an image tower a cache can serve: ``(True, 0)`` when the whole tower is frozen (its tokens),
    else ``(False, n)`` with ``n`` = :meth:`ImageTowerAdapter.leading_frozen_blocks` (the maps of its frozen
    lower blocks; 0: nothing)."""
    if not any(p.requires_grad for p in tower.parameters()):
        return True, 0
    return False, ImageTowerAdapter(tower).leading_frozen_blocks()


def _need_pixels(pixel_values: torch.Tensor | None, image_ids: list[str], missing: list[int]) -> None:
    if pixel_values is None:
        raise ValueError(f"the batch has no pixel_values, and the frozen-feature cache does not hold image "
                         f"{image_ids[missing[0]]!r} ({len(missing)} of {len(image_ids)} missing): pass the pixels")


class FrozenFeatureCache:
    """Image tokens of a frozen image tower (keyed by image id) and text states after the frozen lower
    text layers (keyed by token ids), kept in memory on the model's device.

    Each kind has a ``fill_*`` method, which computes (without gradients, frozen parts in eval mode) what is
    not cached yet, and a lookup used by the training step, which fills what is missing first: a cache
    filled before training (:meth:`CCRObjective.prefill_feature_cache
    <modeling_ccr.training.objective.CCRObjective.prefill_feature_cache>`) and one filled step by step
    hold the same features. Texts must be right-padded (the tokenizers of this project are).
    """

    def __init__(self) -> None:
        self.image_tokens: dict[str, torch.Tensor] = {}
        self.image_maps: dict[str, torch.Tensor] = {}
        self.text_states: dict[tuple[int, ...], torch.Tensor] = {}

    def holds_images(self, image_ids: list[str]) -> bool:
        """Whether every image of ``image_ids`` is cached (as tokens or as frozen-block maps), so that a
        step needs no pixels for them."""
        return all(key in self.image_tokens or key in self.image_maps for key in image_ids)

    @torch.no_grad()
    def fill_image_tokens(self, model, pixel_values: torch.Tensor, image_ids: list[str]) -> None:
        """Cache the tokens ``[P, Cv]`` of the images not seen before (the whole tower frozen, in eval mode)."""
        missing = [i for i, key in enumerate(image_ids) if key not in self.image_tokens]
        if missing:
            _need_pixels(pixel_values, image_ids, missing)
            for i, tokens in zip(missing, model.get_image_tokens(pixel_values[missing]), strict=True):
                self.image_tokens[image_ids[i]] = tokens

    def images(self, model, pixel_values: torch.Tensor, image_ids: list[str]) -> torch.Tensor:
        """Image tokens ``[N, P, Cv]``, computing only the images not seen before."""
        self.fill_image_tokens(model, pixel_values, image_ids)
        return torch.stack([self.image_tokens[key] for key in image_ids])

    def fill_image_maps(self, model, pixel_values: torch.Tensor, image_ids: list[str], n_frozen: int) -> None:
        """Cache the output maps ``[C, h, w]`` of the stem and first ``n_frozen`` blocks for the images not
        seen before, computed in eval mode without gradients."""
        tower = model.vision_model
        missing = [i for i, key in enumerate(image_ids) if key not in self.image_maps]
        if not missing:
            return
        _need_pixels(pixel_values, image_ids, missing)
        was_training = tower.training
        tower.eval()
        try:
            with torch.no_grad():
                maps = ImageTowerAdapter(tower).run_lower(pixel_values[missing], n_frozen)
        finally:
            tower.train(was_training)
        for i, feature_map in zip(missing, maps, strict=True):
            self.image_maps[image_ids[i]] = feature_map

    def image_top_blocks(self, model, pixel_values: torch.Tensor, image_ids: list[str], n_frozen: int) -> torch.Tensor:
        """Image tokens ``[N, P, Cv]`` of a tower whose first ``n_frozen`` blocks (and stem) are frozen: their
        output maps ``[C, h, w]`` come from the cache (computed in eval mode), the upper blocks run now."""
        self.fill_image_maps(model, pixel_values, image_ids, n_frozen)
        maps = torch.stack([self.image_maps[key] for key in image_ids])
        tokens = ImageTowerAdapter(model.vision_model).run_upper(maps, n_frozen)
        return model.image_tokens_from_states(tokens)

    def fill_texts(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_frozen: int) -> list[tuple]:
        """Cache the states after the first ``n_frozen`` text layers of the texts not seen before (right-padded
        ``input_ids`` / ``attention_mask`` ``[T, L]``); returns every row's key (its token ids without padding)."""
        lengths = attention_mask.sum(dim=1).tolist()
        keys = [tuple(row[:n].tolist()) for row, n in zip(input_ids, lengths, strict=True)]
        missing, seen = [], set()
        for i, key in enumerate(keys):
            if key not in self.text_states and key not in seen:
                missing.append(i)
                seen.add(key)
        # Shortest first, in chunks cut to their own longest text: little compute goes to padding.
        missing.sort(key=lambda i: lengths[i])
        for start in range(0, len(missing), TEXT_FILL_CHUNK):
            chunk = missing[start : start + TEXT_FILL_CHUNK]
            width = lengths[chunk[-1]]
            self._fill(model, input_ids[chunk, :width], attention_mask[chunk, :width], [keys[i] for i in chunk],
                       n_frozen)
        return keys

    def texts(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_frozen: int) -> torch.Tensor:
        """Text encoder states ``[T, L, H]``: the first ``n_frozen`` layers from the cache, the rest run now."""
        keys = self.fill_texts(model, input_ids, attention_mask, n_frozen)
        first = self.text_states[keys[0]]
        hidden = first.new_zeros((len(keys), input_ids.shape[1], first.shape[-1]))
        for i, key in enumerate(keys):
            hidden[i, : len(key)] = self.text_states[key]
        return TextTowerAdapter(model.text_model).run_layers(hidden, attention_mask, start=n_frozen)

    @torch.no_grad()
    def _fill(self, model, input_ids, attention_mask, keys, n_frozen) -> None:
        text_model = model.text_model
        was_training = text_model.training
        text_model.eval()  # frozen layers run without dropout, so their output is fixed
        try:
            text = TextTowerAdapter(text_model)
            hidden = text.run_layers(text.embed(input_ids), attention_mask, stop=n_frozen)
        finally:
            text_model.train(was_training)
        for row, key in zip(hidden, keys, strict=True):
            self.text_states[key] = row[: len(key)].clone()  # not a view that keeps the padded batch alive
