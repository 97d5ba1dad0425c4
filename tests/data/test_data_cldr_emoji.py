"""The embedded cldr-emoji benchmark as shipped in the package: sizes, split disjointness by image,
schema, known CLDR names, integrity and licences."""

from __future__ import annotations

import hashlib

import datasets
import pytest

from modeling_ccr.data import CLDR_EMOJI_DIR, DEFAULT_LANGUAGES, common_features, load_benchmark


@pytest.fixture(scope="module")
def emoji():
    return load_benchmark("cldr-emoji")


def test_split_sizes_and_languages(emoji):
    assert list(emoji) == ["train", "validation", "test"]
    assert {name: split.num_rows for name, split in emoji.items()} == {
        "train": 1085,
        "validation": 200,
        "test": 300,
    }
    assert DEFAULT_LANGUAGES == ("en", "de", "fr", "cs", "zh", "ja", "id", "es", "ru", "tr")
    for split in emoji.values():
        assert list(split.features["captions"]) == list(DEFAULT_LANGUAGES)


def test_schema(emoji):
    expected = common_features(
        DEFAULT_LANGUAGES, with_keywords=True, extra=datasets.Features({"category": datasets.Value("string")})
    )
    for split in emoji.values():
        assert split.features == expected


def test_no_image_in_two_splits(emoji):
    raw = {name: split.cast_column("image", datasets.Image(decode=False)) for name, split in emoji.items()}
    ids = {name: set(split["id"]) for name, split in raw.items()}
    images = {
        name: {hashlib.sha256(image["bytes"]).hexdigest() for image in split["image"]}
        for name, split in raw.items()
    }
    assert sum(len(s) for s in ids.values()) == 1585 == len(set().union(*ids.values()))
    for a, b in [("train", "validation"), ("train", "test"), ("validation", "test")]:
        assert not ids[a] & ids[b]
        assert not images[a] & images[b]


def test_known_cldr_names_and_images(emoji):
    rows = {
        row["id"]: row for split in emoji.values() for row in split if row["id"] in ("1f600", "2764-fe0f")
    }
    grinning, heart = rows["1f600"], rows["2764-fe0f"]
    assert grinning["captions"]["en"] == "grinning face"
    assert grinning["captions"]["de"] == "grinsendes Gesicht"
    assert grinning["captions"]["ja"] == "にっこり笑う"
    assert heart["captions"]["en"] == "red heart"
    assert heart["captions"]["fr"] == "cœur rouge"
    assert "smile" in grinning["keywords"]["en"]
    assert grinning["category"] == "Smileys & Emotion"
    assert grinning["image"].format == "PNG" and grinning["image"].size == (64, 64)


def test_every_caption_present(emoji):
    for split in emoji.values():
        for captions in split["captions"]:
            assert all(captions[lang].strip() for lang in DEFAULT_LANGUAGES)


def test_checksums_licences_and_card_match_the_files():
    sums = (CLDR_EMOJI_DIR / "SHA256SUMS.txt").read_text(encoding="utf-8").split("\n")
    listed = dict(reversed(line.split("  ")) for line in sums if line)
    assert sorted(listed) == ["test.parquet", "train.parquet", "validation.parquet"]
    for name, digest in listed.items():
        assert hashlib.sha256((CLDR_EMOJI_DIR / name).read_bytes()).hexdigest() == digest
    assert "Apache License" in (CLDR_EMOJI_DIR / "LICENSE-images-Apache-2.0.txt").read_text(encoding="utf-8")
    assert "MIT License" in (CLDR_EMOJI_DIR / "LICENSE-emoji-datasource-MIT.txt").read_text(encoding="utf-8")
    assert "UNICODE LICENSE V3" in (CLDR_EMOJI_DIR / "LICENSE-names-Unicode-3.0.txt").read_text(
        encoding="utf-8"
    )
    card = (CLDR_EMOJI_DIR / "DATASET_CARD.md").read_text(encoding="utf-8")
    for fact in (
        "| train | 1085 |",
        "| validation | 200 |",
        "| test | 300 |",
        "emoji-datasource-google` | 16.0.0",
        "cldr-annotations-full` | 48.2.0",
        *listed.values(),
    ):
        assert fact in card
    total = sum(f.stat().st_size for f in CLDR_EMOJI_DIR.iterdir())
    assert total < 10 * 2**20


def test_selection_order_and_bad_codes():
    test = load_benchmark("cldr-emoji", split="test", languages=["tr", "en"])
    full = load_benchmark("cldr-emoji", split="test")
    assert list(test.features["captions"]) == ["tr", "en"] and list(test.features["keywords"]) == ["tr", "en"]
    assert test["captions"] == [{"tr": c["tr"], "en": c["en"]} for c in full["captions"]]
    with pytest.raises(ValueError, match=r"no language 'zh-TW'.*en, de, fr, cs, zh, ja, id, es, ru, tr"):
        load_benchmark("cldr-emoji", languages=["en", "zh-TW"])
    with pytest.raises(ValueError, match="more than once"):
        load_benchmark("cldr-emoji", languages=["en", "en"])
    with pytest.raises(ValueError, match="list of codes"):
        load_benchmark("cldr-emoji", languages="en")
    with pytest.raises(ValueError, match="on_missing='skip' is not a policy"):
        load_benchmark("cldr-emoji", on_missing="skip")
    with pytest.raises(ValueError, match="no split 'dev'.*train, validation, test"):
        load_benchmark("cldr-emoji", split="dev")


def test_streaming_matches_in_memory():
    stream = load_benchmark("cldr-emoji", split="validation", languages=["en", "ja"], streaming=True)
    memory = load_benchmark("cldr-emoji", split="validation", languages=["en", "ja"])
    streamed = list(stream)
    assert [r["id"] for r in streamed] == memory["id"]
    assert [r["captions"] for r in streamed] == memory["captions"]


def test_a_folder_of_common_schema_parquet_is_a_benchmark(tmp_path):
    """The shipped folder read as a path, and through datasets' own parquet reader (Hub layout)."""
    by_path = load_benchmark(str(CLDR_EMOJI_DIR), split="test", languages=["en"])
    assert by_path["captions"] == [
        {"en": c["en"]} for c in load_benchmark("cldr-emoji", split="test")["captions"]
    ]
    hub = datasets.load_dataset(
        "parquet", data_files={"test": str(CLDR_EMOJI_DIR / "test.parquet")}, cache_dir=str(tmp_path)
    )["test"]
    assert (
        hub.features["image"] == datasets.Image() and hub[0]["captions"]["en"] == by_path[0]["captions"]["en"]
    )
