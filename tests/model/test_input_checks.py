"""Input checks at the public entry points: the processor, the model's methods and the library's caption check."""

from __future__ import annotations

import pickle
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from modeling_ccr.backbones.efficientnet_lite import efficientnet_lite0_image_processor
from modeling_ccr.captions import check_captions, image_major_captions
from modeling_ccr.default_model import DEFAULT_SHORTEST_EDGE
from modeling_ccr.processing_ccr import (
    MAX_ASPECT_RATIO,
    MAX_IMAGE_PIXELS,
    MAX_RESIZED_PIXELS,
    CCRProcessor,
    TruncationWarning,
    is_blank,
    to_rgb_image,
)
from modeling_ccr.testing import TINY_IMAGE_SIZE, tiny_ccr_model, tiny_ccr_processor, tiny_tokenizer

# ----- high-depth images ------------------------------------------------------------------------

GRADIENT_WIDTH = 64


def _gradient_16bit() -> np.ndarray:
    """``[4, 64]`` uint16: columns rise from 0 to 65535 in equal steps."""
    row = np.linspace(0, 65535, GRADIENT_WIDTH).round().astype(np.uint16)
    return np.tile(row, (4, 1))


def _reference_8bit(values: np.ndarray) -> Image.Image:
    """The 8-bit grey image of 16-bit values, by integer arithmetic: round(v * 255 / 65535)."""
    return Image.fromarray(((values.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8))


@pytest.mark.parametrize("mode, dtype", [("I;16", "<u2"), ("I;16L", "<u2"), ("I;16B", ">u2")])
def test_16bit_images_are_scaled_to_8_bits(tmp_path, mode, dtype):
    values = _gradient_16bit()
    image = Image.frombytes(mode, (GRADIENT_WIDTH, 4), values.astype(dtype).tobytes())
    converted = np.asarray(to_rgb_image(image))[0, :, 0].astype(int)
    assert converted.tolist() == np.asarray(_reference_8bit(values))[0].tolist()
    assert converted[0] == 0 and converted[-1] == 255 and (np.diff(converted) > 0).all()  # a gradient, not white


def test_a_16bit_png_on_disk_gives_the_gradient_of_its_8bit_reference(tmp_path):
    values = _gradient_16bit()
    path = tmp_path / "gradient16.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as opened:
        assert opened.mode == "I;16"  # what PIL makes of a 16-bit grey PNG: the case under test
        from_pil = opened.copy()
    processor = tiny_ccr_processor()
    from_path = processor(images=[str(path)])["pixel_values"]
    reference = processor(images=[_reference_8bit(values)])["pixel_values"]
    assert torch.equal(from_path, reference)
    assert torch.equal(processor(images=[from_pil])["pixel_values"], reference)
    # along the gradient the (resized) pixel values rise, as they do not when every pixel is 1.0 (white)
    middle_row = from_path[0, 0, TINY_IMAGE_SIZE // 2]
    assert middle_row[0] < -0.9 and middle_row[-1] > 0.9 and (middle_row.diff() > 0).all()


def test_32bit_pil_images_follow_the_array_rules():
    grey = np.arange(0, 256, 16, dtype=np.int32).reshape(4, 4)
    expected = np.asarray(Image.fromarray(grey.astype(np.uint8)).convert("RGB"))
    assert np.array_equal(np.asarray(to_rgb_image(Image.fromarray(grey))), expected)  # mode I, values in [0, 255]
    fractions = (grey / 255).astype(np.float32)
    assert np.array_equal(np.asarray(to_rgb_image(Image.fromarray(fractions))), expected)  # mode F, in [0, 1]
    with pytest.raises(ValueError, match=r"PIL image of mode 'I' of integers must hold values in \[0, 255\]"):
        to_rgb_image(Image.fromarray(grey * 256))
    with pytest.raises(ValueError, match=r"PIL image of mode 'F' of floats must hold finite values in \[0, 1\]"):
        to_rgb_image(Image.fromarray(grey.astype(np.float32)))


def test_arrays_of_other_dtypes_are_refused_by_dtype():
    for array in (np.zeros((4, 4), bool), np.zeros((4, 4), complex), np.zeros((4, 4), object)):
        with pytest.raises(ValueError, match=f"has dtype {array.dtype}: pass uint8"):
            to_rgb_image(array)


# ----- image size limit -------------------------------------------------------------------------


def _header_only_png(path, width: int, height: int):
    """A PNG that declares ``width x height`` (8-bit grey) but holds no pixel data: cheap to write, and
    it shows the size is refused from the header, before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [12_000, 20_000])  # 144 M pixels: our limit; 400 M: PIL's bomb error first
def test_image_files_over_the_limit_are_refused_before_decoding(tmp_path, side):
    path = _header_only_png(tmp_path / "huge.png", side, side)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither PIL's DecompressionBombWarning nor any other escapes
        with pytest.raises(ValueError, match=f"{MAX_IMAGE_PIXELS:,} pixels .width x height.: downscale it"):
            tiny_ccr_processor()(images=[str(path)])


def test_images_over_the_limit_are_refused_as_pil_images_arrays_and_tensors(tmp_path):
    side = 12_000
    assert side * side > MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # PIL's own, opening it here
        lazy = Image.open(_header_only_png(tmp_path / "huge.png", side, side))  # size known, pixels not loaded
    with lazy:
        with pytest.raises(ValueError, match=r"a PIL image of 12000 x 12000 pixels is over the processor's limit"):
            to_rgb_image(lazy)
    array = np.broadcast_to(np.zeros(1, np.uint8), (side, side, 3))  # no memory behind it
    with pytest.raises(ValueError, match=r"an image array of shape \(12000, 12000, 3\) is over the processor's limit"):
        to_rgb_image(array)
    with pytest.raises(ValueError, match="over the processor's limit"):
        to_rgb_image(torch.zeros(1).expand(3, side, side))
    with pytest.raises(ValueError, match="has no pixels"):
        to_rgb_image(np.zeros((0, 5), np.uint8))


# ----- elongated images: bounded before decoding and before resizing ---------------------------

ASPECT_MESSAGE = rf"has an aspect ratio of 20,000:1, over the processor's limit of {MAX_ASPECT_RATIO}:1 \(longer side"


def _shortest_edge_processor(shortest_edge: int) -> CCRProcessor:
    """A processor that resizes as the default model's does (shorter side to ``shortest_edge``, then a crop)."""
    return CCRProcessor(efficientnet_lite0_image_processor(shortest_edge=shortest_edge), tiny_tokenizer())


@pytest.mark.parametrize("size", [(20_000, 1), (1, 20_000)])
def test_very_elongated_image_files_are_refused_naming_the_limit(tmp_path, size):
    path = tmp_path / "line.png"
    Image.new("L", size, 200).save(path)  # about 100 bytes on disk
    with pytest.raises(ValueError, match=rf"'{path}' \({size[0]} x {size[1]} pixels\) {ASPECT_MESSAGE}"):
        tiny_ccr_processor()(images=[str(path)])
    declared_only = _header_only_png(tmp_path / "declared.png", *size)  # no pixel data: refused before decoding
    with pytest.raises(ValueError, match=ASPECT_MESSAGE):
        to_rgb_image(declared_only)


def test_very_elongated_pil_images_arrays_and_tensors_are_refused():
    for image in (Image.new("RGB", (20_000, 1)), np.zeros((1, 20_000, 3), np.uint8), torch.zeros(3, 20_000, 1)):
        with pytest.raises(ValueError, match=ASPECT_MESSAGE):
            to_rgb_image(image)
    limit = MAX_ASPECT_RATIO
    assert to_rgb_image(np.zeros((1, limit), np.uint8)).size == (limit, 1)  # the limit itself passes
    with pytest.raises(ValueError, match=rf"aspect ratio of {limit + 1}:1"):
        to_rgb_image(np.zeros((1, limit + 1), np.uint8))


def test_a_wide_photo_still_gives_the_models_input():
    photo = Image.new("RGB", (640, 200), (10, 120, 200))
    pixel_values = _shortest_edge_processor(DEFAULT_SHORTEST_EDGE)(images=[photo])["pixel_values"]
    assert pixel_values.shape == (1, 3, 224, 224)


def test_an_image_whose_resize_would_exceed_the_bound_is_refused_before_resizing():
    shortest_edge = 1024
    image = Image.new("RGB", (200, 10))  # 20:1, within the aspect limit: resized to 1024 x 20,480 pixels
    assert shortest_edge * shortest_edge * 20 > MAX_RESIZED_PIXELS
    with pytest.raises(ValueError, match=(
        r"image 1 \(200 x 10 pixels\) would be resized to 1,024 x 20,480 pixels \(the image processor's shortest "
        rf"edge is 1024\), over the processor's limit of {MAX_RESIZED_PIXELS:,} pixels after resizing: crop it"
    )):
        _shortest_edge_processor(shortest_edge)(images=[Image.new("RGB", (8, 8)), image])
    assert _shortest_edge_processor(shortest_edge)(images=[Image.new("RGB", (200, 100))])["pixel_values"].shape == (
        1, 3, 224, 224)


# ----- blank texts: one definition for the processor and the library --------------------------

BLANK = ["", "   ", "\t\n", "\u200b", "\u200c\u200d", "\ufeff", "\u2060 \u00a0", "\u00ad", "\u200e\u200f", "\u3164"]


@pytest.mark.parametrize("text", BLANK)
def test_invisible_only_text_is_empty_everywhere(text):
    assert is_blank(text)
    processor = tiny_ccr_processor()
    with pytest.raises(ValueError, match="text 0 is empty"):
        processor(text=text)
    with pytest.raises(ValueError, match="text 1 is empty"):
        processor(text=["a cat", text])
    with pytest.raises(ValueError, match="caption 1 of image 0 is empty"):
        processor(captions=[["a cat", text]])
    with pytest.raises(ValueError, match="caption 'de' of image 1 is empty"):
        processor(captions=[{"en": "a dog", "de": "ein Hund"}, {"en": "a cat", "de": text}])
    with pytest.raises(ValueError, match="image 0 has no caption in 'de'"):
        check_captions([{"en": "a cat", "de": text}], ["en", "de"], lambda j: f"image {j}", "fix it")


def test_visible_text_with_invisible_characters_is_kept():
    text = "\u200bcat\u200d"
    assert not is_blank(text)
    processor = tiny_ccr_processor()
    assert processor(text=text)["input_ids"].shape[0] == 1
    assert processor(captions=[[text]])["input_ids"].shape[0] == 1
    check_captions([{"en": text}], ["en"], str, "")  # does not raise
    assert image_major_captions([{"en": text}], ["en"]) == [text]


# ----- unordered containers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "captions, message",
    [
        ({("cat", "Katze")}, "captions is a set, which has no order"),
        (frozenset({("cat",)}), "captions is a frozenset, which has no order"),
        ([{"cat", "Katze"}], "the captions of image 0 are a set, which has no order"),
        ([["cat", "Katze"], frozenset({"dog", "Hund"})], "the captions of image 1 are a frozenset"),
        ([["cat", "Katze"], {"en": "dog", "de": "Hund"}], "the captions of image 1 are a dict"),
        ([{1: "cat", 2: "Katze"}], "language codes must be strings"),
    ],
)
def test_unordered_or_mixed_caption_containers_are_refused(captions, message):
    with pytest.raises(ValueError, match=message) as error:
        tiny_ccr_processor()(captions=captions)
    assert "pass a list" in str(error.value) or "strings" in str(error.value)


def test_unordered_text_and_images_are_refused():
    processor = tiny_ccr_processor()
    with pytest.raises(ValueError, match="text is a set: pass a string or a list"):
        processor(text={"a cat", "a dog"})
    with pytest.raises(ValueError, match="text is a dict"):
        processor(text={"en": "a cat"})
    with pytest.raises(ValueError, match="images is a frozenset, which has no order: pass a list"):
        processor(images=frozenset({"a.png", "b.png"}))


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['image'\]"):
        tiny_ccr_processor()(text="a cat", image=Image.new("RGB", (4, 4)))


# ----- over-long texts ----------------------------------------------------------------------------


def test_overlong_texts_are_truncated_with_one_warning():
    processor = tiny_ccr_processor(max_length=10)
    texts = ["a" * 30, "b" * 20, "c", "d" * 8]
    lengths = [len(ids) for ids in processor.tokenizer(texts)["input_ids"]]  # untruncated token counts
    assert [length > 10 for length in lengths] == [True, True, False, lengths[3] > 10]
    with pytest.warns(UserWarning) as caught:
        batch = processor(text=texts)
    assert len(caught) == 1 and caught[0].category is TruncationWarning
    warning = caught[0].message
    cut = sum(length > 10 for length in lengths)
    assert (warning.num_truncated, warning.num_texts, warning.longest, warning.max_length) == (cut, 4, max(lengths), 10)
    assert str(warning).startswith("texts longer than 10 tokens were truncated to 10 tokens; shorten them")
    assert pickle.loads(pickle.dumps(warning)).__dict__ == warning.__dict__  # the counts survive a data loader
    assert batch["input_ids"].shape == (4, 10)


def test_a_loop_of_calls_shows_the_truncation_warning_once():
    processor = tiny_ccr_processor(max_length=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's default: once per place, as a user's loop sees it
        for batch in (["a" * 30, "c"], ["b" * 20], ["d" * 40, "e" * 25]):
            processor(text=batch)
    assert [w.category for w in caught] == [TruncationWarning]
    assert caught[0].message.num_truncated == 1 and caught[0].message.num_texts == 2  # the first batch's


def test_texts_that_fit_give_no_warning():
    processor = tiny_ccr_processor(max_length=10)
    exact = next(text for text in ("x" * n for n in range(1, 20)) if len(processor.tokenizer(text)["input_ids"]) == 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert processor(text=[exact, "y"])["attention_mask"].sum(dim=1).tolist() == [10, 3]


# ----- model: images ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_pixel_values_are_refused_naming_the_image(bad):
    model = tiny_ccr_model()
    pixel_values = torch.zeros(3, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)
    pixel_values[2, 1, 5, 7] = bad
    ids = torch.full((3, 4), 10)
    for call in (model.get_image_features, model.get_image_tokens, lambda p: model(pixel_values=p, input_ids=ids)):
        with pytest.raises(ValueError, match="pixel_values of image 2 hold NaN or infinite values"):
            call(pixel_values)


def test_pixel_values_of_the_wrong_shape_or_dtype_are_refused():
    model = tiny_ccr_model()
    with pytest.raises(ValueError, match=r"B >= 1, got shape \(0, 3, 32, 32\)"):
        model.get_image_features(torch.zeros(0, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE))
    with pytest.raises(ValueError, match=r"got shape \(3, 32, 32\)"):
        model.get_image_features(torch.zeros(3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE))
    with pytest.raises(ValueError, match="must be a float tensor"):
        model.get_image_features(torch.zeros(1, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, dtype=torch.uint8))



@pytest.mark.parametrize("vision", ["swin", "efficientnet_lite"])
def test_float64_pixel_values_give_the_float32_embeddings(vision):
    """Convolutional towers refused float64 input with a RuntimeError; pixel values are now cast to the tower's
    dtype first, as transformers' ViT and CLIP do, so a float64 array's tensor gives the float32 result."""
    model = tiny_ccr_model(vision)
    pixel_values = torch.randn(2, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.get_image_features(pixel_values)
        assert torch.equal(model.get_image_features(pixel_values.double()), expected)
        ids = torch.full((2, 4), 10)
        assert torch.equal(model(pixel_values=pixel_values.double(), input_ids=ids).image_embeds, expected)


# ----- model: texts ----------------------------------------------------------------------------


def test_the_position_limit_is_the_text_towers():
    model = tiny_ccr_model()
    limit = model.text_position_limit()
    config = model.config.text_config
    assert limit == config.max_position_embeddings - config.pad_token_id - 1 == 78  # XLM-R positions start at pad + 1
    with torch.no_grad():
        assert model.get_text_features(torch.full((2, limit), 10)).shape == (2, 16)
        with pytest.raises(Exception):  # noqa: B017, PT011 - what the tower itself does one token later
            model.text_model(input_ids=torch.full((2, limit + 1), 10))
    for call in (model.get_text_features, lambda ids: model.encode_text(ids, torch.ones_like(ids))):
        with pytest.raises(ValueError,
                           match=r"has 79 tokens per text but the text tower takes at most 78 \(its position limit\)"):
            call(torch.full((2, limit + 1), 10))


def test_out_of_vocabulary_ids_are_refused_naming_row_and_value():
    model = tiny_ccr_model()
    vocab_size = model.config.text_config.vocab_size
    for bad in (-1, vocab_size, vocab_size + 7):
        ids = torch.full((3, 5), 10)
        ids[1, 3] = bad
        with pytest.raises(ValueError,
                           match=rf"input_ids row 1 holds token id {bad}, outside the vocabulary \[0, {vocab_size}\)"):
            model.get_text_features(ids)
    ids = torch.full((1, 5), vocab_size - 1)
    assert model.get_text_features(ids).shape == (1, 16)  # the last id is in the vocabulary


def test_text_batches_and_masks_that_cannot_be_encoded_are_refused():
    model = tiny_ccr_model()
    ids = torch.full((3, 5), 10)
    with pytest.raises(ValueError, match=r"at least one text and one token, got shape \(0, 5\)"):
        model.get_text_features(torch.zeros(0, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"attention_mask must have the shape of input_ids \(3, 5\), got \(3, 4\)"):
        model.get_text_features(ids, torch.ones(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="must be an int64 tensor"):
        model.get_text_features(ids.float())
    mask = torch.ones_like(ids)
    mask[1] = 0
    for call in (
        lambda: model.get_text_features(ids, mask),
        lambda: model.encode_text(ids, mask),
        lambda: model(pixel_values=torch.zeros(3, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE), input_ids=ids,
                      attention_mask=mask),
    ):
        with pytest.raises(ValueError, match="attention_mask row 1 is all zeros"):
            call()



@pytest.mark.parametrize("value", [-1, 2, 0.5])
def test_attention_masks_hold_only_zeros_and_ones(value):
    """A -1 was accepted and changed the embedding: the tower adds it as a bias, mean pooling weighs by it."""
    model = tiny_ccr_model(text_pooling="mean")
    ids = torch.full((3, 5), 10)
    mask = torch.ones(3, 5, dtype=torch.float if value == 0.5 else torch.long)
    mask[2, 4] = value
    states = model.encode_text(ids, torch.ones_like(ids))
    tokens = model.get_image_tokens(torch.zeros(3, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE))
    for call in (
        lambda: model.get_text_features(ids, mask),
        lambda: model.encode_text(ids, mask),
        lambda: model(pixel_values=torch.zeros(3, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE), input_ids=ids,
                      attention_mask=mask),
        lambda: model.fuse(states, mask, tokens),
        lambda: model.score_pairs(tokens, ids, mask),
    ):
        with pytest.raises(ValueError,
                           match=rf"attention_mask row 2 holds {value}: a mask holds 1 for a token and 0 for padding"):
            call()
    boolean = torch.ones(3, 5, dtype=torch.bool)
    boolean[2, 4] = False
    with torch.no_grad():  # a bool mask and a 0/1 mask are the same mask
        assert torch.equal(model.get_text_features(ids, boolean), model.get_text_features(ids, boolean.long()))


def test_fusion_and_pair_scoring_inputs_are_checked():
    model = tiny_ccr_model()
    tokens = model.get_image_tokens(torch.zeros(2, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE))
    ids = torch.full((3, 5), 10)
    mask = torch.ones_like(ids)
    states = model.encode_text(ids, mask)
    with pytest.raises(ValueError, match=r"image_index must hold image rows in \[0, 2\), got values 0..2"):
        model.fuse(states, mask, tokens, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"attention_mask must be \[M, L\] = \(3, 5\)"):
        model.itm_logits(tokens, None, mask[:, :4], text_states=states, image_index=torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="needs input_ids or text_states"):
        model.itm_logits(tokens, None, mask)
    with pytest.raises(ValueError, match=r"image_tokens must be \[M, P, Cv\] with M = 3"):
        model.score_pairs(tokens, ids, mask)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.score_pairs(tokens[[0, 1, 1]], ids, mask, batch_size=0)
    with pytest.raises(ValueError, match=r"got shape \(0, 5\)"):
        model.score_pairs(tokens[:0], ids[:0], mask[:0])
    # the checks leave good input alone: batched scores equal the ITM logits of all pairs at once
    scores = model.score_pairs(tokens[[0, 1, 1]], ids, mask, batch_size=2)
    with torch.no_grad():
        assert torch.allclose(scores, model.itm_logits(tokens[[0, 1, 1]], ids, mask)[:, 1], atol=1e-6)
