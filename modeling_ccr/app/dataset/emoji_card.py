"""The dataset card of the embedded ``cldr-emoji`` benchmark, written by the builder from what it built."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence

from .emoji_source import EmojiRecord

LANGUAGE_NAMES = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "cs": "Czech",
    "zh": "Chinese (Simplified, CLDR locale zh)",
    "ja": "Japanese",
    "id": "Indonesian",
    "es": "Spanish",
    "ru": "Russian",
    "tr": "Turkish",
}
EXAMPLE_ID = "1f600"


def _front_matter(split_names: Sequence[str], languages: Sequence[str]) -> list[str]:
    lines = ["---", "pretty_name: CLDR emoji, 10-language image-caption benchmark", "language:"]
    lines += [f"- {lang}" for lang in languages]
    lines += [
        "license: other",
        "license_name: apache-2.0-and-unicode-3.0",
        "license_link: LICENSE-names-Unicode-3.0.txt",
        "multilinguality: multilingual",
        "size_categories:",
        "- 1K<n<10K",
        "task_categories:",
        "- image-to-text",
        "- text-to-image",
        "tags:",
        "- cross-lingual-cross-modal-retrieval",
        "- emoji",
        "- unicode-cldr",
        "configs:",
        "- config_name: default",
        "  data_files:",
    ]
    for name in split_names:
        lines += [f"  - split: {name}", f"    path: {name}.parquet"]
    return lines + ["---", ""]


def render_card(
    splits: Mapping[str, Sequence[EmojiRecord]],
    languages: Sequence[str],
    sources: Mapping[str, tuple[str, str]],
    cldr_version: str,
    seed: int,
    split_sizes: Sequence[tuple[str, int]],
    checksums: Mapping[str, str],
    license_files: Mapping[str, str],
    parquet_writer: str,
) -> str:
    """Markdown with YAML front matter: sizes, languages, fields, sources, licences, build and checksums.

    ``sources`` maps npm package name -> (version, SHA-256 of its tarball).
    """
    total = sum(len(rows) for rows in splits.values())
    image_uses = Counter(hashlib.sha256(r.image).digest() for rows in splits.values() for r in rows)
    shared = sum(1 for uses in image_uses.values() if uses > 1)
    lines = _front_matter(list(splits), languages)
    lines += [
        "# CLDR emoji: a 10-language image-caption benchmark",
        "",
        f"{total} Noto emoji images (64 x 64 px PNG), each with a human-written name in {len(languages)} "
        f"languages ({', '.join(languages)}): the caption is the Unicode CLDR short name (`tts`) of the "
        "emoji in that language, and the CLDR keywords (`default`) come along for augmentation. Every "
        "image has its caption in every language (parallel captions), as cross-lingual cross-modal "
        "retrieval with 1-to-K contrastive learning needs. Built offline from two npm packages; it is the "
        "benchmark that ships inside the `ccr-1tok` package.",
        "",
        "## Splits",
        "",
        "| split | images |",
        "|---|---|",
    ]
    lines += [f"| {name} | {len(rows)} |" for name, rows in splits.items()]
    lines += [f"| total | {total} |", ""]
    categories = sorted({r.category for rows in splits.values() for r in rows})
    lines += [
        "Images per emoji category:",
        "",
        "| category | " + " | ".join(splits) + " |",
        "|---|" + "---|" * len(splits),
    ]
    counts = {name: Counter(r.category for r in rows) for name, rows in splits.items()}
    lines += [f"| {c} | " + " | ".join(str(counts[n][c]) for n in splits) + " |" for c in categories]
    lines += [
        "",
        "## Languages",
        "",
        *[f"- `{lang}`: {LANGUAGE_NAMES.get(lang, lang)}" for lang in languages],
        "",
        "## Fields",
        "",
        "- `id` (string): the emoji's code points in lower-case hex joined by `-`, e.g. `1f600`, "
        "`1f468-200d-1f469`; stable across builds.",
        "- `image` (`datasets.Image`): the original PNG bytes from the npm package; `path` holds its file "
        "name.",
        "- `captions` (struct, one string per language): the CLDR `tts` name.",
        "- `keywords` (struct, one list of strings per language): the CLDR `default` keywords.",
        "- `category` (string): the emoji category of `emoji.json` (e.g. `Smileys & Emotion`).",
        "",
    ]
    example = next((r for rows in splits.values() for r in rows if r.id == EXAMPLE_ID), None)
    if example is not None:
        lines += [f"Example, `{example.id}`:", "", "| language | caption |", "|---|---|"]
        lines += [f"| {lang} | {example.captions[lang]} |" for lang in languages]
        lines.append("")
    sized = ", ".join(f"{name} {size}" for name, size in split_sizes)
    lines += [
        "## How it was built",
        "",
        "`ccr data build` (module `modeling_ccr.app.dataset.build`) runs `npm pack` for the pinned packages, then:",
        "",
        "1. keeps each emoji of `emoji.json` with `has_img_google` and a 64 px PNG in `img/google/64/`;",
        "2. looks up its CLDR name by its characters without U+FE0F and keeps it when a `tts` name exists "
        "in every language;",
        f"3. splits by image: emoji with identical image bytes form one group; groups are ordered by "
        f'SHA-256 of `"{seed}:<first id>"` (seed {seed}) and fill the splits in turn ({sized}; the rest '
        "is train), so no image is in two splits;",
        "4. writes each split sorted by id as parquet with fixed options, so a rebuild with the same pyarrow "
        "version gives identical bytes.",
        "",
        "| source (npm) | version | tarball SHA-256 |",
        "|---|---|---|",
        *[f"| `{name}` | {version} | `{digest}` |" for name, (version, digest) in sources.items()],
        "",
        f"CLDR version {cldr_version}. Parquet writer: {parquet_writer}.",
        "",
        "| file | SHA-256 |",
        "|---|---|",
        *[f"| `{name}` | `{digest}` |" for name, digest in checksums.items()],
        "",
        "## Licences",
        "",
        f"- Images: Noto Emoji by Google, Apache License 2.0 (`{license_files['images']}`), as distributed "
        "in `emoji-datasource-google`.",
        f"- `emoji.json` data (ids, categories): MIT, Copyright (c) 2013 Cal Henderson "
        f"(`{license_files['emoji_data']}`).",
        f"- Names and keywords: Unicode CLDR, Unicode License v3 (SPDX `Unicode-3.0`, "
        f"`{license_files['names']}`).",
        "",
        "## Limitations",
        "",
        "- Captions are short names (one to a few words), not sentence descriptions; images are 64 x 64 "
        "pictograms on a transparent background, far from photographs.",
        "- Some names differ only in a detail (families, flags, components)"
        + (f"; {shared} image(s) shared by several emoji (each kept within one split)." if shared else "."),
        "- Chinese is Simplified (CLDR locale `zh`).",
        "",
    ]
    return "\n".join(lines)
