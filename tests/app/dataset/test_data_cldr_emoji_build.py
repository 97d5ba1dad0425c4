"""The cldr-emoji builder: the join and split rules on small tarballs in the npm packages' layouts, and a
rebuild from the pinned npm packages compared with the shipped files."""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pyarrow
import pyarrow.parquet as pq
import pytest
from data.ccr_data_fixtures import image_bytes  # tests/ is on the path (rootdir)

from modeling_ccr.app.dataset.build import build_cldr_emoji, run
from modeling_ccr.app.dataset.emoji_source import CLDR_PACKAGE, EMOJI_PACKAGE, EmojiRecord, assign_splits
from modeling_ccr.app.dataset.npm_fetch import fetch_tarball
from modeling_ccr.cache import cache_root
from modeling_ccr.data import CLDR_EMOJI_DIR, DEFAULT_LANGUAGES, load_benchmark

LANGS = ("en", "ja")
SIZES = (("test", 3), ("validation", 2))
# unified code points, image file, has_img_google, image present, CLDR names {lang: tts}
EMOJI = [
    ("1F600", "1f600.png", True, True, {"en": "grinning face", "ja": "にっこり笑う"}),
    ("263A-FE0F", "263a-fe0f.png", True, True, {"en": "smiling face", "ja": "笑顔"}),  # CLDR key lacks FE0F
    ("1F46A", "1f46a.png", True, True, {"en": "family", "ja": "家族"}),
    (
        "1F9D1-200D-1F9D1-200D-1F9D2",
        "1f9d1-200d-1f9d1-200d-1f9d2.png",
        True,
        True,
        {"en": "family: adult, adult, child", "ja": "家族: 大人 大人 子供"},
    ),  # same image as 1f46a
    ("1F436", "1f436.png", False, True, {"en": "dog face", "ja": "犬の顔"}),  # no Google image
    ("1F431", "1f431.png", True, False, {"en": "cat face", "ja": "猫の顔"}),  # PNG absent
    ("1F98A", "1f98a.png", True, True, {"en": "fox"}),  # no Japanese name
] + [(f"1F34{k}", f"1f34{k}.png", True, True, {"en": f"fruit {k}", "ja": f"果物 {k}"}) for k in range(5)]
KEPT = {"1f600", "263a-fe0f", "1f46a", "1f9d1-200d-1f9d1-200d-1f9d2"} | {f"1f34{k}" for k in range(5)}


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def write_tarballs(root: Path, languages=LANGS) -> tuple[Path, Path]:
    """npm pack layouts: package/{package.json, LICENSE, emoji.json, img/google/64/*.png} and
    package/{package.json, LICENSE, annotations/<lang>/annotations.json}; languages other than en and ja
    get the English name prefixed by the code."""
    emoji_tgz, cldr_tgz = root / "emoji.tgz", root / "cldr.tgz"
    with tarfile.open(emoji_tgz, "w:gz") as archive:
        _add(
            archive,
            "package/package.json",
            json.dumps({"name": EMOJI_PACKAGE.name, "version": "0.0.1"}).encode(),
        )
        _add(archive, "package/LICENSE", b"The MIT License (MIT)\n")
        entries = [
            {"unified": u, "image": f, "has_img_google": g, "category": "Test"} for u, f, g, _, _ in EMOJI
        ]
        _add(archive, "package/emoji.json", json.dumps(entries).encode())
        for k, (unified, file, _, present, _) in enumerate(EMOJI):
            if present:
                picture = 2 if unified.startswith("1F9D1-200D") else k  # the same picture as 1F46A (k = 2)
                _add(
                    archive,
                    f"package/img/google/64/{file}",
                    image_bytes(picture % 6, "PNG", (8, 8 + picture)),
                )
    with tarfile.open(cldr_tgz, "w:gz") as archive:
        _add(archive, "package/package.json", json.dumps({"version": "0.0.2", "cldrVersion": "99"}).encode())
        _add(archive, "package/LICENSE", b"UNICODE LICENSE V3\n")
        for lang in languages:
            names = {}
            for unified, _, _, _, tts in EMOJI:
                name = tts.get(lang, f"{lang}: {tts['en']}" if lang not in LANGS else None)
                if name:
                    key = "".join(chr(int(c, 16)) for c in unified.split("-")).replace("\ufe0f", "")
                    names[key] = {"default": [name.split()[0]], "tts": [name]}
            document = {"annotations": {"identity": {"language": lang}, "annotations": names}}
            _add(archive, f"package/annotations/{lang}/annotations.json", json.dumps(document).encode())
    return emoji_tgz, cldr_tgz


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_join_split_and_identical_rebuild(tmp_path):
    emoji_tgz, cldr_tgz = write_tarballs(tmp_path)
    first = build_cldr_emoji(tmp_path / "a", emoji_tgz, cldr_tgz, languages=LANGS, split_sizes=SIZES)
    build_cldr_emoji(tmp_path / "b", emoji_tgz, cldr_tgz, languages=LANGS, split_sizes=SIZES)
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b")
    assert sorted(files_of(tmp_path / "a")) == [
        "DATASET_CARD.md",
        "LICENSE-emoji-datasource-MIT.txt",
        "LICENSE-images-Apache-2.0.txt",
        "LICENSE-names-Unicode-3.0.txt",
        "SHA256SUMS.txt",
        "test.parquet",
        "train.parquet",
        "validation.parquet",
    ]
    data = load_benchmark("cldr-emoji", data_dir=tmp_path / "a")
    where = {row["id"]: name for name, split in data.items() for row in split}
    assert set(where) == KEPT
    assert where["1f46a"] == where["1f9d1-200d-1f9d1-200d-1f9d2"]  # one image, one split
    assert first.counts["test"] >= 3 and first.counts["validation"] >= 2 and sum(first.counts.values()) == 9
    rows = {row["id"]: row for split in data.values() for row in split}
    assert rows["263a-fe0f"]["captions"] == {"en": "smiling face", "ja": "笑顔"}
    assert rows["263a-fe0f"]["keywords"] == {"en": ["smiling"], "ja": ["笑顔"]}
    for split in data.values():
        assert split["id"] == sorted(split["id"])


def test_split_assignment_ignores_input_order():
    records = [
        EmojiRecord(f"{k:04x}", image_bytes(k % 6, "PNG", (4, 4 + k)), "x.png", {}, {}, "c")
        for k in range(40)
    ]
    reference = assign_splits(records, SIZES, "train", seed=7)
    shuffled = records[:]
    random.Random(0).shuffle(shuffled)
    assert assign_splits(shuffled, SIZES, "train", seed=7) == reference
    assert [len(reference[n]) for n in ("test", "validation", "train")] == [3, 2, 35]
    assert assign_splits(records, SIZES, "train", seed=8) != reference


def test_cli_run_reports_rows_and_unchanged_rebuilds(tmp_path, capsys):
    emoji_tgz, cldr_tgz = write_tarballs(tmp_path, DEFAULT_LANGUAGES)
    args = argparse.Namespace(
        output=tmp_path / "out", cache_dir=None, emoji_tarball=emoji_tgz, cldr_tarball=cldr_tgz, overwrite=False
    )
    assert run(args) == 0
    first = capsys.readouterr().out
    assert "test.parquet: 9 rows" in first and "unchanged" not in first  # 9 emoji < the 300 test images
    (tmp_path / "out" / "notes.txt").write_text("mine\n")
    (tmp_path / "out" / "test.parquet").write_bytes(b"edited")
    with pytest.raises(ValueError, match=r"already exists and holds a built benchmark.*--overwrite"):
        run(args)
    assert (tmp_path / "out" / "test.parquet").read_bytes() == b"edited"
    args.overwrite = True
    assert run(args) == 0
    assert capsys.readouterr().out.count("(unchanged)") == 2  # test.parquet rebuilt from the edited bytes
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine\n"
    assert load_benchmark("cldr-emoji", split="test", data_dir=tmp_path / "out").num_rows == 9


def test_missing_annotations_stop_the_build_before_writing(tmp_path):
    emoji_tgz, cldr_tgz = write_tarballs(tmp_path)  # en and ja only
    with pytest.raises(ValueError, match=r"lacks annotations for \['de', 'fr'"):
        build_cldr_emoji(tmp_path / "out", emoji_tgz, cldr_tgz)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def pinned_tarballs() -> tuple[Path, Path]:
    cached = all(
        (cache_root() / "npm" / p.tarball_name).is_file() for p in (EMOJI_PACKAGE, CLDR_PACKAGE)
    )
    if not cached:
        if shutil.which("npm") is None:
            pytest.skip(
                "npm is not installed and the pinned tarballs are not cached: cannot rebuild cldr-emoji"
            )
        if subprocess.run(["npm", "ping"], capture_output=True, timeout=120, check=False).returncode != 0:
            pytest.skip(
                "the npm registry is not reachable (npm ping failed): cannot fetch the pinned tarballs"
            )
    return fetch_tarball(EMOJI_PACKAGE), fetch_tarball(CLDR_PACKAGE)


def test_rebuild_from_npm_reproduces_the_shipped_files(tmp_path, pinned_tarballs):
    emoji_tgz, cldr_tgz = pinned_tarballs
    build_cldr_emoji(tmp_path / "a", emoji_tgz, cldr_tgz)
    build_cldr_emoji(tmp_path / "b", emoji_tgz, cldr_tgz)
    rebuilt = files_of(tmp_path / "a")
    assert rebuilt == files_of(tmp_path / "b")
    card = (CLDR_EMOJI_DIR / "DATASET_CARD.md").read_text(encoding="utf-8")
    shipped_with = re.search(r"Parquet writer: pyarrow (\S+),", card).group(1)
    if shipped_with == pyarrow.__version__:
        assert rebuilt == files_of(CLDR_EMOJI_DIR)
    else:  # another pyarrow writes another "created_by" string: compare the contents instead
        for name in ("train.parquet", "validation.parquet", "test.parquet"):
            assert pq.read_table(tmp_path / "a" / name).equals(pq.read_table(CLDR_EMOJI_DIR / name))
