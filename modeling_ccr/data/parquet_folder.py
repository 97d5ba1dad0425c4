"""A folder of parquet files already in the common schema (the embedded ``cldr-emoji`` benchmark is one).

Reads ``<folder>/<split>.parquet`` or ``<folder>/[data/]<split>-00000-of-00001.parquet`` (the Hugging Face
Hub layout); a split may span several files. Columns: ``id``, ``image`` (struct of ``bytes`` and ``path``,
as ``datasets.Image`` writes it), ``captions`` (struct of one string per language), optionally
``keywords`` (struct of one string list per language) and any further columns, which are kept. Image
paths without bytes are looked up under ``image_dir`` (default: the folder), inside which they must stay:
absolute paths and paths with a ``..`` part are refused (store the image bytes instead). Each split's
languages are the fields of the ``captions`` struct of its own files; a selected language that a loaded
split lacks raises ValueError naming the split.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from .assemble import SplitPlan, check_split_languages
from .schema import (
    COMMON_COLUMNS,
    ImageDirs,
    ImageRef,
    Instance,
    as_image_dirs,
    resolve_image,
)

_SPLIT_FILE = re.compile(r"^(?P<split>[A-Za-z0-9_.]+?)(-\d{5}-of-\d{5})?\.parquet$")
_BATCH_ROWS = 256
_SPLIT_ORDER = {"train": 0, "validation": 1, "val": 2, "test": 3}


def _struct_fields(schema: pa.Schema, column: str, path: Path) -> list[str]:
    if column not in schema.names:
        raise ValueError(
            f"{path} has no {column!r} column (it has {schema.names}); a common-schema file needs id, image "
            "and captions (see modeling_ccr.data.schema)."
        )
    kind = schema.field(column).type
    if not pa.types.is_struct(kind):
        raise ValueError(f"{path}: column {column!r} is {kind}, not a struct of one field per language.")
    return [kind.field(i).name for i in range(kind.num_fields)]


class ParquetFolder:
    def __init__(self, folder: Path, image_dir: ImageDirs | None = None, name: str | None = None):
        self.name = name or str(folder)
        files = sorted(folder.glob("*.parquet")) + sorted(folder.glob("data/*.parquet"))
        self.files: dict[str, list[Path]] = {}
        for path in files:
            match = _SPLIT_FILE.match(path.name)
            if match is None:
                raise ValueError(f"{path}: name it <split>.parquet or <split>-00000-of-00001.parquet.")
            self.files.setdefault(match["split"], []).append(path)
        if not self.files:
            raise ValueError(
                f"{folder} holds no parquet files; expected <split>.parquet files in the common schema."
            )
        self.image_dirs = as_image_dirs(image_dir, folder)
        self.splits = sorted(
            self.files, key=lambda split: (_SPLIT_ORDER.get(split, len(_SPLIT_ORDER)), split)
        )
        first = self.files[self.splits[0]][0]
        schema = pq.read_schema(first)
        self.columns = schema.names
        for column in ("id", "image"):
            if column not in schema.names:
                raise ValueError(f"{first} has no {column!r} column (it has {schema.names}).")
        # each split's languages come from its own files (in the files' order)
        self.split_languages = {split: self._languages_of(self.files[split]) for split in self.splits}
        self.languages = list(dict.fromkeys(lang for split in self.splits for lang in self.split_languages[split]))
        self.with_keywords = "keywords" in schema.names
        features = datasets.Features.from_arrow_schema(schema)
        self.extra_features = datasets.Features(
            {k: v for k, v in features.items() if k not in COMMON_COLUMNS}
        )

    def _languages_of(self, files: list[Path]) -> list[str]:
        """The caption languages of one split's files, which must all have the columns and languages of
        the first file."""
        languages: list[str] = []
        for path in files:
            schema = pq.read_schema(path)
            if schema.names != self.columns:
                raise ValueError(
                    f"{path} has columns {schema.names}, unlike {self.columns} of the other files; write "
                    "every split with the same columns."
                )
            found = _struct_fields(schema, "captions", path)
            if languages and found != languages:
                raise ValueError(
                    f"{path} has captions in {found}, unlike {files[0]} ({languages}) of the same split; "
                    "write every file of a split with the same languages."
                )
            languages = found
        return languages

    def default_splits(self, languages: Sequence[str]) -> list[str]:
        return list(self.splits)

    def plan(self, split: str, languages: Sequence[str]) -> SplitPlan:
        check_split_languages(self.name, split, languages, self.split_languages)
        return SplitPlan(
            self._instances,
            shards=list(self.files[split]),
            extra_features=self.extra_features,
            with_keywords=self.with_keywords,
        )

    def _instances(self, files: list[Path]) -> Iterator[Instance]:
        for path in files:
            parquet = pq.ParquetFile(path)
            row_number = 0
            for batch in parquet.iter_batches(batch_size=_BATCH_ROWS):
                for row in batch.to_pylist():
                    origin = f"{path} row {row_number}"
                    row_number += 1
                    yield Instance(
                        id=str(row["id"]),
                        image=self._image(row["image"]),
                        captions={k: v for k, v in (row.get("captions") or {}).items() if v},
                        origin=origin,
                        expected_in={lang: f"the captions column of {origin}" for lang in self.languages},
                        keywords=row.get("keywords"),
                        extra={k: row[k] for k in self.extra_features},
                    )

    def _image(self, value: dict | str | None) -> ImageRef:
        if isinstance(value, str):  # a plain path column
            return resolve_image(value, self.image_dirs)
        value = value or {}
        if value.get("bytes") is not None:
            return ImageRef(data=value["bytes"], name=value.get("path"))
        if value.get("path"):
            return resolve_image(value["path"], self.image_dirs)
        return ImageRef(name="(the row's image has neither bytes nor a path)")
