"""What ``ccr index`` makes of IMAGES: a folder of images with captions (metadata.jsonl) is indexed with the
split and languages asked for; ``--split`` / ``--languages`` for a folder without captions are refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from modeling_ccr.app.index import GalleryIndex
from modeling_ccr.app.index.sources import benchmark_source, source_from_argument
from modeling_ccr.app.testing import run_ccr_in_process
from modeling_ccr.testing import save_tiny_model

CAPTIONS = {"en": ["a red square", "a green square", "a blue square"],
            "de": ["ein rotes Quadrat", "ein grünes Quadrat", "ein blaues Quadrat"],
            "fr": ["un carré rouge", "un carré vert", "un carré bleu"]}
COLOURS = [(220, 20, 20), (20, 200, 20), (20, 20, 220)]
SPLITS = {"train": [0, 1], "test": [2]}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def write_captioned_folder(root: Path, splits: dict[str | None, list[int]]) -> Path:
    """PNG squares with a metadata.jsonl of captions in en, de, fr per split folder (``None``: at the top)."""
    for split, indices in splits.items():
        folder = root / split if split else root
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for i in indices:
            Image.new("RGB", (16, 12), COLOURS[i]).save(folder / f"square{i}.png")
            rows.append({"file_name": f"square{i}.png", "captions": {code: CAPTIONS[code][i] for code in CAPTIONS}})
        (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return root


def test_a_captioned_folder_is_indexed_with_the_split_and_languages_asked_for(model_dir, tmp_path):
    images = write_captioned_folder(tmp_path / "squares", SPLITS)
    result = run_ccr_in_process("index", model_dir, images, "--split", "train", "--languages", "de,en",
                                "--output", tmp_path / "index", "--no-progress")
    assert result.returncode == 0, result.stderr
    index = GalleryIndex(tmp_path / "index")
    assert index.manifest["source"]["split"] == "train" and index.languages == ["de", "en"]
    assert [item["id"] for item in index.items] == ["square0", "square1"]
    assert [index.caption(i, "de") for i in range(len(index))] == CAPTIONS["de"][:2]
    assert index.caption_embeds.shape[0] == 2 * 2  # two images, two languages


def test_a_captioned_folder_indexes_its_only_split_by_default(tmp_path):
    images = write_captioned_folder(tmp_path / "squares", {None: [0, 1, 2]})  # metadata at the top: train
    source = source_from_argument(str(images))
    assert source.description["split"] == "train" and source.languages == ["en", "de", "fr"]
    assert source.captions[2] == {code: CAPTIONS[code][2] for code in CAPTIONS}


@pytest.mark.parametrize("flag, value", [("--split", "train"), ("--languages", "de")])
def test_split_or_languages_for_a_folder_without_captions_is_a_one_line_error(model_dir, tmp_path, flag, value):
    images = tmp_path / "photos"
    images.mkdir()
    Image.new("RGB", (16, 12), COLOURS[0]).save(images / "photo.png")
    result = run_ccr_in_process("index", model_dir, images, flag, value, "--output", tmp_path / "index")
    assert result.returncode == 2
    assert result.stderr == (
        f"ccr index: error: --split and --languages apply to captioned images, but {images} is a folder of "
        "images without captions (no metadata.jsonl or metadata.csv): leave them out, or add a metadata file "
        "with the captions (see modeling_ccr.data.imagefolder)\n"
    )
    assert not (tmp_path / "index").exists()


def test_rewriting_an_image_file_of_a_benchmark_changes_its_fingerprint(tmp_path):
    images = write_captioned_folder(tmp_path / "squares", {None: [0, 1]})  # its images are files, not bytes
    before = benchmark_source(str(images), split="train").fingerprint
    rewritten = images / "square1.png"
    stamp = rewritten.stat().st_mtime_ns
    Image.new("RGB", (16, 12), COLOURS[2]).save(rewritten)  # same name, other pixels
    os.utime(rewritten, ns=(stamp + 10**9, stamp + 10**9))  # as a rewrite a second later (coarse clocks)
    assert benchmark_source(str(images), split="train").fingerprint != before  # so the index is rebuilt
