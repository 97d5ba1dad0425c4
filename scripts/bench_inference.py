"""Inference speed of a CCR model on this machine: images/s and captions/s, with where the CPU time went.

    python scripts/bench_inference.py [--model DIR] [--images 32] [--captions 320] [--repeats 5]

``get_image_features`` on 224 px images and ``get_text_features`` on multilingual captions, in inference
mode, batch by batch as ``ccr evaluate`` / ``ccr index`` encode. For each it prints the median and best rate
over the timed runs, then the CPU time of all timed runs split into user and kernel time and the minor page
faults per item: a high kernel share with many faults means the allocator hands memory back to the kernel
and pays for fresh pages at each re-use (``modeling_ccr.allocator``). ``CCR_MALLOC_TUNING=0`` in the
environment runs with glibc's defaults for a comparison. Without ``--model``, a model of the embedded
default's shapes with random weights (no weights or data needed).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from bench_common import CpuCounters, allocator_line, default_shaped_model, describe_machine, peak_memory

from modeling_ccr.allocator import tune_allocator

CAPTIONS = ["A dog runs across the green meadow.", "Ein Hund läuft über die grüne Wiese.",
            "一只狗跑过绿色的草地。", "Собака бежит по зелёному лугу.", "Bir köpek yeşil çayırda koşuyor."]


def measure(name: str, items: int, unit: str, call, repeats: int) -> None:
    """One warm-up call, then ``repeats`` timed calls of ``call()`` (which handles ``items`` items)."""
    call()
    seconds, counters = [], CpuCounters(0.0, 0.0, 0)
    for _ in range(repeats):
        before, start = CpuCounters.now(), time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
        counters = counters + (CpuCounters.now() - before)
    print(f"{name}: median {items / statistics.median(seconds):.1f} {unit}s/s, best {items / min(seconds):.1f} "
          f"{unit}s/s over {repeats} runs of {items}")
    print(f"  {counters.describe(items * repeats, unit)}")


def main() -> None:
    tune_allocator()  # before the first large allocation (modeling_ccr.allocator says why)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a CCR model folder (default: random weights of the default's shapes)")
    parser.add_argument("--images", type=int, default=32, help="224 px images per timed run")
    parser.add_argument("--captions", type=int, default=320, help="captions per timed run")
    parser.add_argument("--batch-size", type=int, default=32, help="images or captions per forward")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs after one warm-up")
    args = parser.parse_args()

    if args.model:
        from transformers import AutoModel

        model = AutoModel.from_pretrained(args.model).eval()
    else:
        model = default_shaped_model()
    print(describe_machine())
    print(allocator_line())
    generator = torch.Generator().manual_seed(0)
    pixels = torch.rand(args.images, 3, 224, 224, generator=generator)
    vocab = model.config.text_config.vocab_size
    lengths = [8 + len(CAPTIONS[i % len(CAPTIONS)]) // 4 for i in range(args.captions)]
    input_ids = torch.randint(5, vocab - 1, (args.captions, max(lengths)), generator=generator)
    attention_mask = (torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]).long()

    def encode_images() -> None:
        with torch.inference_mode():
            for batch in pixels.split(args.batch_size):
                model.get_image_features(batch)

    def encode_texts() -> None:
        with torch.inference_mode():
            for ids, mask in zip(input_ids.split(args.batch_size), attention_mask.split(args.batch_size), strict=True):
                model.get_text_features(ids, mask)

    measure(f"get_image_features, 224 px, batch {args.batch_size}", args.images, "image", encode_images, args.repeats)
    measure(f"get_text_features, {min(lengths)}-{max(lengths)} tokens, batch {args.batch_size}", args.captions,
            "caption", encode_texts, args.repeats)
    print(peak_memory("cpu"))


if __name__ == "__main__":
    main()
