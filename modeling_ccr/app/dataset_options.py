"""The dataset options of ``ccr evaluate`` (``--dataset`` and friends), read by
:func:`modeling_ccr.data.arguments.load_dataset_from_args`; ``ccr train`` reads the same options as the
:class:`~modeling_ccr.data.arguments.DataArguments` dataclass."""

from __future__ import annotations

import argparse

from ..constants import BENCHMARK_NAMES, ON_MISSING_CHOICES


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
