"""Latency of the demo's endpoints (p50 / p95 over repeated calls through gradio_client), of the search
itself with and without re-ranking its top 16 (in process), and the gallery index build throughput
(images/s), on one machine, serving on 127.0.0.1 only.

    python scripts/bench_demo.py [--model DIR] [--images FOLDER_OR_BENCHMARK] [--repeats 20]

Default model: the embedded default (``ccr build-default``, built into the cache on first use); default
gallery: the embedded benchmark's 300 test images with captions in ten languages.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from gradio_client import Client, handle_file

from modeling_ccr.allocator import tune_allocator
from modeling_ccr.app.demo import handlers
from modeling_ccr.app.demo.app import build_demo, launch_demo
from modeling_ccr.app.index import GalleryIndex, build_index
from modeling_ccr.app.index.search import search_text
from modeling_ccr.app.index.session import load_model
from modeling_ccr.app.index.sources import folder_source, source_from_argument
from modeling_ccr.default_model import ensure_default_model

QUERIES = ["rotes Herz", "猫の顔", "красное яблоко", "笑脸", "pomme verte", "smiling face", "kočka", "bendera"]


def percentiles(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {1000 * statistics.median(ordered):7.1f} ms   p95 {1000 * p95:7.1f} ms   (n={len(ordered)})"


def timed(call, repeats: int) -> list[float]:
    call(0)  # warm-up
    seconds = []
    for i in range(repeats):
        start = time.perf_counter()
        call(i)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    tune_allocator()  # before the first large allocation (modeling_ccr.allocator says why)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a CCR model folder (default: the embedded default)")
    parser.add_argument("--images", default="cldr-emoji", help="image folder or benchmark (default cldr-emoji test)")
    parser.add_argument("--repeats", type=int, default=20, help="calls per endpoint (default 20)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per encoding step of the build")
    args = parser.parse_args()
    model_dir = args.model or str(ensure_default_model())
    model, processor = load_model(model_dir)
    source = source_from_argument(args.images)
    print(f"model {model_dir}; gallery {source.description}; torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        build_index(model, processor, source, Path(work) / "index", model_dir=model_dir, batch_size=args.batch_size,
                    progress=False)
        seconds = time.perf_counter() - start
        captions = f" and their {len(source) * len(source.languages)} captions" if source.languages else ""
        print(f"index build: {len(source)} images{captions} in {seconds:.1f} s = {len(source) / seconds:.1f} "
              "images/s (flat, embedding + writing)")
        index = GalleryIndex(Path(work) / "index")
        if source.languages:  # the same images as a plain folder: images only
            folder = folder_source(index.folder / "images")
            start = time.perf_counter()
            build_index(model, processor, folder, Path(work) / "folder-index", model_dir=model_dir,
                        batch_size=args.batch_size, progress=False)
            seconds = time.perf_counter() - start
            print(f"index build: the same {len(folder)} images as a folder (no captions) in {seconds:.1f} s = "
                  f"{len(folder) / seconds:.1f} images/s")
        for rerank in (0, 16):  # the search itself, in this process: what re-ranking the top 16 adds
            seconds = timed(lambda i, n=rerank: search_text(model, processor, index, QUERIES[i % len(QUERIES)], k=16,
                                                            rerank=n, mode="replace"), args.repeats)
            print(f"{f'search_text (k 16, rerank {rerank})':<32} {percentiles(seconds)}")
        demo = build_demo(index, model, processor)
        _, url, _ = launch_demo(demo, prevent_thread_lock=True, quiet=True)
        try:
            client = Client(url, verbose=False)
            picks = handlers.pick_choices(index)
            upload = handle_file(str(index.image_path(0)))
            calls = {
                "/text_to_image (k 8)": lambda i: client.predict(QUERIES[i % len(QUERIES)], "en", 8, 0,
                                                                  api_name="/text_to_image"),
                "/text_to_image (k 8, rerank 8)": lambda i: client.predict(QUERIES[i % len(QUERIES)], "en", 8, 8,
                                                                            api_name="/text_to_image"),
                "/text_to_image (k 16, rerank 16)": lambda i: client.predict(QUERIES[i % len(QUERIES)], "en", 16, 16,
                                                                              api_name="/text_to_image"),
                "/image_to_text (pick)": lambda i: client.predict(None, picks[i % len(picks)], api_name="/image_to_text"),
                "/image_to_text (upload)": lambda i: client.predict(upload, None, api_name="/image_to_text"),
                "/consistency (5 languages)": lambda i: client.predict(
                    "en: cat face\nde: Katzengesicht\nja: 猫の顔\nru: морда кошки\nzh: 猫脸", api_name="/consistency"),
            }
            for name, call in calls.items():
                print(f"{name:<32} {percentiles(timed(call, args.repeats))}")
        finally:
            demo.close()


if __name__ == "__main__":
    main()
