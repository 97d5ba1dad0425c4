"""CCR processor: an image processor plus a tokenizer, for images with captions in K languages.

Part of the remote-code set: imports only numpy, PIL, torch and the public transformers API.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import transformers
from PIL import Image, UnidentifiedImageError
from transformers import AutoImageProcessor, AutoTokenizer, BatchFeature, ProcessorMixin

ImageLike = Any  # PIL.Image.Image, numpy array [H, W] / [H, W, C], torch tensor [C, H, W], or a file path


def to_rgb_image(image: ImageLike, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Convert one image to an RGB PIL image, or raise a ValueError that says what to do.

    Grey images are repeated to three channels; images with an alpha channel (RGBA, LA, palette with
    transparency) are composited on ``background`` (white, as the emoji are drawn); CMYK and other PIL
    modes are converted. Numpy arrays are ``[H, W]`` or ``[H, W, C]`` with C in {1, 3, 4} (uint8, or
    floats in [0, 1]); torch tensors are ``[C, H, W]``. Paths are opened and decoded.
    """
    if isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as opened:
                opened.load()
                image = opened.copy()
        except FileNotFoundError as error:
            raise ValueError(f"image file not found: {os.fspath(image)!r}") from error
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(
                f"{os.fspath(image)!r} is not a readable image file (PNG, JPEG, ...): {error}. "
                "Pass an image file, a PIL image or an array."
            ) from error
    if isinstance(image, torch.Tensor):
        if image.dim() != 3:
            raise ValueError(f"an image tensor must be [C, H, W], got shape {tuple(image.shape)}")
        image = image.detach().cpu().permute(1, 2, 0).numpy()
    if isinstance(image, np.ndarray):
        image = _array_to_pil(image)
    if not isinstance(image, Image.Image):
        raise ValueError(
            f"cannot use an object of type {type(image).__name__} as an image: pass a PIL image, a numpy array "
            "[H, W(, C)], a torch tensor [C, H, W] or a file path"
        )
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, background)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image if image.mode == "RGB" else image.convert("RGB")


def _array_to_pil(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(
            f"an image array must be [H, W] (grey), [H, W, 3] (RGB) or [H, W, 4] (RGBA), got shape {array.shape}; "
            "for channels-first data pass a torch tensor [C, H, W] or transpose the array"
        )
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating):
            if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
                raise ValueError("a float image array must hold finite values in [0, 1]; scale it or pass uint8")
            array = np.round(array * 255)
        elif not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() > 255:
            raise ValueError(
                f"an integer image array must hold values in [0, 255] (got {array.dtype}, range "
                f"{array.min()}..{array.max()}); rescale it (e.g. 16-bit: array >> 8) or pass uint8"
            )
        array = array.astype(np.uint8)
    return Image.fromarray(array)


def validate_captions(captions: Sequence) -> tuple[list[str], int, list[str] | None]:
    """Flatten per-image captions image-major and check that every image has the same K languages.

    Args:
        captions: one entry per image, either a list of K strings (one per language, same order for all
            images) or a dict language -> caption (same keys for all images).

    Returns:
        ``(texts, K, languages)``: ``texts[j*K + k]`` is caption k of image j; ``languages`` is the key
        order when dicts were given, else None.
    """
    if isinstance(captions, (str, bytes)) or not isinstance(captions, Sequence) or len(captions) == 0:
        raise ValueError(
            "captions must be a non-empty list with one entry per image: a list of K captions (one per language) "
            "or a dict language -> caption"
        )
    languages = None
    if isinstance(captions[0], dict):
        languages = list(captions[0])
        rows = []
        for j, entry in enumerate(captions):
            if not isinstance(entry, dict) or set(entry) != set(languages):
                got = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
                raise ValueError(
                    f"ragged languages: image 0 has captions in {languages} but image {j} has {got}; "
                    "give every image a caption in the same languages (or select common languages first)"
                )
            rows.append([entry[language] for language in languages])
    else:
        rows = [list(entry) if not isinstance(entry, str) else None for entry in captions]
        if any(row is None for row in rows):
            raise ValueError("captions must hold one list of K captions per image, not bare strings: wrap each in a list")
    k = len(rows[0])
    for j, row in enumerate(rows):
        if len(row) == 0:
            raise ValueError(f"image {j} has an empty caption list: give each image K >= 1 captions")
        if len(row) != k:
            raise ValueError(
                f"ragged captions: image 0 has {k} captions but image {j} has {len(row)}; every image needs one caption "
                "in each of the same K languages"
            )
        for k_index, text in enumerate(row):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"caption {k_index} of image {j} is empty or not a string: {text!r}")
    return [text for row in rows for text in row], k, languages


class CCRProcessor(ProcessorMixin):
    """Image processor + tokenizer for CCR models.

    Calls:
        ``processor(images=imgs, captions=caps)``: ``pixel_values [B, 3, H, W]``, image-major
        ``input_ids`` / ``attention_mask [B*K, L]`` (row ``j*K + k`` is caption k of image j),
        ``text_image_index [B*K]`` (= j) and ``text_language_index [B*K]`` (= k).
        ``processor(images=imgs)``: ``pixel_values`` only. ``processor(text=strings)``: ``input_ids`` and
        ``attention_mask [T, L]`` only.

    Args:
        image_processor: a transformers image processor (resize, rescale, normalise).
        tokenizer: a transformers tokenizer.
        caption_prefix: prepended to every text (E5 towers expect ``"query: "``).
        max_length: captions are truncated to this many tokens.
    """

    attributes = ["image_processor", "tokenizer"]
    if int(transformers.__version__.split(".")[0]) < 5:  # 5.x infers the parts from __init__ (and warns)
        image_processor_class = "AutoImageProcessor"
        tokenizer_class = "AutoTokenizer"

    def __init__(self, image_processor=None, tokenizer=None, caption_prefix: str = "", max_length: int = 64, **kwargs):
        self.caption_prefix = caption_prefix
        self.max_length = int(max_length)
        super().__init__(image_processor, tokenizer, **kwargs)

    @classmethod
    def from_backbones(cls, vision: str, text: str, caption_prefix: str = "", max_length: int = 64) -> CCRProcessor:
        """The processor of :meth:`CCRModel.from_backbones`: the vision tower's image processor, the text tower's tokenizer."""
        return cls(
            AutoImageProcessor.from_pretrained(vision),
            AutoTokenizer.from_pretrained(text),
            caption_prefix=caption_prefix,
            max_length=max_length,
        )

    def __call__(
        self,
        images: ImageLike | Sequence[ImageLike] | None = None,
        captions: Sequence | None = None,
        text: str | Sequence[str] | None = None,
        return_tensors: str = "pt",
        **kwargs,
    ) -> BatchFeature:
        if captions is not None and text is not None:
            raise ValueError("pass either captions (K per image) or text (plain strings), not both")
        if images is None and captions is None and text is None:
            raise ValueError("nothing to process: pass images, captions (K per image) and/or text")
        data: dict[str, Any] = {}
        n_images = None
        if images is not None:
            image_list = list(images) if isinstance(images, (list, tuple)) else [images]
            if not image_list:
                raise ValueError("images is an empty list: pass at least one image")
            rgb = [to_rgb_image(image) for image in image_list]
            data["pixel_values"] = self.image_processor(images=rgb, return_tensors="pt")["pixel_values"]
            n_images = len(rgb)
        if captions is not None:
            texts, k, _ = validate_captions(captions)
            if n_images is not None and len(texts) != n_images * k:
                raise ValueError(f"got {n_images} images but captions for {len(texts) // k}: give one entry per image")
            data.update(self.tokenize(texts, **kwargs))
            index = torch.arange(len(texts))
            data["text_image_index"] = index // k
            data["text_language_index"] = index % k
        if text is not None:
            strings = [text] if isinstance(text, str) else list(text)
            if not strings or not all(isinstance(s, str) for s in strings):
                raise ValueError("text must be a string or a non-empty list of strings")
            data.update(self.tokenize(strings, **kwargs))
        return BatchFeature(data=data, tensor_type=return_tensors)

    def tokenize(self, texts: list[str], **kwargs) -> dict[str, torch.Tensor]:
        """Tokenise texts (with the caption prefix) -> ``input_ids`` / ``attention_mask [T, L]``."""
        options = {"padding": True, "truncation": True, "max_length": self.max_length, **kwargs}
        encoded = self.tokenizer([self.caption_prefix + t for t in texts], return_tensors="pt", **options)
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    @property
    def model_input_names(self) -> list[str]:
        return ["pixel_values", "input_ids", "attention_mask"]
