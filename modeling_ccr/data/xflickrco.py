"""IGLUE xFlickr&CO in its published layout (github.com/e-bug/iglue, folder ``datasets/xFlickrCO``).

Reads::

    <data_dir>/annotations/<lang>/<split>.jsonl     e.g. annotations/de/test.jsonl (the few-shot files
                                                    such as annotations/ja/train_100.jsonl are splits too)
    <image_dir>/                                    Flickr30K images (1007129816.jpg, ...) and COCO val2014
                                                    images (COCO_val2014_000000460251.jpg, ...); default
                                                    <data_dir>/images

Each annotation line is ``{"sentences": [caption, ...], "id": image id (string or number),
"img_path": image file name}``. Instances are joined across languages by ``id``; the first sentence of
each language is the caption. The 2,000-image test set has captions in en de es id ja ru tr zh.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

from .assemble import SplitPlan
from .join import CaptionRecord, join_captions
from .schema import ImageDirs, as_image_dirs, order_languages, resolve_image
from .textio import iter_json_lines, require_field


class XFlickrCO:
    name = "xflickrco"

    def __init__(self, data_dir: Path, image_dir: ImageDirs | None = None):
        self.annotations = data_dir / "annotations"
        if not self.annotations.is_dir():
            raise ValueError(
                f"{data_dir} has no annotations/ folder; pass data_dir=<iglue clone>/datasets/xFlickrCO "
                "(it holds annotations/<lang>/test.jsonl)."
            )
        self.image_dirs = as_image_dirs(image_dir, data_dir / "images")
        self.files = {
            folder.name: {f.stem: f for f in sorted(folder.glob("*.jsonl"))}
            for folder in sorted(self.annotations.iterdir())
            if folder.is_dir() and any(folder.glob("*.jsonl"))
        }
        self.languages = order_languages(self.files)
        self.splits = sorted({stem for files in self.files.values() for stem in files})

    def default_splits(self, languages: Sequence[str]) -> list[str]:
        """The splits with an annotation file in every selected language (the test set for all eight)."""
        return [s for s in self.splits if all(s in self.files[lang] for lang in languages)]

    def plan(self, split: str, languages: Sequence[str]) -> SplitPlan:
        expected = {lang: str(self.annotations / lang / f"{split}.jsonl") for lang in languages}
        records = {
            lang: self._read(self.files[lang][split]) for lang in languages if split in self.files[lang]
        }

        def instances(_shards: list) -> list:
            return join_captions(
                records, languages, expected, partial(resolve_image, image_dirs=self.image_dirs)
            )

        return SplitPlan(instances)

    @staticmethod
    def _read(path: Path) -> list[CaptionRecord]:
        records = []
        for line, row in iter_json_lines(path):
            sentences = require_field(row, "sentences", path, line)
            if isinstance(sentences, str):
                sentences = [sentences]
            image_id = str(require_field(row, "id", path, line))
            image = str(require_field(row, "img_path", path, line))
            origin = f"{path} line {line}"
            records += [CaptionRecord(image_id, image, str(text), origin) for text in sentences] or [
                CaptionRecord(image_id, image, "", origin)
            ]
        return records
