"""The common schema every benchmark loads into, and the instance record the loaders share.

One row is one image with one caption in each selected language:

- ``id`` (string): stable identifier of the image within its benchmark;
- ``image`` (``datasets.Image``): the original encoded bytes, or the path of the image file;
- ``captions`` (struct, one string field per language, in the order the languages were selected):
  read back as a dict language code -> caption;
- ``keywords`` (optional struct, one list of strings per language): extra words for augmentation;
- benchmark-specific extra columns (for example ``category`` in ``cldr-emoji``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path, PurePath
from typing import Any

import datasets

from ..constants import DEFAULT_LANGUAGES  # the paper's ten languages, in the package's order

COMMON_COLUMNS: tuple[str, ...] = ("id", "image", "captions", "keywords")

ImageDirs = str | PathLike | Sequence[str | PathLike]


def common_features(
    languages: Sequence[str], with_keywords: bool = False, extra: datasets.Features | None = None
) -> datasets.Features:
    """The ``datasets.Features`` of the common schema for ``languages`` (struct fields in that order)."""
    spec: dict[str, Any] = {
        "id": datasets.Value("string"),
        "image": datasets.Image(),
        "captions": {lang: datasets.Value("string") for lang in languages},
    }
    if with_keywords:
        spec["keywords"] = {lang: datasets.Sequence(datasets.Value("string")) for lang in languages}
    for name, feature in (extra or {}).items():
        spec[name] = feature
    return datasets.Features(spec)


def order_languages(found: Iterable[str]) -> list[str]:
    """Languages in package order: the ten default ones first, any others alphabetically after."""
    found = set(found)
    return [lang for lang in DEFAULT_LANGUAGES if lang in found] + sorted(found - set(DEFAULT_LANGUAGES))


@dataclass
class ImageRef:
    """Where an instance's image comes from: encoded ``data``, or a ``path`` found on disk.

    ``name`` is what the ``datasets.Image`` feature stores as the path when ``data`` is given; ``searched``
    lists the files tried when neither could be found, for the error message; ``outside`` marks a name
    that leads out of the image folders (absolute, or with a ``..`` part), which is refused, not looked up.
    """

    data: bytes | None = None
    path: Path | None = None
    name: str | None = None
    searched: tuple[Path, ...] = ()
    outside: bool = False

    @property
    def found(self) -> bool:
        return self.data is not None or self.path is not None

    def describe(self) -> str:
        if self.path is not None:
            return str(self.path)
        if self.searched:
            return " or ".join(str(p) for p in self.searched)
        return self.name or "embedded image bytes"


@dataclass
class Instance:
    """One image with its captions as read from a source, before language selection.

    ``captions`` holds the languages the source has for this image; ``expected_in`` says, per language
    the source offers, which file should have held the caption (for the missing-caption error);
    ``origin`` names the file and line or row the instance was read from.
    """

    id: str
    image: ImageRef
    captions: dict[str, str]
    origin: str
    expected_in: dict[str, str] = field(default_factory=dict)
    keywords: dict[str, list[str]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    unused_captions: dict[str, int] = field(default_factory=dict)


def as_image_dirs(image_dir: ImageDirs | None, default: Path) -> list[Path]:
    """Normalises the ``image_dir`` argument (one folder or several) to a list; ``default`` when None."""
    if image_dir is None:
        return [default]
    if isinstance(image_dir, str | PathLike):
        return [Path(image_dir)]
    return [Path(d) for d in image_dir]


def _leads_outside(name: str) -> bool:
    """Whether the image name ``name`` of a data row leads out of the folder it is looked up in: an
    absolute path (or one with a drive) or a path with a ``..`` part.

    Judged on the name, not on the file it resolves to: a symbolic link that the folder's owner put in it
    (``images/`` -> another disk) is followed, while a row cannot reach a file the folder does not hold.
    """
    path = PurePath(name)
    return bool(path.anchor) or ".." in path.parts


def resolve_image(relative: str, image_dirs: Sequence[Path]) -> ImageRef:
    """Finds ``relative`` under the image folders: each folder in order, first as
    ``folder/relative`` then as ``folder/<file name>``. Returns an unresolved ``ImageRef`` listing what was
    tried when no file exists, and one marked ``outside`` (nothing looked up) when ``relative`` leads out
    of the folders (:func:`_leads_outside`)."""
    if _leads_outside(relative):
        return ImageRef(name=relative, outside=True)
    candidates: list[Path] = []
    for folder in image_dirs:
        for candidate in (folder / relative, folder / Path(relative).name):
            if candidate not in candidates:
                candidates.append(candidate)
    for candidate in candidates:
        if candidate.is_file():
            return ImageRef(path=candidate, name=relative)
    return ImageRef(name=relative, searched=tuple(candidates))


def decode_base64(text: str) -> bytes:
    """Base64 text to bytes. Text that is not valid base64 comes back as its UTF-8 bytes, which then fail
    the image check with the row named (rather than vanishing here)."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text.encode("utf-8")
