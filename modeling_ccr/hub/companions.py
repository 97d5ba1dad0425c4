"""``ccr export-companion mrv-space|benchmark --output DIR``: the folders published beside a model.

- ``mrv-space``: the MRV metric as a Hub Space: the metric module (``mrv.py`` and the ``rank_variance.py``
  it imports), the Gradio app, its requirements and the metric card (``evaluate_mrv/README.md``, whose YAML
  is the Space configuration) with links to the models and the benchmark. Pushed with ``ccr push DIR
  --repo org/mrv --repo-type space``, it makes ``evaluate.load("org/mrv")`` work for anyone.
- ``benchmark``: the embedded ``cldr-emoji`` benchmark as a Hub dataset: the three parquet splits, the
  licence files and the dataset card (the builder's DATASET_CARD.md with links to the models and the
  metric Space). Pushed with ``--repo-type dataset``, ``datasets.load_dataset("org/cldr-emoji")`` reads it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from hub_cards.dataset_card import EMBEDDED_BENCHMARK, benchmark_card
from hub_cards.space_cards import METRIC_FOLDER, metric_space_card

from ..backbones.cache import publish_folder
from .export import DEFAULT_ORG

SPACE_FILES = ("mrv.py", "rank_variance.py", "app.py", "requirements.txt")
BENCHMARK_PATTERNS = ("*.parquet", "LICENSE*", "SHA256SUMS.txt")
PUSH_HINTS = {"mrv-space": "--repo ORG/mrv --repo-type space", "benchmark": "--repo ORG/cldr-emoji --repo-type dataset"}


def export_metric_space(output_dir: str | os.PathLike, model_repos: list[str], dataset_repo: str | None) -> Path:
    """Write the metric Space folder to ``output_dir`` (new or empty; written atomically)."""

    def write(staging: Path) -> None:
        for name in SPACE_FILES:
            shutil.copyfile(METRIC_FOLDER / name, staging / name)
        metric_space_card(model_repos, dataset_repo).save(staging / "README.md")

    return _publish_new(output_dir, write)


def export_benchmark(output_dir: str | os.PathLike, model_repos: list[str], metric_space: str) -> Path:
    """Write the benchmark's dataset folder to ``output_dir`` (new or empty; written atomically)."""

    def write(staging: Path) -> None:
        for pattern in BENCHMARK_PATTERNS:
            for path in sorted(EMBEDDED_BENCHMARK.glob(pattern)):
                shutil.copyfile(path, staging / path.name)
        benchmark_card(model_repos, metric_space).save(staging / "README.md")

    return _publish_new(output_dir, write)


def _publish_new(output_dir: str | os.PathLike, write) -> Path:
    try:
        return publish_folder(output_dir, write)
    except FileExistsError as error:
        raise ValueError(str(error)) from error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=sorted(PUSH_HINTS), help="mrv-space (the metric Space) or benchmark (the dataset)")
    parser.add_argument("--output", required=True, help="the folder to write (new or empty)")
    parser.add_argument("--model", action="append", default=[], help="Hub id of a model to link (repeatable)")
    parser.add_argument("--dataset-repo", default=f"{DEFAULT_ORG}/cldr-emoji", help="Hub id of the benchmark (mrv-space links it)")
    parser.add_argument("--metric-space", default=f"{DEFAULT_ORG}/mrv", help="Hub id of the MRV Space (benchmark links it)")


def run(args: argparse.Namespace) -> int:
    try:
        if args.kind == "mrv-space":
            folder = export_metric_space(args.output, args.model, args.dataset_repo)
        else:
            folder = export_benchmark(args.output, args.model, args.metric_space)
    except ValueError as error:
        print(f"ccr export-companion: {error}", file=sys.stderr)
        return 2
    print(f"wrote the {args.kind} folder to {folder}; publish it with: ccr push {folder} {PUSH_HINTS[args.kind]}")
    return 0
