"""``ccr export-benchmark --output DIR``: the embedded ``cldr-emoji`` benchmark as a Hub dataset folder.

The folder holds the three parquet splits, the licence files and the dataset card (the builder's
DATASET_CARD.md with links to the models and the metric Space added), so that
``datasets.load_dataset("org/cldr-emoji")`` reads it once pushed with ``ccr push DIR --repo org/cldr-emoji
--repo-type dataset``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from hub_cards.dataset_card import EMBEDDED_BENCHMARK, benchmark_card

from ..backbones.cache import publish_folder
from .export import DEFAULT_ORG

DATA_PATTERNS = ("*.parquet", "LICENSE*", "SHA256SUMS.txt")


def export_benchmark(output_dir: str | os.PathLike, model_repos: list[str], metric_space: str) -> Path:
    """Write the benchmark's dataset folder to ``output_dir`` (new or empty; written atomically)."""

    def write(staging: Path) -> None:
        for pattern in DATA_PATTERNS:
            for path in sorted(EMBEDDED_BENCHMARK.glob(pattern)):
                shutil.copyfile(path, staging / path.name)
        benchmark_card(model_repos, metric_space).save(staging / "README.md")

    try:
        return publish_folder(output_dir, write)
    except FileExistsError as error:
        raise ValueError(str(error)) from error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, help="the dataset folder to write (new or empty)")
    parser.add_argument("--model", action="append", default=[], help="Hub id of a model evaluated on it (repeatable)")
    parser.add_argument("--metric-space", default=f"{DEFAULT_ORG}/mrv", help="Hub id of the MRV metric Space")


def run(args: argparse.Namespace) -> int:
    try:
        folder = export_benchmark(args.output, args.model, args.metric_space)
    except ValueError as error:
        print(f"ccr export-benchmark: {error}", file=sys.stderr)
        return 2
    print(f"wrote the benchmark to {folder}; publish it with: ccr push {folder} --repo ORG/cldr-emoji --repo-type dataset")
    return 0
