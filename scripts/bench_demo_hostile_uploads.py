"""``ccr demo`` under hostile uploads: N requests at once (default 20), each uploading a 1-pixel-high PNG
(8000 x 1, about 100 bytes) whose resize to the model's input would take gigabytes. Prints how many
requests got a message, how long they took, and the demo server's peak RSS (``VmHWM``), which must stay
under 2 GB; exits 1 when a request got no message or the peak reached 2 GB.

    python scripts/bench_demo_hostile_uploads.py [--model DIR] [--requests 20] [--width 8000]

Default model: the embedded default (``ccr build-default``, built into the cache on first use). The demo
runs as ``ccr demo`` in a process of its own, on 127.0.0.1, over a gallery of 24 images of the embedded
benchmark's test split. Linux only (reads ``/proc/PID/status``).
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_common import describe_machine
from gradio_client import Client, handle_file
from PIL import Image

from modeling_ccr.app.index import benchmark_source, build_index
from modeling_ccr.app.index.session import load_model
from modeling_ccr.data import load_benchmark
from modeling_ccr.default_model import ensure_default_model

GALLERY_SIZE = 24
PEAK_LIMIT_GB = 2.0
START_TIMEOUT_S = 300


def build_small_gallery(model_dir: str, folder: Path) -> Path:
    """An index of the first ``GALLERY_SIZE`` images of the embedded benchmark's test split; its folder."""
    subset = load_benchmark("cldr-emoji", split="test").select(range(GALLERY_SIZE))
    subset.to_parquet(str(folder / "data" / "test.parquet"))
    model, processor = load_model(model_dir)
    source = benchmark_source(str(folder / "data"), split="test")
    build_index(model, processor, source, folder / "index", model_dir=model_dir, progress=False)
    return folder / "index"


def start_demo(model_dir: str, index_dir: Path) -> tuple[subprocess.Popen, str]:
    """``ccr demo MODEL --gallery INDEX`` on a free port of 127.0.0.1, once it answers: (process, URL)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "modeling_ccr.app.cli", "demo", model_dir, "--gallery",
                               str(index_dir), "--port", str(port)], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"ccr demo exited with {server.returncode} before it answered")
        try:
            urllib.request.urlopen(url, timeout=1)
            return server, url
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise SystemExit(f"ccr demo did not answer within {START_TIMEOUT_S} s")


def memory_gb(pid: int, field: str) -> float:
    """``field`` (``VmRSS``: now, ``VmHWM``: peak) of /proc/PID/status, in GB (10^9 bytes)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE).group(1)) * 1024 / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a CCR model folder (default: the embedded default)")
    parser.add_argument("--requests", type=int, default=20, help="uploads sent at once (default 20)")
    parser.add_argument("--width", type=int, default=8000, help="width of the 1-pixel-high PNG (default 8000)")
    args = parser.parse_args()
    model_dir = args.model or str(ensure_default_model())
    print(describe_machine())
    with tempfile.TemporaryDirectory() as work:
        index_dir = build_small_gallery(model_dir, Path(work))
        hostile = Path(work) / "line.png"
        Image.new("L", (args.width, 1), 90).save(hostile)
        upload_bytes = hostile.stat().st_size
        server, url = start_demo(model_dir, index_dir)
        try:
            client = Client(url, verbose=False)
            before = memory_gb(server.pid, "VmHWM")
            start = time.perf_counter()
            jobs = [client.submit(handle_file(str(hostile)), None, api_name="/image_to_text")
                    for _ in range(args.requests)]
            messages = [job.result(timeout=600)[-1] for job in jobs]
            seconds = time.perf_counter() - start
            peak = memory_gb(server.pid, "VmHWM")
        finally:
            server.terminate()
            server.wait(timeout=60)
    answered = sum(bool(message) and message.startswith("⚠️") for message in messages)
    print(f"model {model_dir}; gallery {GALLERY_SIZE} images; upload {args.width} x 1 PNG "
          f"({upload_bytes} bytes)")
    print(f"{answered} of {args.requests} concurrent uploads got a message in {seconds:.2f} s; first: {messages[0]}")
    print(f"demo server peak RSS: {peak:.2f} GB (before the uploads {before:.2f} GB); limit {PEAK_LIMIT_GB:.1f} GB")
    return 0 if answered == args.requests and peak < PEAK_LIMIT_GB else 1


if __name__ == "__main__":
    sys.exit(main())
