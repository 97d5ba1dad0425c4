"""How a built folder (a converted backbone, a model) is published without ever being half-written."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..cache import cache_root


def publish_folder(output_dir: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Runs `write(staging)` on a fresh sibling folder of `output_dir`, then renames it to `output_dir`.

    The rename is atomic, so `output_dir` either does not exist or is complete. `output_dir` must not
    exist yet or be empty; on any error the staging folder is removed and the error re-raised.
    """
    output = Path(output_dir)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise FileExistsError(
            f"{output} already exists and is not an empty folder; pass a new output folder or delete it."
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the published folder is meant to be shared
        write(staging)
        os.replace(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output


def replace_folder(output_dir: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Like :func:`publish_folder`, but an existing ``output_dir`` is replaced by the new folder.

    The caller checks that the old folder may be replaced. It is set aside (``.<name>.previous``) until the
    new one is in place, restored if writing fails, and removed afterwards.
    """
    output = Path(output_dir)
    if not (output.exists() and any(output.iterdir())):
        return publish_folder(output, write)
    previous = output.with_name(f".{output.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    os.replace(output, previous)
    try:
        publish_folder(output, write)
    except BaseException:
        os.replace(previous, output)
        raise
    shutil.rmtree(previous)
    return output


def ensure_folder(name: str, build: Callable[[Path], object], cache_dir: str | os.PathLike | None) -> Path:
    """Returns `cache_root(cache_dir) / name`, calling `build(folder)` first if it is not there yet.

    `build` must publish the folder atomically (see `publish_folder`). When another process publishes
    the same folder first, its copy is used and this one's work is discarded.
    """
    folder = cache_root(cache_dir) / name
    if _is_published(folder):
        return folder
    try:
        build(folder)
    except OSError:
        if _is_published(folder):
            return folder
        raise
    return folder


def _is_published(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())
