"""``ccr export-space --output DIR``: the MRV metric as a Hub Space folder.

The folder holds the metric module (``mrv.py`` and the ``rank_variance.py`` it imports), the Gradio app,
its requirements and the metric card (``evaluate_mrv/README.md``, whose YAML is the Space configuration)
with links to the model and the benchmark added. Published with ``ccr push DIR --repo org/mrv
--repo-type space``, it makes ``evaluate.load("org/mrv")`` work for anyone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from hub_cards.space_cards import METRIC_FOLDER, metric_space_card

from ..backbones.cache import publish_folder
from .export import DEFAULT_ORG

SPACE_FILES = ("mrv.py", "rank_variance.py", "app.py", "requirements.txt")


def export_metric_space(output_dir: str | os.PathLike, model_repos: list[str], dataset_repo: str | None) -> Path:
    """Write the metric Space folder to ``output_dir`` (new or empty; written atomically)."""

    def write(staging: Path) -> None:
        for name in SPACE_FILES:
            shutil.copyfile(METRIC_FOLDER / name, staging / name)
        metric_space_card(model_repos, dataset_repo).save(staging / "README.md")

    try:
        return publish_folder(output_dir, write)
    except FileExistsError as error:
        raise ValueError(str(error)) from error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, help="the Space folder to write (new or empty)")
    parser.add_argument("--model", action="append", default=[], help="Hub id of a model whose card reports MRV (repeatable)")
    parser.add_argument("--dataset-repo", default=f"{DEFAULT_ORG}/cldr-emoji", help="Hub id of the embedded benchmark")


def run(args: argparse.Namespace) -> int:
    try:
        folder = export_metric_space(args.output, args.model, args.dataset_repo)
    except ValueError as error:
        print(f"ccr export-space: {error}", file=sys.stderr)
        return 2
    print(f"wrote the MRV metric Space to {folder}; publish it with: ccr push {folder} --repo ORG/mrv --repo-type space")
    return 0
