"""CCR processor: an image processor plus a tokenizer, for images with captions in K languages.

Part of the remote-code set: imports only numpy, PIL, torch and the public transformers API.
"""

from __future__ import annotations

import os
import unicodedata
import warnings
from collections.abc import Mapping, Sequence, Set
from typing import Any

import numpy as np
import torch
import transformers
from PIL import Image, UnidentifiedImageError
from transformers import AutoImageProcessor, AutoTokenizer, BatchFeature, ProcessorMixin

ImageLike = Any  # PIL.Image.Image, numpy array [H, W] / [H, W, C], torch tensor [C, H, W], or a file path

# The largest image the processor takes, width x height: 2**27 = 134,217,728 pixels (e.g. 11,585 x 11,585).
# Every image is resized to the model's input (a few hundred pixels), so more pixels add nothing but memory:
# decoded as RGB such an image already takes 384 MiB. The largest camera frames (about 100 megapixels) pass;
# anything larger is a scan, a map or a decompression bomb and must be downscaled first. The limit is ours,
# checked from the file header before decoding, whatever PIL's own Image.MAX_IMAGE_PIXELS is set to.
MAX_IMAGE_PIXELS = 2**27

# The most elongated image the processor takes: longer side over shorter side at most 20. Image processors
# resize the shorter side to the model's input (224 for the default model) and keep the aspect ratio before
# they crop, so the resized image grows with it: a 20000 x 1 PNG of 138 bytes would become 4.5 million x 224
# pixels (10 GB). The model then sees a centre crop of the shorter side's length, under 1/20 of an image beyond
# this limit; wide banners (728 x 90: 8:1) and panoramas (up to about 12:1) pass.
MAX_ASPECT_RATIO = 20

# The most pixels an image may have after the image processor's resize, before its crop: 2**24 = 16,777,216
# (64 MiB as 8-bit RGB, 192 MiB as float32). With the aspect ratio bounded this only binds image processors
# whose shortest edge is over 900 pixels; the default model's 224 gives at most 224 x 4,480.
MAX_RESIZED_PIXELS = 2**24

# Text that shows nothing counts as empty: whitespace, controls and format characters (zero-width space and
# joiners, BOM, word joiner, bidi marks, soft hyphen), plus the default-ignorable fillers and variation
# selectors that are letters or marks to Unicode but render as nothing.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
_INVISIBLE_CHARACTERS = frozenset(
    "\u034f\u115f\u1160\u2800\u3164\uffa0" + "".join(map(chr, range(0xFE00, 0xFE10)))
)


def is_blank(text: str) -> bool:
    """True when ``text`` shows nothing: empty, or only whitespace and invisible characters (zero-width
    space/joiners, BOM, other Unicode format and control characters, fillers). The one definition of an
    empty caption or text, used by the processor and by the library's caption checks."""
    return all(
        char.isspace() or char in _INVISIBLE_CHARACTERS or unicodedata.category(char) in _INVISIBLE_CATEGORIES
        for char in text
    )


def to_rgb_image(image: ImageLike, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Convert one image to an RGB PIL image, or raise a ValueError that says what to do.

    Grey images are repeated to three channels; images with an alpha channel (RGBA, LA, palette with
    transparency) are composited on ``background`` (white, as the emoji are drawn); CMYK and other PIL
    modes are converted. 16-bit greys (PIL modes ``I;16``, ``I;16B``, ``I;16L``, as 16-bit PNGs open) are
    scaled to 8 bits (value * 255 / 65535); 32-bit integer (``I``) and float (``F``) images follow the
    array rules. Numpy arrays are ``[H, W]`` or ``[H, W, C]`` with C in {1, 3, 4}: uint8, other integers
    with values in [0, 255], or floats in [0, 1] (16-bit data has no scale an array could state: rescale
    it first); torch tensors are ``[C, H, W]`` under the same value rules. Paths are opened and decoded.
    Images larger than ``MAX_IMAGE_PIXELS`` (width x height) or more elongated than ``MAX_ASPECT_RATIO``
    (longer side / shorter side) are refused, files before they are decoded.
    """
    if isinstance(image, (str, os.PathLike)):
        image = _open_image_file(image)
    if isinstance(image, torch.Tensor):
        if image.dim() != 3:
            raise ValueError(f"an image tensor must be [C, H, W], got shape {tuple(image.shape)}")
        image = image.detach().cpu()
        image = (image.float() if image.dtype == torch.bfloat16 else image).permute(1, 2, 0).numpy()
    if isinstance(image, np.ndarray):
        image = _array_to_pil(image)
    if not isinstance(image, Image.Image):
        raise ValueError(
            f"cannot use an object of type {type(image).__name__} as an image: pass a PIL image, a numpy array "
            "[H, W(, C)], a torch tensor [C, H, W] or a file path"
        )
    check_image_size(*image.size, f"a PIL image of {image.size[0]} x {image.size[1]} pixels")
    image = _to_8_bits(image)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, background)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image if image.mode == "RGB" else image.convert("RGB")


def _open_image_file(path: str | os.PathLike) -> Image.Image:
    """Open and decode an image file, refusing it from its header when it is over ``MAX_IMAGE_PIXELS``."""
    name = os.fspath(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies instead
            with Image.open(path) as opened:
                width, height = opened.size
                check_image_size(width, height, f"{name!r} ({width} x {height} pixels)")
                opened.load()
                return opened.copy()
    except FileNotFoundError as error:
        raise ValueError(f"image file not found: {name!r}") from error
    except Image.DecompressionBombError as error:
        raise ValueError(
            f"{name!r} is too large to decode safely ({error}); the processor takes up to {MAX_IMAGE_PIXELS:,} "
            "pixels (width x height): downscale it first"
        ) from error
    except (UnidentifiedImageError, OSError, SyntaxError, EOFError) as error:
        raise ValueError(
            f"{name!r} is not a readable image file (PNG, JPEG, ...): {error}. "
            "Pass an image file, a PIL image or an array."
        ) from error


def check_image_size(width: int, height: int, what: str) -> None:
    """Refuse an image of ``width x height`` pixels that is empty, over ``MAX_IMAGE_PIXELS`` or more elongated
    than ``MAX_ASPECT_RATIO``, with a ValueError that starts with ``what`` and says what to do. Cheap: callers
    run it on a file's declared size before decoding it."""
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"{what} is over the processor's limit of {MAX_IMAGE_PIXELS:,} pixels (width x height): downscale it "
            "first (the model sees every image at a few hundred pixels anyway)"
        )
    if width == 0 or height == 0:
        raise ValueError(f"{what} has no pixels: pass an image at least 1 x 1 pixel large")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ValueError(
            f"{what} has an aspect ratio of {max(width, height) / min(width, height):,.0f}:1, over the processor's "
            f"limit of {MAX_ASPECT_RATIO}:1 (longer side / shorter side): crop it or pad it to at most "
            f"{MAX_ASPECT_RATIO}:1 first (the model sees images about square, so it would see a sliver of this one)"
        )


def _to_8_bits(image: Image.Image) -> Image.Image:
    """A PIL image of more than 8 bits per channel -> 8 bits; other images are returned as they are."""
    if image.mode.startswith("I;16"):  # 16-bit grey: the full range 0..65535 maps onto 0..255
        values = np.asarray(image).astype(np.float32)
        return Image.fromarray(np.round(values * (255 / 65535)).astype(np.uint8))
    if image.mode in ("I", "F"):  # 32-bit: no scale of its own, so the array rules decide
        return _array_to_pil(np.asarray(image), what=f"a PIL image of mode {image.mode!r}")
    return image


def _array_to_pil(array: np.ndarray, what: str = "an image array") -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(
            f"an image array must be [H, W] (grey), [H, W, 3] (RGB) or [H, W, 4] (RGBA), got shape {array.shape}; "
            "for channels-first data pass a torch tensor [C, H, W] or transpose the array"
        )
    check_image_size(array.shape[1], array.shape[0], f"{what} of shape {array.shape}")
    if array.dtype == np.uint8:
        return Image.fromarray(array)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ValueError(f"{what} of floats must hold finite values in [0, 1]; scale it or pass uint8")
        return Image.fromarray(np.round(array * 255).astype(np.uint8))
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"{what} has dtype {array.dtype}: pass uint8, other integers in [0, 255] or floats in [0, 1]"
        )
    low, high = array.min(), array.max()
    if low < 0 or high > 255:
        raise ValueError(
            f"{what} of integers must hold values in [0, 255] (got {array.dtype}, range {low}..{high}); "
            "rescale it (e.g. 16-bit: array >> 8) or pass uint8"
        )
    return Image.fromarray(array.astype(np.uint8))


def validate_captions(captions: Sequence) -> tuple[list[str], int, list[str] | None]:
    """Flatten per-image captions image-major and check that every image has the same K languages.

    Args:
        captions: one entry per image, either a list of K strings (one per language, same order for all
            images) or a dict language -> caption (same keys for all images). Sets are refused: their order
            is arbitrary, so which caption is which language would be too.

    Returns:
        ``(texts, K, languages)``: ``texts[j*K + k]`` is caption k of image j; ``languages`` is the key
        order when dicts were given, else None.

    A missing, empty or blank caption raises a ValueError naming the image and the caption (its language
    code when dicts were given, else its index).
    """
    if isinstance(captions, Set):
        raise ValueError(f"captions is a {type(captions).__name__}, which has no order: {_PASS_A_LIST}")
    if isinstance(captions, (str, bytes)) or not isinstance(captions, Sequence) or len(captions) == 0:
        raise ValueError(f"captions must be a non-empty list with one entry per image: {_PASS_A_LIST}")
    languages = None
    if isinstance(captions[0], Mapping):
        languages = list(captions[0])
        if not all(isinstance(language, str) for language in languages):
            raise ValueError(f"language codes must be strings, got {languages}: "
                             "key each image's captions by 'en', 'de', ...")
        rows = []
        for j, entry in enumerate(captions):
            if not isinstance(entry, Mapping) or set(entry) != set(languages):
                got = list(entry) if isinstance(entry, Mapping) else type(entry).__name__
                raise ValueError(
                    f"ragged languages: image 0 has captions in {languages} but image {j} has {got}; "
                    "give every image a caption in the same languages (or select common languages first)"
                )
            rows.append([entry[language] for language in languages])
    else:
        rows = [_caption_row(j, entry) for j, entry in enumerate(captions)]
    k = len(rows[0])
    for j, row in enumerate(rows):
        if len(row) == 0:
            raise ValueError(f"image {j} has an empty caption list: give each image K >= 1 captions")
        if len(row) != k:
            raise ValueError(
                f"ragged captions: image 0 has {k} captions but image {j} has {len(row)}; "
                "every image needs one caption in each of the same K languages"
            )
        for k_index, text in enumerate(row):
            if not isinstance(text, str) or is_blank(text):
                which = repr(languages[k_index]) if languages is not None else k_index
                raise ValueError(
                    f"caption {which} of image {j} is empty or not a string: {text!r} (whitespace and invisible "
                    "characters such as zero-width spaces count as empty); give every image a caption in each language"
                )
    return [text for row in rows for text in row], k, languages


# The keyword arguments the processor passes on to its tokenizer; any other keyword is a TypeError.
class TruncationWarning(UserWarning):
    """Some texts were longer than ``max_length`` tokens and were cut to it: ``num_truncated`` of the call's
    ``num_texts`` texts, the longest ``longest`` tokens.

    The message depends on ``max_length`` only, so Python's default filter shows it once per place it comes
    from, not once per batch of a training or evaluation loop; the counts of each call are attributes.
    """

    def __init__(self, num_truncated: int, num_texts: int, longest: int, max_length: int):
        self.num_truncated, self.num_texts = num_truncated, num_texts
        self.longest, self.max_length = longest, max_length
        super().__init__(
            f"texts longer than {max_length} tokens were truncated to {max_length} tokens; shorten them, or use a "
            "processor with a larger max_length (at most the text tower's position limit)"
        )

    def __reduce__(self):  # pickles with its counts
        return type(self), (self.num_truncated, self.num_texts, self.longest, self.max_length)


TOKENIZER_OPTIONS = frozenset({"padding", "truncation", "max_length", "pad_to_multiple_of"})

_PASS_A_LIST = "pass a list of K captions per image (one per language) or a dict language -> caption per image"


def _caption_row(j: int, entry: Any) -> list:
    """Image j's captions given as a list -> that list; anything else raises a ValueError that says what to pass."""
    if isinstance(entry, str):
        raise ValueError("captions must hold one list of K captions per image, not bare strings: wrap each in a list")
    if isinstance(entry, Set):
        raise ValueError(
            f"the captions of image {j} are a {type(entry).__name__}, which has no order, so which caption is which "
            f"language would be arbitrary: {_PASS_A_LIST}"
        )
    if isinstance(entry, bytes) or not isinstance(entry, Sequence):
        raise ValueError(f"the captions of image {j} are a {type(entry).__name__}: {_PASS_A_LIST}")
    return list(entry)


class CCRProcessor(ProcessorMixin):
    """Image processor + tokenizer for CCR models.

    Calls:
        ``processor(images=imgs, captions=caps)``: ``pixel_values [B, 3, H, W]``, image-major
        ``input_ids`` / ``attention_mask [B*K, L]`` (row ``j*K + k`` is caption k of image j),
        ``text_image_index [B*K]`` (= j) and ``text_language_index [B*K]`` (= k).
        ``processor(images=imgs)``: ``pixel_values`` only. ``processor(text=strings)``: ``input_ids`` and
        ``attention_mask [T, L]`` only.

    Bad input raises a ValueError that says what to pass (an unknown keyword: a TypeError). Images follow
    :func:`to_rgb_image` (at most ``MAX_IMAGE_PIXELS`` each, at most ``MAX_ASPECT_RATIO`` elongated) and
    are refused before resizing when the resize would give over ``MAX_RESIZED_PIXELS``; captions and texts
    that are empty or only whitespace and invisible characters (:func:`is_blank`) are refused, as are sets,
    whose order would decide which caption is which. Texts longer than ``max_length`` tokens are truncated
    with a warning.

    Args:
        image_processor: a transformers image processor (resize, rescale, normalise).
        tokenizer: a transformers tokenizer.
        caption_prefix: prepended to every text (E5 towers expect ``"query: "``).
        max_length: captions and texts are truncated to this many tokens (with a warning).
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
        """The processor of :meth:`CCRModel.from_backbones`: the vision tower's image processor, the text
        tower's tokenizer."""
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
        unknown = sorted(set(kwargs) - TOKENIZER_OPTIONS)
        if unknown:
            raise TypeError(
                f"CCRProcessor got unexpected keyword arguments {unknown}: it takes images, captions, text, "
                f"return_tensors and the tokenizer options {sorted(TOKENIZER_OPTIONS)}"
            )
        if captions is not None and text is not None:
            raise ValueError("pass either captions (K per image) or text (plain strings), not both")
        if images is None and captions is None and text is None:
            raise ValueError("nothing to process: pass images, captions (K per image) and/or text")
        data: dict[str, Any] = {}
        n_images = None
        if images is not None:
            if isinstance(images, Set):
                raise ValueError(f"images is a {type(images).__name__}, which has no order: pass a list of images")
            image_list = list(images) if isinstance(images, (list, tuple)) else [images]
            if not image_list:
                raise ValueError("images is an empty list: pass at least one image")
            rgb = [to_rgb_image(image) for image in image_list]
            self._check_resized_sizes(rgb)
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
            data.update(self.tokenize(_text_list(text), **kwargs))
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _check_resized_sizes(self, images: list[Image.Image]) -> None:
        """Refuse, before resizing, an image that the image processor's resize to a shortest edge would make
        larger than ``MAX_RESIZED_PIXELS``: that resize keeps the aspect ratio, so its output grows with it.
        Resizes to a fixed size or within a longest edge bound their output themselves."""
        size = getattr(self.image_processor, "size", None)
        if size is None or not getattr(self.image_processor, "do_resize", True) or not size.get("shortest_edge"):
            return
        shortest, longest = size["shortest_edge"], size.get("longest_edge")
        for j, image in enumerate(images):
            resized_long = shortest * max(image.size) / min(image.size)
            if longest:
                resized_long = min(resized_long, longest)
            if shortest * resized_long > MAX_RESIZED_PIXELS:
                raise ValueError(
                    f"image {j} ({image.size[0]} x {image.size[1]} pixels) would be resized to {shortest:,} x "
                    f"{resized_long:,.0f} pixels (the image processor's shortest edge is {shortest}), over the "
                    f"processor's limit of {MAX_RESIZED_PIXELS:,} pixels after resizing: crop it closer to square first"
                )

    def tokenize(self, texts: list[str], **kwargs) -> dict[str, torch.Tensor]:
        """Tokenise texts (with the caption prefix) -> ``input_ids`` / ``attention_mask [T, L]``.

        Texts longer than ``max_length`` tokens are truncated to it, with one warning per call that says how
        many were cut.
        """
        options = {"padding": True, "truncation": True, "max_length": self.max_length, **kwargs}
        self._check_lengths(options)
        prefixed = [self.caption_prefix + t for t in texts]
        _check_unicode(prefixed)
        encoded = self.tokenizer(prefixed, return_tensors="pt", **options)
        if options["truncation"] not in (False, "do_not_truncate") and options["max_length"] is not None:
            self._warn_if_truncated(prefixed, encoded["attention_mask"], options["max_length"])
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def _check_lengths(self, options: dict[str, Any]) -> None:
        """Refuse a ``max_length`` / ``pad_to_multiple_of`` that is not a positive integer, and a ``max_length``
        that leaves no room for a token beside the tokenizer's special tokens."""
        for name in ("max_length", "pad_to_multiple_of"):
            value = options.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        minimum = self.tokenizer.num_special_tokens_to_add() + 1
        if options["max_length"] is not None and options["max_length"] < minimum:
            raise ValueError(
                f"max_length {options['max_length']} leaves no room for a token beside the tokenizer's "
                f"{minimum - 1} special tokens: use at least {minimum}"
            )

    def _warn_if_truncated(self, texts: list[str], attention_mask: torch.Tensor, max_length: int) -> None:
        """Warn once when some of ``texts`` (tokenised to ``attention_mask [T, L]``) were cut to ``max_length``.

        Only the texts that fill all ``max_length`` positions can have been cut; those few are tokenised
        again without truncation to count the ones that were longer.
        """
        full = (attention_mask.sum(dim=1) >= max_length).nonzero().flatten().tolist()
        if not full:
            return
        lengths = [len(ids)
                   for ids in self.tokenizer([texts[i] for i in full], truncation=False, verbose=False)["input_ids"]]
        cut = sum(length > max_length for length in lengths)
        if cut:
            warnings.warn(TruncationWarning(cut, len(texts), max(lengths), max_length), stacklevel=4)  # the caller

    @property
    def model_input_names(self) -> list[str]:
        return ["pixel_values", "input_ids", "attention_mask"]


def _text_list(text: Any) -> list[str]:
    """``text`` (a string or a list of strings) -> a list of visible strings, or a ValueError that says what to pass."""
    if isinstance(text, (Set, Mapping)):
        raise ValueError(f"text is a {type(text).__name__}: "
                         "pass a string or a list of strings (a list keeps the order)")
    strings = [text] if isinstance(text, str) else list(text) if isinstance(text, (list, tuple)) else None
    if not strings or not all(isinstance(string, str) for string in strings):
        raise ValueError("text must be a string or a non-empty list of strings, "
                         f"got {type(text).__name__} {text!r:.80}")
    blank = [i for i, string in enumerate(strings) if is_blank(string)]
    if blank:
        raise ValueError(
            f"text {blank[0]} is empty: {strings[blank[0]]!r} (whitespace and invisible characters such as zero-width "
            f"spaces count as empty; {len(blank)} of {len(strings)} texts are); pass texts with visible characters"
        )
    return strings


def _check_unicode(texts: list[str]) -> None:
    """Refuse texts that are not valid Unicode (lone surrogates, as badly decoded bytes leave), naming the row."""
    for row, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(
                f"text row {row} is not valid Unicode ({error.reason} at character {error.start}): decode the "
                "source bytes with errors='replace' or fix the text"
            ) from None


CCRProcessor.register_for_auto_class("AutoProcessor")  # save_pretrained writes auto_map (trust_remote_code loading)
