"""Reuse what frozen parts of a CCR model compute, across training steps and epochs.

A frozen image tower gives every image the same tokens at every epoch (and its frozen lower blocks the
same maps, when only the top blocks train), and the frozen lower layers of the text tower give every
caption the same states: ``FrozenFeatureCache`` computes them once (without dropout, with the loaded
batch-norm statistics, as frozen features are) and runs only the trainable part on top at each step.
"""

from __future__ import annotations

import torch
from torch import nn

TEXT_FILL_CHUNK = 256  # texts per forward of the frozen text layers when the cache is filled


def leading_frozen_layers(model) -> int:
    """How many text-encoder layers, from the bottom, are frozen (0 if the embeddings train)."""
    if any(p.requires_grad for p in model.text_model.get_input_embeddings().parameters()):
        return 0
    return _leading_frozen(model.text_model.get_submodule("encoder.layer"))


def vision_blocks(tower: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """The image tower's stack of blocks, bottom first, and its path: ``blocks`` (EfficientNet-Lite),
    ``layers`` (ViT in transformers 5), ``encoder.layer`` (ViT in 4.x), ``encoder.layers`` (Swin stages,
    CLIP vision); None for another layout."""
    for path in ("blocks", "layers", "encoder.layer", "encoder.layers"):
        try:
            module = tower.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(module, nn.ModuleList):
            return path, module
    return None


def leading_frozen_vision_blocks(tower: nn.Module) -> int:
    """How many blocks of a partly trained image tower, from the bottom, are frozen together with its stem,
    for towers whose forward splits there (``lower_features`` / ``upper_features``, EfficientNet-Lite); 0
    otherwise (the whole tower then runs at each step)."""
    if not (hasattr(tower, "lower_features") and hasattr(tower, "upper_features")):
        return 0
    if any(p.requires_grad for p in tower.stem.parameters()):
        return 0
    return _leading_frozen(tower.blocks)


def frozen_image_part(tower: nn.Module) -> tuple[bool, int]:
    """What of an image tower a cache can serve: ``(True, 0)`` when the whole tower is frozen (its tokens),
    else ``(False, n)`` with ``n`` = :func:`leading_frozen_vision_blocks` (the maps of its frozen lower blocks;
    0: nothing)."""
    if not any(p.requires_grad for p in tower.parameters()):
        return True, 0
    return False, leading_frozen_vision_blocks(tower)


def _leading_frozen(modules: nn.ModuleList) -> int:
    """How many modules of a stack, from the bottom, have no trainable parameter."""
    count = 0
    for module in modules:
        if any(p.requires_grad for p in module.parameters()):
            break
        count += 1
    return count


def additive_attention_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[T, L]`` 1/0 mask -> ``[T, 1, 1, L]`` additive mask (0 where attended, the dtype's minimum elsewhere)."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def run_layers(layers: nn.ModuleList, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Run BERT-family encoder layers on ``hidden [T, L, H]`` with a ``[T, L]`` padding mask."""
    mask = additive_attention_mask(attention_mask, hidden.dtype)
    for layer in layers:
        output = layer(hidden, attention_mask=mask)
        hidden = output[0] if isinstance(output, tuple) else output  # transformers 4.x returns tuples
    return hidden


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
                maps = tower.lower_features(pixel_values[missing], n_frozen)
        finally:
            tower.train(was_training)
        for i, feature_map in zip(missing, maps, strict=True):
            self.image_maps[image_ids[i]] = feature_map

    def image_top_blocks(self, model, pixel_values: torch.Tensor, image_ids: list[str], n_frozen: int) -> torch.Tensor:
        """Image tokens ``[N, P, Cv]`` of a tower whose first ``n_frozen`` blocks (and stem) are frozen: their
        output maps ``[C, h, w]`` come from the cache (computed in eval mode), the upper blocks run now."""
        self.fill_image_maps(model, pixel_values, image_ids, n_frozen)
        maps = torch.stack([self.image_maps[key] for key in image_ids])
        return model.image_tokens_from_states(model.vision_model.upper_features(maps, n_frozen))

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
        return run_layers(model.text_model.get_submodule("encoder.layer")[n_frozen:], hidden, attention_mask)

    @torch.no_grad()
    def _fill(self, model, input_ids, attention_mask, keys, n_frozen) -> None:
        text_model = model.text_model
        was_training = text_model.training
        text_model.eval()  # frozen layers run without dropout, so their output is fixed
        try:
            hidden = text_model.embeddings(input_ids=input_ids)
            hidden = run_layers(text_model.get_submodule("encoder.layer")[:n_frozen], hidden, attention_mask)
        finally:
            text_model.train(was_training)
        for row, key in zip(hidden, keys, strict=True):
            self.text_states[key] = row[: len(key)].clone()  # not a view that keeps the padded batch alive
