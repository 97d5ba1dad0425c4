"""Claiming an output before any work: it must be writable, and no other run may be writing it.

:func:`check_writable` tries to create a file where the output's files will go, so an unwritable output is
reported in one line before a model loads, not after the work is done. :func:`output_lock` adds one advisory
lock per output (``fcntl.flock`` on ``.<NAME>.lock`` beside it), held for the run: a second ``ccr`` run on
the same output is refused at once, naming the process that holds it. The kernel releases the lock when its
process dies, so the lock of a killed run is simply taken over by the next one. A process re-entering the
lock of an output it already holds (a command, then the writer it calls) goes on.

This module uses the standard library only.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shlex
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class _HeldLocks(threading.local):
    """The locks this thread holds: lock file -> its open file descriptor."""

    def __init__(self):
        self.locks: dict[Path, int] = {}


_held = _HeldLocks()
logger = logging.getLogger(__name__)


class OutputInUse(ValueError):
    """Another process holds the lock of the output (a user error: wait for that run, or stop it)."""


def lock_file(output: str | os.PathLike) -> Path:
    """The lock file of ``output``: ``.<NAME>.lock`` in the folder that holds it (symbolic links resolved,
    so two spellings of one output share one lock)."""
    resolved = Path(output).resolve()
    return resolved.parent / f".{resolved.name}.lock"


def check_writable(output: str | os.PathLike) -> None:
    """Raise ValueError when ``output`` cannot be written: the folder that holds it, or the closest folder
    above it that exists (where its missing parents would be made), must accept a new file.

    The check creates (and at once drops) an unnamed file there, so it sees what a write would meet: no
    permission, a read-only file system, or a file where a folder is needed.
    """
    output = Path(output).absolute()
    folder = output.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"cannot write {output}: {folder} is a file, not a folder; choose another output path")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ValueError(f"cannot write {output}: {folder} does not accept new files ({error.strerror}); choose "
                         "another output path or make that folder writable") from None


@contextmanager
def output_lock(output: str | os.PathLike, wait: bool = False) -> Iterator[Path]:
    """Hold the lock of ``output`` for the ``with`` block (after :func:`check_writable`); yields the lock
    file.

    When another process holds it, raises :class:`OutputInUse` at once, naming that process (pid, command,
    start), or with ``wait`` logs one line and waits for it (a writer that only publishes a folder, such as a
    cache build, then finds the other's output in place). Missing folders above ``output`` are made for the
    lock file; those still empty at the end are removed again, as is the lock file.
    """
    path = lock_file(output)
    if path in _held.locks:  # held by an enclosing block of this thread, which releases it
        yield path
        return
    check_writable(output)
    made = _make_folders(path.parent)
    try:
        descriptor = _acquire(path, output, wait)
    except BaseException:
        _remove_empty(made)
        raise
    _held.locks[path] = descriptor
    try:
        yield path
    finally:
        del _held.locks[path]
        path.unlink(missing_ok=True)  # before the release: a run waiting on this file then retries a new one
        os.close(descriptor)
        _remove_empty(made)


def _acquire(path: Path, output: str | os.PathLike, wait: bool) -> int:
    """Lock ``path`` (created if missing) and write this process into it; returns the open descriptor."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            _lock(descriptor, path, output, wait)
        except BaseException:
            os.close(descriptor)
            raise
        if _same_file(descriptor, path):
            break
        os.close(descriptor)  # the holder removed the file as we opened it: lock the one there now
    record = {"pid": os.getpid(), "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, json.dumps(record).encode("utf-8"), 0)
    return descriptor


def _lock(descriptor: int, path: Path, output: str | os.PathLike, wait: bool) -> None:
    """``flock`` the open lock file ``path``: at once, or raising / waiting (``wait``) when it is held."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if not wait:
            raise OutputInUse(f"{output} is in use by {_holder(path)}: wait for that run to end (or stop it), "
                              "then rerun") from None
        logger.warning("waiting for %s, which is writing %s", _holder(path), output)
        fcntl.flock(descriptor, fcntl.LOCK_EX)


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(descriptor), os.stat(path))
    except FileNotFoundError:
        return False


def _holder(path: Path) -> str:
    """``process 123 (ccr index ..., since ...)`` from the lock file, or ``another process`` before its
    holder has written it."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return f"process {record['pid']} ({record['command']}, since {record['started']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _make_folders(folder: Path) -> list[Path]:
    """Make ``folder`` and its missing parents; returns those made, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        made.mkdir(exist_ok=True)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # the run wrote into it (or another one did): it stays
            return
