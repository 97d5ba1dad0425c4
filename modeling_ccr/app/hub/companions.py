"""``ccr export-companion mrv-space|benchmark|demo-space --output DIR``: the folders published beside a model.

An existing folder is refused; with ``--overwrite``, an earlier export of the same kind is replaced (the files
a companion of that kind writes are replaced, stale ones go, every other file is kept; see
:func:`modeling_ccr.atomic_io.write_output`).

- ``mrv-space``: the MRV metric as a Hub Space: the metric module (``mrv.py`` and the ``rank_variance.py``
  it imports), the Gradio app, its requirements and the metric card (``evaluate_mrv/README.md``, whose YAML
  is the Space configuration) with links to the models and the benchmark. Pushed with ``ccr push DIR
  --repo org/mrv --repo-type space``, it makes ``evaluate.load("org/mrv")`` work for anyone.
- ``benchmark``: the embedded ``cldr-emoji`` benchmark as a Hub dataset: the three parquet splits, the
  licence files and the dataset card (the builder's DATASET_CARD.md with links to the models and the
  metric Space). Pushed with ``--repo-type dataset``, ``datasets.load_dataset("org/cldr-emoji")`` reads it.
- ``demo-space``: the Gradio demo as a Hub Space that runs without ccr-1tok on PyPI: ``spaces_demo/``'s
  ``app.py`` and ``requirements.txt``, its card (links to the model, the metric Space and the benchmark) and
  copies of the ``modeling_ccr/`` and ``evaluate_mrv/`` sources beside ``app.py``. Copied: every ``.py`` file
  (no ``__pycache__``) and the embedded benchmark's folder (``modeling_ccr/data/cldr_emoji/``: its parquet
  splits, card, licences, checksums), because the app's default gallery is its test split and the default
  model it trains on first start (when ``CCR_MODEL`` is unset) trains on its train and validation splits.
  Left out: the metric Space's own files (``evaluate_mrv/README.md``, its requirements, the start-up ``.pth``)
  and the files only ``ccr data build`` and the docs read; the app imports none of them.
  Pushed with ``--repo org/demo --repo-type space``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ...atomic_io import OutputKind, write_output
from .export import DEFAULT_ORG

if TYPE_CHECKING:
    from huggingface_hub import RepoCard

SPACE_FILES = ("mrv.py", "rank_variance.py", "citation.py", "app.py", "requirements.txt")
BENCHMARK_PATTERNS = ("*.parquet", "LICENSE*", "SHA256SUMS.txt")
DEMO_FILES = ("app.py", "requirements.txt")
DEMO_PACKAGES = ("modeling_ccr", "evaluate_mrv")
DEFAULT_MODEL_REPO = f"{DEFAULT_ORG}/ccr-default"
PUSH_HINTS = {
    "mrv-space": "--repo ORG/mrv --repo-type space",
    "benchmark": "--repo ORG/cldr-emoji --repo-type dataset",
    "demo-space": "--repo ORG/demo --repo-type space",
}


def export_metric_space(output_dir: str | os.PathLike, model_repos: list[str], dataset_repo: str | None,
                        demo_space: str | None = None, overwrite: bool = False) -> Path:
    """Write the metric Space folder to ``output_dir`` (see :func:`publish_companion` for an existing one);
    its card links ``model_repos``, ``dataset_repo`` and, when given, ``demo_space``."""
    # imported here, as huggingface_hub and the other card builders below: `ccr export-companion --help` is light
    from hub_cards.space_cards import METRIC_FOLDER, metric_space_card

    card = metric_space_card(model_repos, dataset_repo, demo_space=demo_space)

    def write(staging: Path) -> None:
        for name in SPACE_FILES:
            shutil.copyfile(METRIC_FOLDER / name, staging / name)
        card.save(staging / "README.md")

    return publish_companion(output_dir, write, card, overwrite, (*SPACE_FILES, "README.md"))


def export_benchmark(output_dir: str | os.PathLike, model_repos: list[str], metric_space: str,
                     overwrite: bool = False) -> Path:
    """Write the benchmark's dataset folder to ``output_dir`` (see :func:`publish_companion` for an existing one)."""
    from hub_cards.dataset_card import EMBEDDED_BENCHMARK, benchmark_card

    card = benchmark_card(model_repos, metric_space)

    def write(staging: Path) -> None:
        for pattern in BENCHMARK_PATTERNS:
            for path in sorted(EMBEDDED_BENCHMARK.glob(pattern)):
                shutil.copyfile(path, staging / path.name)
        card.save(staging / "README.md")

    return publish_companion(output_dir, write, card, overwrite, (*BENCHMARK_PATTERNS, "README.md"))


def demo_space_files() -> dict[str, Path]:
    """``{path in the Space: source file}`` of every file :func:`export_demo_space` copies (the card aside)."""
    from hub_cards.dataset_card import EMBEDDED_BENCHMARK
    from hub_cards.space_cards import DEMO_FOLDER

    root = DEMO_FOLDER.parent
    files = {name: DEMO_FOLDER / name for name in DEMO_FILES}
    for package in DEMO_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):  # byte code (__pycache__/*.pyc) is not matched
            files[path.relative_to(root).as_posix()] = path
    for path in sorted(EMBEDDED_BENCHMARK.iterdir()):
        if path.is_file():
            files[path.relative_to(root).as_posix()] = path
    return files


def export_demo_space(output_dir: str | os.PathLike, model_repo: str, metric_space: str, dataset_repo: str,
                      overwrite: bool = False) -> Path:
    """Write the demo Space folder to ``output_dir`` (see :func:`publish_companion` for an existing one): the
    app, its requirements, its card and the package sources it imports (see the module docstring)."""
    from hub_cards.space_cards import demo_space_card

    card = demo_space_card(model_repo, metric_space, dataset_repo)

    def write(staging: Path) -> None:
        for name, source in demo_space_files().items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, staging / name)
        card.save(staging / "README.md")

    artifacts = (*DEMO_FILES, "README.md", *(f"{package}/*" for package in DEMO_PACKAGES))
    return publish_companion(output_dir, write, card, overwrite, artifacts)


def _title(card: RepoCard) -> str | None:
    data = card.data.to_dict()
    return data.get("title") or data.get("pretty_name")


def publish_companion(output_dir: str | os.PathLike, write: Callable[[Path], None], card: RepoCard,
                      overwrite: bool, artifacts: tuple[str, ...]) -> Path:
    """Publish the folder ``write(staging)`` writes at ``output_dir``.

    A new or empty ``output_dir`` is written atomically. An existing one is refused unless ``overwrite`` is
    set and it is an earlier export of the same companion (its README.md card has ``card``'s title); then
    it is replaced by the new folder, keeping every file of it that does not match ``artifacts`` (glob
    patterns of what this companion writes).
    """
    from huggingface_hub import RepoCard

    title = _title(card)

    def is_earlier_export(folder: Path) -> bool:
        try:
            return _title(RepoCard.load(folder / "README.md")) == title
        except (OSError, ValueError):
            return False

    kind = OutputKind(f"an earlier export of this companion (a README.md card titled {title!r})",
                      is_earlier_export, artifacts)
    write_output(output_dir, write, kind, overwrite)
    return Path(output_dir)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=sorted(PUSH_HINTS),
                        help="mrv-space (the metric Space), benchmark (the dataset) or demo-space (the demo Space)")
    parser.add_argument("--output", required=True, help="the folder to write (new or empty)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier export of the same kind: "
                        "the files it writes are replaced, others kept")
    parser.add_argument("--model", action="append", default=[],
                        help="Hub id of a model to link "
                        f"(repeatable; demo-space takes one, default {DEFAULT_MODEL_REPO})")
    parser.add_argument("--dataset-repo", default=f"{DEFAULT_ORG}/cldr-emoji",
                        help="Hub id of the benchmark (mrv-space and demo-space link it)")
    parser.add_argument("--metric-space", default=f"{DEFAULT_ORG}/mrv",
                        help="Hub id of the MRV Space (benchmark and demo-space link it)")
    parser.add_argument("--demo-space", default=f"{DEFAULT_ORG}/demo",
                        help="Hub id of the demo Space (mrv-space links it)")


def run(args: argparse.Namespace) -> int:
    try:
        if args.kind == "mrv-space":
            folder = export_metric_space(args.output, args.model, args.dataset_repo, args.demo_space, args.overwrite)
        elif args.kind == "demo-space":
            if len(args.model) > 1:
                raise ValueError(f"demo-space serves one model, got --model {' --model '.join(args.model)}: pass one")
            folder = export_demo_space(args.output, (args.model or [DEFAULT_MODEL_REPO])[0], args.metric_space,
                                       args.dataset_repo, args.overwrite)
        else:
            folder = export_benchmark(args.output, args.model, args.metric_space, args.overwrite)
    except ValueError as error:
        print(f"ccr export-companion: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote the {args.kind} folder to {folder}; publish it with: ccr push {folder} {PUSH_HINTS[args.kind]}")
    return 0
