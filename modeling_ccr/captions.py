"""Captions of n images in K languages as one image-major list of n*K texts.

:func:`check_captions` is the check that every image has a caption in each language; it runs where data
enter (the loaders check as they read, an evaluation checks the dataset it is handed once). Inside (the
training collator, the evaluation loops) the rows are trusted and only laid out with
:func:`image_major_captions`.

Kept free of heavy imports (no ``datasets``), so the training code runs where only torch and
transformers are installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from .processing_ccr import is_blank


def check_captions(
    caption_rows: Iterable[Mapping[str, str | None] | None],
    languages: Sequence[str],
    row_label: Callable[[int], str],
    fix: str,
) -> None:
    """Raise a ValueError at the first of the ``captions`` structs of n images that lacks a caption in one
    of ``languages``: missing, empty or blank (only whitespace or invisible characters, as
    :func:`~modeling_ccr.processing_ccr.is_blank` defines it). The message names the row
    (``row_label(j)``), the language and ``fix``.
    """
    for index, captions in enumerate(caption_rows):
        for language in languages:
            text = captions.get(language) if captions is not None else None
            if not isinstance(text, str) or is_blank(text):
                raise ValueError(
                    f"{row_label(index)} has no caption in {language!r} (got {text!r}): every image needs a "
                    f"caption in each of {list(languages)}; {fix}"
                )


def image_major_captions(caption_rows: Iterable[Mapping[str, str]], languages: Sequence[str]) -> list[str]:
    """``captions`` structs of n images -> their n*K captions, image-major: row ``j*K + k`` is image j in
    ``languages[k]``. The rows are trusted (checked where they entered, see :func:`check_captions`)."""
    return [captions[language] for captions in caption_rows for language in languages]
