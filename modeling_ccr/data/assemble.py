"""From source instances to ``datasets`` objects: language selection, the incomplete-instance policy,
image checks and the load report.

An instance is incomplete when it lacks a caption in a selected language (absent or empty), when its
image file is missing, when its image is named by a path that leads out of the data folder (absolute, or
with ``..``), or when its image bytes do not decode. ``on_missing="error"`` (the default) raises
a ``ValueError`` naming the instance's file and row and what is missing; ``on_missing="drop"`` skips it,
counts it per reason in the ``LoadReport`` and logs a warning with the counts. Nothing is skipped
silently.
"""

from __future__ import annotations

import io
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import datasets
from PIL import Image

from ..constants import ON_MISSING_CHOICES
from ..processing_ccr import is_blank
from .schema import Instance, common_features

logger = logging.getLogger(__name__)

_EXAMPLES_KEPT = 10


@dataclass
class SplitReport:
    """What loading one split kept and skipped.

    ``dropped`` counts skipped instances per reason (``"no caption in 'de'"``, ``"missing image file"``,
    ``"image outside the data folder"``, ``"unreadable image"``); ``dropped_examples`` keeps the first few as
    "id (origin): reason"; ``unused_captions`` counts, per language, further captions of an image beyond the
    first (the common schema holds one caption per language and image: the first in the source's order).
    """

    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    dropped_examples: list[str] = field(default_factory=list)
    unused_captions: Counter = field(default_factory=Counter)

    @property
    def num_dropped(self) -> int:
        return sum(self.dropped.values())


@dataclass
class LoadReport:
    """Per-split ``SplitReport`` of one ``load_benchmark`` call. With ``streaming=True`` the counts grow
    as the stream is consumed in this process (over every pass; ``DataLoader`` workers count their own)."""

    splits: dict[str, SplitReport] = field(default_factory=dict)

    @property
    def num_dropped(self) -> int:
        return sum(s.num_dropped for s in self.splits.values())

    def summary(self) -> str:
        lines = []
        for name, s in self.splits.items():
            reasons = ", ".join(f"{n} {why}" for why, n in sorted(s.dropped.items())) or "none"
            lines.append(f"{name}: kept {s.kept}, dropped {s.num_dropped} ({reasons})")
        return "\n".join(lines)


def check_on_missing(on_missing: str) -> None:
    if on_missing not in ON_MISSING_CHOICES:
        raise ValueError(
            f"on_missing={on_missing!r} is not a policy; use 'error' (stop at the first incomplete "
            "instance) or 'drop' (skip incomplete instances and report the count)."
        )


def select_languages(requested: Sequence[str] | None, available: Sequence[str], benchmark: str) -> list[str]:
    """The languages to load, in the order requested (all ``available`` ones when None).

    Raises ValueError for a code the benchmark does not have, naming the codes it has.
    """
    if requested is None:
        if not available:
            raise ValueError(f"{benchmark}: found captions in no language; check the data folder layout.")
        return list(available)
    if isinstance(requested, str):
        raise ValueError(
            f"languages must be a list of codes such as ['en', 'de'], not the string {requested!r}."
        )
    chosen = list(requested)
    if not chosen:
        raise ValueError("languages is empty; pass None for all languages or a list such as ['en', 'de'].")
    duplicates = sorted(lang for lang, n in Counter(chosen).items() if n > 1)
    if duplicates:
        raise ValueError(f"languages lists {duplicates} more than once; give each code once.")
    unknown = [lang for lang in chosen if lang not in available]
    if unknown:
        raise ValueError(
            f"{benchmark} has no language {', '.join(map(repr, unknown))}; its language codes are "
            f"{', '.join(available)}. Choose languages among those."
        )
    return chosen


def check_split_languages(
    benchmark: str, split: str, selected: Sequence[str], split_languages: dict[str, list[str]]
) -> None:
    """Raises ValueError when a selected language has no captions in ``split``.

    ``split_languages`` maps each split of a folder to the caption languages found in its own files; the
    message names the split, the missing codes, the split's languages and those every split has.
    """
    has = split_languages[split]
    missing = [lang for lang in selected if lang not in has]
    if missing:
        common = [lang for lang in has if all(lang in langs for langs in split_languages.values())]
        raise ValueError(
            f"{benchmark}: split {split!r} has no captions in {', '.join(map(repr, missing))}; its languages "
            f"are {', '.join(has) or '(none)'} (every split has {', '.join(common) or '(none in common)'}). "
            f"Select languages among those (languages=[...], --languages), or load another split; "
            "every loaded split must hold every selected language."
        )


def check_image_bytes(data: bytes) -> str | None:
    """Decodes ``data`` fully (JPEG at reduced scale, which still reads every byte); returns the decoder's
    complaint, or None when the image is readable."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format == "JPEG":
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    except Exception as error:  # PIL raises several types (UnidentifiedImageError, OSError, SyntaxError, ...)
        return f"{type(error).__name__}: {error}"
    return None


def _image_problem(instance: Instance) -> tuple[str, str, dict[str, Any] | None]:
    """(reason, message, encoded image) for one instance; reason is "" when the image is fine."""
    ref = instance.image
    if ref.outside:
        return (
            "image outside the data folder",
            f"instance {instance.id!r} ({instance.origin}) names the image {ref.name!r}, which leads out of the "
            "data folder; name each image by its path inside the image folder, without '..' (move or link the "
            "file into it), or pass on_missing='drop' to skip such instances.",
            None,
        )
    if not ref.found:
        return (
            "missing image file",
            f"image {ref.describe()} not found (instance {instance.id!r}, {instance.origin}). Point "
            "image_dir at the folder holding the benchmark's images, or pass on_missing='drop' to skip "
            "instances without one.",
            None,
        )
    if ref.data is not None:
        data, where, encoded = ref.data, ref.name or "embedded bytes", {"bytes": ref.data, "path": ref.name}
    else:
        try:
            data = ref.path.read_bytes()
        except OSError as error:
            return (
                "missing image file",
                f"image file {ref.path} cannot be read ({error}; instance {instance.id!r}, "
                f"{instance.origin}).",
                None,
            )
        where, encoded = str(ref.path), {"bytes": None, "path": os.path.abspath(ref.path)}
    complaint = check_image_bytes(data)
    if complaint is not None:
        return (
            "unreadable image",
            f"image {where} of instance {instance.id!r} ({instance.origin}) does not decode ({complaint}). "
            "Replace the file with a valid image, or pass on_missing='drop' to skip such instances.",
            None,
        )
    return "", "", encoded


def _check_new_id(instance: Instance, seen: dict[str, str]) -> None:
    """Records ``instance``'s id in ``seen`` (id -> origin), refusing an id that an earlier instance has:
    an id names one image (the training collator's image cache, the demo's picks and the index go by it)."""
    if instance.id in seen:
        raise ValueError(
            f"id {instance.id!r} names two instances, {seen[instance.id]} and {instance.origin}; give every image "
            "one row with an id of its own (ids default to the file name without its extension where the "
            "format has no id column)."
        )
    seen[instance.id] = instance.origin


def instance_rows(
    instances: Iterable[Instance],
    languages: Sequence[str],
    on_missing: str,
    report: SplitReport,
    with_keywords: bool,
    seen_ids: dict[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Applies the policy to each instance and yields rows of the common schema for ``languages``.

    Rows: {"id", "image": {"bytes", "path"}, "captions": {lang: text}, ["keywords": {lang: [..]}], extras}.
    With ``seen_ids`` (id -> origin of the rows so far, filled in here) a kept instance whose id an
    earlier one has raises ValueError naming both.
    """
    for instance in instances:
        report.unused_captions.update(instance.unused_captions)
        missing = [lang for lang in languages if is_blank(instance.captions.get(lang) or "")]
        if missing:
            reason = f"no caption in {missing[0]!r}"
            where = instance.expected_in.get(missing[0], instance.origin)
            message = (
                f"instance {instance.id!r} ({instance.origin}) has no caption in {missing[0]!r} "
                f"(looked in {where}). Pass on_missing='drop' to skip instances lacking a selected "
                "language (the count is reported), or leave that language out of languages."
            )
            image = None
        else:
            reason, message, image = _image_problem(instance)
        if reason:
            if on_missing == "error":
                raise ValueError(message)
            report.dropped[reason] += 1
            if len(report.dropped_examples) < _EXAMPLES_KEPT:
                report.dropped_examples.append(f"{instance.id} ({instance.origin}): {reason}")
            continue
        if seen_ids is not None:
            _check_new_id(instance, seen_ids)
        row: dict[str, Any] = {
            "id": instance.id,
            "image": image,
            "captions": {lang: instance.captions[lang] for lang in languages},
        }
        if with_keywords:
            words = instance.keywords or {}
            row["keywords"] = {lang: list(words.get(lang) or []) for lang in languages}
        row.update(instance.extra)
        report.kept += 1
        yield row


def log_report(benchmark: str, split: str, report: SplitReport) -> None:
    if report.num_dropped:
        reasons = ", ".join(f"{n} x {why}" for why, n in sorted(report.dropped.items()))
        logger.warning(
            "%s/%s: dropped %d of %d instances (%s); first: %s",
            benchmark,
            split,
            report.num_dropped,
            report.num_dropped + report.kept,
            reasons,
            "; ".join(report.dropped_examples[:3]),
        )
    if report.unused_captions:
        logger.info(
            "%s/%s: kept the first caption per language and image; further captions not used: %s",
            benchmark,
            split,
            dict(report.unused_captions),
        )


@dataclass
class SplitPlan:
    """How to produce one split: ``instances(shards)`` yields its instances (called once per pass over
    the data); ``shards`` (for example the files of a corpus) are split between the workers of a
    streaming ``DataLoader``; ``extra_features`` type the benchmark-specific extra columns."""

    instances: Callable[[list[Any]], Iterable[Instance]]
    shards: list[Any] = field(default_factory=lambda: [None])
    extra_features: datasets.Features | None = None
    with_keywords: bool = False


class BenchmarkSource(Protocol):
    """A benchmark in its published layout, opened on a local folder."""

    name: str
    languages: list[str]  # the language codes it has, in package order
    splits: list[str]  # the split names it has

    def default_splits(self, languages: Sequence[str]) -> list[str]:
        """The splits loaded when no split is named."""

    def plan(self, split: str, languages: Sequence[str]) -> SplitPlan:
        """How to read ``split`` for the selected ``languages``."""


def materialize(
    benchmark: str,
    split: str,
    plan: SplitPlan,
    languages: Sequence[str],
    on_missing: str,
    report: LoadReport,
    streaming: bool,
) -> datasets.Dataset | datasets.IterableDataset:
    """Builds the split as an in-memory ``Dataset`` or, with ``streaming``, an ``IterableDataset`` whose
    rows are read, checked and counted as they are consumed. In memory, ids are checked to be unique (a
    stream is not: that would hold every id of a corpus read lazily because it is large)."""
    features = common_features(languages, plan.with_keywords, plan.extra_features)
    split_report = report.splits.setdefault(split, SplitReport())

    if streaming:

        def generate(shards: list[Any]) -> Iterator[dict[str, Any]]:
            instances = plan.instances(shards)
            yield from instance_rows(instances, languages, on_missing, split_report, plan.with_keywords)
            log_report(benchmark, split, split_report)

        return datasets.IterableDataset.from_generator(
            generate, features=features, gen_kwargs={"shards": plan.shards}, split=datasets.NamedSplit(split)
        )

    instances = plan.instances(plan.shards)
    rows = list(instance_rows(instances, languages, on_missing, split_report, plan.with_keywords, seen_ids={}))
    log_report(benchmark, split, split_report)
    columns = {name: [row[name] for row in rows] for name in features}
    return datasets.Dataset.from_dict(columns, features=features, split=datasets.NamedSplit(split))
