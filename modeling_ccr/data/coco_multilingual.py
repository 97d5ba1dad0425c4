"""Multilingual MS-COCO from its three published sources, joined by COCO image id.

Reads::

    <data_dir>/dataset_coco.json                    English, Karpathy's split file (caption_datasets.zip):
                                                    {"images": [{"filepath", "filename", "cocoid", "split",
                                                    "sentences": [{"raw": caption, ...}, ...]}, ...]}
    <data_dir>/coco-cn-version1805v1.1/             Chinese, COCO-CN: imageid.human-written-caption.txt with
                                                    lines "COCO_val2014_000000290951#0<TAB>caption", and the
                                                    image lists coco-cn_train.txt, coco-cn_val.txt,
                                                    coco-cn_test.txt (one image name per line)
    <data_dir>/yjcaptions26k_clean.json             Japanese, YJ Captions 26k in the MS-COCO caption format:
                                                    {"annotations": [{"image_id", "caption"}, ...], ...}
    <data_dir>/splits/<name>.txt                    optional further image lists in COCO-CN's format
    <image_dir>/train2014/, <image_dir>/val2014/    the COCO 2014 images; default <data_dir>/images

Any of the three caption sources may be absent; its language is then not offered. Splits: Karpathy's
``train``, ``restval``, ``val`` and ``test`` (5,000 images) come from dataset_coco.json; COCO-CN's lists
give ``coco_cn_train``, ``coco_cn_val`` and ``coco_cn_test`` (1,000 images); each ``splits/<name>.txt``
gives ``<name>`` (characters other than letters, digits and _ become _, as ``datasets`` requires). A
split fixes the images; the captions of every selected language are looked up by COCO id, and the first
caption of each language is kept (COCO has five English and five Japanese captions per image; the
report counts the others). The id is the image name, e.g. ``COCO_val2014_000000391895``.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from functools import cached_property, partial
from pathlib import Path
from typing import Any

from .assemble import SplitPlan
from .join import CaptionRecord, join_captions
from .schema import ImageDirs, as_image_dirs, order_languages, resolve_image
from .textio import open_text

KARPATHY_SPLITS = ("train", "restval", "val", "test")
_COCO_NAME = re.compile(r"COCO_(train|val)2014_(\d+)")

# (COCO id, image name without extension, image path relative to the COCO root, origin)
Member = tuple[int, str, str, str]


def _member(name: str, origin: str) -> Member:
    match = _COCO_NAME.search(name)
    if match is None:
        raise ValueError(
            f"{origin}: {name!r} is not a COCO 2014 image name such as COCO_val2014_000000391895."
        )
    stem = match.group(0)
    return int(match.group(2)), stem, f"{match.group(1)}2014/{stem}.jpg", origin


def _load_json(path: Path) -> Any:
    try:
        with open_text(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); the file is damaged.") from None


class CocoMultilingual:
    name = "coco-multilingual"

    def __init__(self, data_dir: Path, image_dir: ImageDirs | None = None):
        if not data_dir.is_dir():
            raise ValueError(
                f"{data_dir} is not a folder; pass data_dir=<folder with dataset_coco.json, ...>."
            )
        self.image_dirs = as_image_dirs(image_dir, data_dir / "images")
        self.karpathy = data_dir / "dataset_coco.json"
        coco_cn = sorted(p.parent for p in data_dir.glob("coco-cn*/imageid.human-written-caption.txt"))
        self.coco_cn = coco_cn[0] if coco_cn else data_dir / "coco-cn-version1805v1.1"
        self.yj = data_dir / "yjcaptions26k_clean.json"
        self.sources = {
            "en": self.karpathy,
            "zh": self.coco_cn / "imageid.human-written-caption.txt",
            "ja": self.yj,
        }
        self.languages = order_languages(lang for lang, path in self.sources.items() if path.is_file())
        lists = sorted(self.coco_cn.glob("coco-cn_*.txt")) + sorted((data_dir / "splits").glob("*.txt"))
        self.split_lists = {re.sub(r"\W", "_", p.stem): p for p in lists}
        self.splits = (list(KARPATHY_SPLITS) if self.karpathy.is_file() else []) + sorted(self.split_lists)
        if not self.languages:
            raise ValueError(
                f"{data_dir} has none of dataset_coco.json (en), coco-cn-version1805v1.1/ (zh), "
                "yjcaptions26k_clean.json (ja); see the coco-multilingual row of the table under \"Pointing "
                "the loaders at a local copy of each benchmark\" in the README."
            )

    def default_splits(self, languages: Sequence[str]) -> list[str]:
        return list(self.splits)

    @cached_property
    def _karpathy_images(self) -> list[dict[str, Any]]:
        images = _load_json(self.karpathy).get("images")
        if not isinstance(images, list):
            raise ValueError(f"{self.karpathy} has no 'images' list; is it Karpathy's dataset_coco.json?")
        return images

    def _members(self, split: str) -> list[Member]:
        if split in self.split_lists:
            path = self.split_lists[split]
            with open_text(path) as handle:
                return [
                    _member(line.strip(), f"{path} line {n}")
                    for n, line in enumerate(handle, 1)
                    if line.strip()
                ]
        return [
            _member(str(image.get("filename", "")), f"{self.karpathy} image {index}")
            for index, image in enumerate(self._karpathy_images)
            if image.get("split") == split
        ]

    def _english(self) -> dict[int, list[tuple[str, str]]]:
        captions: dict[int, list[tuple[str, str]]] = {}
        for index, image in enumerate(self._karpathy_images):
            origin = f"{self.karpathy} image {index}"
            if "cocoid" not in image:
                raise ValueError(f"{origin} has no 'cocoid'; is this Karpathy's dataset_coco.json?")
            captions[int(image["cocoid"])] = [
                (str(s.get("raw", "")), origin) for s in image.get("sentences", [])
            ]
        return captions

    def _chinese(self) -> dict[int, list[tuple[str, str]]]:
        path = self.sources["zh"]
        captions: dict[int, list[tuple[str, str]]] = defaultdict(list)
        with open_text(path) as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                key, tab, text = line.rstrip("\r\n").partition("\t")
                if not tab:
                    raise ValueError(f"{path} line {number} has no tab between image key and caption.")
                cocoid, _, _, _ = _member(key.split("#", 1)[0], f"{path} line {number}")
                captions[cocoid].append((text, f"{path} line {number}"))
        return captions

    def _japanese(self) -> dict[int, list[tuple[str, str]]]:
        annotations = _load_json(self.yj).get("annotations")
        if not isinstance(annotations, list):
            raise ValueError(f"{self.yj} has no 'annotations' list; is it YJ Captions in the MS-COCO format?")
        captions: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for index, annotation in enumerate(annotations):
            origin = f"{self.yj} annotation {index}"
            if "image_id" not in annotation or "caption" not in annotation:
                raise ValueError(
                    f"{origin} lacks 'image_id' or 'caption'; is it YJ Captions in the COCO format?"
                )
            captions[int(annotation["image_id"])].append((str(annotation["caption"]), origin))
        return captions

    def plan(self, split: str, languages: Sequence[str]) -> SplitPlan:
        readers = {"en": self._english, "zh": self._chinese, "ja": self._japanese}
        members = self._members(split)
        records: dict[str, list[CaptionRecord]] = {}
        for lang in languages:
            by_id = readers[lang]()
            records[lang] = [
                CaptionRecord(stem, relative, text, origin)
                for cocoid, stem, relative, _ in members
                for text, origin in by_id.get(cocoid, ())
            ]
        expected = {lang: str(self.sources[lang]) for lang in languages}
        keyed = [(stem, relative, origin) for _, stem, relative, origin in members]

        def instances(_shards: list) -> list:
            resolve = partial(resolve_image, image_dirs=self.image_dirs)
            return join_captions(records, languages, expected, resolve, members=keyed)

        return SplitPlan(instances)
