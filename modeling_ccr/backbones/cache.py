"""The project's own cache folders (converted backbones, the default model): built once, published atomically."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..cache import cache_root


def ensure_folder(name: str, build: Callable[[Path], object], cache_dir: str | os.PathLike | None) -> Path:
    """Returns `cache_root(cache_dir) / name`, calling `build(folder)` first if it is not there yet.

    `build` must publish the folder atomically (see :func:`modeling_ccr.atomic_io.publish_folder`). When
    another process publishes the same folder first, its copy is used and this one's work is discarded.
    """
    folder = cache_root(cache_dir) / name
    if _is_published(folder):
        return folder
    try:
        build(folder)
    except (OSError, ValueError):  # the folder taken meanwhile: publish_folder / write_output refuse it
        if _is_published(folder):
            return folder
        raise
    return folder


def _is_published(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())
