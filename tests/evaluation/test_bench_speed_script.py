"""scripts/bench_speed.py in its tiny mode: every section completes and checks itself. Each section runs as the
script runs it in a process of its own (``--sections NAME``), here in the test's process (the script's
``main``), without a fresh interpreter's imports per section."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from modeling_ccr.app.testing import run_script_in_process

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("embed", "loss", "rerank", "faiss")


def test_bench_speed_smoke_runs_every_section(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    script = importlib.import_module("bench_speed")
    outputs = {}
    for section in SECTIONS:
        finished = run_script_in_process(script.main, ROOT / "scripts" / "bench_speed.py", "--smoke", "--profile",
                                         "--sections", section)
        assert finished.returncode == 0, finished.stderr[-3000:]
        outputs[section] = finished.stdout
    for section, output in outputs.items():  # each section states the machine, the versions and its peak memory
        assert re.search(rf"^{section}: peak RSS \d+\.\d\d GiB", output, re.M), output
        assert output.count("date ") == 1 and "torch 2." in output
    out = "".join(outputs.values())
    rerank_rows = re.findall(r"^\| (\d+) \|.*\| (True|False) \|$", out, re.M)
    assert [k for k, _ in rerank_rows] == ["8", "16", "128"]
    assert all(same == "True" for _, same in rerank_rows)  # the batched ranks equal the reference's
    assert "profile of the batched re-ranker" in out and "Self CPU" in out
    exact = re.search(r"^\| 2000 \| faiss flat \(exact\) \|[^|]*\|[^|]*\| ([\d.]+) \|", out, re.M)
    assert exact and exact.group(1) == "1.000"  # the exact index finds the brute-force top 10
