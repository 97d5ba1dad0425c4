"""Helpers for tests of the application: the ``ccr`` command run in the calling process.

:func:`run_ccr_in_process` gives the same ``main``, exit code and printed text as ``python -m
modeling_ccr.app.cli ARGS``, without the seconds a fresh interpreter spends importing torch and
transformers, for tests of what a command does and says. Tests of the process itself (the entry point,
what logging and warnings put on the real stderr, a kill) run the command in a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .cli import main


def run_ccr_in_process(*args: str) -> subprocess.CompletedProcess:
    """Run ``ccr ARGS`` in this process; returns a ``CompletedProcess`` with its exit code and the text it
    wrote to ``sys.stdout`` / ``sys.stderr`` (an argparse exit counts with the code it gives)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exited:
            code = exited.code if isinstance(exited.code, int) else (0 if exited.code is None else 2)
    return subprocess.CompletedProcess(["ccr", *args], code, out.getvalue(), err.getvalue())


def run_script_in_process(script_main: Callable[[], object], script: Path, *args) -> subprocess.CompletedProcess:
    """Run a script's ``main()`` (it parses ``sys.argv``) as ``python SCRIPT ARGS`` would, in this process;
    returns its exit code and printed text. A ``SystemExit`` with a message prints it to stderr and exits 1,
    as the interpreter does; ``sys.argv`` is restored afterwards."""
    out, err = io.StringIO(), io.StringIO()
    saved_argv, sys.argv = sys.argv, [str(script), *map(str, args)]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                script_main()
            except SystemExit as exited:
                code = exited.code if isinstance(exited.code, int) else (0 if exited.code is None else 1)
                if isinstance(exited.code, str):
                    print(exited.code, file=sys.stderr)
    finally:
        sys.argv = saved_argv
    return subprocess.CompletedProcess([str(script), *map(str, args)], code, out.getvalue(), err.getvalue())
