"""A ``ccr`` command killed at a chosen point, as ``kill -9`` or the OOM killer would end it: a real process
that sends itself SIGKILL when a given function is first called, so what it leaves behind is what a kill
there leaves, at the same place in every run."""

from __future__ import annotations

import signal
import subprocess
import sys

KILL_WHEN_CALLED = """
import importlib, os, signal, sys
from modeling_ccr.app.cli import main

module, _, path = sys.argv[1].partition(":")
owner = importlib.import_module(module)
*parents, name = path.split(".")
for parent in parents:
    owner = getattr(owner, parent)
setattr(owner, name, lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL))
main(sys.argv[2:])
"""


def run_ccr_killed_at(target: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``ccr ARGS`` in a new Python process killed by SIGKILL when ``target`` (``"module:function"`` or
    ``"module:Class.method"``) is called; asserts that it was killed there, and returns what it printed."""
    killed = subprocess.run([sys.executable, "-c", KILL_WHEN_CALLED, target, *map(str, args)], capture_output=True,
                            text=True, timeout=timeout)
    assert killed.returncode == -signal.SIGKILL, (f"not killed at {target}: exit {killed.returncode}\n"
                                                  f"{killed.stderr[-2000:]}")
    return killed
