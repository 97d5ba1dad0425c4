"""The allocator setting: applied in every ``ccr`` process, observable as freed memory re-used without page
faults, switchable off, left alone where the environment chose, and recorded with training and evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

glibc_only = pytest.mark.skipif(not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"),
                                reason="the tuning is glibc's mallopt")

# Runs `ccr --help` in-process (the entry point every command goes through), then counts the minor page
# faults of a convolution step that re-uses the buffers of the step before (a 51 MB output): glibc's
# defaults map them afresh at each step (about 37,000 faults of 4 kB), a tuned heap hands back the freed
# memory (none).
PROBE = textwrap.dedent("""
    import contextlib, io, json, resource
    import torch
    from modeling_ccr.app.cli import main
    from modeling_ccr.allocator import allocator_state
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["--help"]) == 0
    torch.set_num_threads(1)
    x, w = torch.ones(8, 3, 224, 224), torch.ones(32, 3, 3, 3)
    def step():
        return float(torch.nn.functional.conv2d(x, w, padding=1).relu().sum())
    step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        step()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3
    print(json.dumps({"state": allocator_state(), "faults": faults}))
""")


def probe(**env: str) -> dict:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("MALLOC_") and key not in ("CCR_MALLOC_TUNING", "GLIBC_TUNABLES")}
    finished = subprocess.run([sys.executable, "-c", PROBE], env={**environment, **env}, capture_output=True,
                              text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return json.loads(finished.stdout.splitlines()[-1])


@glibc_only
def test_the_ccr_process_reuses_freed_memory_without_page_faults():
    result = probe()
    assert result["state"]["tuned"] is True and result["state"]["mmap_threshold"] == 2**31 - 1
    assert result["faults"] < 1_000


@glibc_only
def test_switched_off_it_keeps_glibc_defaults_and_their_faults():
    result = probe(CCR_MALLOC_TUNING="0")
    assert result["state"]["tuned"] is False and "CCR_MALLOC_TUNING=0" in result["state"]["reason"]
    assert result["faults"] > 10_000  # each 4 kB page of the step's buffers faulted in again


@glibc_only
def test_a_setting_of_the_environment_is_left_alone():
    result = probe(MALLOC_TRIM_THRESHOLD_="1000000")
    assert result["state"]["tuned"] is False and "MALLOC_TRIM_THRESHOLD_" in result["state"]["reason"]


def test_importing_the_library_changes_nothing():
    finished = subprocess.run([sys.executable, "-c", "import json, modeling_ccr, modeling_ccr.training\n"
                               "from modeling_ccr.allocator import allocator_state\n"
                               "print(json.dumps(allocator_state()))"], capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    state = json.loads(finished.stdout.splitlines()[-1])
    assert state["tuned"] is False and "not requested" in state["reason"]


def test_the_evaluation_report_records_the_setting():
    from modeling_ccr.allocator import allocator_state
    from modeling_ccr.evaluation.report import build_report

    metrics = {"tr": {}, "ir": {}, "mean_recall": 0.0, "mrv": {"tr": None, "ir": None}}
    report = build_report(metrics, model_dir="m", dataset="d", split="test", languages=["en"], num_images=1,
                          k_test=None)
    assert report["allocator"] == allocator_state()
