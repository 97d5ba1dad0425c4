"""IGLUE WIT loader on fixture files in the published layout: annotations/test_<lang>.jsonl and the
Kaggle image pixel files (tab-separated image_url, base64 bytes, metadata_url)."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest
from data.ccr_data_fixtures import CAPTIONS, color_index, image_bytes

from modeling_ccr.data import load_benchmark


def url(i: int) -> str:
    return f"https://upload.wikimedia.org/wikipedia/commons/{i}/{i}a/Picture_{i}.jpg"


def annotation(i: int, lang: str, caption: str, index: int, **more) -> str:
    row = {
        "image_idx": i,
        "image_url": url(i),
        "meta_url": f"http://commons.wikimedia.org/wiki/File:Picture_{i}.jpg",
        "caption_reference_description": caption,
        "language": lang,
        "page_url": f"https://{lang}.wikipedia.org/wiki/Page_{i}",
        "wit_ix": f"wit-test_{index}",
        **more,
    }
    return json.dumps(row, ensure_ascii=False)


def pixel_row(i: int) -> str:
    return (
        f"{url(i)}\t{base64.b64encode(image_bytes(i)).decode()}\thttp://commons.wikimedia.org/wiki/File:{i}\n"
    )


def write_fixture(root: Path) -> Path:
    """ja test: images 0, 1 (with a second caption), 2 (image embedded as image_content); en test: 3, 4."""
    annotations = root / "annotations"
    annotations.mkdir(parents=True)
    ja = [
        annotation(0, "ja", CAPTIONS["ja"][0], 1),
        annotation(1, "ja", CAPTIONS["ja"][1], 2),
        annotation(1, "ja", "ホームの様子", 2),
        annotation(2, "ja", CAPTIONS["ja"][2], 3, image_content=base64.b64encode(image_bytes(2)).decode()),
    ]
    (annotations / "test_ja.jsonl").write_text("\n".join(ja) + "\n", encoding="utf-8")
    en = [annotation(3, "en", CAPTIONS["en"][3], 4), annotation(4, "en", CAPTIONS["en"][4], 5)]
    (annotations / "test_en.jsonl").write_text("\n".join(en) + "\n", encoding="utf-8")
    pixels = root / "images"
    pixels.mkdir()
    (pixels / "test_image_pixels_part-00000.csv").write_text(pixel_row(0) + pixel_row(3), encoding="utf-8")
    (pixels / "test_image_pixels_part-00001.csv.gz").write_bytes(
        gzip.compress((pixel_row(1) + pixel_row(4)).encode())
    )
    return root


def test_one_language_at_a_time_with_images_from_pixel_files(tmp_path):
    root = write_fixture(tmp_path)
    ja, report = load_benchmark("wit", split="test", languages=["ja"], data_dir=root, return_report=True)
    assert ja["id"] == [url(0), url(1), url(2)]
    for row in ja:
        i = color_index(row["image"])
        assert row["id"] == url(i) and row["captions"] == {"ja": CAPTIONS["ja"][i]}
    assert report.splits["test"].unused_captions == {"ja": 1}
    en = load_benchmark("wit", split="test", languages=["en"], data_dir=root)
    assert en["captions"] == [{"en": CAPTIONS["en"][3]}, {"en": CAPTIONS["en"][4]}]
    assert [color_index(image) for image in en["image"]] == [3, 4]


def test_languages_are_not_parallel_so_default_loading_needs_a_choice(tmp_path):
    root = write_fixture(tmp_path)
    with pytest.raises(ValueError, match=r"Picture_3.*no caption in 'ja'.*test_ja\.jsonl"):
        load_benchmark("wit", split="test", data_dir=root)
    both, report = load_benchmark("wit", split="test", data_dir=root, on_missing="drop", return_report=True)
    assert both.num_rows == 0 and report.splits["test"].dropped == {
        "no caption in 'en'": 3,
        "no caption in 'ja'": 2,
    }


def test_image_without_pixel_row_is_named(tmp_path):
    root = write_fixture(tmp_path)
    (root / "images" / "test_image_pixels_part-00000.csv").write_text(pixel_row(3), encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"Picture_0\.jpg \(no row in the image pixel files.*test_ja\.jsonl line 1"
    ):
        load_benchmark("wit", split="test", languages=["ja"], data_dir=root)
    ja, report = load_benchmark(
        "wit", split="test", languages=["ja"], data_dir=root, on_missing="drop", return_report=True
    )
    assert ja["id"] == [url(1), url(2)] and report.splits["test"].dropped == {"missing image file": 1}


def test_corrupt_base64_image_is_named(tmp_path):
    root = write_fixture(tmp_path)
    (root / "images" / "test_image_pixels_part-00000.csv").write_text(
        f"{url(0)}\tnot-base64-at-all\tmeta\n" + pixel_row(3), encoding="utf-8"
    )
    with pytest.raises(ValueError, match=r"Picture_0\.jpg of instance .* does not decode"):
        load_benchmark("wit", split="test", languages=["ja"], data_dir=root)
