"""A folder of one's own images in the Hugging Face ``imagefolder`` layout, with parallel captions.

Layout (as ``datasets.load_dataset("imagefolder", data_dir=...)`` reads it)::

    <folder>/metadata.jsonl (or metadata.csv) and the images     one split: train
    <folder>/train/metadata.jsonl and images                       or one subfolder per split
    <folder>/validation/metadata.jsonl and images
    <folder>/test/metadata.jsonl and images

Split folders are named as ``datasets`` recognises them: train (training), validation (valid, dev, val),
test (testing, eval, evaluation); the split takes the canonical name. Each split folder holds its own
metadata file.

Metadata: one row per image, ``file_name`` (the image's path relative to the metadata file's folder, and
inside it: a name that is absolute or has a ``..`` part is refused) and its captions, one per language, either

- as separate columns ``captions.en``, ``captions.de``, ... (the names ``Dataset.flatten()`` gives the
  ``captions`` struct of the common schema; the layout for ``metadata.csv``), or
- as one dict column ``captions``: ``{"file_name": "cat.png", "captions": {"en": "A cat.", "de":
  "Eine Katze."}}`` (JSON lines only).

An optional ``id`` column names the instance (default: ``file_name`` without its extension); further
columns are ignored. Each split offers the languages of any caption column or key of its own metadata
file; a selected language that a loaded split lacks raises ValueError naming the split. An image file in a
split folder that no row names counts as an instance without captions, so it fails (or is dropped with
``on_missing="drop"``) like any instance missing a caption.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from .assemble import SplitPlan, check_split_languages
from .schema import ImageDirs, Instance, as_image_dirs, order_languages, resolve_image
from .textio import iter_json_lines, open_text

METADATA_FILES = ("metadata.jsonl", "metadata.csv")
CAPTION_PREFIX = "captions."
# Folder names per split, as datasets' imagefolder recognises them.
SPLIT_FOLDERS = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "dev", "val"),
    "test": ("test", "testing", "eval", "evaluation"),
}


def _metadata_file(folder: Path) -> Path | None:
    found = [folder / name for name in METADATA_FILES if (folder / name).is_file()]
    if len(found) > 1:
        raise ValueError(f"{folder} holds both metadata.jsonl and metadata.csv; keep one of them.")
    return found[0] if found else None


def _split_folders(folder: Path) -> dict[str, Path]:
    """Canonical split name -> the subfolder holding its metadata file."""
    splits: dict[str, Path] = {}
    for split, names in SPLIT_FOLDERS.items():
        for name in names:
            sub = folder / name
            if sub.is_dir() and _metadata_file(sub) is not None:
                if split in splits:
                    raise ValueError(
                        f"{splits[split]} and {sub} are both the {split} split; keep one folder per split."
                    )
                splits[split] = sub
    return splits


def is_image_folder(folder: Path) -> bool:
    """Whether ``folder`` is in the imagefolder layout: a metadata file at the top or in a split folder."""
    return folder.is_dir() and (_metadata_file(folder) is not None or bool(_split_folders(folder)))


@dataclass
class _Row:
    file_name: str
    id: str
    captions: dict[str, str]
    origin: str


def _captions(row: dict[str, Any], origin: str) -> dict[str, str]:
    """The captions of one metadata row, language -> text (empty cells left out)."""
    columns = {
        key[len(CAPTION_PREFIX) :]: value for key, value in row.items() if key.startswith(CAPTION_PREFIX)
    }
    nested = row.get("captions")
    if nested is not None and columns:
        raise ValueError(
            f"{origin} has both a 'captions' dict and 'captions.<lang>' columns; use one of the two layouts."
        )
    if nested is not None and not isinstance(nested, dict):
        raise ValueError(
            f"{origin}: 'captions' must be a dict language -> caption, got {type(nested).__name__}; in "
            "metadata.csv use one column per language, captions.en, captions.de, ..."
        )
    captions = nested if nested is not None else columns
    for lang, text in captions.items():
        if text is not None and not isinstance(text, str):
            raise ValueError(
                f"{origin}: the {lang!r} caption is {type(text).__name__} {text!r}, not a string."
            )
    return {lang: text for lang, text in captions.items() if text}


def _read_rows(metadata: Path) -> list[_Row]:
    if metadata.suffix == ".csv":
        with open_text(metadata) as handle:
            reader = csv.DictReader(handle)
            records = [(reader.line_num, record) for record in reader]
    else:
        records = list(iter_json_lines(metadata))
    rows: list[_Row] = []
    seen: dict[str, str] = {}
    for line, record in records:
        origin = f"{metadata} line {line}"
        file_name = record.get("file_name")
        if not isinstance(file_name, str) or not file_name.strip():
            raise ValueError(
                f"{origin} has no file_name (it has {sorted(record)}); every row names its image file, "
                "relative to the metadata file's folder."
            )
        file_name = file_name.strip()
        if file_name in seen:
            raise ValueError(
                f"{origin} names {file_name!r} again (first in {seen[file_name]}); one row per image."
            )
        seen[file_name] = origin
        image_id = record.get("id")
        rows.append(
            _Row(
                file_name=file_name,
                id=str(image_id) if image_id not in (None, "") else str(Path(file_name).with_suffix("")),
                captions=_captions(record, origin),
                origin=origin,
            )
        )
    return rows


class ImageFolder:
    """A ``BenchmarkSource`` over a folder in the imagefolder layout (see the module docstring)."""

    def __init__(self, folder: Path, image_dir: ImageDirs | None = None):
        self.name = str(folder)
        top = _metadata_file(folder)
        subfolders = _split_folders(folder)
        if top is not None and subfolders:
            raise ValueError(
                f"{folder} has a metadata file of its own and split folders ({', '.join(subfolders)}); put "
                "every image in a split folder, or drop the split folders for a single train split."
            )
        if top is None and not subfolders:
            raise ValueError(
                f"{folder} holds no metadata.jsonl or metadata.csv (at the top or in train/, validation/, "
                "test/); see modeling_ccr.data.imagefolder for the layout."
            )
        self.folders = {"train": folder} if top is not None else subfolders
        self.image_dir = image_dir
        self.metadata = {split: _metadata_file(sub) for split, sub in self.folders.items()}
        self.rows = {split: _read_rows(path) for split, path in self.metadata.items()}
        # each split's languages come from its own metadata file
        self.split_languages = {
            split: order_languages({lang for r in rows for lang in r.captions}) for split, rows in self.rows.items()
        }
        self.languages = order_languages({lang for langs in self.split_languages.values() for lang in langs})
        self.splits = list(self.folders)

    def default_splits(self, languages: Sequence[str]) -> list[str]:
        return list(self.splits)

    def plan(self, split: str, languages: Sequence[str]) -> SplitPlan:
        check_split_languages(self.name, split, languages, self.split_languages)
        return SplitPlan(lambda _shards: self._instances(split))

    def _instances(self, split: str) -> Iterator[Instance]:
        folder, metadata = self.folders[split], self.metadata[split]
        image_dirs = as_image_dirs(self.image_dir, folder)
        listed = set()
        for row in self.rows[split]:
            listed.add((folder / row.file_name).resolve())
            yield Instance(
                id=row.id,
                image=resolve_image(row.file_name, image_dirs),
                captions=row.captions,
                origin=row.origin,
                expected_in={lang: f"column captions.{lang} of {row.origin}" for lang in self.languages},
            )
        extensions = set(Image.registered_extensions())
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in extensions and path.is_file() and path.resolve() not in listed:
                relative = path.relative_to(folder).as_posix()
                yield Instance(
                    id=str(Path(relative).with_suffix("")),
                    image=resolve_image(relative, [folder]),
                    captions={},
                    origin=f"{path}, named by no row of {metadata}",
                    expected_in={
                        lang: f"{metadata}: add a row with file_name {relative!r}" for lang in self.languages
                    },
                )
