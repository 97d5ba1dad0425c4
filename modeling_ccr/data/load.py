"""``load_benchmark``: one entry point for the embedded benchmark, the real benchmarks in their published
layouts and folders of parquet files in the common schema."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path

import datasets

from ..constants import BENCHMARK_NAMES, CLDR_EMOJI_DIR, PUBLISHED_BENCHMARKS
from .assemble import BenchmarkSource, LoadReport, check_on_missing, materialize, select_languages
from .cclm import CclmCorpus
from .coco_multilingual import CocoMultilingual
from .imagefolder import ImageFolder, is_image_folder
from .multi30k import Multi30K
from .parquet_folder import ParquetFolder
from .schema import ImageDirs
from .wit import Wit
from .xflickrco import XFlickrCO

logger = logging.getLogger(__name__)

# Benchmarks read from a local copy in their published layout (data_dir is required): the reader of each
# name of PUBLISHED_BENCHMARKS, in its order (the option parsers read the names from modeling_ccr.constants).
_PUBLISHED: dict[str, Callable[[Path, ImageDirs | None], BenchmarkSource]] = dict(
    zip(PUBLISHED_BENCHMARKS, (XFlickrCO, Multi30K, CocoMultilingual, Wit, CclmCorpus), strict=True)
)

AnyDataset = datasets.Dataset | datasets.DatasetDict | datasets.IterableDataset | datasets.IterableDatasetDict


def open_benchmark(
    name_or_path: str | PathLike, data_dir: str | PathLike | None = None, image_dir: ImageDirs | None = None
) -> BenchmarkSource:
    """The benchmark behind a name (``BENCHMARK_NAMES``), a folder in the ``imagefolder`` layout or a
    folder of common-schema parquet files."""
    name = str(name_or_path)
    if name == "cldr-emoji":
        return ParquetFolder(Path(data_dir) if data_dir else CLDR_EMOJI_DIR, image_dir, name="cldr-emoji")
    if name in _PUBLISHED:
        if data_dir is None:
            raise ValueError(
                f"{name!r} is read from a local copy: pass data_dir=<its folder> (the layouts are in the "
                f"docstring of modeling_ccr.data.{_PUBLISHED[name].__module__.rsplit('.', 1)[-1]})."
            )
        folder = Path(data_dir)
        if not folder.exists():
            raise ValueError(f"data_dir {folder} does not exist; pass the folder holding the {name} files.")
        return _PUBLISHED[name](folder, image_dir)
    if is_image_folder(Path(name)):
        return ImageFolder(Path(name), image_dir)
    if Path(name).is_dir():
        return ParquetFolder(Path(name), image_dir)
    raise ValueError(
        f"{name!r} is neither a benchmark name ({', '.join(BENCHMARK_NAMES)}) nor an existing folder (images "
        "with a metadata.jsonl or metadata.csv, or parquet files in the common schema)."
    )


def load_benchmark(
    name_or_path: str | PathLike,
    split: str | None = None,
    languages: Sequence[str] | None = None,
    data_dir: str | PathLike | None = None,
    on_missing: str = "error",
    streaming: bool = False,
    image_dir: ImageDirs | None = None,
    return_report: bool = False,
) -> AnyDataset | tuple[AnyDataset, LoadReport]:
    """Loads a benchmark into the common schema (see ``modeling_ccr.data.schema``).

    Args:
        name_or_path: ``"cldr-emoji"`` (embedded, 1,585 emoji x 10 languages), ``"xflickrco"``,
            ``"multi30k"``, ``"coco-multilingual"``, ``"wit"``, ``"cclm"`` (pre-training JSON lines), the
            path of a folder of one's own images in the Hugging Face ``imagefolder`` layout (images and a
            ``metadata.jsonl`` or ``metadata.csv`` with ``file_name`` and ``captions.<lang>`` columns or a
            ``captions`` dict; train/ validation/ test/ subfolders or one folder = train; see
            ``modeling_ccr.data.imagefolder``), or the path of a folder of parquet files in the common
            schema.
        split: one split name, returning a ``Dataset``; None returns a ``DatasetDict`` of the benchmark's
            splits (for the published formats: those with a file in every selected language).
        languages: language codes to keep, in this order (the ``captions`` struct follows it); None keeps
            every language the benchmark has. An unknown code raises ValueError naming the known ones; for
            a folder, so does a selected language missing from a loaded split (each split's languages are
            read from its own files).
        data_dir: the local copy of a published benchmark (required for those); for ``cldr-emoji`` a
            folder holding a rebuilt copy (default: the one shipped in the package).
        on_missing: ``"error"`` (default) raises ValueError at the first instance lacking a caption in a
            selected language, or whose image is missing or does not decode, naming its file and row;
            ``"drop"`` skips such instances, logs a warning with the counts and records them in the report.
        streaming: return ``IterableDataset`` (``IterableDatasetDict``) reading lazily, for corpora that do
            not fit in memory; instances are checked as they are read.
        image_dir: the folder (or list of folders, searched in order) holding the images; default
            ``<data_dir>/images``, for ``cclm`` the folder of each JSON-lines file.
        return_report: also return the ``LoadReport`` (kept and dropped counts per split and reason, and
            further captions not used): ``(dataset, report)``.

    Rows: ``id`` (str; two rows of a split loaded in memory with one id raise ValueError naming both),
    ``image`` (``datasets.Image``: original bytes or file path), ``captions``
    (language -> caption), ``keywords`` (language -> list of str, ``cldr-emoji`` only) and extra columns of
    the benchmark (``category`` for ``cldr-emoji``).
    """
    check_on_missing(on_missing)
    source = open_benchmark(name_or_path, data_dir, image_dir)
    chosen = select_languages(languages, source.languages, source.name)
    if split is not None and split not in source.splits:
        raise ValueError(f"{source.name} has no split {split!r}; its splits are {', '.join(source.splits)}.")
    names = [split] if split is not None else source.default_splits(chosen)
    if not names:
        raise ValueError(
            f"{source.name} has no split with captions in all of {', '.join(chosen)}; name one of "
            f"{', '.join(source.splits)} with split=..., or select fewer languages."
        )
    left_out = [name for name in source.splits if name not in names]
    if split is None and left_out:
        logger.warning("%s: leaving out split(s) %s, which lack captions in some of %s; name one with split=... "
                       "and select the languages it has to load it",
                       source.name, ", ".join(left_out), ", ".join(chosen))
    report = LoadReport()
    loaded = {
        name: materialize(source.name, name, source.plan(name, chosen), chosen, on_missing, report, streaming)
        for name in names
    }
    if split is not None:
        result: AnyDataset = loaded[split]
    elif streaming:
        result = datasets.IterableDatasetDict(loaded)
    else:
        result = datasets.DatasetDict(loaded)
    return (result, report) if return_report else result
