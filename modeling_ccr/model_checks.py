"""Checks of what a CCR model is given: the inputs of its public methods and the weight files it loads.

:class:`~modeling_ccr.modeling_ccr.CCRModel` calls them at its public entry points (``forward``,
``encode_text``, ``get_image_tokens``, ``fuse``, ``from_pretrained`` ...) and trusts what it computes itself.
Each check raises a ValueError that names the offending row, value, file or tensor and says what to pass
instead.

Part of the remote-code set: modeling_ccr.py imports it by relative import, so ``save_pretrained`` copies it
beside modeling_ccr.py; it imports only torch, the standard library and (for a type) configuration_ccr.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from .configuration_ccr import CCRConfig


def check_pixel_values(pixel_values: torch.Tensor, num_channels: int) -> None:
    """Refuse pixel_values that are not a float ``[B, num_channels, H, W]`` tensor with B >= 1 and finite values.

    One reduction over the tensor; the row of the first non-finite value is looked up only to name it.
    """
    if not isinstance(pixel_values, torch.Tensor) or not pixel_values.is_floating_point():
        raise ValueError(
            f"pixel_values must be a float tensor [B, {num_channels}, H, W] (the processor's pixel_values), got "
            f"{getattr(pixel_values, 'dtype', type(pixel_values).__name__)}"
        )
    if pixel_values.dim() != 4 or pixel_values.shape[0] == 0 or pixel_values.shape[1] != num_channels:
        raise ValueError(
            f"pixel_values must be [B, {num_channels}, H, W] with B >= 1, got shape {tuple(pixel_values.shape)}: "
            "pass the processor's pixel_values (one image: add a batch dimension with pixel_values[None])"
        )
    if not torch.isfinite(pixel_values).all():
        row = (~torch.isfinite(pixel_values)).flatten(1).any(dim=1).nonzero()[0].item()
        raise ValueError(
            f"pixel_values of image {row} hold NaN or infinite values: check the image pipeline that made them "
            "(the processor makes finite pixel_values from any image it accepts)"
        )


def check_text_inputs(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, vocab_size: int, max_tokens: int | None
) -> None:
    """Refuse text inputs the text tower cannot encode, naming the offending row or value.

    input_ids must be an int64/int32 ``[T, L]`` tensor with T >= 1, 1 <= L <= ``max_tokens`` (the tower's
    position limit; None: no limit) and every id in ``[0, vocab_size)``; attention_mask None or ``[T, L]``
    holding only 0 and 1 (see :func:`check_attention_mask`). One reduction per tensor and one device sync;
    the offending row is looked up only to name it.
    """
    if not isinstance(input_ids, torch.Tensor) or input_ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"input_ids must be an int64 tensor [T, L] of token ids (the processor's input_ids), got "
            f"{getattr(input_ids, 'dtype', type(input_ids).__name__)}"
        )
    if input_ids.dim() != 2 or 0 in input_ids.shape:
        raise ValueError(
            f"input_ids must be [T, L] with at least one text and one token, got shape {tuple(input_ids.shape)}: "
            "pass the processor's input_ids (one text: add a batch dimension with input_ids[None])"
        )
    if max_tokens is not None and input_ids.shape[1] > max_tokens:
        raise ValueError(
            f"input_ids has {input_ids.shape[1]} tokens per text but the text tower takes at most {max_tokens} "
            f"(its position limit): truncate the texts to {max_tokens} tokens "
            "(the processor truncates to its max_length)"
        )
    if attention_mask is not None and (
        not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape
    ):
        got = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask).__name__
        raise ValueError(
            f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, got {got}: "
            "pass the attention_mask the processor returned with these input_ids"
        )
    low, high = torch.aminmax(input_ids)
    flags = [low < 0, high >= vocab_size]
    if attention_mask is not None:
        flags += _attention_mask_flags(attention_mask)
    out_of_range, over_vocab, *mask_flags = torch.stack(flags).tolist()
    if out_of_range or over_vocab:
        bad = (input_ids < 0) | (input_ids >= vocab_size)
        row, column = bad.nonzero()[0].tolist()
        raise ValueError(
            f"input_ids row {row} holds token id {input_ids[row, column].item()}, outside the vocabulary "
            f"[0, {vocab_size}): encode the texts with this model's processor (its tokenizer)"
        )
    if mask_flags:
        check_attention_mask(attention_mask, mask_flags)


def _attention_mask_flags(attention_mask: torch.Tensor) -> list[torch.Tensor]:
    """Two 0-dim bool tensors for :func:`check_attention_mask`: a value other than 0 and 1, an all-zero row."""
    return [((attention_mask != 0) & (attention_mask != 1)).any(), ~(attention_mask != 0).any(dim=1).all()]


def check_attention_mask(attention_mask: torch.Tensor, flags: list[bool] | None = None) -> None:
    """Refuse an attention_mask ``[T, L]`` holding a value other than 0 (padding) and 1 (a token), or a row
    of zeros (a text without a token), naming the row.

    Another value is not a mask: the text tower turns it into an additive bias and mean pooling into a
    weight, so a -1 would change the embedding rather than hide the token. ``flags``: the values of
    :func:`_attention_mask_flags`, when the caller has them from its own device sync.
    """
    not_binary, empty_row = flags if flags is not None else torch.stack(_attention_mask_flags(attention_mask)).tolist()
    if not_binary:
        row, column = ((attention_mask != 0) & (attention_mask != 1)).nonzero()[0].tolist()
        raise ValueError(
            f"attention_mask row {row} holds {attention_mask[row, column].item()}: a mask holds 1 for a token and "
            "0 for padding, nothing else; pass the attention_mask the processor returned"
        )
    if empty_row:
        row = (attention_mask == 0).all(dim=1).nonzero()[0].item()
        raise ValueError(
            f"attention_mask row {row} is all zeros, so text {row} has no token to encode: every text needs at "
            "least one token (the processor's masks always have one)"
        )


def check_fusion_inputs(
    text_states: torch.Tensor,
    attention_mask: torch.Tensor,
    image_tokens: torch.Tensor,
    image_index: torch.Tensor | None,
    text_index: torch.Tensor | None = None,
) -> None:
    """Refuse fusion inputs that do not pair up. M pairs: row m pairs text ``text_index[m]`` of text_states
    ``[U, L, H]`` (without text_index: text m, M = U) with image ``image_index[m]`` of image_tokens ``[N, P, Cv]``
    (without image_index: image m, N = M). attention_mask ``[U, L]`` of 0 and 1 with a non-zero entry per row;
    each index a long ``[M]`` tensor within its rows. One reduction per tensor and one device sync."""
    if text_states.dim() != 3 or image_tokens.dim() != 3:
        raise ValueError(
            f"text_states must be [M, L, H] and image_tokens [M, P, Cv], got shapes {tuple(text_states.shape)} "
            f"and {tuple(image_tokens.shape)}"
        )
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != text_states.shape[:2]:
        got = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask).__name__
        raise ValueError(
            f"attention_mask must be [M, L] = {tuple(text_states.shape[:2])} like the text states, got {got}"
        )
    n_texts, n_images = text_states.shape[0], image_tokens.shape[0]
    if text_index is not None and (text_index.dim() != 1 or text_index.dtype != torch.int64):
        raise ValueError(
            f"text_index must be a long tensor [M] with one text row per pair, got {text_index.dtype} "
            f"{tuple(text_index.shape)}"
        )
    n_pairs = n_texts if text_index is None else text_index.shape[0]
    if image_index is None and n_images != n_pairs:
        raise ValueError(
            f"fusion pairs row by row: got {n_pairs} texts and {n_images} images "
            "(pass image_index to pair texts with a set of distinct images)"
        )
    if image_index is not None and (image_index.shape != (n_pairs,) or image_index.dtype != torch.int64):
        raise ValueError(
            f"image_index must be a long tensor with one image per text row, shape ({n_pairs},), "
            f"got {image_index.dtype} {tuple(image_index.shape)}"
        )
    indices = [(name, index, rows)
               for name, index, rows in (("image", image_index, n_images), ("text", text_index, n_texts))
               if index is not None and n_pairs]
    ranges = [torch.aminmax(index) for _, index, _ in indices]
    flags = _attention_mask_flags(attention_mask) + [(low < 0) | (high >= rows)
                                                     for (low, high), (_, _, rows) in zip(ranges, indices, strict=True)]
    not_binary, empty_row, *bad_index = torch.stack(flags).tolist()
    check_attention_mask(attention_mask, [not_binary, empty_row])
    for bad, (low, high), (name, _, rows) in zip(bad_index, ranges, indices, strict=True):
        if bad:
            raise ValueError(f"{name}_index must hold {name} rows in [0, {rows}), "
                             f"got values {low.item()}..{high.item()}")


def _safetensors_header(path: Path) -> tuple[dict, int]:
    """The JSON header of a ``.safetensors`` file (it follows an 8-byte little-endian length) and that length.

    Raises ValueError saying what is wrong when the file ends inside its header or the header is not JSON.
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        header_size = int.from_bytes(handle.read(8), "little") if size >= 8 else 0
        if size < 8 or 8 + header_size > size:
            raise ValueError(f"ends inside its header ({size} bytes)")
        try:
            header = json.loads(handle.read(header_size))
        except ValueError:
            header = None
    if not isinstance(header, dict):
        raise ValueError("has an unreadable header")
    return header, header_size


def _safetensors_problem(path: Path) -> str | None:
    """What is wrong with a ``.safetensors`` file's layout (an 8-byte little-endian header length, a JSON
    header whose ``data_offsets`` cover the rest of the file exactly), or None when it is whole."""
    try:
        header, header_size = _safetensors_header(path)
    except ValueError as problem:
        return str(problem)
    ends = [entry["data_offsets"][1] for entry in header.values()
            if isinstance(entry, dict) and "data_offsets" in entry]
    expected = 8 + header_size + max(ends, default=0)
    size = path.stat().st_size
    return None if expected == size else f"holds {size} bytes where its header describes {expected}"


# The config.json field that sets the shapes of each group of weights, by name. The towers come first: a
# tower's hidden size also shapes the projections and the fusion layers. The fusion encoder and the MLM
# head take the text tower's sizes.
_SHAPE_FIELDS = (
    ("vision_model.", "vision_config"),
    ("text_model.", "text_config"),
    ("vision_projection.", "projection_dim"),
    ("text_projection.", "projection_dim"),
    ("itm_head.", "itm_hidden_size"),
    ("", "text_config"),
)


def _stored_shapes(folder: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{name: (shape, file name)}`` of the tensors in a folder's readable ``.safetensors`` files, from their
    headers (no tensor is read); the ``ccr.`` prefix of a pre-training checkpoint is dropped from names."""
    shapes = {}
    for path in sorted(folder.glob("*.safetensors")):
        try:
            header, _ = _safetensors_header(path)
        except ValueError:
            continue  # loading names the unreadable file
        for name, entry in header.items():
            if isinstance(entry, dict) and "shape" in entry:
                shapes[name.removeprefix("ccr.")] = (tuple(entry["shape"]), path.name)
    return shapes


def weights_config_disagreement(
    folder: str | os.PathLike, config: CCRConfig, model_class: type[nn.Module]
) -> str | None:
    """What the ``.safetensors`` weights of a local model folder and ``config`` disagree on, for an error
    message naming the config field and one tensor; None when every stored tensor has the shape the config
    gives it. ``model_class`` is the model whose tensor names the files hold (``CCRModel``; the ``ccr.``
    prefix of a pre-training checkpoint is dropped). Reads the files' headers only and builds the model on the
    meta device (no memory)."""
    with torch.device("meta"):
        expected = {name: tuple(tensor.shape) for name, tensor in model_class(config).state_dict().items()}
    stored = _stored_shapes(Path(folder))
    mismatched = [name for name, (shape, _) in stored.items() if name in expected and shape != expected[name]]
    if not mismatched:
        return None
    field, name = next((field, name) for prefix, field in _SHAPE_FIELDS for name in mismatched
                       if name.startswith(prefix))
    value = getattr(config, field)
    setting = f"{field} ({value} in config.json)" if isinstance(value, int) else field
    shape, file_name = stored[name]
    others = f" (and {len(mismatched) - 1} more tensors)" if len(mismatched) > 1 else ""
    return (
        f"config.json of {folder} and its weights disagree on {setting}: {file_name} holds {name} of shape "
        f"{list(shape)}, config.json makes it {list(expected[name])}{others}. Put back the config.json saved "
        "with these weights, or load the folder this config.json belongs to."
    )


def first_non_finite_tensor(module: nn.Module) -> str | None:
    """The name of the first floating-point tensor of ``module``'s state dict that holds NaN or an infinite
    value; None when all are finite.

    One float32 sum per tensor (a NaN or an infinity makes it non-finite); only a tensor whose sum is not
    finite is then checked element by element, since a sum of large finite values can overflow too.
    """
    for name, tensor in module.state_dict().items():
        if not tensor.is_floating_point() or tensor.device.type == "meta":
            continue
        if not torch.isfinite(tensor.sum(dtype=torch.float32)) and not torch.isfinite(tensor).all():
            return name
    return None


def _describe_unreadable_weights(name_or_path: str | os.PathLike) -> str:
    """The weight file of a local model folder that is truncated or corrupt, described for an error message."""
    for path in sorted(Path(name_or_path).glob("*.safetensors")) if os.path.isdir(name_or_path) else ():
        problem = _safetensors_problem(path)
        if problem is not None:
            return f"{path} {problem}"
    return f"a weight file of {name_or_path}"


def check_weights_readable(name_or_path: str | os.PathLike, error: Exception) -> None:
    """Raise a one-line ValueError naming the truncated or corrupt weight file when ``error``, raised while
    loading ``name_or_path``, is the safetensors reader's own (chained to it); return otherwise, for the
    caller to re-raise ``error``."""
    if type(error).__module__.split(".")[0] != "safetensors":  # the reader's own error type
        return
    raise ValueError(
        f"cannot read the weights of {name_or_path}: {_describe_unreadable_weights(name_or_path)} ({error}). "
        "The file is truncated or corrupt: save, copy or download the model again."
    ) from error


def check_weights_finite(model: nn.Module, name_or_path: str | os.PathLike) -> None:
    """Raise a ValueError naming the first tensor of a model loaded from ``name_or_path`` that holds NaN or an
    infinite value (:func:`first_non_finite_tensor`)."""
    bad = first_non_finite_tensor(model)
    if bad is not None:
        raise ValueError(
            f"the weights of {name_or_path} hold NaN or infinite values in {bad}: the weight file is damaged "
            "or was saved from a training run that diverged; save, copy or download the model again, or load "
            "an earlier checkpoint"
        )
