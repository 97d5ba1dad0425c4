"""IGLUE xFlickr&CO loader on fixture files in the published layout (annotations/<lang>/<split>.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data.ccr_data_fixtures import CAPTIONS, color_index, image_bytes, truncated

from modeling_ccr.data import load_benchmark

# (id as IGLUE writes it: Flickr ids are strings, COCO ids numbers; image file name)
IMAGES = [
    ("1007129816", "1007129816.jpg"),
    ("1009434119", "1009434119.jpg"),
    (460251, "COCO_val2014_000000460251.jpg"),
    (357978, "COCO_val2014_000000357978.jpg"),
]
LANGS = ("en", "de", "ja")


def write_fixture(root: Path, skip: dict[str, int] | None = None, langs: tuple[str, ...] = LANGS) -> Path:
    """IGLUE layout with images 0-3 in ``langs`` (default en, de, ja); ``skip`` leaves image i out of a
    language's file."""
    skip = skip or {}
    for lang in langs:
        folder = root / "annotations" / lang
        folder.mkdir(parents=True)
        lines = [
            json.dumps(
                {"sentences": [CAPTIONS[lang][i]], "id": image_id, "img_path": path}, ensure_ascii=False
            )
            for i, (image_id, path) in enumerate(IMAGES)
            if skip.get(lang) != i
        ]
        (folder / "test.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    few_shot = {"sentences": [CAPTIONS["de"][1]], "id": IMAGES[1][0], "img_path": IMAGES[1][1]}
    (root / "annotations" / "de" / "train_10.jsonl").write_text(json.dumps(few_shot) + "\n", encoding="utf-8")
    (root / "images").mkdir()
    for i, (_, path) in enumerate(IMAGES):
        (root / "images" / path).write_bytes(image_bytes(i))
    return root


def test_loads_parallel_test_split_with_captions_matching_images(tmp_path):
    data = load_benchmark("xflickrco", data_dir=write_fixture(tmp_path))
    assert list(data) == ["test"]  # train_10 exists in de only, so it is not a default split
    test = data["test"]
    assert test.num_rows == 4
    assert list(test.features["captions"]) == ["en", "de", "ja"]
    assert test["id"] == ["1007129816", "1009434119", "460251", "357978"]
    for row in test:
        i = color_index(row["image"])
        assert row["captions"] == {lang: CAPTIONS[lang][i] for lang in LANGS}
        assert str(IMAGES[i][0]) == row["id"]


def test_language_selection_and_named_split(tmp_path):
    root = write_fixture(tmp_path)
    test = load_benchmark("xflickrco", split="test", languages=["ja", "en"], data_dir=root)
    assert list(test.features["captions"]) == ["ja", "en"]
    assert test[2]["captions"] == {"ja": CAPTIONS["ja"][2], "en": CAPTIONS["en"][2]}
    few = load_benchmark("xflickrco", split="train_10", languages=["de"], data_dir=root)
    assert few["id"] == ["1009434119"] and few[0]["captions"] == {"de": CAPTIONS["de"][1]}


def test_unknown_language_names_known_codes(tmp_path):
    with pytest.raises(ValueError, match=r"no language 'fr'.*en, de, ja"):
        load_benchmark("xflickrco", languages=["en", "fr"], data_dir=write_fixture(tmp_path))


def test_missing_language_errors_naming_file_or_is_dropped_and_counted(tmp_path):
    root = write_fixture(tmp_path, skip={"de": 2})
    expected_file = str(root / "annotations" / "de" / "test.jsonl")
    with pytest.raises(ValueError, match="'460251'.*no caption in 'de'") as error:
        load_benchmark("xflickrco", split="test", data_dir=root)
    assert expected_file in str(error.value)
    test, report = load_benchmark(
        "xflickrco", split="test", data_dir=root, on_missing="drop", return_report=True
    )
    assert test["id"] == ["1007129816", "1009434119", "357978"]
    assert report.splits["test"].dropped == {"no caption in 'de'": 1}
    assert report.splits["test"].kept == 3
    # without de, the same instance is complete
    assert load_benchmark("xflickrco", split="test", languages=["en", "ja"], data_dir=root).num_rows == 4


def test_missing_image_file_errors_naming_file_or_is_dropped(tmp_path):
    root = write_fixture(tmp_path)
    (root / "images" / IMAGES[1][1]).unlink()
    with pytest.raises(ValueError, match=r"1009434119\.jpg.*not found.*annotations/en/test\.jsonl line 2"):
        load_benchmark("xflickrco", split="test", data_dir=root)
    test, report = load_benchmark(
        "xflickrco", split="test", data_dir=root, on_missing="drop", return_report=True
    )
    assert test.num_rows == 3 and report.splits["test"].dropped == {"missing image file": 1}


def test_corrupt_image_errors_naming_file_or_is_dropped(tmp_path):
    root = write_fixture(tmp_path)
    bad = root / "images" / IMAGES[3][1]
    bad.write_bytes(truncated(image_bytes(3)))
    with pytest.raises(ValueError, match="does not decode") as error:
        load_benchmark("xflickrco", split="test", data_dir=root)
    assert str(bad) in str(error.value) and "'357978'" in str(error.value)
    test, report = load_benchmark(
        "xflickrco", split="test", data_dir=root, on_missing="drop", return_report=True
    )
    assert "357978" not in test["id"] and report.splits["test"].dropped == {"unreadable image": 1}


def test_images_found_in_several_folders(tmp_path):
    root = write_fixture(tmp_path)
    coco = tmp_path / "coco" / "val2014"
    coco.mkdir(parents=True)
    for _, name in IMAGES[2:]:
        (root / "images" / name).rename(coco / name)
    test = load_benchmark("xflickrco", split="test", data_dir=root, image_dir=[root / "images", coco])
    assert [color_index(image) for image in test["image"]] == [0, 1, 2, 3]


def test_damaged_annotation_line_names_file_and_line(tmp_path):
    root = write_fixture(tmp_path)
    path = root / "annotations" / "ja" / "test.jsonl"
    path.write_text(path.read_text(encoding="utf-8") + '{"sentences": ["x"], "id": \n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"ja/test\.jsonl line 5 is not valid JSON"):
        load_benchmark("xflickrco", data_dir=root)
