"""Pre-training corpora in the CCLM / CCRK JSON-lines format (github.com/zengyan-97/CCLM,
github.com/BUAADreamer/CCRK ``dataset/pretrain_dataset_multilingual.py``).

Reads ``data_dir``: one JSON-lines file, or a folder whose files (``*.jsonl``, ``*.json``, ``*.data``,
``*.txt``, optionally gzipped; searched recursively, read in path order) hold one object per line::

    {"binary": base64 image bytes or an image path, "caption": {"en": "...", "de": "...", ...}}

``image_path`` or ``image`` may hold the path (or base64) instead of ``binary``; ``caption`` may be a
list of such dicts (the first is used; the report counts the others). Image paths are looked up under
``image_dir`` (default: the folder of the JSON-lines file) and must stay inside it: absolute paths and
paths with a ``..`` part are refused. The corpus is expected to have the
same languages on every line: those of the first line are the languages offered. The id is the line's
``id`` or ``image_id`` when present, else ``<file path within data_dir>:<line>``. The corpus is one
split, ``train``; load it with ``streaming=True`` to read it lazily (files are the shards a
multi-worker ``DataLoader`` divides).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .assemble import SplitPlan
from .schema import (
    ImageDirs,
    ImageRef,
    Instance,
    as_image_dirs,
    decode_base64,
    order_languages,
    resolve_image,
)
from .textio import iter_json_lines

_SUFFIXES = (".jsonl", ".json", ".data", ".txt")
_IMAGE_FIELDS = ("binary", "image_path", "image")
_BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n\r")


def _is_corpus_file(path: Path) -> bool:
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return path.is_file() and not path.name.startswith(".") and name.endswith(_SUFFIXES)


class CclmCorpus:
    name = "cclm"

    def __init__(self, data_dir: Path, image_dir: ImageDirs | None = None):
        self.root = data_dir if data_dir.is_dir() else data_dir.parent
        if data_dir.is_file():
            self.files = [data_dir]
        elif data_dir.is_dir():
            self.files = sorted(p for p in data_dir.rglob("*") if _is_corpus_file(p))
        else:
            raise ValueError(f"{data_dir} does not exist; pass data_dir=<JSON-lines file or folder of them>.")
        if not self.files:
            raise ValueError(f"{data_dir} holds no *.jsonl, *.json, *.data or *.txt files of a CCLM corpus.")
        self.image_dir = image_dir
        self.languages = order_languages(self._first_captions())
        self.splits = ["train"]

    def _first_captions(self) -> dict[str, Any]:
        for path in self.files:
            for line, row in iter_json_lines(path):
                captions, _ = self._captions(row, path, line)
                return captions
        raise ValueError(f"the corpus files ({self.files[0]} ...) hold no JSON lines.")

    @staticmethod
    def _captions(row: dict[str, Any], path: Path, line: int) -> tuple[dict[str, Any], int]:
        """(the caption dict, number of further caption dicts) of one line."""
        value = row.get("caption")
        further = 0
        if isinstance(value, list) and value:
            value, further = value[0], len(value) - 1
        if not isinstance(value, dict):
            raise ValueError(
                f"{path} line {line}: 'caption' must be a dict language -> caption (or a list of them), "
                f"got {type(value).__name__}; is this a CCLM multilingual corpus?"
            )
        return value, further

    def default_splits(self, languages: Sequence[str]) -> list[str]:
        return ["train"]

    def plan(self, split: str, languages: Sequence[str]) -> SplitPlan:
        return SplitPlan(self._instances, shards=list(self.files))

    def _instances(self, files: list[Path]) -> Iterator[Instance]:
        for path in files:
            image_dirs = as_image_dirs(self.image_dir, path.parent)
            for line, row in iter_json_lines(path):
                captions, further = self._captions(row, path, line)
                origin = f"{path} line {line}"
                image_id = row.get("id", row.get("image_id"))
                yield Instance(
                    id=str(image_id) if image_id is not None else f"{path.relative_to(self.root)}:{line}",
                    image=self._image(row, image_dirs),
                    captions={lang: str(text) for lang, text in captions.items() if text},
                    origin=origin,
                    expected_in={lang: f"the 'caption' dict of {origin}" for lang in self.languages},
                    unused_captions={lang: further for lang in captions} if further else {},
                )

    @staticmethod
    def _image(row: dict[str, Any], image_dirs: list[Path]) -> ImageRef:
        for field in _IMAGE_FIELDS:
            value = row.get(field)
            if not isinstance(value, str) or not value:
                continue
            if len(value) > 64 and set(value[:4096]) <= _BASE64_ALPHABET:  # no path is pure base64 text
                return ImageRef(data=decode_base64(value))
            return resolve_image(value, image_dirs)
        return ImageRef(name=f"(the line has none of the fields {', '.join(_IMAGE_FIELDS)})")
