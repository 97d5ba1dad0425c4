"""The demo's three handlers, plain functions of (input, index, model, processor) returning what the page
shows. Bad input never raises: every handler returns its empty outputs and a message that says what to do.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from PIL import Image, ImageOps, UnidentifiedImageError

from ...processing_ccr import check_image_size, to_rgb_image
from ..index.gallery import GalleryIndex
from ..index.search import encode_images, rank_captions
from ..index.session import (
    check_language,
    check_query,
    known_languages,
    saved_search_reranking,
    text_to_image_rows,
)

logger = logging.getLogger(__name__)

MAX_IMAGE_PIXELS = 40_000_000  # 40 MP: larger uploads are refused before they are decoded
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
TOP_CAPTIONS = 5
CONSISTENCY_TOP = 5  # results per language in the consistency tab
MAX_CONSISTENCY_LANGUAGES = 10
PICK_SEPARATOR = " · "


def friendly(*empty):
    """Decorator: a handler that raises returns ``(*empty, message)`` instead; ValueError messages are
    shown as they are, anything else as a short apology (the traceback goes to the server log only)."""

    def wrap(handler):
        @functools.wraps(handler)
        def run(*args, **kwargs):
            try:
                return handler(*args, **kwargs)
            except ValueError as error:
                return (*empty, f"⚠️ {error}")
            except Exception as error:  # never show a stack trace in the page
                logger.exception("demo handler %s failed", handler.__name__)
                return (*empty, f"⚠️ Something went wrong ({type(error).__name__}); please try another input.")

        return run

    return wrap


@friendly([])
def text_to_image(query, index: GalleryIndex, model, processor, language="en", k=8, rerank=0):
    """Query (any language) -> (gallery ``[(image path, label)]`` best first, status message).

    Labels read "rank. caption (in ``language``) or id · score"; with ``rerank`` N > 0 the top N are
    re-scored by the fusion encoder in the mode the model's config saved (:func:`saved_search_reranking`):
    the ITM "matches" logit ("replace") or cosine + weight * logit ("combine").
    """
    rows = text_to_image_rows(query, index, model, processor, language=language, k=k, rerank=rerank)
    gallery = [(row["path"], f"{rank}. {row['caption'] or row['id']} · {row['score']:.3f}")
               for rank, row in enumerate(rows, start=1)]
    _, mode, weight = saved_search_reranking(model.config)
    score = f"cosine + {weight:g} × ITM logit" if mode == "combine" else "ITM logit"
    how = f", top {min(rerank, len(rows))} re-ranked by the fusion encoder ({score})" if rerank else " (cosine)"
    return gallery, f"{len(rows)} of {len(index)} images for “{query.strip()}”{how}."


def pick_choices(index: GalleryIndex, language: str | None = None, limit: int = 500) -> list[str]:
    """Dropdown entries "id · caption" of the first ``limit`` gallery items."""
    language = language or (index.languages[0] if index.languages else None)
    return [PICK_SEPARATOR.join(filter(None, [item["id"], index.caption(i, language) if language else None]))
            for i, item in enumerate(index.items[:limit])]


def _picked_item(pick: str, index: GalleryIndex) -> int:
    item_id = pick.split(PICK_SEPARATOR)[0].strip()
    for i, item in enumerate(index.items):
        if item["id"] == item_id:
            return i
    raise ValueError(f"{item_id!r} is not an image of this gallery: pick one from the list.")


def open_upload(path: str | Path) -> Image.Image:
    """An uploaded file as an RGB image, upright as its EXIF orientation says (a phone photo as the phone
    showed it) and transparency on white (as the processor does), refusing files over ``MAX_UPLOAD_BYTES``,
    non-images, images over ``MAX_IMAGE_PIXELS`` and images the processor refuses by their size (too
    elongated: :func:`check_image_size`), the last two from the file's header, before decoding."""
    path = Path(path)
    if path.stat().st_size > MAX_UPLOAD_BYTES:
        raise ValueError(f"The file is over {MAX_UPLOAD_BYTES // 2**20} MB: upload a smaller image.")
    try:
        with Image.open(path) as image:  # reads the header only
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ValueError(
                    f"The image is {width:,} x {height:,} pixels; the demo takes up to "
                    f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels: downscale it (the model sees it at a few "
                    "hundred pixels anyway) and upload again."
                )
            check_image_size(width, height, f"The image ({width:,} x {height:,} pixels)")
            image.load()
            return to_rgb_image(ImageOps.exif_transpose(image))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError):
        raise ValueError(
            f"{path.name} is not an image the demo can read: upload a PNG, JPEG, WebP, GIF or BMP file."
        ) from None


def rank_chart(ranks: dict[str, int], rank_std: float | None, title: str) -> Figure:
    """A small bar chart of the gold caption's 0-based rank per language, titled ``title`` and its rank std
    (on a second line, so that the title fits a phone's width)."""
    figure = Figure(figsize=(5.5, 2.6), dpi=100)
    axes = figure.subplots()
    languages = list(ranks)
    axes.bar(languages, [ranks[code] for code in languages], color="#4c72b0")
    axes.set_ylabel("gold caption rank (0 = first)")
    std = f"\nrank std {rank_std:.2f} (its share of MRV)" if rank_std is not None else ""
    axes.set_title(f"{title}{std}", fontsize=9)
    figure.tight_layout()
    return figure


@friendly(None, pd.DataFrame(), None)
def image_to_text(upload, pick, index: GalleryIndex, model, processor):
    """An uploaded image (file path) or a picked gallery item ("id · caption") -> (the image, a table of the
    top captions per language, gold-rank chart or None, message).

    The table is long, one row per caption (columns language, rank (1 = best), caption, cosine score), so
    that it wraps on a narrow screen however many languages the gallery has. For a picked item of a
    benchmark gallery the chart shows its own caption's rank in each language.
    """
    if index.caption_embeds is None:
        raise ValueError("This gallery has no captions: start the demo on a benchmark gallery to rank captions.")
    if upload:
        image, item, shown = open_upload(upload), None, str(upload)
    elif pick:
        item = _picked_item(pick, index)
        shown = str(index.image_path(item))
        image = to_rgb_image(shown)
    else:
        raise ValueError("Upload an image or pick one of the gallery's images first.")
    ranking = rank_captions(index, encode_images(model, processor, [image])[0], top=TOP_CAPTIONS, item=item)
    table = pd.DataFrame(
        [(code, rank, index.caption(i, code), round(score, 3))
         for code in index.languages for rank, (i, score) in enumerate(ranking.top[code], start=1)],
        columns=["language", "rank", "caption", "score"],
    )
    if item is None:
        return shown, table, None, f"Top {TOP_CAPTIONS} of {len(index)} captions in each language."
    chart = rank_chart(ranking.gold_ranks, ranking.rank_std,
                       f"Gold caption rank per language of {index.items[item]['id']}")
    worst = max(ranking.gold_ranks, key=ranking.gold_ranks.get)
    message = ("Gold caption ranks: " + ", ".join(f"{code} {rank}" for code, rank in ranking.gold_ranks.items())
               + f"; hardest language: {worst}.")
    return shown, table, chart, message


def parse_concept(text: str, index: GalleryIndex) -> list[tuple[str, str]]:
    """Lines "code: query" -> [(language, query)]; unknown codes, empty or overlong queries raise."""
    pairs = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        code, colon, query = line.partition(":")
        if not colon:
            raise ValueError(f"Line {number} has no 'code:' in front: write e.g. 'de: Katze'.")
        pairs.append((check_language(code, index), check_query(query)))
    if not pairs:
        raise ValueError("Type the concept in a few languages, one per line, e.g. 'en: cat' and 'de: Katze'.")
    if len(pairs) > MAX_CONSISTENCY_LANGUAGES:
        raise ValueError(f"Compare at most {MAX_CONSISTENCY_LANGUAGES} languages at once.")
    return pairs


@friendly([], pd.DataFrame())
def consistency(text, index: GalleryIndex, model, processor, k=CONSISTENCY_TOP):
    """One concept in several languages ("code: query" lines) -> (gallery ``[(image path, label)]``: the top
    ``k`` images of each line in turn, so that a grid of ``k`` columns shows one language per row; a long
    table, one row per result (columns query, rank, result (its caption in the gallery's first language, or
    its id), cosine score); a message saying how much the languages agree)."""
    pairs = parse_concept(text, index)
    display = index.languages[0] if index.languages else None
    gallery, rows, top_sets = [], [], []
    for language, query in pairs:
        found = text_to_image_rows(query, index, model, processor, language=display, k=k)
        for rank, row in enumerate(found, start=1):
            result = row["caption"] or row["id"]
            gallery.append((row["path"], f"{language} {rank}. {result}"))
            rows.append((f"{language}: {query}", rank, result, round(row["score"], 3)))
        top_sets.append({row["index"] for row in found})
    table = pd.DataFrame(rows, columns=["query", "rank", "result", "score"])
    shared = set.intersection(*top_sets)
    union = set.union(*top_sets)
    message = (f"{len(shared)} of {len(union)} images are in every language's top {k}; "
               f"languages: {', '.join(known_languages(index))}.")
    return gallery, table, message
