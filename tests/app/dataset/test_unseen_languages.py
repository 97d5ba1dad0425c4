"""The zero-shot split: the embedded test split's images with CLDR names in languages it does not train on."""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import tarfile
from pathlib import Path

import datasets
import pytest

from modeling_ccr.app.dataset.emoji_source import CLDR_PACKAGE
from modeling_ccr.app.dataset.npm_fetch import fetch_tarball
from modeling_ccr.app.dataset.unseen_languages import UNSEEN_LANGUAGES, unseen_language_split
from modeling_ccr.cache import cache_root
from modeling_ccr.data import load_benchmark


def _characters(emoji_id: str) -> str:
    """The CLDR key of an id such as "0034-fe0f-20e3", written out independently of the builder's helper."""
    return "".join(chr(int(code, 16)) for code in emoji_id.split("-") if code != "fe0f")


def write_cldr_tarball(path: Path, names: dict[str, dict[str, str]]) -> Path:
    """A tarball in cldr-annotations-full's npm layout with ``names[lang][key] = tts``."""
    with tarfile.open(path, "w:gz") as archive:
        members = {"package/package.json": json.dumps({"version": "0.0.1", "cldrVersion": "99"}),
                   "package/LICENSE": "UNICODE LICENSE V3\n"}
        for lang, by_key in names.items():
            annotations = {key: {"default": [tts.split()[0], "kw"], "tts": [tts]} for key, tts in by_key.items()}
            members[f"package/annotations/{lang}/annotations.json"] = json.dumps(
                {"annotations": {"identity": {"language": lang}, "annotations": annotations}})
        for name, text in members.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_captions_come_from_cldr_and_images_from_the_split(tmp_path, caplog):
    test = load_benchmark("cldr-emoji", split="test").cast_column("image", datasets.Image(decode=False))
    ids = test["id"]
    missing = ids[3]  # no Italian name for it: it is left out, by name
    names = {"ko": {_characters(i): f"이름 {n}" for n, i in enumerate(ids)},
             "it": {_characters(i): f"nome {n}" for n, i in enumerate(ids) if i != missing}}
    tarball = write_cldr_tarball(tmp_path / "cldr.tgz", names)
    with caplog.at_level(logging.WARNING):
        split = unseen_language_split("test", ("ko", "it"), cldr_tarball=tarball)
    assert split.left_out == [missing]
    assert missing in caplog.text and "1 of 300" in caplog.text
    dataset = split.dataset
    assert list(dataset.features["captions"]) == ["ko", "it"] == split.languages
    assert dataset["id"] == [i for i in ids if i != missing]
    expected_bytes = {row["id"]: row["image"]["bytes"] for row in test}
    for row in dataset.cast_column("image", datasets.Image(decode=False)):
        n = ids.index(row["id"])
        assert row["captions"] == {"ko": f"이름 {n}", "it": f"nome {n}"}
        assert row["keywords"] == {"ko": ["이름", "kw"], "it": ["nome", "kw"]}
        assert row["image"]["bytes"] == expected_bytes[row["id"]]


@pytest.mark.parametrize(("languages", "message"), [(("ko", "de"), "de: not unseen, the benchmark trains on en, de"),
                                                     (("ko", "ko"), "distinct"), ((), "distinct")])
def test_bad_language_lists_are_refused(tmp_path, languages, message):
    with pytest.raises(ValueError, match=message):
        unseen_language_split("test", languages, cldr_tarball=tmp_path / "never-read.tgz")


def test_the_pinned_cldr_package_names_every_test_image():
    if not (cache_root() / "npm" / CLDR_PACKAGE.tarball_name).is_file():
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed and the pinned CLDR tarball is not cached")
        if subprocess.run(["npm", "ping"], capture_output=True, timeout=120, check=False).returncode != 0:
            pytest.skip("the npm registry is not reachable (npm ping failed)")
    split = unseen_language_split("test")
    assert split.languages == list(UNSEEN_LANGUAGES) and split.left_out == [] and len(split.dataset) == 300
    with tarfile.open(fetch_tarball(CLDR_PACKAGE)) as archive:  # read the package directly, a second way
        korean = json.load(archive.extractfile("package/annotations/ko/annotations.json"))["annotations"]["annotations"]
    for row in split.dataset.select(range(0, 300, 37)):
        assert row["captions"]["ko"] == korean[_characters(row["id"])]["tts"][0]
    assert split.dataset[0]["id"] == "0034-fe0f-20e3" and split.dataset[0]["captions"]["ko"] == "키 캡: 4"
