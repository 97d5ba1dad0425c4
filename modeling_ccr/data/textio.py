"""Reading the text files of published benchmarks: plain or gzip-compressed, with errors that name the
file and line."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def open_text(path: Path) -> IO[str]:
    """Opens a UTF-8 text file, decompressing it when its name ends in .gz."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line number, object) for each non-blank line of a JSON-lines file.

    Raises ValueError naming the file and line when a line is not a JSON object.
    """
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{path} line {number} is not valid JSON ({error}); the file is damaged."
                ) from None
            if not isinstance(value, dict):
                raise ValueError(f"{path} line {number} holds a {type(value).__name__}, not a JSON object.")
            yield number, value


def require_field(record: dict[str, Any], name: str, path: Path, line: int) -> Any:
    """``record[name]``, or a ValueError naming the file, line and the fields the record has."""
    if name not in record:
        raise ValueError(
            f"{path} line {line} has no {name!r} field (it has {sorted(record)}); is this the right file?"
        )
    return record[name]
