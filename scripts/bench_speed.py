"""Speed benchmarks, each a ratio measured in one run on the same inputs, with the peak memory of each stage.

Sections (each runs in its own process, so its peak memory is its own):
- ``embed``: embedding throughput of CCRModel (``get_image_features`` / ``get_text_features``) against the bare
  backbones' forward (``vision_model`` / ``text_model``): the wrapper's overhead.
- ``loss``: the 1-to-K loss step (forward + backward) against standard InfoNCE (the cross-modal baseline: one
  caption per image) on the same embeddings.
- ``rerank``: ITM re-ranking (query, candidate) pairs per second against k_test, the batched pair scorer
  (``ModelPairScorer``) against today's pair-by-pair one (``ReferencePairScorer``), with a check that their
  ranks are identical. The first stage uses seeded embeddings whose captions lie near their image, so most
  queries keep their gold item in the top k_test and are re-ranked.
- ``faiss``: FAISS exact (flat), IVF and HNSW indexes against a brute-force matmul on synthetic normalised
  vectors: build time, latency per query, recall@10 of the approximate ones, index memory.

Model and data: the embedded default model (``ccr build-default``, cached after the first build) on the
embedded benchmark's test split; ``--random-weights``: a model of the default's shapes with random weights,
random pixels and random captions (no weights, no data: the GPU variant, ``--device cuda``); ``--smoke``: a
tiny random model and tiny sizes (seconds on a CPU; the test suite runs it).

    python scripts/bench_speed.py [--sections embed loss rerank faiss] [--random-weights] [--device cuda]
        [--k-test 8 16 128] [--faiss-sizes 100000 1000000] [--threads N] [--profile] [--smoke]

Ranks + MRV against the loop reference: ``scripts/bench_ranks.py``.
"""

from __future__ import annotations

import argparse
import math
import random
import string
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import torch
from bench_common import default_shaped_model, describe_machine, peak_memory

from modeling_ccr import CCRModel
from modeling_ccr.allocator import tune_allocator
from modeling_ccr.captions import image_major_captions
from modeling_ccr.data.load import load_benchmark
from modeling_ccr.default_model import ensure_default_model
from modeling_ccr.evaluation.encode import encode_benchmark
from modeling_ccr.evaluation.itm import ModelPairScorer
from modeling_ccr.evaluation.ranks import retrieval_ranks
from modeling_ccr.evaluation.rerank import TwoStageReranker
from modeling_ccr.losses import cross_modal_contrastive_loss, one_to_k_contrastive_loss
from modeling_ccr.processing_ccr import CCRProcessor
from modeling_ccr.testing import tiny_ccr_model, tiny_ccr_processor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "evaluation"))  # the test oracle
from eval_reference import ReferencePairScorer  # noqa: E402

SECTIONS = ("embed", "loss", "rerank", "faiss")


def best_seconds(call, repeats: int, device: str) -> float:
    """The fastest of ``repeats`` timed calls after one warm-up (the machine may be shared)."""
    call()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def random_captions(count: int, seed: int, words: tuple[int, int] = (3, 8)) -> list[str]:
    """``count`` captions of random lowercase words (between ``words`` words each)."""
    generator = random.Random(seed)
    return [
        " ".join("".join(generator.choices(string.ascii_lowercase, k=generator.randint(2, 7)))
                 for _ in range(generator.randint(*words)))
        for _ in range(count)
    ]


def load_setup(args):
    """(model, processor, dataset or None) for the chosen mode, the model on ``args.device``."""
    if args.smoke:
        return tiny_ccr_model(seed=0).eval().to(args.device), tiny_ccr_processor(), None
    if args.random_weights:
        return default_shaped_model().to(args.device), tiny_ccr_processor(max_length=40), None
    folder = ensure_default_model()
    model = CCRModel.from_pretrained(folder).eval().to(args.device)
    return model, CCRProcessor.from_pretrained(folder), load_benchmark("cldr-emoji", split="test")


def image_size(model) -> int:
    """The image tower's input size (224 where its config names none, as EfficientNet-Lite0's)."""
    size = getattr(model.config.vision_config, "image_size", None) or 224
    return size if isinstance(size, int) else size[0]


@torch.inference_mode()
def section_embed(args) -> None:
    model, processor, _ = load_setup(args)
    batch = 4 if args.smoke else 32
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(batch, 3, image_size(model), image_size(model), generator=generator).to(args.device)
    text = processor(text=random_captions(batch * 10, seed=0), return_tensors="pt").to(args.device)
    ids, mask = text["input_ids"], text["attention_mask"]
    repeats = 2 if args.smoke else 5
    rows = [
        ("images", batch, lambda: model.vision_model(pixel_values=pixels), lambda: model.get_image_features(pixels)),
        ("texts", ids.shape[0], lambda: model.text_model(input_ids=ids, attention_mask=mask),
         lambda: model.get_text_features(ids, mask)),
    ]
    print(f"batch: {batch} images ({image_size(model)} px), {ids.shape[0]} captions of {ids.shape[1]} tokens")
    print("| input | bare backbone /s | CCRModel /s | CCRModel time / backbone time |")
    print("|---|---:|---:|---:|")
    for name, count, bare, wrapped in rows:
        bare_s, wrapped_s = best_seconds(bare, repeats, args.device), best_seconds(wrapped, repeats, args.device)
        print(f"| {name} | {count / bare_s:.1f} | {count / wrapped_s:.1f} | {wrapped_s / bare_s:.3f} |")


def section_loss(args) -> None:
    images, languages, dim = (8, 3, 16) if args.smoke else (128, 10, 256)
    generator = torch.Generator().manual_seed(0)
    image_embeds = torch.nn.functional.normalize(torch.randn(images, dim, generator=generator), dim=1)
    text_embeds = torch.nn.functional.normalize(torch.randn(images * languages, dim, generator=generator), dim=1)
    image_embeds = image_embeds.to(args.device).requires_grad_()
    text_embeds = text_embeds.to(args.device).requires_grad_()
    english = torch.zeros(images, dtype=torch.long, device=args.device)

    def step(loss_fn):
        def run():
            image_embeds.grad = text_embeds.grad = None
            loss_fn().backward()
        return run

    losses = {
        "1-to-K (released weighting)": lambda: one_to_k_contrastive_loss(image_embeds, text_embeds, 0.07),
        "InfoNCE (one caption per image)": lambda: cross_modal_contrastive_loss(
            image_embeds, text_embeds, 0.07, languages=english),
    }
    repeats = 3 if args.smoke else 50
    print(f"batch: {images} images x {languages} captions, {dim}-d embeddings; forward + backward")
    print("| loss | step ms | time / InfoNCE time |")
    print("|---|---:|---:|")
    seconds = {name: best_seconds(step(fn), repeats, args.device) for name, fn in losses.items()}
    infonce = seconds["InfoNCE (one caption per image)"]
    for name, value in seconds.items():
        print(f"| {name} | {1000 * value:.3f} | {value / infonce:.2f} |")


def near_gold_embeddings(num_images: int, num_languages: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit image embeddings ``[N, 64]`` and caption embeddings ``[N*K, 64]`` (image-major) near their image."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(num_images, 64, generator=generator)
    texts = images.repeat_interleave(num_languages, dim=0) + 0.8 * torch.randn(
        num_images * num_languages, 64, generator=generator
    )
    return torch.nn.functional.normalize(images, dim=1), torch.nn.functional.normalize(texts, dim=1)


@torch.inference_mode()
def rerank_inputs(args, model, processor, dataset) -> tuple[torch.Tensor, list[str], int]:
    """Image tokens ``[N, P, Cv]``, the N*K captions (image-major) and K."""
    if dataset is not None:
        languages = list(dataset.features["captions"])
        encoded = encode_benchmark(model, processor, dataset, languages, keep_image_tokens=True)
        return encoded.image_tokens, image_major_captions(dataset["captions"], languages), len(languages)
    num_images, num_languages = (6, 2) if args.smoke else (300, 10)
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(num_images, 3, image_size(model), image_size(model), generator=generator)
    tokens = torch.cat([model.get_image_tokens(pixels[i : i + 32].to(args.device))
                        for i in range(0, num_images, 32)])
    return tokens, random_captions(num_images * num_languages, seed=1), num_languages


@torch.inference_mode()
def section_rerank(args) -> None:
    model, processor, dataset = load_setup(args)
    image_tokens, texts, num_languages = rerank_inputs(args, model, processor, dataset)
    num_images = image_tokens.shape[0]
    images, captions = near_gold_embeddings(num_images, num_languages, seed=0)
    images, captions = images.to(args.device), captions.to(args.device)
    start = time.perf_counter()
    batched = ModelPairScorer(model, processor, image_tokens, texts)
    setup_s = time.perf_counter() - start
    reference = ReferencePairScorer(model, processor, image_tokens, texts)
    subset = range(min(args.reference_images, num_images))
    print(f"{num_images} images x {num_languages} languages; batched scorer set-up (text states, image keys and "
          f"values) {setup_s:.1f} s; the reference re-ranks the queries of the first {len(subset)} images")
    print("| k_test | pairs (batched) | batched pairs/s | pairs (reference) | reference pairs/s | speed-up "
          "| ranks identical |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for k_test in args.k_test:
        rates, ranks = [], []
        for scorer, queries in ((batched, range(num_images)), (reference, subset)):
            reranker = TwoStageReranker(scorer, k_test)
            start = time.perf_counter()
            ranks.append(retrieval_ranks(images, captions, num_languages, queries=queries, reranker=reranker))
            rates.append((reranker.pairs_scored, reranker.pairs_scored / (time.perf_counter() - start)))
        same = all(torch.equal(getattr(ranks[0], d)[: len(subset)], getattr(ranks[1], d)) for d in ("tr", "ir"))
        print(f"| {k_test} | {rates[0][0]} | {rates[0][1]:.0f} | {rates[1][0]} | {rates[1][1]:.0f} "
              f"| {rates[0][1] / rates[1][1]:.1f}x | {same} |")
        if not same:
            raise SystemExit("the batched re-ranker's ranks differ from the reference's")
    if args.profile:
        reranker = TwoStageReranker(batched, args.k_test[0])
        print(f"\nprofile of the batched re-ranker, k_test {args.k_test[0]}, all queries:")
        print_profile(lambda: retrieval_ranks(images, captions, num_languages, reranker=reranker))


def print_profile(call) -> None:
    """The operators taking the most self CPU time in ``call()`` (torch profiler, CPU)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        call()
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))


def unit_vectors(count: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dim), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def faiss_rows(vectors: np.ndarray, queries: np.ndarray, k: int) -> list[tuple[str, float, float, float, int]]:
    """(method, build s, ms per query, recall@k against the exact top k, index bytes) for each method."""
    count, dim = vectors.shape
    gallery, batch = torch.from_numpy(vectors), torch.from_numpy(queries)
    exact = (batch @ gallery.T).topk(k, dim=1).indices.numpy()
    brute_ms = 1000 * best_seconds(lambda: (batch @ gallery.T).topk(k, dim=1), 3, "cpu") / len(queries)
    rows = [("brute-force matmul + top-k (torch)", 0.0, brute_ms, 1.0, vectors.nbytes)]
    nlist = max(1, int(4 * math.sqrt(count)))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.nprobe = min(nlist, 16)
    hnsw = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efSearch = 64
    for name, index in (("faiss flat (exact)", faiss.IndexFlatIP(dim)),
                        (f"faiss IVF-flat nlist {nlist} nprobe {ivf.nprobe}", ivf),
                        ("faiss HNSW-flat M 32 efSearch 64", hnsw)):
        start = time.perf_counter()
        if not index.is_trained:
            index.train(vectors[np.random.default_rng(1).choice(count, min(count, 40 * nlist), replace=False)])
        index.add(vectors)
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        _, found = index.search(queries, k)
        query_ms = 1000 * (time.perf_counter() - start) / len(queries)
        recall = np.mean([len(set(row) & set(truth)) / k for row, truth in zip(found, exact, strict=True)])
        rows.append((name, build_s, query_ms, float(recall), len(faiss.serialize_index(index))))
    return rows


def section_faiss(args) -> None:
    sizes, dim, num_queries = ([2000], 32, 20) if args.smoke else (args.faiss_sizes, 256, 200)
    print(f"synthetic unit vectors (Gaussian, normalised), {dim}-d; {num_queries} queries searched as one batch; "
          f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads")
    print("| gallery | method | build s | ms / query | recall@10 | index MiB |")
    print("|---:|---|---:|---:|---:|---:|")
    queries = unit_vectors(num_queries, dim, seed=2)
    for count in sizes:
        for name, build_s, query_ms, recall, size in faiss_rows(unit_vectors(count, dim, seed=1), queries, 10):
            print(f"| {count} | {name} | {build_s:.2f} | {query_ms:.3f} | {recall:.3f} | {size / 2**20:.1f} |")


def main() -> None:
    tune_allocator()  # before the first large allocation (modeling_ccr.allocator says why)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--random-weights", action="store_true", help="default-shaped random model, no data")
    parser.add_argument("--smoke", action="store_true", help="tiny model and sizes (seconds on a CPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--k-test", type=int, nargs="+", default=[8, 16, 128])
    parser.add_argument("--reference-images", type=int, default=4, help="images whose queries the reference ranks")
    parser.add_argument("--faiss-sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--profile", action="store_true", help="rerank: also print the batched re-ranker's profile")
    args = parser.parse_args()
    if len(args.sections) > 1:  # one process per section: each reports its own peak memory
        for section in args.sections:
            command = [sys.executable, __file__, *sys.argv[1:], "--sections", section]
            print(f"\n## {section}\n", flush=True)
            subprocess.run(command, check=True)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    print(describe_machine())
    {"embed": section_embed, "loss": section_loss, "rerank": section_rerank, "faiss": section_faiss}[
        args.sections[0]](args)
    print(f"\n{args.sections[0]}: {peak_memory(args.device)}")


if __name__ == "__main__":
    main()
