"""IGLUE WIT retrieval in its published layout (github.com/e-bug/iglue, folder ``datasets/wit``).

Reads::

    <data_dir>/annotations/<split>_<lang>.jsonl     test_ar.jsonl ... test_vi.jsonl, val_en.jsonl, and
                                                    train_en.jsonl (unzipped from train_en.jsonl.zip)
    <image_dir>/*.csv, *.tsv (optionally .gz)       the image pixel files of the Kaggle "Wikipedia -
                                                    Image/Caption Matching" release: tab-separated rows
                                                    image_url, base64 image bytes, metadata_url;
                                                    default <data_dir>/images

Each annotation line has ``image_url`` and ``caption_reference_description`` (plus ``image_idx``,
``wit_ix``, ``language``, ``page_url``, ...); a line may carry the image itself as base64 in
``image_content`` (annotations prepared that way need no pixel files). The id is the image URL. The test
sets are not parallel: each language has its own images, so load one language at a time (for example
``languages=["ja"]``); an image with several captions keeps the first (the report counts the others).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from .assemble import SplitPlan
from .iglue import IglueAnnotations
from .join import CaptionRecord, join_captions
from .schema import ImageRef, decode_base64
from .textio import iter_json_lines, open_text, require_field

_PIXEL_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")


def _pixel_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    limit = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # base64 images exceed csv's 128 kB field default
    try:
        with open_text(path) as handle:
            yield from enumerate(csv.reader(handle, delimiter="\t"), start=1)
    finally:
        csv.field_size_limit(limit)


class Wit(IglueAnnotations):
    name = "wit"
    iglue_folder = "wit"
    example_file = "test_<lang>.jsonl"

    def annotation_files(self) -> Iterator[tuple[tuple[str, str], Path]]:
        for path in sorted(self.annotations.glob("*_*.jsonl")):
            split, _, lang = path.stem.rpartition("_")
            yield (split, lang), path

    def plan(self, split: str, languages: Sequence[str]) -> SplitPlan:
        records: dict[str, list[CaptionRecord]] = {}
        embedded: dict[str, bytes] = {}
        for lang in languages:
            path = self.files.get((split, lang))
            if path is None:
                continue
            records[lang] = []
            for line, row in iter_json_lines(path):
                url = str(require_field(row, "image_url", path, line))
                text = row.get("caption_reference_description") or ""
                records[lang].append(CaptionRecord(url, url, str(text), f"{path} line {line}"))
                if row.get("image_content") and url not in embedded:
                    embedded[url] = decode_base64(str(row["image_content"]))
        expected = {lang: str(self.annotations / f"{split}_{lang}.jsonl") for lang in languages}
        wanted = {r.image for rs in records.values() for r in rs} - set(embedded)
        pixels = self._read_pixels(wanted) if wanted else {}
        searched = ", ".join(str(d) for d in self.image_dirs)

        def resolve(url: str) -> ImageRef:
            data = embedded.get(url, pixels.get(url))
            if data is None:
                return ImageRef(name=f"{url} (no row in the image pixel files under {searched})")
            return ImageRef(data=data, name=url)

        def instances(_shards: list) -> list:
            return join_captions(records, languages, expected, resolve)

        return SplitPlan(instances)

    def _read_pixels(self, wanted: set[str]) -> dict[str, bytes]:
        """Image bytes of the ``wanted`` URLs from the pixel files (rows of other images are skipped)."""
        pixels: dict[str, bytes] = {}
        for folder in self.image_dirs:
            files = (
                sorted(p for p in folder.glob("*") if p.name.endswith(_PIXEL_SUFFIXES))
                if folder.is_dir()
                else []
            )
            for path in files:
                for number, row in _pixel_rows(path):
                    if not row or row[0] not in wanted or row[0] in pixels:
                        continue
                    if len(row) < 2:
                        raise ValueError(
                            f"{path} line {number} has {len(row)} tab-separated fields; image pixel rows are "
                            "image_url, base64 bytes, metadata_url."
                        )
                    pixels[row[0]] = decode_base64(row[1])
        return pixels
