"""The dataset options of ``ccr evaluate`` (``--dataset`` and friends), read by
:func:`modeling_ccr.data.arguments.load_dataset_from_args`; ``ccr train`` reads the same options as the
:class:`~modeling_ccr.data.arguments.DataArguments` dataclass. Both take their defaults, help and choices
from ``modeling_ccr.constants.DATASET_OPTIONS``."""

from __future__ import annotations

import argparse

from ..constants import DATASET_OPTIONS


def _language_list(text: str) -> list[str]:
    """``"ja, en"`` -> ``["ja", "en"]``."""
    return [code.strip() for code in text.split(",") if code.strip()]


# How ccr evaluate's parser takes these options' values, and what no --languages means for it.
_SYNTAX: dict[str, tuple[dict, str]] = {
    "image_dir": ({"action": "append"}, "; repeat the flag for several"),
    "languages": ({"type": _language_list}, " (default: all the benchmark has)"),
}


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds --dataset, --data-dir, --image-dir (repeated for several folders), --languages, --on-missing."""
    group = parser.add_argument_group("dataset")
    for name, option in DATASET_OPTIONS.items():
        syntax, help_suffix = _SYNTAX.get(name, ({}, ""))
        group.add_argument(f"--{name.replace('_', '-')}", default=option.default, choices=option.choices,
                           help=option.help + help_suffix, **syntax)
