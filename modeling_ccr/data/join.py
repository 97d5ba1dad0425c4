"""Joins per-language caption files into one instance per image (for the formats that keep each
language in its own file: xFlickr&CO, Multi30K, multilingual COCO, WIT)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .schema import ImageRef, Instance


@dataclass(frozen=True)
class CaptionRecord:
    """One caption as read from a language's file: the image ``id`` it belongs to, the ``image`` key the
    file gives for it (a relative path or URL), the text, and where it was read (file and line)."""

    id: str
    image: str
    text: str
    origin: str


def join_captions(
    records: Mapping[str, Sequence[CaptionRecord]],
    languages: Sequence[str],
    expected_in: Mapping[str, str],
    resolve_image: Callable[[str], ImageRef],
    members: Sequence[tuple[str, str, str]] | None = None,
) -> list[Instance]:
    """One ``Instance`` per image over the selected ``languages``.

    ``members`` (id, image key, origin), when the format lists a split's images in a file of its own,
    fixes which images the split has and their order; records of other images are ignored. Without it,
    instances come in order of first appearance, scanning the languages in the order given.

    An image's first non-empty caption in each language is kept; further ones are counted in
    ``Instance.unused_captions``. A language without a file for this split has no entry in ``records``;
    its captions are then missing, and ``expected_in[lang]`` names the file that should have held them.
    Raises ValueError when two files give the same id different images.
    """
    instances: dict[str, Instance] = {}
    image_keys: dict[str, tuple[str, str]] = {}

    def add(image_id: str, image: str, origin: str) -> None:
        image_keys[image_id] = (image, origin)
        instances[image_id] = Instance(
            id=image_id,
            image=resolve_image(image),
            captions={},
            origin=origin,
            expected_in={lang: expected_in[lang] for lang in languages},
        )

    for image_id, image, origin in members or ():
        if image_id not in instances:
            add(image_id, image, origin)
    for lang in languages:
        for record in records.get(lang, ()):
            known = image_keys.get(record.id)
            if known is None:
                if members is not None:
                    continue
                add(record.id, record.image, record.origin)
            elif known[0] != record.image:
                raise ValueError(
                    f"id {record.id!r} has image {known[0]!r} in {known[1]} but {record.image!r} in "
                    f"{record.origin}; the annotation files disagree. Use the files of one release."
                )
            instance = instances[record.id]
            text = record.text.strip()
            if lang in instance.captions:
                instance.unused_captions[lang] = instance.unused_captions.get(lang, 0) + 1
            elif text:
                instance.captions[lang] = text
    return list(instances.values())
