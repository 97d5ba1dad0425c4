"""Benchmark: vectorised gold ranks + MRV against the loop reference, on one seeded score matrix.

Default problem: 2,000 images x 8 languages (16,000 texts), both directions (TR and IR), similarity
only. Both implementations start from the same precomputed image x text score matrix, so their ranks
must agree exactly; the script checks that and prints both wall times and their ratio.

    python scripts/bench_ranks.py [--images 2000] [--languages 8] [--dim 256] [--threads N]
        [--device cuda] [--repeats 3] [--profile]

``--device`` runs the vectorised side there (the reference always runs on the CPU).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import describe_machine, peak_memory

from evaluate_mrv import mean_rank_variance
from modeling_ccr.allocator import tune_allocator
from modeling_ccr.evaluation.ranks import retrieval_ranks_from_similarity

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "evaluation"))  # the test oracle
from eval_reference import reference_mrv, reference_ranks  # noqa: E402


def seeded_similarity(num_images: int, num_languages: int, dim: int, seed: int) -> torch.Tensor:
    """Cosine scores ``[N, N*K]`` of random unit embeddings whose captions lie near their image."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(num_images, dim, generator=generator)
    texts = images.repeat_interleave(num_languages, dim=0) + 6.0 * torch.randn(
        num_images * num_languages, dim, generator=generator
    )
    images = torch.nn.functional.normalize(images, dim=1)
    texts = torch.nn.functional.normalize(texts, dim=1)
    return images @ texts.T


def best_of(call, repeats: int):
    """``call()``'s result and its fastest wall time over ``repeats`` runs."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - start)
    return result, min(seconds)


def main() -> None:
    tune_allocator()  # before the first large allocation (modeling_ccr.allocator says why)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--languages", type=int, default=8)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="device of the vectorised ranks (default: cpu)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each side; the fastest counts")
    parser.add_argument("--profile", action="store_true", help="also print the vectorised ranks' profile")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(describe_machine())
    similarity = seeded_similarity(args.images, args.languages, args.dim, args.seed)
    on_device = similarity.to(args.device)
    retrieval_ranks_from_similarity(on_device[:8, : 8 * args.languages], args.languages)  # warm-up

    def vectorised():
        ranks = retrieval_ranks_from_similarity(on_device, args.languages)
        return ranks, {d: mean_rank_variance(getattr(ranks, d).numpy()) for d in ("tr", "ir")}

    def loop():
        reference = reference_ranks(similarity.numpy(), args.languages)
        return reference, {d: reference_mrv(reference[d]) for d in ("tr", "ir")}

    (ranks, vectorised_mrv), vectorised_seconds = best_of(vectorised, args.repeats)
    (reference, loop_mrv), loop_seconds = best_of(loop, args.repeats)

    same = all(np.array_equal(getattr(ranks, d).numpy(), reference[d]) for d in ("tr", "ir"))
    queries = 2 * args.images * args.languages
    print(f"problem: {args.images} images x {args.languages} languages, {queries} queries (TR + IR), "
          f"device {args.device}, torch threads {torch.get_num_threads()}")
    print(f"best of {args.repeats} runs each (the machine may be shared)")
    print(f"vectorised ranks + MRV: {vectorised_seconds:8.3f} s")
    print(f"loop reference:         {loop_seconds:8.3f} s")
    print(f"speed-up (loop / vectorised): {loop_seconds / vectorised_seconds:.1f}x")
    print(f"ranks identical: {same}; MRV TR {vectorised_mrv['tr']:.4f} (loop {loop_mrv['tr']:.4f}), "
          f"IR {vectorised_mrv['ir']:.4f} (loop {loop_mrv['ir']:.4f})")
    print(peak_memory(args.device))
    if args.profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
            retrieval_ranks_from_similarity(on_device, args.languages)
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=10, max_name_column_width=40))
    if not same:
        raise SystemExit("the vectorised ranks differ from the loop reference")


if __name__ == "__main__":
    main()
