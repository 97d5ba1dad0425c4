"""Fuzz: a seeded stream of malformed inputs to the processor; each call succeeds or raises ValueError (a
TypeError only for an unknown keyword), never anything else."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modeling_ccr.testing import tiny_ccr_processor

N_CASES = 300


def image_files(folder: Path) -> list[str]:
    """Real files of several kinds: good PNGs (8 and 16 bit), truncated ones, text, empty, a folder."""
    good = folder / "good.png"
    Image.new("RGB", (20, 16), (10, 200, 30)).save(good)
    deep = folder / "deep.png"
    Image.fromarray(np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)).save(deep)
    data = good.read_bytes()
    paths = [good, deep, folder / "missing.png", folder]
    for name, content in [("truncated_header.png", data[:20]), ("truncated_data.png", data[: len(data) // 2]),
                          ("no_end.png", data[:-12]), ("empty.png", b""), ("notes.png", b"not an image at all"),
                          ("flipped.png", data[:40] + bytes(b ^ 0xFF for b in data[40:60]) + data[60:])]:
        (folder / name).write_bytes(content)
        paths.append(folder / name)
    return [str(path) for path in paths]


def random_array(rng: random.Random, np_rng: np.random.Generator) -> np.ndarray:
    shape = rng.choice([(8, 8), (8, 8, 3), (8, 8, 4), (8, 8, 1), (8, 8, 2), (3, 8, 8), (8,), (2, 8, 8, 3), (),
                        (0, 8), (8, 0, 3), (1, 1), (20_000, 20_000, 3)])
    dtype = rng.choice([np.uint8, np.int64, np.int8, np.uint16, np.float16, np.float32, np.float64, bool,
                        np.complex64, object, "U3", "datetime64[s]"])
    if shape == (20_000, 20_000, 3):  # huge, but a view with no memory behind it
        return np.broadcast_to(np.zeros(1, dtype=np.uint8), shape)
    if dtype == "U3":
        return np.full(shape, "abc")
    with np.errstate(over="ignore", invalid="ignore"):  # out-of-range casts are part of the point
        array = np.asarray(np_rng.random(shape) * rng.choice([1, 255, 70_000, -3])).astype(dtype)
    if np.issubdtype(array.dtype, np.floating) and array.size and rng.random() < 0.3:
        array.flat[0] = rng.choice([np.nan, np.inf, -np.inf])
    return array


def random_image(rng: random.Random, np_rng: np.random.Generator, files: list[str]):
    kind = rng.randrange(6)
    if kind == 0:
        return random_array(rng, np_rng)
    if kind == 1:
        array = random_array(rng, np_rng)
        try:
            tensor = torch.from_numpy(np.ascontiguousarray(array))
        except TypeError:  # dtypes torch has no tensor for
            return array
        return tensor.permute(*reversed(range(tensor.dim()))) if tensor.dim() else tensor
    if kind == 2:
        mode = rng.choice(["1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "LA", "PA", "I", "F",
                           "I;16", "I;16B", "RGBX"])
        return Image.new(mode, rng.choice([(5, 7), (1, 1), (0, 4), (33, 2)]))
    if kind == 3:
        return rng.choice(files)
    if kind == 4:
        return rng.choice([None, 3, 2.5, b"\x89PNG", "", "   ", {"image": 1}, [], [[1, 2], [3]], object(), Path("/")])
    return rng.choice([set(), {1, 2}, (np.zeros((4, 4), np.uint8),), [Image.new("RGB", (4, 4))] * 3])


def random_text(rng: random.Random) -> object:
    pieces = ["a cat", "", " ", "\u200b", "\ufeff", "Katze", "x" * 300, "\ud800", "\x00", "日本", "\u202e", "🐱"]
    return "".join(rng.choices(pieces, k=rng.randrange(1, 4)))


def random_captions(rng: random.Random) -> object:
    kind = rng.randrange(8)
    if kind == 0:
        return [[random_text(rng) for _ in range(rng.randrange(0, 3))] for _ in range(rng.randrange(0, 3))]
    if kind == 1:
        keys = rng.sample(["en", "de", 1, None, ("t",), "", "fr"], k=rng.randrange(1, 4))
        return [{key: random_text(rng) for key in keys} for _ in range(rng.randrange(1, 3))]
    if kind == 2:
        return [{random_text(rng), "b"}, ["a", "b"]]
    if kind == 3:
        return rng.choice([set(), frozenset({"a"}), "a cat", b"bytes", 7, None, {"en": ["a"]}, (("a",),)])
    if kind == 4:
        return [[rng.choice([None, 1, b"a", ["nested"], 2.0, "ok"])]]
    if kind == 5:
        return [["a", "b"], {"en": "c", "de": "d"}]
    if kind == 6:
        return [("a", "b"), ("c", "d")]
    return (list(rng.choice(["ab", "a"])) for _ in range(2))  # a generator


def random_plain_text(rng: random.Random) -> object:
    kind = rng.randrange(4)
    if kind == 0:
        return random_text(rng)
    if kind == 1:
        return [random_text(rng) for _ in range(rng.randrange(0, 4))]
    if kind == 2:
        return rng.choice([b"bytes", 3, [b"a"], [["nested"]], {"a"}, {"en": "a"}, ("a", "b"), [None], np.array(["a"])])
    return [random_text(rng), 5]


def random_call(rng: random.Random, np_rng: np.random.Generator, files: list[str]) -> dict:
    arguments = {}
    if rng.random() < 0.6:
        n = rng.choice([0, 1, 1, 2, 3])
        arguments["images"] = random_image(rng, np_rng, files) if rng.random() < 0.4 else [
            random_image(rng, np_rng, files) for _ in range(n)]
    choice = rng.random()
    if choice < 0.45:
        arguments["captions"] = random_captions(rng)
    elif choice < 0.85:
        arguments["text"] = random_plain_text(rng)
    if rng.random() < 0.1:
        arguments[rng.choice(["max_length", "padding", "truncation", "pad_to_multiple_of"])] = rng.choice(
            [0, 1, 3, -5, 2.5, None, True, "x", "longest"])
    return arguments


def test_malformed_inputs_raise_only_value_errors(tmp_path):
    processor = tiny_ccr_processor()
    files = image_files(tmp_path)
    rng, np_rng = random.Random(9), np.random.default_rng(9)
    outcomes = {"ok": 0, "ValueError": 0}
    for case in range(N_CASES):
        arguments = random_call(rng, np_rng, files)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # truncation warnings are expected here
                processor(**arguments)
            outcomes["ok"] += 1
        except ValueError:
            outcomes["ValueError"] += 1
        except Exception as error:  # noqa: BLE001 - the point of the test
            pytest.fail(f"case {case}: {type(error).__name__}: {error}\narguments: {arguments!r:.600}")
    # the stream exercises both outcomes, so neither "always fails" nor "never checks" passes unnoticed
    assert outcomes["ok"] >= 20 and outcomes["ValueError"] >= 100, outcomes


def test_a_misspelt_keyword_is_the_only_type_error():
    with pytest.raises(TypeError, match="unexpected keyword"):
        tiny_ccr_processor()(text="a cat", captionz=[["a"]])
