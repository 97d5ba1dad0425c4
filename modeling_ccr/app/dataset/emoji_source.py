"""The embedded benchmark's sources: Noto emoji images (npm ``emoji-datasource-google``) joined with the
human-written emoji names of Unicode CLDR (npm ``cldr-annotations-full``), and its split by image.

Join rule: an emoji of ``emoji.json`` with ``has_img_google`` and a 64 px PNG in the package is kept when
CLDR has a ``tts`` name for it in every language; CLDR keys are the emoji's characters without the
variation selector U+FE0F. The caption is the ``tts`` name, the keywords the ``default`` list.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .npm_fetch import NpmPackage

EMOJI_PACKAGE = NpmPackage(
    "emoji-datasource-google", "16.0.0", "fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438"
)
CLDR_PACKAGE = NpmPackage(
    "cldr-annotations-full", "48.2.0", "28576e51225deb51e3ddd734b0f824a0079682cb5d8c27faa9f68149317a14d1"
)
IMAGE_FOLDER = "package/img/google/64/"
VARIATION_SELECTOR = "\ufe0f"


@dataclass(frozen=True)
class EmojiPackage:
    """What the build takes from ``emoji-datasource-google``."""

    emoji: list[dict[str, Any]]  # emoji.json entries
    images: dict[str, bytes]  # 64 px PNG bytes by file name
    license_text: str
    version: str


@dataclass(frozen=True)
class CldrAnnotations:
    """What the build takes from ``cldr-annotations-full``: per language, CLDR key -> {"tts", "default"}."""

    annotations: dict[str, dict[str, dict[str, list[str]]]]
    license_text: str
    version: str
    cldr_version: str


@dataclass(frozen=True)
class EmojiRecord:
    """One row of the benchmark before splitting."""

    id: str  # lower-case codepoints joined by "-", e.g. "1f600" or "1f468-200d-1f469"
    image: bytes
    image_name: str
    captions: dict[str, str]
    keywords: dict[str, list[str]]
    category: str


def _read_json(archive: tarfile.TarFile, member: tarfile.TarInfo) -> Any:
    return json.loads(archive.extractfile(member).read().decode("utf-8"))


def read_emoji_package(tarball: Path) -> EmojiPackage:
    """Reads emoji.json, the 64 px Google images, LICENSE and the version from the package tarball."""
    emoji, images, license_text, version = None, {}, None, None
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            if not member.isfile():
                continue
            if member.name == "package/emoji.json":
                emoji = _read_json(archive, member)
            elif member.name == "package/package.json":
                version = _read_json(archive, member)["version"]
            elif member.name == "package/LICENSE":
                license_text = archive.extractfile(member).read().decode("utf-8")
            elif member.name.startswith(IMAGE_FOLDER) and member.name.endswith(".png"):
                images[member.name[len(IMAGE_FOLDER) :]] = archive.extractfile(member).read()
    if emoji is None or version is None or license_text is None or not images:
        raise ValueError(
            f"{tarball} lacks emoji.json, package.json, LICENSE or {IMAGE_FOLDER}; is it "
            f"{EMOJI_PACKAGE.name}?"
        )
    return EmojiPackage(emoji, images, license_text, version)


def read_cldr_annotations(tarball: Path, languages: Sequence[str]) -> CldrAnnotations:
    """Reads ``annotations/<lang>/annotations.json`` of each language, LICENSE and the versions."""
    wanted = {f"package/annotations/{lang}/annotations.json": lang for lang in languages}
    annotations, license_text, meta = {}, None, None
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            if member.name in wanted:
                annotations[wanted[member.name]] = _read_json(archive, member)["annotations"]["annotations"]
            elif member.name == "package/package.json":
                meta = _read_json(archive, member)
            elif member.name == "package/LICENSE":
                license_text = archive.extractfile(member).read().decode("utf-8")
    missing = [lang for lang in languages if lang not in annotations]
    if missing or meta is None or license_text is None:
        raise ValueError(
            f"{tarball} lacks annotations for {missing} or package.json/LICENSE; is it {CLDR_PACKAGE.name}?"
        )
    return CldrAnnotations(annotations, license_text, meta["version"], str(meta.get("cldrVersion", "")))


def cldr_key(unified: str) -> str:
    """The CLDR annotation key of an emoji: its characters without U+FE0F (``"263A-FE0F"`` -> ``"☺"``)."""
    return "".join(chr(int(code, 16)) for code in unified.split("-")).replace(VARIATION_SELECTOR, "")


def cldr_names(
    cldr: CldrAnnotations, unified: str, languages: Sequence[str]
) -> tuple[dict[str, str], dict[str, list[str]]] | None:
    """An emoji's caption (its first ``tts`` name) and keywords (``default``) per language, from its unified
    code points (any case, e.g. ``"263A-FE0F"``); None when it has no name in one of ``languages``."""
    key = cldr_key(unified)
    names = [cldr.annotations[lang].get(key) for lang in languages]
    if not all(name and name.get("tts") for name in names):
        return None
    pairs = list(zip(languages, names, strict=True))
    return {lang: name["tts"][0] for lang, name in pairs}, {lang: list(name.get("default", [])) for lang, name in pairs}


def join_emoji_names(
    package: EmojiPackage, cldr: CldrAnnotations, languages: Sequence[str]
) -> list[EmojiRecord]:
    """The emoji with a Google image and a CLDR name in every language, sorted by id."""
    records = {}
    for entry in package.emoji:
        image = package.images.get(entry.get("image", ""))
        if not entry.get("has_img_google") or image is None:
            continue
        named = cldr_names(cldr, entry["unified"], languages)
        if named is None:
            continue
        record = EmojiRecord(
            id=entry["unified"].lower(),
            image=image,
            image_name=entry["image"],
            captions=named[0],
            keywords=named[1],
            category=entry["category"],
        )
        if record.id in records:
            raise ValueError(f"emoji.json lists {record.id} twice; the package is malformed.")
        records[record.id] = record
    return [records[key] for key in sorted(records)]


def assign_splits(
    records: Sequence[EmojiRecord], sizes: Sequence[tuple[str, int]], rest: str, seed: int
) -> dict[str, list[EmojiRecord]]:
    """Splits by image: records with identical image bytes form one group, and groups are ordered by
    SHA-256 of ``"<seed>:<first id of the group>"`` (independent of library versions). Groups fill the
    splits of ``sizes`` in turn, each until it holds at least its size; the remaining groups form
    ``rest``. Each split is sorted by id.
    """
    groups: dict[bytes, list[EmojiRecord]] = {}
    for record in sorted(records, key=lambda r: r.id):
        groups.setdefault(hashlib.sha256(record.image).digest(), []).append(record)
    ordered = sorted(groups.values(), key=lambda g: hashlib.sha256(f"{seed}:{g[0].id}".encode()).hexdigest())
    splits: dict[str, list[EmojiRecord]] = {name: [] for name, _ in sizes}
    splits[rest] = []
    targets = iter(sizes)
    current = next(targets, None)
    for group in ordered:
        while current is not None and len(splits[current[0]]) >= current[1]:
            current = next(targets, None)
        splits[current[0] if current is not None else rest].extend(group)
    return {name: sorted(rows, key=lambda r: r.id) for name, rows in splits.items()}
