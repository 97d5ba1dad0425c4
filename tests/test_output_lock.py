"""Claiming an output before any work: a second run on an output another process is writing is refused at
once, naming that process; the lock of a killed run is taken over; an output that cannot be written is
reported before any model loads; a folder writer (a cache build) waits for another writer of its folder.
The commands run in this process (``ccr`` main); the other run is a real process holding the lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import modeling_ccr.output_lock
from modeling_ccr.app.testing import run_ccr_in_process
from modeling_ccr.atomic_io import publish_folder
from modeling_ccr.backbones.cache import ensure_folder
from modeling_ccr.output_lock import OutputInUse, lock_file, output_lock
from modeling_ccr.testing import save_tiny_model

# The other run: the lock helper alone, loaded from its file (it needs the standard library only), so the
# process starts in a fraction of a second instead of importing torch.
HOLDER = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("output_lock", sys.argv[1])
helper = importlib.util.module_from_spec(spec)
spec.loader.exec_module(helper)
with helper.output_lock(sys.argv[2]):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture()
def unloadable_model(tmp_path) -> Path:
    """A model folder whose config is fine and whose weights are not: a command that loads the model fails
    with an error about the weights, so a refusal that names the output shows it came first."""
    folder = save_tiny_model(tmp_path / "model")
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    return folder


def every_writer(model: Path, output: Path) -> dict[str, list[str]]:
    """The command line of each command that writes ``output`` (the data it names never loads)."""
    return {
        "index": ["index", str(model), str(model), "--output", str(output), "--no-progress"],
        "export": ["export", str(model), "--output", str(output)],
        "evaluate": ["evaluate", str(model), "--dataset", str(model), "--output", str(output), "--no-progress"],
        "train": ["train", "--model", str(model), "--dataset", str(model), "--max-steps", "1",
                  "--output-dir", str(output), "--disable-tqdm", "True"],
        "main-job": ["main-job", "--output", str(output), "--max-steps", "1", "--no-progress"],
    }


def assert_one_line_error(result: subprocess.CompletedProcess, command: str, *parts: str) -> None:
    assert result.returncode == 2, (command, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ccr {command}: error: "), (command, result.stderr[-2000:])
    for part in parts:
        assert part in lines[0], (command, lines[0])


def test_a_busy_output_is_refused_by_every_writer_and_a_killed_holders_lock_is_taken_over(tmp_path,
                                                                                        unloadable_model):
    output = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, modeling_ccr.output_lock.__file__, str(output)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        for command, argv in every_writer(unloadable_model, output).items():
            result = run_ccr_in_process(*argv)
            assert_one_line_error(result, command, f"{output} is in use by process {holder.pid} (-c ")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    stale = lock_file(output)
    assert json.loads(stale.read_text())["pid"] == holder.pid  # killed: its lock file stays, its lock does not
    with output_lock(output) as taken:
        assert taken == stale and json.loads(stale.read_text())["pid"] == os.getpid()
    assert not stale.exists() and not output.exists()


def test_the_lock_is_re_entered_by_its_holder_and_refused_to_another_thread(tmp_path):
    output = tmp_path / "new" / "index"
    refusals = []

    def other_thread() -> None:
        try:
            with output_lock(output):
                pass
        except OutputInUse as error:
            refusals.append(str(error))

    with output_lock(output):
        with output_lock(output):  # a command, then the writer it calls
            assert lock_file(output).is_file()
        assert lock_file(output).is_file()  # still held by the outer block
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert len(refusals) == 1 and f"in use by process {os.getpid()} (" in refusals[0]
    assert not (tmp_path / "new").exists()  # the folder made for the lock file, empty again, is removed


@pytest.mark.parametrize("command", ["index", "export", "evaluate", "train", "main-job"])
def test_an_unwritable_output_is_reported_before_the_model_loads(tmp_path, unloadable_model, command):
    # A path under a regular file cannot be written by anyone, root included (chmod does not stop root).
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine\n")
    output = blocker / "out"
    result = run_ccr_in_process(*every_writer(unloadable_model, output)[command])
    assert_one_line_error(result, command, f"cannot write {output}", f"{blocker} is a file, not a folder")
    assert blocker.read_text() == "mine\n"


def test_a_folder_writer_waits_for_another_one_and_a_cache_build_then_uses_its_folder(tmp_path, caplog):
    """Two first uses of one cache folder: the second waits for the first's lock instead of being refused,
    then finds the folder published and uses it (its own build writes nothing)."""
    writing, go_on = threading.Event(), threading.Event()

    def first_build(folder: Path) -> None:
        def write(staging: Path) -> None:
            writing.set()
            go_on.wait(10)
            (staging / "weights.bin").write_bytes(b"first")

        publish_folder(folder, write)

    def second_build(folder: Path) -> None:
        publish_folder(folder, lambda staging: (staging / "weights.bin").write_bytes(b"second"))

    first = threading.Thread(target=ensure_folder, args=("model", first_build, tmp_path))
    first.start()
    assert writing.wait(10)
    threading.Timer(0.2, go_on.set).start()
    folder = ensure_folder("model", second_build, tmp_path)
    first.join()
    assert (folder / "weights.bin").read_bytes() == b"first"
    assert any("waiting for process" in record.getMessage() for record in caplog.records)
