"""The one check that every image has a caption in each language, shared by training and evaluation.

Kept free of heavy imports (no ``datasets``), so the training code runs where only torch and
transformers are installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from .processing_ccr import is_blank


def image_major_captions(
    caption_rows: Iterable[Mapping[str, str | None] | None],
    languages: Sequence[str],
    row_label: Callable[[int], str],
    fix: str,
) -> list[str]:
    """``captions`` structs of n images -> their n*K captions, image-major (row ``j*K + k`` is image j in
    ``languages[k]``). A missing, empty or blank caption (only whitespace or invisible characters, as
    :func:`~modeling_ccr.processing_ccr.is_blank` defines it) raises a ValueError naming the row
    (``row_label(j)``), the language and ``fix``.
    """
    texts = []
    for index, captions in enumerate(caption_rows):
        for language in languages:
            text = captions.get(language) if captions is not None else None
            if not isinstance(text, str) or is_blank(text):
                raise ValueError(
                    f"{row_label(index)} has no caption in {language!r} (got {text!r}): every image needs a "
                    f"caption in each of {list(languages)}; {fix}"
                )
            texts.append(text)
    return texts
