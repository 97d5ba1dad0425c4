"""A hang becomes a failure with stacks: stuck workers, stuck launchers and stuck tests are stopped by their
deadlines, print where they were, and leave nothing running; the suite goes on."""

from __future__ import annotations

import datetime
import os
import socket
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from modeling_ccr.process_group import end_process_group
from modeling_ccr.testing_processes import ProcessesFailed, run_command, run_workers

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def never_joining_worker(rank: int, port: int) -> None:
    """Rank 0 waits in an all-reduce that rank 1 never joins (its group's own timeout is far away)."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=600))
    if rank == 0:
        dist.all_reduce(torch.ones(1))
    else:
        time.sleep(600)


def clean_worker(rank: int, port: int) -> None:
    """A DDP step, then the group ended by the project's helper."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(3, 1))
    model(torch.ones(2, 3)).sum().backward()
    del model
    assert end_process_group(barrier_timeout_s=60) is True
    assert not dist.is_initialized() and end_process_group() is False


def test_a_worker_that_never_joins_a_collective_fails_with_stacks():
    started = time.monotonic()
    with pytest.raises(ProcessesFailed, match=r"rank 0: timed out, rank 1: timed out") as failed:
        run_workers(never_joining_worker, args=(free_port(),), nprocs=2, timeout_s=10)
    assert time.monotonic() - started < 60
    # faulthandler's dump of every thread of each rank, with the call each was stuck in
    rank_0, rank_1 = str(failed.value).split("--- rank 0 ---")[1].split("--- rank 1 ---")
    assert "Fatal Python error: Aborted" in rank_0 and "Fatal Python error: Aborted" in rank_1
    assert "in all_reduce" in rank_0 and "in never_joining_worker" in rank_0
    assert "in all_reduce" not in rank_1 and "in never_joining_worker" in rank_1


def test_workers_that_end_their_group_exit_cleanly():
    run_workers(clean_worker, args=(free_port(),), nprocs=2, timeout_s=120)


def test_a_failing_worker_is_reported_with_its_exit_code():
    with pytest.raises(ProcessesFailed, match=r"rank 0: exit code 1, rank 1: exit code 1"):
        run_workers(clean_worker, args=("not a port",), nprocs=2, timeout_s=60)


def test_a_stuck_launcher_is_killed_with_the_processes_it_started(tmp_path):
    pid_file = tmp_path / "child.pid"
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(600)
    """)
    with pytest.raises(ProcessesFailed, match="did not finish within 5 s"):
        run_command([sys.executable, "-c", script], timeout_s=5)
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(child)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, dead but not yet reaped by init, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_hung_test_fails_with_its_stack_and_the_suite_goes_on(tmp_path):
    """The project's pytest settings (pytest-timeout) applied to a test that sleeps past its limit."""
    (tmp_path / "test_sleepy.py").write_text(textwrap.dedent("""
        import time
        import pytest

        @pytest.mark.timeout(3)
        def test_sleeps_for_ever():
            time.sleep(600)

        def test_after_it():
            assert True
    """))
    env = {**os.environ, "PYTHONPATH": ""}
    finished = run_command([sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "--rootdir",
                            str(tmp_path), "-p", "no:cacheprovider", str(tmp_path / "test_sleepy.py")],
                           timeout_s=120, cwd=tmp_path, env=env)
    output = finished.stdout + finished.stderr
    assert finished.returncode == 1, output
    assert "1 failed, 1 passed" in output
    assert "Timeout" in output and "time.sleep(600)" in output  # the stuck line, from the dumped stack
