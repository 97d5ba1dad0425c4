"""scripts/bench_speed.py in its tiny mode, as a user runs it: every section completes and checks itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_speed_smoke_runs_every_section():
    result = subprocess.run(
        [sys.executable, "scripts/bench_speed.py", "--smoke", "--profile"], cwd=ROOT, capture_output=True, text=True,
        timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for section in ("embed", "loss", "rerank", "faiss"):
        assert f"## {section}" in out and re.search(rf"^{section}: peak RSS \d+\.\d\d GiB", out, re.M)
    assert out.count("date ") == 4 and "torch 2." in out  # each section states the machine and versions
    rerank_rows = re.findall(r"^\| (\d+) \|.*\| (True|False) \|$", out, re.M)
    assert [k for k, _ in rerank_rows] == ["8", "16", "128"]
    assert all(same == "True" for _, same in rerank_rows)  # the batched ranks equal the reference's
    assert "profile of the batched re-ranker" in out and "Self CPU" in out
    exact = re.search(r"^\| 2000 \| faiss flat \(exact\) \|[^|]*\|[^|]*\| ([\d.]+) \|", out, re.M)
    assert exact and exact.group(1) == "1.000"  # the exact index finds the brute-force top 10
