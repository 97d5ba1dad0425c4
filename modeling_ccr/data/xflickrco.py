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

from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

from .assemble import SplitPlan
from .iglue import IglueAnnotations
from .join import CaptionRecord, join_captions
from .schema import resolve_image
from .textio import iter_json_lines, require_field


class XFlickrCO(IglueAnnotations):
    name = "xflickrco"
    iglue_folder = "xFlickrCO"
    example_file = "<lang>/test.jsonl"

    def annotation_files(self) -> Iterator[tuple[tuple[str, str], Path]]:
        for folder in sorted(self.annotations.iterdir()):
            if folder.is_dir():
                for path in sorted(folder.glob("*.jsonl")):
                    yield (path.stem, folder.name), path

    def plan(self, split: str, languages: Sequence[str]) -> SplitPlan:
        expected = {lang: str(self.annotations / lang / f"{split}.jsonl") for lang in languages}
        records = {
            lang: self._read(self.files[(split, lang)]) for lang in languages if (split, lang) in self.files
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
