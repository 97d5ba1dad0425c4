"""The dataset options shared by training and evaluation (``--dataset`` and friends).

They are declared once, in ``modeling_ccr.constants.DATASET_OPTIONS`` (default, help, choices), which
``ccr evaluate --help`` reads without importing ``datasets``: ``train`` (and ``ccr train``, through
``transformers.HfArgumentParser``) reads them as the ``DataArguments`` dataclass, ``ccr evaluate`` adds them
with ``modeling_ccr.app.dataset_options``. Both feed ``load_dataset_from_args``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import datasets

from ..constants import DATASET_OPTIONS, ON_MISSING_CHOICES
from .load import load_benchmark
from .schema import DEFAULT_LANGUAGES


def _shared_option(name: str, help_suffix: str = "") -> Any:
    """The dataclass field of the shared dataset option ``name`` (``DATASET_OPTIONS``), its help followed by
    ``help_suffix``."""
    option = DATASET_OPTIONS[name]
    metadata: dict[str, Any] = {"help": option.help + help_suffix}
    if option.choices is not None:
        metadata["choices"] = list(option.choices)
    return field(default=option.default, metadata=metadata)


@dataclass
class DataArguments:
    """What ``ccr train`` trains on (the flags of ``add_dataset_arguments``, plus split and augmentation)."""

    dataset: str = _shared_option("dataset")
    data_dir: str | None = _shared_option("data_dir")
    image_dir: list[str] | None = _shared_option("image_dir")
    languages: list[str] | None = _shared_option(
        "languages", f", or space-separated (default: {','.join(DEFAULT_LANGUAGES)})")
    on_missing: str = _shared_option("on_missing")
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
