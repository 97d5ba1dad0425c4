"""Several processes for tests, which can fail but never hang: spawned workers and launcher commands
(``torchrun``, ``accelerate launch``) run with a deadline, and what does not finish by then is made to print
every thread's Python stack (SIGABRT with ``faulthandler`` on), then killed with all its children, and
reported with each process's exit code and output.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch.multiprocessing as mp

# ``python -m`` launchers of 2+ CPU processes on this machine (gloo over localhost): torchrun with a
# standalone rendezvous, and accelerate's multi-process launcher (torchrun underneath, with accelerate's
# environment; with no GPU, PartialState joins over gloo).
LAUNCHERS = {
    "torchrun": ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "{nprocs}"],
    "accelerate": ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "{nprocs}",
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "--main_process_port", "0"],
}

# After SIGABRT, how long a stuck process has to print its stacks before it is killed outright.
STACK_DUMP_GRACE_S = 5.0


class ProcessesFailed(AssertionError):
    """Workers or a launched command that failed or outlived their deadline (an ``AssertionError``, so
    pytest shows it as a test failure with the message)."""


def _worker_entry(target: Callable[..., Any], rank: int, args: tuple, stack_file: str) -> None:
    """Run ``target(rank, *args)`` in a spawned process; a fatal signal writes every thread's stack to
    ``stack_file``."""
    with open(stack_file, "w", encoding="utf-8") as stacks:
        faulthandler.enable(file=stacks, all_threads=True)
        target(rank, *args)


def run_workers(target: Callable[..., Any], args: tuple = (), nprocs: int = 2, timeout_s: float = 120.0) -> None:
    """Run ``target(rank, *args)`` for ``rank`` in ``range(nprocs)``, each in a spawned process, and wait
    for all of them at most ``timeout_s`` seconds in all.

    ``target`` must be importable by the spawned processes (a module-level function). Raises
    :class:`ProcessesFailed` naming every rank that exited non-zero or was still running at the deadline;
    those still running are first sent SIGABRT, so that each writes every thread's Python stack, which the
    message then shows rank by rank, and are killed. Returns once every process has exited with code 0.
    """
    context = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="ccr-workers-") as folder:
        stack_files = [os.path.join(folder, f"stacks-rank-{rank}.txt") for rank in range(nprocs)]
        processes = [context.Process(target=_worker_entry, args=(target, rank, args, stack_files[rank]),
                                     name=f"worker-{rank}") for rank in range(nprocs)]
        for process in processes:
            process.start()
        deadline = time.monotonic() + timeout_s
        for process in processes:
            process.join(max(deadline - time.monotonic(), 0.0))
        hung = [rank for rank, process in enumerate(processes) if process.is_alive()]
        for rank in hung:
            os.kill(processes[rank].pid, signal.SIGABRT)
        for rank in hung:
            processes[rank].join(STACK_DUMP_GRACE_S)
            if processes[rank].is_alive():
                processes[rank].kill()
                processes[rank].join()
        codes = [process.exitcode for process in processes]
        if not hung and not any(codes):
            return
        states = ", ".join(f"rank {rank}: " + ("timed out" if rank in hung else f"exit code {code}")
                           for rank, code in enumerate(codes))
        stacks = "".join(f"\n--- rank {rank} ---\n{_read(stack_files[rank])}" for rank in hung)
    raise ProcessesFailed(f"{nprocs} workers of {getattr(target, '__name__', target)} did not all finish cleanly "
                          f"within {timeout_s:.0f} s ({states}){'; their stacks:' if hung else ''}{stacks}")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return "(no stack written)\n"


def launcher_command(launcher: str, args: Sequence[str], nprocs: int = 2) -> list[str]:
    """The command that runs ``python args...`` on ``nprocs`` processes with ``launcher`` (a key of
    :data:`LAUNCHERS`), e.g. ``launcher_command("torchrun", ["-m", "modeling_ccr.app.cli", "evaluate", ...])``."""
    return [sys.executable, *(word.format(nprocs=nprocs) for word in LAUNCHERS[launcher]), *args]


def run_command(command: Sequence[str], timeout_s: float, **popen_kwargs: Any) -> subprocess.CompletedProcess:
    """Run ``command`` (a launcher and the processes it starts) in a session of its own, capturing text
    output, and return its ``CompletedProcess`` (any exit code).

    At ``timeout_s`` the whole process group gets SIGABRT (``PYTHONFAULTHANDLER=1`` is set, so each Python
    process prints every thread's stack), then SIGKILL after a grace period, and :class:`ProcessesFailed`
    is raised with the end of the output: no worker is left running behind a launcher that was killed.
    """
    env = {**(popen_kwargs.pop("env", None) or os.environ), "PYTHONFAULTHANDLER": "1"}
    process = subprocess.Popen(list(command), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, **popen_kwargs)
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _signal_group(process.pid, signal.SIGABRT)
        try:
            stdout, stderr = process.communicate(timeout=STACK_DUMP_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
        _signal_group(process.pid, signal.SIGKILL)  # workers the launcher left behind
        raise ProcessesFailed(f"{' '.join(command[:6])} ... did not finish within {timeout_s:.0f} s and was "
                              f"killed with its workers; stderr ends:\n{stderr[-6000:]}") from None
    except BaseException:
        _signal_group(process.pid, signal.SIGKILL)
        raise
    _signal_group(process.pid, signal.SIGKILL)  # nothing of it outlives the command
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


