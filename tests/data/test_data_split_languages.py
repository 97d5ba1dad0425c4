"""Folder loaders read each split's languages from its own files: a language one split lacks is neither
dropped from the other splits nor silently missing from that one."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from data.ccr_data_fixtures import CAPTIONS, color_index, image_bytes
from test_data_imagefolder import write_metadata

from modeling_ccr.data import load_benchmark

SPLIT_ROWS = {"train": [0, 1], "validation": [2, 3], "test": [4, 5]}
SPLIT_LANGS = {"train": ("en", "de"), "validation": ("en", "de"), "test": ("en",)}
TEST_LACKS_DE = (
    "split 'test' has no captions in 'de'; its languages are en (every split has en). Select languages "
    "among those"
)


def write_parquet(path, indices, langs):
    """One split file written with pyarrow: id, image {bytes, path}, captions {lang: text} for ``langs``."""
    table = pa.table({
        "id": [f"img{i}" for i in indices],
        "image": [{"bytes": image_bytes(i, "PNG"), "path": f"{i}.png"} for i in indices],
        "captions": [{lang: CAPTIONS[lang][i] for lang in langs} for i in indices],
    })
    pq.write_table(table, path)


@pytest.fixture
def parquet_folder(tmp_path):
    for split, indices in SPLIT_ROWS.items():
        write_parquet(tmp_path / f"{split}.parquet", indices, SPLIT_LANGS[split])
    return tmp_path


def expected_captions(split, langs):
    return [{lang: CAPTIONS[lang][i] for lang in langs} for i in SPLIT_ROWS[split]]


def test_parquet_validation_keeps_the_language_test_lacks(parquet_folder):
    validation = load_benchmark(parquet_folder, split="validation")
    assert validation["captions"] == expected_captions("validation", ("en", "de"))
    assert [color_index(image) for image in validation["image"]] == SPLIT_ROWS["validation"]


def test_parquet_all_splits_without_languages_refuse_naming_the_split(parquet_folder):
    with pytest.raises(ValueError, match=re.escape(TEST_LACKS_DE)):
        load_benchmark(parquet_folder)


def test_parquet_requested_language_missing_in_the_named_split(parquet_folder):
    with pytest.raises(ValueError, match=re.escape(TEST_LACKS_DE)):
        load_benchmark(parquet_folder, split="test", languages=["en", "de"])


def test_parquet_common_languages_load_every_split(parquet_folder):
    data = load_benchmark(parquet_folder, languages=["en"])
    assert list(data) == ["train", "validation", "test"]
    for split in SPLIT_ROWS:
        assert data[split]["captions"] == expected_captions(split, ("en",))


def test_parquet_files_of_one_split_must_agree_on_languages(tmp_path):
    write_parquet(tmp_path / "test-00000-of-00002.parquet", [0], ("en", "de"))
    write_parquet(tmp_path / "test-00001-of-00002.parquet", [1], ("en",))
    message = (
        f"{tmp_path / 'test-00001-of-00002.parquet'} has captions in ['en'], unlike "
        f"{tmp_path / 'test-00000-of-00002.parquet'} (['en', 'de']) of the same split"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        load_benchmark(tmp_path, split="test", languages=["en"])


@pytest.fixture
def image_folder(tmp_path):
    root = tmp_path / "images"
    for split, indices in SPLIT_ROWS.items():
        rows = [
            {"file_name": f"img{i}.png", **{f"captions.{lang}": CAPTIONS[lang][i] for lang in SPLIT_LANGS[split]}}
            for i in indices
        ]
        write_metadata(root / split, rows, "jsonl-columns")
        for i in indices:
            (root / split / f"img{i}.png").write_bytes(image_bytes(i, "PNG"))
    return root


def test_imagefolder_validation_keeps_the_language_test_lacks(image_folder):
    validation = load_benchmark(image_folder, split="validation")
    assert validation["captions"] == expected_captions("validation", ("en", "de"))


def test_imagefolder_missing_language_is_refused_naming_the_split(image_folder):
    with pytest.raises(ValueError, match=re.escape(TEST_LACKS_DE)):
        load_benchmark(image_folder)
    assert load_benchmark(image_folder, split="test", languages=["en"])["captions"] == expected_captions(
        "test", ("en",)
    )
