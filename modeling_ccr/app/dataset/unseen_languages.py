"""A split of the embedded benchmark captioned in languages outside its image-text training, for zero-shot
evaluation (the multilingual text tower was pretrained on text in them; no image was ever paired with them).

The images and ids are those of a ``cldr-emoji`` split; the captions and keywords are the CLDR short names
(``tts``) and keywords (``default``) of other languages, read from the same pinned ``cldr-annotations-full``
tarball the benchmark is built from (:mod:`.emoji_source`, fetched with ``npm pack`` into the cache when it
is not there). An emoji without a name in one of the languages is left out, and named in the result and a
warning: never dropped silently.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets

from ...data import DEFAULT_LANGUAGES, load_benchmark
from ...data.schema import common_features
from .emoji_source import CLDR_PACKAGE, cldr_names, read_cldr_annotations
from .npm_fetch import fetch_tarball

logger = logging.getLogger(__name__)

# Five CLDR languages outside the ten the benchmark trains on: Korean (Hangul), Italian and Portuguese
# (Romance), Polish (Slavic, Latin script with diacritics) and Vietnamese (Latin script with stacked tones).
UNSEEN_LANGUAGES: tuple[str, ...] = ("ko", "it", "pt", "pl", "vi")


@dataclass
class UnseenLanguageSplit:
    """The split (common schema plus ``category``, captions in ``languages`` order) and the ids of the split's
    images left out because CLDR has no name for them in some of the languages."""

    dataset: datasets.Dataset
    languages: list[str]
    left_out: list[str]


def unseen_language_split(
    split: str = "test", languages: Sequence[str] = UNSEEN_LANGUAGES, cldr_tarball: Path | None = None
) -> UnseenLanguageSplit:
    """The ``cldr-emoji`` split ``split`` with its captions in ``languages`` instead of the trained ten.

    ``cldr_tarball``: a ``cldr-annotations-full`` npm tarball (default: the pinned one, from the cache or
    ``npm pack``).

    Raises ValueError for an empty or repeated language list, or a language among the ten trained ones (it
    would not be unseen); RuntimeError when the CLDR tarball is neither cached nor fetchable.
    """
    languages = list(languages)
    if not languages or len(set(languages)) != len(languages):
        raise ValueError(f"languages must be distinct CLDR codes, got {languages}")
    trained = [lang for lang in languages if lang in DEFAULT_LANGUAGES]
    if trained:
        raise ValueError(f"{', '.join(trained)}: not unseen, the benchmark trains on "
                         f"{', '.join(DEFAULT_LANGUAGES)}; choose languages outside them")
    base = load_benchmark("cldr-emoji", split=split).cast_column("image", datasets.Image(decode=False))
    cldr = read_cldr_annotations(cldr_tarball or fetch_tarball(CLDR_PACKAGE), languages)
    columns: dict[str, list] = {"id": [], "image": [], "captions": [], "keywords": [], "category": []}
    left_out = []
    for row in base:
        named = cldr_names(cldr, row["id"], languages)
        if named is None:
            left_out.append(row["id"])
            continue
        for column, value in zip(columns, (row["id"], row["image"], *named, row["category"]), strict=True):
            columns[column].append(value)
    if left_out:
        logger.warning("cldr-emoji %s: %d of %d images have no CLDR name in one of %s and are left out: %s", split,
                       len(left_out), len(base), ", ".join(languages), ", ".join(left_out))
    features = common_features(languages, with_keywords=True,
                               extra=datasets.Features({"category": datasets.Value("string")}))
    return UnseenLanguageSplit(datasets.Dataset.from_dict(columns, features=features), languages, left_out)
