"""``ccr data build``: rebuilds the embedded ``cldr-emoji`` benchmark from the pinned npm packages.

The built files ship in the package (``modeling_ccr/data/cldr_emoji``), so loading needs no network;
this command reproduces them byte for byte (same pyarrow version) from ``emoji-datasource-google`` and
``cldr-annotations-full``, fetched with ``npm pack`` into a cache. Output: ``train.parquet``,
``validation.parquet``, ``test.parquet`` in the common schema plus ``category``, ``DATASET_CARD.md``,
the licence texts and ``SHA256SUMS.txt``. The folder is written beside the output and swapped into place; an
existing copy of the benchmark is replaced only with ``--overwrite`` (its other files are kept).
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ...atomic_io import OutputKind, check_output, write_output
from ...cache import cache_root
from ...constants import CLDR_EMOJI_DIR, DEFAULT_LANGUAGES
from .emoji_card import render_card
from .emoji_source import (
    CLDR_PACKAGE,
    EMOJI_PACKAGE,
    EmojiRecord,
    assign_splits,
    join_emoji_names,
    read_cldr_annotations,
    read_emoji_package,
)
from .npm_fetch import fetch_tarball, sha256_of

if TYPE_CHECKING:
    import pyarrow as pa

SPLIT_SEED = 42
SPLIT_SIZES: tuple[tuple[str, int], ...] = (("test", 300), ("validation", 200))
REST_SPLIT = "train"
SPLIT_ORDER = ("train", "validation", "test")
APACHE_LICENSE = Path(__file__).resolve().parent / "licenses" / "Apache-2.0.txt"
LICENSE_FILES = {
    "images": "LICENSE-images-Apache-2.0.txt",
    "emoji_data": "LICENSE-emoji-datasource-MIT.txt",
    "names": "LICENSE-names-Unicode-3.0.txt",
}
CHECKSUM_FILE = "SHA256SUMS.txt"
CARD_FILE = "DATASET_CARD.md"
# Fixed writer options: no compression (so no codec version can change the bytes), plain encoding, one
# row group, no statistics or page index.
PARQUET_OPTIONS = {
    "version": "2.6",
    "compression": "none",
    "use_dictionary": False,
    "write_statistics": False,
    "data_page_size": 1 << 20,
    "data_page_version": "1.0",
    "store_schema": True,
    "write_page_index": False,
    "write_page_checksum": False,
}


def _features_metadata(languages: Sequence[str]) -> bytes:
    """The ``huggingface`` schema metadata, written out literally (not by the installed ``datasets``) so
    the bytes do not depend on its version; the legacy ``Sequence`` type reads in datasets 3, 4 and 5."""
    string = {"dtype": "string", "_type": "Value"}
    features = {
        "id": string,
        "image": {"_type": "Image"},
        "captions": {lang: string for lang in languages},
        "keywords": {lang: {"feature": string, "_type": "Sequence"} for lang in languages},
        "category": string,
    }
    return json.dumps({"info": {"features": features}}).encode("utf-8")


def split_table(records: Sequence[EmojiRecord], languages: Sequence[str]) -> pa.Table:
    """The Arrow table of one split: id, image {bytes, path}, captions, keywords, category."""
    import pyarrow as pa  # here: `ccr data build --help` stays light

    schema = pa.schema(
        [
            pa.field("id", pa.string()),
            pa.field("image", pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])),
            pa.field("captions", pa.struct([pa.field(lang, pa.string()) for lang in languages])),
            pa.field("keywords", pa.struct([pa.field(lang, pa.list_(pa.string())) for lang in languages])),
            pa.field("category", pa.string()),
        ],
        metadata={b"huggingface": _features_metadata(languages)},
    )
    columns = {
        "id": [r.id for r in records],
        "image": [{"bytes": r.image, "path": r.image_name} for r in records],
        "captions": [r.captions for r in records],
        "keywords": [r.keywords for r in records],
        "category": [r.category for r in records],
    }
    return pa.Table.from_pydict(columns, schema=schema)


def _is_built_benchmark(folder: Path) -> bool:
    return (folder / CHECKSUM_FILE).is_file() and (folder / CARD_FILE).is_file()


BUILT_BENCHMARK = OutputKind(f"a built benchmark folder ({CHECKSUM_FILE}, {CARD_FILE}, parquet splits)",
                             _is_built_benchmark, ("*.parquet", CHECKSUM_FILE, CARD_FILE, *LICENSE_FILES.values()))


@dataclass(frozen=True)
class BuildResult:
    output_dir: Path
    counts: dict[str, int]
    checksums: dict[str, str]  # parquet file name -> SHA-256


def build_cldr_emoji(
    output_dir: Path,
    emoji_tarball: Path | None = None,
    cldr_tarball: Path | None = None,
    cache_dir: Path | None = None,
    languages: Sequence[str] = DEFAULT_LANGUAGES,
    split_sizes: Sequence[tuple[str, int]] = SPLIT_SIZES,
    seed: int = SPLIT_SEED,
    *,
    overwrite: bool = False,
) -> BuildResult:
    """Builds the benchmark into ``output_dir`` from the two npm tarballs (fetched into ``cache_dir`` with
    ``npm pack`` when not given). Returns the split sizes and the parquet checksums.

    An earlier build at ``output_dir`` is replaced only with ``overwrite`` (checked first); other files in
    it are kept (:func:`modeling_ccr.atomic_io.write_output`).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_output(output_dir, BUILT_BENCHMARK, overwrite)
    emoji_tarball = emoji_tarball or fetch_tarball(EMOJI_PACKAGE, cache_dir)
    cldr_tarball = cldr_tarball or fetch_tarball(CLDR_PACKAGE, cache_dir)
    package = read_emoji_package(emoji_tarball)
    cldr = read_cldr_annotations(cldr_tarball, languages)
    records = join_emoji_names(package, cldr, languages)
    splits = assign_splits(records, split_sizes, REST_SPLIT, seed)
    order = [name for name in SPLIT_ORDER if name in splits] + sorted(set(splits) - set(SPLIT_ORDER))

    checksums: dict[str, str] = {}

    def write(staging: Path) -> None:
        for name in order:
            path = staging / f"{name}.parquet"
            pq.write_table(
                split_table(splits[name], languages),
                path,
                row_group_size=max(1, len(splits[name])),
                **PARQUET_OPTIONS,
            )
            checksums[path.name] = sha256_of(path)
        (staging / CHECKSUM_FILE).write_text(
            "".join(f"{d}  {f}\n" for f, d in checksums.items()), encoding="utf-8"
        )
        (staging / LICENSE_FILES["emoji_data"]).write_text(package.license_text, encoding="utf-8")
        (staging / LICENSE_FILES["names"]).write_text(cldr.license_text, encoding="utf-8")
        shutil.copyfile(APACHE_LICENSE, staging / LICENSE_FILES["images"])
        card = render_card(
            splits={name: splits[name] for name in order},
            languages=languages,
            sources={
                EMOJI_PACKAGE.name: (package.version, sha256_of(emoji_tarball)),
                CLDR_PACKAGE.name: (cldr.version, sha256_of(cldr_tarball)),
            },
            cldr_version=cldr.cldr_version,
            seed=seed,
            split_sizes=split_sizes,
            checksums=checksums,
            license_files=LICENSE_FILES,
            parquet_writer=f"pyarrow {pa.__version__}, options {PARQUET_OPTIONS}",
        )
        (staging / CARD_FILE).write_text(card, encoding="utf-8")

    write_output(output_dir, write, BUILT_BENCHMARK, overwrite)
    return BuildResult(output_dir, {name: len(splits[name]) for name in order}, checksums)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        type=Path,
        default=CLDR_EMOJI_DIR,
        help=f"folder to write the benchmark into (default: the package's copy, {CLDR_EMOJI_DIR})",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier build at --output (the package's copy included); its other files are kept",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"where the npm tarballs are cached (default: {cache_root()})",
    )
    parser.add_argument(
        "--emoji-tarball",
        type=Path,
        default=None,
        help=f"use this {EMOJI_PACKAGE.tarball_name} instead of running npm pack",
    )
    parser.add_argument(
        "--cldr-tarball",
        type=Path,
        default=None,
        help=f"use this {CLDR_PACKAGE.tarball_name} instead of running npm pack",
    )


def run(args: argparse.Namespace) -> int:
    output = Path(args.output)
    previous = {}
    for name in SPLIT_ORDER:
        path = output / f"{name}.parquet"
        if path.is_file():
            previous[path.name] = sha256_of(path)
    result = build_cldr_emoji(output, args.emoji_tarball, args.cldr_tarball, args.cache_dir, overwrite=args.overwrite)
    print(f"wrote {result.output_dir}")
    for file_name, digest in result.checksums.items():
        status = (
            ""
            if file_name not in previous
            else (" (unchanged)" if previous[file_name] == digest else " (CHANGED)")
        )
        rows = result.counts[file_name.removesuffix(".parquet")]
        print(f"  {file_name}: {rows} rows, sha256 {digest}{status}")
    return 0
