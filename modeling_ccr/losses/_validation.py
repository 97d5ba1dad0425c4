"""Input checks shared by the contrastive losses: clear errors that name the fix."""

from __future__ import annotations

from collections.abc import Mapping

import torch


def check_choice(name: str, value: str, choices: Mapping[str, str]) -> None:
    """Refuse ``value`` unless it is a key of ``choices`` (option -> what it does), naming every option."""
    if value not in choices:
        options = " or ".join(f"{option!r} ({meaning})" for option, meaning in choices.items())
        raise ValueError(f"unknown {name} {value!r}: use {options}")


def infer_num_languages(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> int:
    """Check an image batch [N, D] against its image-major text batch [N*K, D]; return K.

    Texts are image-major: row j*K + k is caption k of image j.
    """
    if not isinstance(image_embeds, torch.Tensor) or not isinstance(text_embeds, torch.Tensor):
        raise TypeError("image_embeds and text_embeds must be torch.Tensor objects")
    if image_embeds.ndim != 2 or text_embeds.ndim != 2:
        raise ValueError(
            f"expected 2-D embeddings, image_embeds [N, D] and text_embeds [N*K, D]; got shapes "
            f"{tuple(image_embeds.shape)} and {tuple(text_embeds.shape)}: pool or flatten the "
            "token dimension (e.g. take the projected CLS) before the loss"
        )
    n_images, dim = image_embeds.shape
    n_texts, text_dim = text_embeds.shape
    if dim != text_dim:
        raise ValueError(
            f"image_embeds have dimension {dim} but text_embeds {text_dim}: project both "
            "into the same joint space before the loss"
        )
    if n_images == 0:
        raise ValueError("empty batch: image_embeds has no rows; pass at least one image")
    if n_texts == 0 or n_texts % n_images != 0:
        raise ValueError(
            f"{n_texts} texts for {n_images} images: every image needs the same number K >= 1 of "
            "captions, laid out image-major (row j*K + k is caption k of image j); drop or fill the "
            "images with missing languages so that len(text_embeds) == K * len(image_embeds)"
        )
    if image_embeds.dtype != text_embeds.dtype:
        raise ValueError(
            f"image_embeds are {image_embeds.dtype} but text_embeds {text_embeds.dtype}: cast both "
            "to one floating-point dtype"
        )
    return n_texts // n_images


def check_temperature(temperature: float | torch.Tensor) -> None:
    """Accept a positive number or a 0-dim tensor (a learnable temperature keeps its graph).

    A tensor's value is not inspected: reading it would force a device synchronisation every
    step. Clamp a learnable temperature into a positive range in the model instead.
    """
    if isinstance(temperature, torch.Tensor):
        if temperature.ndim != 0:
            raise ValueError(
                f"temperature must be a number or a 0-dim tensor, got shape {tuple(temperature.shape)}: "
                "pass a scalar parameter (torch.nn.Parameter(torch.tensor(0.07)))"
            )
        return
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(
            f"temperature must be a positive number or a 0-dim tensor, got {temperature!r}: the "
            "logits are similarities divided by the temperature (0.07 is the usual start)"
        )
