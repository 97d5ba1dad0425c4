"""Multilingual COCO loader on fixture files in the three published formats: Karpathy's dataset_coco.json
(en), COCO-CN (zh) and YJ Captions 26k in the MS-COCO caption format (ja)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data.ccr_data_fixtures import CAPTIONS, color_index, image_bytes

from modeling_ccr.data import load_benchmark

# (COCO id, folder, Karpathy split)
IMAGES = [
    (391895, "val2014", "test"),
    (522418, "val2014", "test"),
    (184613, "train2014", "val"),
    (318219, "train2014", "restval"),
]


def name(i: int) -> str:
    cocoid, folder, _ = IMAGES[i]
    return f"COCO_{folder}_{cocoid:012d}"


def write_fixture(root: Path, ja_images=(0, 1, 2, 3)) -> Path:
    karpathy = {
        "dataset": "coco",
        "images": [
            {
                "filepath": folder,
                "filename": name(i) + ".jpg",
                "imgid": i,
                "split": split,
                "cocoid": cocoid,
                "sentids": [2 * i, 2 * i + 1],
                "sentences": [
                    {"tokens": [], "raw": CAPTIONS["en"][i], "imgid": i, "sentid": 2 * i},
                    {"tokens": [], "raw": f"Another view of picture {i}.", "imgid": i, "sentid": 2 * i + 1},
                ],
            }
            for i, (cocoid, folder, split) in enumerate(IMAGES)
        ],
    }
    (root / "dataset_coco.json").write_text(json.dumps(karpathy), encoding="utf-8")
    coco_cn = root / "coco-cn-version1805v1.1"
    coco_cn.mkdir()
    lines = [f"{name(i)}#0\t{CAPTIONS['zh'][i]}" for i in (3, 0, 2, 1)] + [f"{name(0)}#1\t第二句。"]
    (coco_cn / "imageid.human-written-caption.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (coco_cn / "coco-cn_test.txt").write_text(f"{name(2)}\n{name(3)}\n", encoding="utf-8")
    (coco_cn / "coco-cn_train.txt").write_text(f"{name(0)}\n{name(1)}\n", encoding="utf-8")
    yj = {
        "info": {},
        "licenses": [],
        "images": [{"id": IMAGES[i][0], "file_name": name(i) + ".jpg"} for i in ja_images],
        "annotations": [
            {"image_id": IMAGES[i][0], "id": 100 + k, "caption": text}
            for i in ja_images
            for k, text in enumerate([CAPTIONS["ja"][i], "別の説明。"])
        ],
    }
    (root / "yjcaptions26k_clean.json").write_text(json.dumps(yj, ensure_ascii=False), encoding="utf-8")
    for i, (_, folder, _) in enumerate(IMAGES):
        (root / "images" / folder).mkdir(parents=True, exist_ok=True)
        (root / "images" / folder / f"{name(i)}.jpg").write_bytes(image_bytes(i))
    return root


def test_karpathy_test_split_joins_three_languages_by_coco_id(tmp_path):
    test, report = load_benchmark(
        "coco-multilingual", split="test", data_dir=write_fixture(tmp_path), return_report=True
    )
    assert list(test.features["captions"]) == ["en", "zh", "ja"]
    assert test["id"] == [name(0), name(1)]
    for row in test:
        i = color_index(row["image"])
        assert row["id"] == name(i)
        assert row["captions"] == {lang: CAPTIONS[lang][i] for lang in ("en", "zh", "ja")}
    # one English and one Japanese caption per image, and image 0's second Chinese one, are not used
    assert report.splits["test"].unused_captions == {"en": 2, "ja": 2, "zh": 1}


def test_coco_cn_split_and_language_order(tmp_path):
    root = write_fixture(tmp_path)
    test = load_benchmark("coco-multilingual", split="coco_cn_test", languages=["zh", "en"], data_dir=root)
    assert test["id"] == [name(2), name(3)]
    assert test["captions"] == [{"zh": CAPTIONS["zh"][i], "en": CAPTIONS["en"][i]} for i in (2, 3)]
    assert [color_index(image) for image in test["image"]] == [2, 3]


def test_missing_japanese_caption_is_reported_with_the_yj_file(tmp_path):
    root = write_fixture(tmp_path, ja_images=(0, 2, 3))
    with pytest.raises(
        ValueError, match=r"COCO_val2014_000000522418.*no caption in 'ja'.*yjcaptions26k_clean"
    ):
        load_benchmark("coco-multilingual", split="test", data_dir=root)
    test, report = load_benchmark(
        "coco-multilingual", split="test", data_dir=root, on_missing="drop", return_report=True
    )
    assert test["id"] == [name(0)] and report.splits["test"].dropped == {"no caption in 'ja'": 1}


def test_absent_source_removes_its_language(tmp_path):
    root = write_fixture(tmp_path)
    (root / "yjcaptions26k_clean.json").unlink()
    with pytest.raises(ValueError, match=r"no language 'ja'.*en, zh"):
        load_benchmark("coco-multilingual", split="val", languages=["ja"], data_dir=root)
    val = load_benchmark("coco-multilingual", split="val", data_dir=root)
    assert val["captions"] == [{"en": CAPTIONS["en"][2], "zh": CAPTIONS["zh"][2]}]


def test_unknown_split_names_the_available_ones(tmp_path):
    with pytest.raises(
        ValueError, match="no split 'dev'.*train, restval, val, test, coco_cn_test, coco_cn_train"
    ):
        load_benchmark("coco-multilingual", split="dev", data_dir=write_fixture(tmp_path))
