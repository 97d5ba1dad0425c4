"""The dataset options shared by training and evaluation (``--dataset`` and friends).

``train`` (and ``ccr train``, through ``transformers.HfArgumentParser``) reads them as the ``DataArguments``
dataclass; ``ccr evaluate`` adds the same options with ``modeling_ccr.app.dataset_options``. Both feed
``load_dataset_from_args``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import datasets

from .assemble import ON_MISSING_CHOICES
from .load import BENCHMARK_NAMES, load_benchmark
from .schema import DEFAULT_LANGUAGES


@dataclass
class DataArguments:
    """What ``ccr train`` trains on (the flags of ``add_dataset_arguments``, plus split and augmentation)."""

    dataset: str = field(default="cldr-emoji", metadata={
        "help": f"benchmark name ({', '.join(BENCHMARK_NAMES)}), a folder of common-schema parquet files, or an "
                "image folder with metadata.jsonl / metadata.csv"})
    data_dir: str | None = field(default=None, metadata={"help": "local copy of a published benchmark, in its layout"})
    image_dir: list[str] | None = field(default=None, metadata={"help": "folders holding the images"})
    languages: list[str] | None = field(default=None, metadata={
        "help": f"language codes, in order, space- or comma-separated (default: {','.join(DEFAULT_LANGUAGES)})"})
    on_missing: str = field(default="error", metadata={
        "help": "instances lacking a selected language or a readable image: stop with an error, or drop them and "
                "report the count", "choices": list(ON_MISSING_CHOICES)})
    split: str = field(default="train", metadata={"help": "split to train on"})
    keyword_probability: float = field(default=0.0, metadata={
        "help": "chance to swap a caption for one of its CLDR keywords (augmentation)"})

    def __post_init__(self):
        if isinstance(self.languages, str):
            self.languages = [self.languages]
        if self.languages is not None:
            self.languages = [code.strip() for item in self.languages for code in item.split(",") if code.strip()]
        if isinstance(self.image_dir, str):
            self.image_dir = [self.image_dir]
        if self.on_missing not in ON_MISSING_CHOICES:
            raise ValueError(f"unknown on_missing {self.on_missing!r}: use one of {', '.join(ON_MISSING_CHOICES)}")
        if not 0.0 <= self.keyword_probability <= 1.0:
            raise ValueError(f"keyword_probability must lie in [0, 1], got {self.keyword_probability}")


def load_dataset_from_args(
    args: argparse.Namespace | DataArguments, split: str, streaming: bool = False
) -> datasets.Dataset | datasets.IterableDataset:
    """``load_benchmark`` for one split with the options of ``add_dataset_arguments`` / ``DataArguments``."""
    return load_benchmark(
        args.dataset,
        split=split,
        languages=args.languages,
        data_dir=args.data_dir,
        on_missing=args.on_missing,
        streaming=streaming,
        image_dir=args.image_dir,
    )
