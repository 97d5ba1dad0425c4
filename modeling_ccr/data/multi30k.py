"""Multi30K task 1 in its published layout (github.com/multi30k/dataset).

Reads::

    <data_dir>/data/task1/image_splits/<split>.txt  one image file name per line: 1000092795.jpg (the
                                                    COCO test set: COCO_val2014_000000398076.jpg#657409)
    <data_dir>/data/task1/raw/<split>.<lang>.gz     one caption per line, line i describes image i
                                                    (plain <split>.<lang> files work too)
    <image_dir>/                                    Flickr30K images (flickr30k-images/); default
                                                    <data_dir>/images

``data_dir`` may also be the ``data/task1`` folder itself. Splits: train, val, test_2016_flickr,
test_2017_flickr, test_2017_mscoco, test_2018_flickr; Czech exists for train, val, test_2016_flickr and
test_2018_flickr only. The paper evaluates test_2016_flickr (1,000 images, en de fr cs). The id is the
image file name without extension.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

from .assemble import SplitPlan
from .join import CaptionRecord, join_captions
from .schema import ImageDirs, as_image_dirs, order_languages, resolve_image
from .textio import open_text


class Multi30K:
    name = "multi30k"

    def __init__(self, data_dir: Path, image_dir: ImageDirs | None = None):
        task1 = data_dir if (data_dir / "raw").is_dir() else data_dir / "data" / "task1"
        self.raw, self.image_splits = task1 / "raw", task1 / "image_splits"
        if not self.raw.is_dir() or not self.image_splits.is_dir():
            raise ValueError(
                f"{data_dir} has no data/task1/raw and data/task1/image_splits folders; pass "
                "data_dir=<clone of github.com/multi30k/dataset> (or its data/task1 folder)."
            )
        self.image_dirs = as_image_dirs(image_dir, data_dir / "images")
        self.caption_files: dict[tuple[str, str], Path] = {}
        for path in sorted(self.raw.iterdir()):
            name = path.name[:-3] if path.name.endswith(".gz") else path.name
            split, _, lang = name.rpartition(".")
            if split and lang and (self.image_splits / f"{split}.txt").is_file():
                self.caption_files.setdefault((split, lang), path)
        self.languages = order_languages({lang for _, lang in self.caption_files})
        self.splits = sorted({split for split, _ in self.caption_files})

    def default_splits(self, languages: Sequence[str]) -> list[str]:
        """The splits with a caption file in every selected language."""
        return [s for s in self.splits if all((s, lang) in self.caption_files for lang in languages)]

    def plan(self, split: str, languages: Sequence[str]) -> SplitPlan:
        list_file = self.image_splits / f"{split}.txt"
        with open_text(list_file) as handle:
            names = [line.strip() for line in handle]
        while names and not names[-1]:
            names.pop()
        members = []
        for number, name in enumerate(names, start=1):
            image = name.split("#", 1)[0]
            if not image:
                raise ValueError(f"{list_file} line {number} is empty; each line must name an image file.")
            members.append((Path(image).stem, image, f"{list_file} line {number}"))
        records = {}
        for lang in languages:
            path = self.caption_files.get((split, lang))
            if path is not None:
                records[lang] = self._read(path, members, list_file)
        expected = {lang: str(self.raw / f"{split}.{lang}.gz") for lang in languages}

        def instances(_shards: list) -> list:
            resolve = partial(resolve_image, image_dirs=self.image_dirs)
            return join_captions(records, languages, expected, resolve, members=members)

        return SplitPlan(instances)

    @staticmethod
    def _read(path: Path, members: list[tuple[str, str, str]], list_file: Path) -> list[CaptionRecord]:
        with open_text(path) as handle:
            lines = handle.read().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) != len(members):
            raise ValueError(
                f"{path} has {len(lines)} captions but {list_file} lists {len(members)} images; line i must "
                "describe image i. Use files of the same Multi30K release."
            )
        return [
            CaptionRecord(image_id, image, text.rstrip("\r"), f"{path} line {number}")
            for number, ((image_id, image, _), text) in enumerate(zip(members, lines, strict=True), start=1)
        ]
