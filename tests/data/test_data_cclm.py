"""CCLM pre-training JSON lines ({"binary": base64 or path, "caption": {lang: text}}), in memory and
streamed."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import datasets
import pytest
from data.ccr_data_fixtures import CAPTIONS, color_index, image_bytes

from modeling_ccr.data import load_benchmark

LANGS = ("en", "de", "zh")


def line(i: int, image: dict, captions=None) -> str:
    captions = captions if captions is not None else {lang: CAPTIONS[lang][i] for lang in LANGS}
    return json.dumps({**image, "caption": captions}, ensure_ascii=False) + "\n"


def b64(i: int) -> dict:
    return {"binary": base64.b64encode(image_bytes(i)).decode()}


def write_corpus(root: Path, second_file_lines: list[str] | None = None) -> Path:
    """part_000.data: images 0 (base64), 1 (relative path in "binary"), 2 (image_path, list of two caption
    dicts); part_001.jsonl.gz: images 3 and 4 (base64)."""
    corpus = root / "corpus"
    (corpus / "imgs").mkdir(parents=True)
    for i in (1, 2):
        (corpus / "imgs" / f"{i}.jpg").write_bytes(image_bytes(i))
    first = [
        line(0, b64(0)),
        line(1, {"binary": "imgs/1.jpg"}),
        line(
            2,
            {"image_path": "imgs/2.jpg"},
            [{lang: CAPTIONS[lang][2] for lang in LANGS}, {lang: "alt" for lang in LANGS}],
        ),
    ]
    (corpus / "part_000.data").write_text("".join(first), encoding="utf-8")
    second = second_file_lines if second_file_lines is not None else [line(3, b64(3)), line(4, b64(4))]
    (corpus / "part_001.jsonl.gz").write_bytes(gzip.compress("".join(second).encode("utf-8")))
    return corpus


def check_rows(rows) -> list[int]:
    seen = []
    for row in rows:
        i = color_index(row["image"])
        assert row["captions"] == {lang: CAPTIONS[lang][i] for lang in LANGS}
        seen.append(i)
    return seen


def test_in_memory_rows_with_base64_and_path_images(tmp_path):
    train, report = load_benchmark("cclm", data_dir=write_corpus(tmp_path), split="train", return_report=True)
    assert isinstance(train, datasets.Dataset)
    assert list(train.features["captions"]) == ["en", "de", "zh"]
    assert check_rows(train) == [0, 1, 2, 3, 4]
    assert train["id"][:2] == ["part_000.data:1", "part_000.data:2"]
    assert report.splits["train"].unused_captions == {"en": 1, "de": 1, "zh": 1}


def test_streaming_reads_the_same_rows_lazily_and_shards_by_file(tmp_path):
    corpus = write_corpus(tmp_path)
    stream = load_benchmark("cclm", data_dir=corpus, split="train", languages=["zh", "en"], streaming=True)
    assert isinstance(stream, datasets.IterableDataset)
    assert stream.num_shards == 2
    rows = list(stream)
    assert [row["captions"] for row in rows] == [
        {"zh": CAPTIONS["zh"][i], "en": CAPTIONS["en"][i]} for i in range(5)
    ]
    assert [color_index(row["image"]) for row in rows] == [0, 1, 2, 3, 4]
    whole = load_benchmark("cclm", data_dir=corpus, streaming=True)
    assert isinstance(whole, datasets.IterableDatasetDict) and list(whole) == ["train"]


def test_missing_language_in_a_line_errors_while_streaming_or_is_counted(tmp_path):
    incomplete = {"en": CAPTIONS["en"][4], "zh": CAPTIONS["zh"][4]}
    corpus = write_corpus(tmp_path, [line(3, b64(3)), line(4, b64(4), incomplete)])
    stream = load_benchmark("cclm", data_dir=corpus, split="train", streaming=True)
    with pytest.raises(ValueError, match=r"part_001\.jsonl\.gz line 2\) has no caption in 'de'"):
        list(stream)
    stream, report = load_benchmark(
        "cclm", data_dir=corpus, split="train", streaming=True, on_missing="drop", return_report=True
    )
    assert check_rows(stream) == [0, 1, 2, 3]
    assert report.splits["train"].dropped == {"no caption in 'de'": 1} and report.splits["train"].kept == 4


def test_corrupt_image_bytes_name_the_line(tmp_path):
    damaged = {"binary": base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 80).decode()}
    corpus = write_corpus(tmp_path, [line(3, damaged), line(4, b64(4))])
    with pytest.raises(ValueError, match=r"part_001\.jsonl\.gz line 1\) does not decode"):
        load_benchmark("cclm", data_dir=corpus, split="train")
    train, report = load_benchmark("cclm", data_dir=corpus, on_missing="drop", return_report=True)
    assert check_rows(train["train"]) == [0, 1, 2, 4] and report.num_dropped == 1


def test_missing_image_path_and_unknown_language(tmp_path):
    corpus = write_corpus(tmp_path)
    (corpus / "imgs" / "2.jpg").unlink()
    with pytest.raises(ValueError, match=r"imgs/2\.jpg.*not found.*part_000\.data line 3"):
        load_benchmark("cclm", data_dir=corpus)
    with pytest.raises(ValueError, match=r"no language 'ja'.*en, de, zh"):
        load_benchmark("cclm", data_dir=corpus, languages=["ja"])


def test_single_file_as_data_dir(tmp_path):
    corpus = write_corpus(tmp_path)
    train = load_benchmark("cclm", data_dir=corpus / "part_000.data", split="train", languages=["de"])
    assert train["captions"] == [{"de": CAPTIONS["de"][i]} for i in range(3)]
