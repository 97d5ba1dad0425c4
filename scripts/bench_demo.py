"""Latency of the demo's endpoints (p50 / p95 over repeated calls through gradio_client), of the search
itself with and without re-ranking its top 16 (in process; re-ranking from the image tokens the index keeps,
as the demo's own gallery does, and from the images encoded again, as an index built without them), and
the gallery index build throughput (images/s), on one machine, serving on 127.0.0.1 only.

    python scripts/bench_demo.py [--model DIR] [--images FOLDER_OR_BENCHMARK] [--repeats 20]

Default model: the embedded default (``ccr build-default``, built into the cache on first use); default
gallery: the embedded benchmark's 300 test images with captions in ten languages, indexed with their image
tokens; the same images as a folder are indexed without them. The timed calls of each group are interleaved
(one call of each in turn, :func:`timed_interleaved`), and the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
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
from modeling_ccr.app.index.gallery import TOKENS_FILE
from modeling_ccr.app.index.search import search_text
from modeling_ccr.app.index.session import load_model
from modeling_ccr.app.index.sources import folder_source, source_from_argument
from modeling_ccr.default_model import ensure_default_model

QUERIES = ["rotes Herz", "猫の顔", "красное яблоко", "笑脸", "pomme verte", "smiling face", "kočka", "bendera"]


def percentiles(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {1000 * statistics.median(ordered):7.1f} ms   p95 {1000 * p95:7.1f} ms   (n={len(ordered)})"


def timed_interleaved(calls: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds of each call of ``calls`` (name -> function of the repeat number), after one warm-up call of
    each: in round i every call runs once, in an order rotated by one each round, so that a load that
    changes during the run weighs on all of them alike."""
    names = list(calls)
    for name in names:
        calls[name](0)
    seconds = {name: [] for name in names}
    for i in range(repeats):
        for name in names[i % len(names):] + names[:i % len(names)]:
            start = time.perf_counter()
            calls[name](i)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def load_average() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


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
    print(f"model {model_dir}; gallery {source.description}; torch threads {torch.get_num_threads()}; "
          f"{load_average()}")
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        build_index(model, processor, source, Path(work) / "index", model_dir=model_dir, batch_size=args.batch_size,
                    keep_image_tokens=True, progress=False)
        seconds = time.perf_counter() - start
        index = GalleryIndex(Path(work) / "index")
        captions = f" and their {len(source) * len(source.languages)} captions" if source.languages else ""
        tokens_mb = (index.folder / TOKENS_FILE).stat().st_size / 1e6
        print(f"index build: {len(source)} images{captions} in {seconds:.1f} s = {len(source) / seconds:.1f} "
              f"images/s (flat, embedding + writing; image tokens kept: {list(index.image_tokens.shape[1:])} per "
              f"image, {tokens_mb:.1f} MB)")
        folder = folder_source(index.folder / "images") if source.languages else source
        start = time.perf_counter()  # the same images as a plain folder: images only, no tokens
        build_index(model, processor, folder, Path(work) / "folder-index", model_dir=model_dir,
                    batch_size=args.batch_size, progress=False)
        seconds = time.perf_counter() - start
        print(f"index build: the same {len(folder)} images as a folder (no captions, no tokens) in {seconds:.1f} s = "
              f"{len(folder) / seconds:.1f} images/s")
        without_tokens = GalleryIndex(Path(work) / "folder-index")
        answers = {}  # (name, query) -> the hits of its last call

        def search(name, gallery, rerank):
            def call(i):
                query = QUERIES[i % len(QUERIES)]
                answers[name, query] = search_text(model, processor, gallery, query, k=16, rerank=rerank,
                                                   mode="replace")
            return name, call

        # the search itself, in this process: what re-ranking the top 16 adds, from stored tokens or images
        stored = "search_text (k 16, rerank 16, stored tokens)"
        encoded = "search_text (k 16, rerank 16, images encoded)"
        searches = dict([search("search_text (k 16, rerank 0)", index, 0), search(stored, index, 16),
                         search(encoded, without_tokens, 16)])
        for name, seconds in timed_interleaved(searches, args.repeats).items():
            print(f"{name:<46} {percentiles(seconds)}")
        queried = [query for query in QUERIES if (stored, query) in answers]
        same = sum([hit.index for hit in answers[stored, query]] == [hit.index for hit in answers[encoded, query]]
                   for query in queried)
        scores = [({hit.index: hit.score for hit in answers[stored, query]}, answers[encoded, query])
                  for query in queried]
        gap = max(abs(from_tokens[hit.index] - hit.score) for from_tokens, hits in scores for hit in hits)
        print(f"stored tokens against images encoded: the same 16 results in the same order for {same} of "
              f"{len(queried)} queries; largest score difference {gap:.2e}; {load_average()}")
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
                "/image_to_text (pick)": lambda i: client.predict(None, picks[i % len(picks)],
                                                                  api_name="/image_to_text"),
                "/image_to_text (upload)": lambda i: client.predict(upload, None, api_name="/image_to_text"),
                "/consistency (5 languages)": lambda i: client.predict(
                    "en: cat face\nde: Katzengesicht\nja: 猫の顔\nru: морда кошки\nzh: 猫脸", api_name="/consistency"),
            }
            for name, seconds in timed_interleaved(calls, args.repeats).items():
                print(f"{name:<46} {percentiles(seconds)}")
        finally:
            demo.close()
    print(load_average())


if __name__ == "__main__":
    main()
