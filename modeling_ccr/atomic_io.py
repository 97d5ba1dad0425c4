"""Writing files and folders so that nothing is half-written, replaced by surprise or lost.

Every writer of the project (model folders, reports, gallery indexes, data sets, Hub exports) goes through
here:

- :func:`atomic_write`: one file, written under a temporary name beside it and renamed into place.
- :func:`publish_folder`: a new folder, written as a hidden sibling and renamed into place.
- :func:`write_output`: a folder that may already exist. The overwrite rule (:func:`check_output`): an
  existing non-empty output is refused unless ``overwrite``, and even then only when it is of the same
  :class:`OutputKind` (a CCR model folder for a model writer, a gallery index for the index, ...). The new
  output is staged completely beside the old one; files of the old one that the new one does not write and
  that are not artifacts of the kind (a user's ``notes.txt``, an ``eval_results/`` folder) are linked (or
  copied) into it unchanged; then the two folders are swapped, so the path holds the complete old or the
  complete new output. Stale artifacts (old weight shards, an old ``model.safetensors.index.json``) are
  left behind with the old folder and cannot be loaded by mistake.

Folder writes hold the output's lock (:func:`modeling_ccr.output_lock.output_lock`, waiting for another
process that writes the same output, as two first uses of a cache folder do); under it, staging
folders that an interrupted write of the same output left beside it (``.<NAME>.<8 random>.staging``) are
removed first, with one line saying so. Every file written gets the mode a new file gets under the process
umask (``0644`` under the usual ``022``): writers that create private temporary files (``tempfile``,
safetensors) would otherwise publish weights that no other user or service can read.
"""

from __future__ import annotations

import ctypes
import errno
import fnmatch
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .output_lock import output_lock

logger = logging.getLogger(__name__)

STAGING_SUFFIX = ".staging"
_RENAME_EXCHANGE = 2  # renameat2 flag (Linux): swap two paths atomically
_AT_FDCWD = -100


@dataclass(frozen=True)
class OutputKind:
    """What a writer writes: ``name`` for messages ("a CCR model folder"), ``recognizes(folder)`` to tell an
    earlier output of the kind, and ``artifacts``: glob patterns (relative POSIX paths, ``*`` also matches
    ``/``) of every file a writer of the kind may write. Old artifacts never outlive an overwrite; every
    other file of an overwritten folder is kept."""

    name: str
    recognizes: Callable[[Path], bool]
    artifacts: tuple[str, ...]

    def is_artifact(self, relative: str) -> bool:
        return any(fnmatch.fnmatchcase(relative, pattern) for pattern in self.artifacts)


def is_json_object_with(path: Path, keys: set[str]) -> bool:
    """True when ``path`` is a JSON file holding an object with (at least) ``keys``: how an earlier output
    written as JSON (a report, a summary) is recognised."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and keys <= set(data)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it into place (the old file, if any,
    stays complete until then; on any error the temporary file is removed and the error re-raised)."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, _new_file_mode(executable=False))  # mkstemp made it private
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def publish_folder(output_dir: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Runs `write(staging)` on a fresh sibling folder of `output_dir`, then renames it to `output_dir`.

    The rename is atomic, so `output_dir` either does not exist or is complete. `output_dir` must not
    exist yet or be empty (FileExistsError otherwise); on any error the staging folder is removed and the
    error re-raised.
    """
    output = Path(output_dir)
    with output_lock(output, wait=True):
        if holds_anything(output):
            raise FileExistsError(
                f"{output} already exists and is not an empty folder; pass a new output folder or delete it."
            )
        staging = _staging_folder(output)
        try:
            _write_shared(write, staging)
            os.replace(staging, output)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return output


def holds_anything(path: Path) -> bool:
    """True when ``path`` is a file or a non-empty folder (an output there would replace something)."""
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def describe(path: Path, limit: int = 3) -> str:
    """A short listing of what ``path`` holds for messages: ``notes.txt, eval_results/ and 2 more``."""
    if not path.is_dir():
        return "a file"
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    shown = ", ".join(entries[:limit])
    return shown + (f" and {len(entries) - limit} more" if len(entries) > limit else "")


def check_output(output: str | os.PathLike, kind: OutputKind, overwrite: bool, flag: str = "--output") -> bool:
    """The overwrite rule: returns whether ``output`` holds an earlier output that a write will replace.

    Raises ValueError when ``output`` holds anything that is not ``kind`` (even with ``overwrite``), or
    holds one of ``kind`` and ``overwrite`` is false. A missing or empty folder is fine (False). ``flag``:
    the command's option that chooses the output, which the messages name.
    """
    output = Path(output)
    if not holds_anything(output):
        return False
    if not output.is_dir() or not kind.recognizes(output):
        raise ValueError(f"{output} exists and is not {kind.name} (it holds {describe(output)}): nothing was "
                         f"written; choose a new or empty {flag}")
    if not overwrite:
        raise ValueError(f"{output} already exists and holds {kind.name} ({describe(output)}): pass --overwrite "
                         f"to replace {kind.name}'s files and keep your other files, or choose another {flag}")
    return True


def write_output(output_dir: str | os.PathLike, write: Callable[[Path], None], kind: OutputKind,
                 overwrite: bool = False) -> list[str]:
    """Write the folder ``write(staging)`` writes at ``output_dir`` under the overwrite rule (module docstring).

    Returns the files (relative POSIX paths) of the old folder that were kept because they are neither
    written by the new output nor artifacts of ``kind``. On any error (``write`` raising included) the old
    folder is left complete and unchanged and no staging folder remains.
    """
    output = Path(output_dir)
    with output_lock(output, wait=True):
        if not check_output(output, kind, overwrite):
            publish_folder(output, write)
            return []
        staging = _staging_folder(output)
        try:
            _write_shared(write, staging)
            kept = _carry_over(output, staging, kind)
            old = _swap(staging, output)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shutil.rmtree(old)
    return kept


def check_output_files(paths: Sequence[Path], kind: OutputKind, overwrite: bool) -> bool:
    """The overwrite rule for an output made of sibling files (a report's .json, .md and .png files):
    ``kind.recognizes(paths[0])`` tells an earlier output. Returns whether any of ``paths`` exists; raises
    ValueError like :func:`check_output`. Each file is then written with :func:`atomic_write`."""
    present = [path for path in paths if path.exists()]
    if not present:
        return False
    names = ", ".join(str(path) for path in present)
    if not kind.recognizes(paths[0]):
        raise ValueError(f"{names} exist(s) and {paths[0]} is not {kind.name}: nothing was written; choose "
                         "another --output")
    if not overwrite:
        raise ValueError(f"{names} already hold(s) {kind.name}: pass --overwrite to replace these files, or "
                         "choose another --output")
    return True


def _staging_folder(output: Path) -> Path:
    """A new, empty staging folder beside ``output``, after removing those of interrupted writes."""
    output.parent.mkdir(parents=True, exist_ok=True)
    remove_interrupted_staging(output)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=STAGING_SUFFIX, dir=output.parent))
    staging.chmod(_new_file_mode(executable=True))  # mkdtemp makes it private; it becomes the output
    return staging


def remove_interrupted_staging(output: Path) -> list[Path]:
    """Remove the staging folders of ``output`` (named as :func:`_staging_folder` names them: nothing else)
    that a killed write left beside it, logging one line; returns them. Call it holding ``output``'s lock:
    then no live writer owns them."""
    pattern = re.compile(rf"\.{re.escape(output.name)}\.[a-z0-9_]{{8}}{re.escape(STAGING_SUFFIX)}")
    stale = sorted(path for path in output.parent.iterdir()
                   if pattern.fullmatch(path.name) and path.is_dir() and not path.is_symlink())
    if stale:
        size = sum(file.stat().st_size for path in stale for file in path.rglob("*") if file.is_file())
        for path in stale:
            shutil.rmtree(path)
        logger.warning("removed %d staging folder(s) of an interrupted write of %s (%.1f MB): %s", len(stale),
                       output, size / 1e6, ", ".join(path.name for path in stale))
    return stale


def _write_shared(write: Callable[[Path], None], staging: Path) -> None:
    """``write(staging)``, then give every file it wrote the mode of a new file under the umask."""
    write(staging)
    file_mode, executable_mode = _new_file_mode(executable=False), _new_file_mode(executable=True)
    for path in staging.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(executable_mode if path.stat().st_mode & 0o111 else file_mode)


def _new_file_mode(executable: bool) -> int:
    """The mode ``open()`` (``mkdir`` when ``executable``) gives a new file under the process umask."""
    umask = os.umask(0o022)  # the only portable way to read it is to set it; restored at once
    os.umask(umask)
    return (0o777 if executable else 0o666) & ~umask


def _carry_over(old: Path, new: Path, kind: OutputKind) -> list[str]:
    """Link (or copy) into ``new`` every file and empty folder of ``old`` that ``new`` lacks and that is
    not an artifact of ``kind``; returns their relative paths."""
    kept = []
    for path in sorted(old.rglob("*")):
        relative = path.relative_to(old).as_posix()
        target = new / relative
        if kind.is_artifact(relative) or os.path.lexists(target):
            continue
        blocking = _file_above(target, new)
        if blocking is not None:
            raise ValueError(f"cannot keep {path}: the new output writes a file at {blocking}; move it and rerun")
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                target.mkdir(parents=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(path, target)
        kept.append(relative)
    return kept


def _file_above(target: Path, root: Path) -> Path | None:
    """A file of the new output where ``target`` needs a folder (between ``root`` and ``target``), if any."""
    return next((parent for parent in target.parents if root in parent.parents and parent.is_file()), None)


def _link_or_copy(source: Path, target: Path) -> None:
    if source.is_symlink():
        os.symlink(os.readlink(source), target)
        return
    try:
        os.link(source, target)  # the same file, not a copy: nothing of it is rewritten
    except OSError:
        shutil.copy2(source, target)


def _swap(staging: Path, output: Path) -> Path:
    """Put ``staging`` at ``output``; returns where the old folder now is. Uses one atomic exchange where
    the system has it, else two renames (the old folder is restored if the second one fails)."""
    if _exchange(staging, output):
        return staging
    previous = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".previous", dir=output.parent))
    os.replace(output, previous)
    try:
        os.replace(staging, output)
    except BaseException:
        os.replace(previous, output)
        raise
    return previous


def _exchange(first: Path, second: Path) -> bool:
    """Atomically swap two paths with Linux's renameat2(RENAME_EXCHANGE); False where unsupported."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))
