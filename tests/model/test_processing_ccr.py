"""CCR processor: image-major layout, image conversion, bad input, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from modeling_ccr import CCRProcessor
from modeling_ccr.processing_ccr import TruncationWarning, to_rgb_image
from modeling_ccr.testing import TINY_IMAGE_SIZE, tiny_ccr_processor


def _images(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (20 + i, 24), (40 * i, 10, 200)) for i in range(n)]


def test_captions_are_image_major_with_index_maps():
    processor = tiny_ccr_processor()
    captions = [["cat", "Katze", "chat"], ["dog", "Hund", "chien"]]
    batch = processor(images=_images(2), captions=captions)
    assert batch["pixel_values"].shape == (2, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)
    assert batch["input_ids"].shape[0] == 6
    assert batch["text_image_index"].tolist() == [0, 0, 0, 1, 1, 1]
    assert batch["text_language_index"].tolist() == [0, 1, 2, 0, 1, 2]
    # row j*K + k holds caption k of image j: compare with tokenising that caption alone
    alone = processor(text=["Hund"])
    row = batch["input_ids"][4][batch["attention_mask"][4].bool()]
    assert torch.equal(row, alone["input_ids"][0][alone["attention_mask"][0].bool()])


def test_dict_captions_follow_the_first_images_language_order():
    processor = tiny_ccr_processor()
    by_dict = processor(captions=[{"en": "cat", "de": "Katze"}, {"de": "Hund", "en": "dog"}])
    by_list = processor(captions=[["cat", "Katze"], ["dog", "Hund"]])
    assert torch.equal(by_dict["input_ids"], by_list["input_ids"])


def test_text_only_and_image_only_calls():
    processor = tiny_ccr_processor()
    assert set(processor(text="a cat").keys()) == {"input_ids", "attention_mask"}
    assert set(processor(images=_images(1)[0]).keys()) == {"pixel_values"}


def test_channel_conversion():
    grey = np.full((10, 12), 128, dtype=np.uint8)
    assert to_rgb_image(grey).mode == "RGB"
    assert np.asarray(to_rgb_image(grey))[0, 0].tolist() == [128, 128, 128]
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)  # fully transparent -> white background
    assert np.asarray(to_rgb_image(rgba))[0, 0].tolist() == [255, 255, 255]
    opaque = np.zeros((4, 4, 4), dtype=np.uint8)
    opaque[..., 0], opaque[..., 3] = 200, 255
    assert np.asarray(to_rgb_image(opaque))[0, 0].tolist() == [200, 0, 0]
    chw = torch.zeros(3, 5, 6)
    assert to_rgb_image(chw).size == (6, 5)
    assert to_rgb_image(Image.new("CMYK", (3, 3))).mode == "RGB"
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        to_rgb_image(np.zeros((8, 8, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_rgb_image(np.full((8, 8, 3), 3.0))
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        to_rgb_image(np.full((8, 8, 3), 4000, dtype=np.uint16))
    assert np.asarray(to_rgb_image(np.full((2, 2, 3), 200, dtype=np.int64)))[0, 0].tolist() == [200, 200, 200]


@pytest.mark.parametrize(
    "captions, message",
    [
        ([], "non-empty list"),
        ([[]], "empty caption list"),
        ([["a", "b"], ["c"]], "ragged captions"),
        ([{"en": "a", "de": "b"}, {"en": "c", "fr": "d"}], "ragged languages"),
        (["a", "b"], "not bare strings"),
        ([["a", ""]], "empty or not a string"),
    ],
)
def test_bad_captions_raise_clear_errors(captions, message):
    with pytest.raises(ValueError, match=message):
        tiny_ccr_processor()(captions=captions)


def test_image_caption_count_mismatch():
    with pytest.raises(ValueError, match="one entry per image"):
        tiny_ccr_processor()(images=_images(3), captions=[["a"], ["b"]])


def test_non_image_file_and_missing_file(tmp_path):
    text_file = tmp_path / "notes.png"
    text_file.write_text("this is not an image")
    with pytest.raises(ValueError, match="not a readable image file"):
        tiny_ccr_processor()(images=[str(text_file)])
    with pytest.raises(ValueError, match="image file not found"):
        tiny_ccr_processor()(images=[str(tmp_path / "absent.png")])


def test_image_file_paths_are_loaded(tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGBA", (9, 9), (255, 0, 0, 255)).save(path)
    processor = tiny_ccr_processor()
    from_path = processor(images=[str(path)])["pixel_values"]
    from_pil = processor(images=[Image.new("RGB", (9, 9), (255, 0, 0))])["pixel_values"]
    assert torch.equal(from_path, from_pil)


def test_save_load_round_trip(tmp_path):
    processor = CCRProcessor(tiny_ccr_processor().image_processor, tiny_ccr_processor().tokenizer,
                             caption_prefix="query: ", max_length=11)
    processor.save_pretrained(tmp_path)
    again = CCRProcessor.from_pretrained(tmp_path)
    assert again.caption_prefix == "query: " and again.max_length == 11
    with pytest.warns(TruncationWarning, match="longer than 11 tokens were truncated to 11 tokens") as caught:
        batch_a = processor(images=_images(2), captions=[["x y z"], ["a very long caption indeed"]])
    assert (caught[0].message.num_truncated, caught[0].message.num_texts) == (1, 2)
    with pytest.warns(TruncationWarning, match="truncated to 11 tokens"):
        batch_b = again(images=_images(2), captions=[["x y z"], ["a very long caption indeed"]])
    for key in batch_a:
        assert torch.equal(batch_a[key], batch_b[key])
    assert batch_a["input_ids"].shape[1] == 11  # truncated to max_length
