"""Measures the backbones on this machine: conversion time, e5 captions/s, EfficientNet-Lite0 images/s.

Run: `python scripts/bench_backbones.py [--captions 512] [--images 64] [--batch-size 32]`.
Converts both backbones afresh into a temporary folder (the cache is not touched) and prints the figures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from modeling_ccr.allocator import tune_allocator
from modeling_ccr.backbones.e5 import build_e5_small, e5_sentence_embeddings
from modeling_ccr.backbones.efficientnet_lite import build_efficientnet_lite0

CAPTIONS = [
    "A dog runs across the green meadow.",
    "Ein Hund läuft über die grüne Wiese.",
    "Un chien court à travers la prairie verte.",
    "Pes běží přes zelenou louku.",
    "一只狗跑过绿色的草地。",
    "犬が緑の草原を走っています。",
    "Seekor anjing berlari melintasi padang rumput hijau.",
    "Un perro corre por el prado verde.",
    "Собака бежит по зелёному лугу.",
    "Bir köpek yeşil çayırda koşuyor.",
]


def timed(function, *args, **kwargs) -> tuple[object, float]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def rates(items: int, function, repeats: int) -> str:
    """Items per second of `function()` over `repeats` runs: the median, and the best run (the least
    disturbed by other load on a shared machine)."""
    seconds = [timed(function)[1] for _ in range(repeats)]
    return f"median {items / statistics.median(seconds):.1f}, best {items / min(seconds):.1f}"


def main(argv: list[str] | None = None) -> int:
    tune_allocator()  # before the first large allocation (modeling_ccr.allocator says why)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=int, default=256, help="captions per timed run (default 256)")
    parser.add_argument("--images", type=int, default=32, help="224 px images per timed run (default 32)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size for both towers (default 32)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (default 5)")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeats} timed runs each")

    with tempfile.TemporaryDirectory() as scratch:
        e5_dir, seconds = timed(build_e5_small, Path(scratch) / "e5")
        print(f"e5 conversion: {seconds:.1f} s")
        vision_dir, seconds = timed(build_efficientnet_lite0, Path(scratch) / "efficientnet")
        print(f"EfficientNet-Lite0 conversion: {seconds:.1f} s")

        tokenizer = AutoTokenizer.from_pretrained(e5_dir)
        text_model = AutoModel.from_pretrained(e5_dir, add_pooling_layer=False).eval()
        texts = [CAPTIONS[i % len(CAPTIONS)] + f" ({i})" for i in range(args.captions)]
        rate = rates(len(texts), lambda: tokenizer(texts), args.repeats)
        print(f"e5 tokenizer: {rate} captions/s")
        rate = rates(
            len(texts),
            lambda: e5_sentence_embeddings(text_model, tokenizer, texts, batch_size=args.batch_size),
            args.repeats,
        )
        print(f"e5 (tokenise + encode + mean-pool), batch {args.batch_size}: {rate} captions/s")

        vision_model = AutoModel.from_pretrained(vision_dir).eval()
        pixels = torch.randn(args.images, 3, 224, 224)

        def encode_images() -> None:
            with torch.no_grad():
                for batch in pixels.split(args.batch_size):
                    vision_model(batch)

        rate = rates(args.images, encode_images, args.repeats)
        print(f"EfficientNet-Lite0 at 224 px, batch {args.batch_size}: {rate} images/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
