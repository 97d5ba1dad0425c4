"""The dataset options shared by the training and evaluation commands (``--dataset`` and friends)."""

from __future__ import annotations

import argparse

import datasets

from .assemble import ON_MISSING_CHOICES
from .load import BENCHMARK_NAMES, load_benchmark


def add_dataset_arguments(parser: argparse.ArgumentParser, default: str = "cldr-emoji") -> None:
    """Adds --dataset, --data-dir, --image-dir, --languages and --on-missing."""
    group = parser.add_argument_group("dataset")
    group.add_argument(
        "--dataset",
        default=default,
        help=f"benchmark name ({', '.join(BENCHMARK_NAMES)}) or a folder of common-schema parquet files "
        f"(default: {default})",
    )
    group.add_argument("--data-dir", default=None, help="local copy of a published benchmark, in its layout")
    group.add_argument(
        "--image-dir",
        action="append",
        default=None,
        help="folder holding the images (repeat for several; default: <data-dir>/images)",
    )
    group.add_argument(
        "--languages",
        default=None,
        type=lambda text: [code.strip() for code in text.split(",") if code.strip()],
        help="comma-separated language codes, in order (default: all the benchmark has)",
    )
    group.add_argument(
        "--on-missing",
        choices=ON_MISSING_CHOICES,
        default="error",
        help="instances lacking a selected language or a readable image: stop with an error (default) or "
        "drop them and report the count",
    )


def load_dataset_from_args(
    args: argparse.Namespace, split: str, streaming: bool = False
) -> datasets.Dataset | datasets.IterableDataset:
    """``load_benchmark`` for one split with the options of ``add_dataset_arguments``."""
    return load_benchmark(
        args.dataset,
        split=split,
        languages=args.languages,
        data_dir=args.data_dir,
        on_missing=args.on_missing,
        streaming=streaming,
        image_dir=args.image_dir,
    )
