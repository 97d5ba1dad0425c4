"""Multi30K loader on fixture files in the published layout (data/task1/raw/<split>.<lang>.gz, line i =
image i of data/task1/image_splits/<split>.txt)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from data.ccr_data_fixtures import CAPTIONS, color_index, image_bytes

from modeling_ccr.data import load_benchmark

NAMES = ["1000092795.jpg", "10002456.jpg", "1000268201.jpg", "1000344755.jpg"]


def write_fixture(
    root: Path,
    split: str = "test_2016_flickr",
    langs=("en", "de", "fr", "cs"),
    order=(0, 1, 2, 3),
    plain: tuple[str, ...] = ("fr",),
) -> Path:
    """One split listing images ``order``; caption files gzipped except for the ``plain`` languages."""
    task1 = root / "data" / "task1"
    (task1 / "raw").mkdir(parents=True, exist_ok=True)
    (task1 / "image_splits").mkdir(parents=True, exist_ok=True)
    (task1 / "image_splits" / f"{split}.txt").write_text("".join(NAMES[i] + "\n" for i in order))
    for lang in langs:
        text = "".join(CAPTIONS[lang][i] + "\n" for i in order).encode("utf-8")
        if lang in plain:
            (task1 / "raw" / f"{split}.{lang}").write_bytes(text)
        else:
            (task1 / "raw" / f"{split}.{lang}.gz").write_bytes(gzip.compress(text))
    images = root / "flickr30k-images"
    images.mkdir(exist_ok=True)
    for i, name in enumerate(NAMES):
        (images / name).write_bytes(image_bytes(i))
    return root


def test_line_i_of_each_language_belongs_to_image_i(tmp_path):
    root = write_fixture(tmp_path, order=(2, 0, 3, 1))
    test = load_benchmark(
        "multi30k", split="test_2016_flickr", data_dir=root, image_dir=root / "flickr30k-images"
    )
    assert list(test.features["captions"]) == ["en", "de", "fr", "cs"]
    assert test["id"] == ["1000268201", "1000092795", "1000344755", "10002456"]
    for row in test:
        i = color_index(row["image"])
        assert NAMES[i] == row["id"] + ".jpg"
        assert row["captions"] == {lang: CAPTIONS[lang][i] for lang in ("en", "de", "fr", "cs")}


def test_default_splits_are_those_with_every_selected_language(tmp_path, caplog):
    root = write_fixture(tmp_path)
    write_fixture(root, split="test_2017_flickr", langs=("en", "de", "fr"), order=(1, 3))
    images = root / "flickr30k-images"
    with caplog.at_level("WARNING", logger="modeling_ccr.data.load"):
        assert list(load_benchmark("multi30k", data_dir=root, image_dir=images)) == ["test_2016_flickr"]
    # the split left out is said, not dropped in silence
    assert [r.getMessage() for r in caplog.records] == [
        "multi30k: leaving out split(s) test_2017_flickr, which lack captions in some of en, de, fr, cs; name one "
        "with split=... and select the languages it has to load it"
    ]
    caplog.clear()
    both = load_benchmark("multi30k", languages=["en", "de"], data_dir=root, image_dir=images)
    assert not caplog.records
    assert list(both) == ["test_2016_flickr", "test_2017_flickr"]
    assert both["test_2017_flickr"]["captions"] == [
        {"en": CAPTIONS["en"][1], "de": CAPTIONS["de"][1]},
        {"en": CAPTIONS["en"][3], "de": CAPTIONS["de"][3]},
    ]
    # Czech has no test_2017_flickr file: naming the split with cs fails, naming the missing file
    with pytest.raises(ValueError, match=r"no caption in 'cs'.*raw/test_2017_flickr\.cs\.gz"):
        load_benchmark("multi30k", split="test_2017_flickr", data_dir=root, image_dir=images)


def test_caption_count_must_match_image_list(tmp_path):
    root = write_fixture(tmp_path)
    raw = root / "data" / "task1" / "raw"
    (raw / "test_2016_flickr.fr").write_text(
        "".join(CAPTIONS["fr"][i] + "\n" for i in range(3)), encoding="utf-8"
    )
    with pytest.raises(
        ValueError, match=r"test_2016_flickr\.fr has 3 captions but .*test_2016_flickr\.txt lists 4"
    ):
        load_benchmark("multi30k", split="test_2016_flickr", data_dir=root)


def test_empty_caption_line_is_a_missing_language(tmp_path):
    root = write_fixture(tmp_path)
    raw = root / "data" / "task1" / "raw"
    lines = [CAPTIONS["fr"][i] for i in range(4)]
    lines[1] = ""
    (raw / "test_2016_flickr.fr").write_text("\n".join(lines) + "\n", encoding="utf-8")
    images = root / "flickr30k-images"
    with pytest.raises(ValueError, match="'10002456'.*no caption in 'fr'"):
        load_benchmark("multi30k", split="test_2016_flickr", data_dir=root, image_dir=images)
    test, report = load_benchmark(
        "multi30k",
        split="test_2016_flickr",
        data_dir=root,
        image_dir=images,
        on_missing="drop",
        return_report=True,
    )
    assert test["id"] == ["1000092795", "1000268201", "1000344755"]
    assert report.num_dropped == 1


def test_task1_folder_as_data_dir_and_missing_images(tmp_path):
    root = write_fixture(tmp_path)
    with pytest.raises(ValueError, match=r"1000092795\.jpg.*not found"):
        load_benchmark("multi30k", split="test_2016_flickr", data_dir=root / "data" / "task1")


@pytest.mark.parametrize("invisible", ["   ", "\u200b", "\u200d\ufeff", "\u00ad"])
def test_invisible_only_caption_is_a_missing_language(tmp_path, invisible):
    root = write_fixture(tmp_path)
    lines = [CAPTIONS["de"][i] for i in range(4)]
    lines[2] = invisible
    (root / "data" / "task1" / "raw" / "test_2016_flickr.de.gz").write_bytes(
        gzip.compress(("\n".join(lines) + "\n").encode("utf-8")))
    with pytest.raises(ValueError, match="'1000268201'.*no caption in 'de'"):
        load_benchmark("multi30k", split="test_2016_flickr", data_dir=root, image_dir=root / "flickr30k-images")
