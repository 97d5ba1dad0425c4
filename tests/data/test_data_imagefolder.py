"""One's own images in the Hugging Face imagefolder layout: metadata.jsonl (a captions dict or
captions.<lang> columns) or metadata.csv (captions.<lang> columns), split folders or one folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from data.ccr_data_fixtures import CAPTIONS, color_index, image_bytes

from modeling_ccr.data import load_benchmark

LANGS = ("en", "de", "fr")
SPLITS = {"train": [0, 1, 2, 3], "test": [4, 5]}
LAYOUTS = ("jsonl-dict", "jsonl-columns", "csv")


def _rows(indices, langs=LANGS):
    return [
        {
            "file_name": f"img{i}.png",
            "id": f"image-{i}",
            **{f"captions.{lang}": CAPTIONS[lang][i] for lang in langs},
        }
        for i in indices
    ]


def write_metadata(folder: Path, rows: list[dict], layout: str) -> Path:
    """``rows`` with flat captions.<lang> keys, written in ``layout``."""
    folder.mkdir(parents=True, exist_ok=True)
    if layout == "csv":
        path = folder / "metadata.csv"
        columns = list(dict.fromkeys(key for row in rows for key in row))
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        return path
    if layout == "jsonl-dict":
        rows = [
            {
                **{k: v for k, v in row.items() if not k.startswith("captions.")},
                "captions": {k.split(".", 1)[1]: v for k, v in row.items() if k.startswith("captions.")},
            }
            for row in rows
        ]
    path = folder / "metadata.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def write_image_folder(root: Path, layout: str, splits=SPLITS) -> Path:
    """Real PNG files (solid colours) plus a metadata file per split folder."""
    for split, indices in splits.items():
        folder = root / split if split is not None else root
        folder.mkdir(parents=True, exist_ok=True)
        for i in indices:
            (folder / f"img{i}.png").write_bytes(image_bytes(i, fmt="PNG"))
        write_metadata(folder, _rows(indices), layout)
    return root


def _expected(indices, langs=LANGS):
    return [(f"image-{i}", i, {lang: CAPTIONS[lang][i] for lang in langs}) for i in indices]


def _loaded(dataset):
    return [(row["id"], color_index(row["image"]), row["captions"]) for row in dataset]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_split_folders_load_into_the_common_schema(tmp_path, layout):
    root = write_image_folder(tmp_path, layout)
    loaded = load_benchmark(root)
    assert list(loaded) == ["train", "test"]
    for split, indices in SPLITS.items():
        assert list(loaded[split].features["captions"]) == list(LANGS)
        assert _loaded(loaded[split]) == _expected(indices)
    test = load_benchmark(root, split="test", languages=["fr", "en"])
    assert [row["captions"] for row in test] == [
        {"fr": CAPTIONS["fr"][i], "en": CAPTIONS["en"][i]} for i in (4, 5)
    ]


def test_one_folder_is_the_train_split_and_ids_default_to_the_file_name(tmp_path):
    for i in range(3):
        (tmp_path / f"img{i}.png").write_bytes(image_bytes(i, fmt="PNG"))
    rows = [{k: v for k, v in row.items() if k != "id"} for row in _rows(range(3))]
    write_metadata(tmp_path, rows, "csv")
    train = load_benchmark(tmp_path, split="train")
    assert [(row["id"], color_index(row["image"])) for row in train] == [
        ("img0", 0),
        ("img1", 1),
        ("img2", 2),
    ]
    with pytest.raises(ValueError, match="no split 'test'"):
        load_benchmark(tmp_path, split="test")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_blank_caption_fails_naming_the_file_and_line_or_is_dropped(tmp_path, layout):
    rows = _rows(range(4))
    rows[2]["captions.de"] = "   "
    for i in range(4):
        (tmp_path / f"img{i}.png").write_bytes(image_bytes(i, fmt="PNG"))
    metadata = write_metadata(tmp_path, rows, layout)
    line = 4 if layout == "csv" else 3  # the CSV header is line 1
    with pytest.raises(ValueError, match=rf"'image-2' \({metadata} line {line}\) has no caption in 'de'"):
        load_benchmark(tmp_path, split="train")
    train, report = load_benchmark(tmp_path, split="train", on_missing="drop", return_report=True)
    assert train["id"] == ["image-0", "image-1", "image-3"]
    assert report.splits["train"].dropped == {"no caption in 'de'": 1}
    # leaving the incomplete language out keeps every image
    assert len(load_benchmark(tmp_path, split="train", languages=["en", "fr"])) == 4


def test_unknown_languages_missing_images_and_unlisted_images(tmp_path):
    root = write_image_folder(tmp_path, "jsonl-dict")
    with pytest.raises(ValueError, match="no language 'xx'; its language codes are en, de, fr"):
        load_benchmark(root, split="train", languages=["en", "xx"])
    (root / "train" / "img1.png").unlink()
    with pytest.raises(ValueError, match=r"image .*img1\.png not found \(instance 'image-1'"):
        load_benchmark(root, split="train")
    assert load_benchmark(root, split="train", on_missing="drop")["id"] == ["image-0", "image-2", "image-3"]
    (root / "test" / "stray.png").write_bytes(image_bytes(0, fmt="PNG"))
    unlisted = (
        r"stray\.png, named by no row of .*metadata\.jsonl\) has no caption in 'en'.*file_name 'stray\.png'"
    )
    with pytest.raises(ValueError, match=unlisted):
        load_benchmark(root, split="test")


@pytest.mark.parametrize("escape", ["../../outside.png", "absolute"])
def test_a_file_name_that_leads_out_of_the_folder_is_refused_naming_the_row(tmp_path, escape):
    root = tmp_path / "data" / "set"
    outside = tmp_path / "outside.png"  # a real image two levels above the metadata file
    outside.write_bytes(image_bytes(5, fmt="PNG"))
    write_image_folder(root, "jsonl-dict", splits={None: [0, 1, 2]})
    metadata = root / "metadata.jsonl"
    rows = metadata.read_text(encoding="utf-8").splitlines()
    name = str(outside) if escape == "absolute" else escape
    assert (root / name).resolve() == outside  # what the row would have read
    rows[1] = rows[1].replace('"img1.png"', json.dumps(name))
    (root / "img1.png").unlink()  # else it would be an image named by no row
    metadata.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=(
        rf"instance 'image-1' \({metadata} line 2\) names the image {name!r}, which leads out of the data folder; "
        r"name each image by its path inside the image folder, without '\.\.'"
    )):
        load_benchmark(root, split="train")
    train, report = load_benchmark(root, split="train", on_missing="drop", return_report=True)
    assert [color_index(image) for image in train["image"]] == [0, 2]
    assert report.splits["train"].dropped == {"image outside the data folder": 1}


def test_two_images_with_one_id_are_refused_naming_both_rows(tmp_path):
    (tmp_path / "cat.png").write_bytes(image_bytes(0, fmt="PNG"))
    (tmp_path / "cat.jpg").write_bytes(image_bytes(1))
    rows = [{k: v for k, v in row.items() if k != "id"} for row in _rows(range(2))]
    rows[0]["file_name"], rows[1]["file_name"] = "cat.png", "cat.jpg"  # both default to the id 'cat'
    metadata = write_metadata(tmp_path, rows, "csv")
    with pytest.raises(ValueError, match=(
        rf"id 'cat' names two instances, {metadata} line 2 and {metadata} line 3; give every image one row "
        "with an id of its own"
    )):
        load_benchmark(tmp_path, split="train")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda rows: rows[1].pop("file_name"), r"line 2 has no file_name"),
        (
            lambda rows: rows[1].update(file_name="img0.png"),
            r"line 2 names 'img0.png' again \(first in .*line 1\)",
        ),
        (
            lambda rows: rows[0].update(captions={"en": "x"}),
            "both a 'captions' dict and 'captions.<lang>' columns",
        ),
        (lambda rows: rows[0].update({"captions.en": 7}), r"the 'en' caption is int 7, not a string"),
    ],
)
def test_bad_metadata_is_refused_with_the_file_and_line(tmp_path, change, message):
    rows = _rows(range(3))
    change(rows)
    write_metadata(tmp_path, rows, "jsonl-columns")
    with pytest.raises(ValueError, match=message):
        load_benchmark(tmp_path, split="train")


def test_ambiguous_layouts_are_refused(tmp_path):
    root = write_image_folder(tmp_path, "csv")
    write_metadata(root / "train", _rows(SPLITS["train"]), "jsonl-dict")
    with pytest.raises(ValueError, match="both metadata.jsonl and metadata.csv"):
        load_benchmark(root)
    (root / "train" / "metadata.csv").unlink()
    write_metadata(root, _rows([0]), "csv")
    with pytest.raises(ValueError, match="a metadata file of its own and split folders"):
        load_benchmark(root)
