"""The Gradio 6 app of the demo: three tabs over one gallery index and one model held in memory.

API endpoints (``gradio_client.Client(url).predict(..., api_name=...)``; ``view_api()`` shows every
parameter with its type and default, and every output by its label):
    /text_to_image  (query, language=<first>, k=8, rerank=<saved>)  -> (results, status)
    /image_to_text  (upload=None, pick=None)  -> (ranked_image, captions_ranked_per_language,
                                                  gold_caption_rank_per_language, status)
    /consistency    (concept=<"code: query" lines>)  -> (top_5_per_language, results_per_language, status)

Bad input (an empty query, k out of range, a file that is not an image, ...) is answered in the Status
output and never prints a traceback in the server log: the events skip Gradio's preprocessing
(``preprocess=False``; a gr.Slider's range check and a gr.Image's opening of the file raise errors that
print one) and the handlers check every value they get (:func:`whole_number`, :func:`uploaded_path`).

The page is laid out for any width (``DEMO_CSS``): result grids take as many columns as fit (two on a
390 px phone), show every row and their whole captions, and draw small images (the 64 px emoji) at their
own size instead of blowing them up; tables are long (one row per result) and wrap.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from ...atomic_io import atomic_write
from ...processing_ccr import to_rgb_image
from ..index.gallery import GalleryIndex
from ..index.session import MAX_K, known_languages, saved_search_reranking
from . import handlers

CONCURRENCY_LIMIT = 4  # requests served at once; the rest wait in the queue
QUEUE_SIZE = 64
SHOWN_SIZE = 512  # the longer side, in pixels, of the gallery images the page shows
TEXT_EXAMPLES = [
    ["rotes Herz", "de"],
    ["猫の顔", "ja"],
    ["красное яблоко", "ru"],
    ["笑脸", "zh"],
    ["pomme verte", "fr"],
    ["smiling face with sunglasses", "en"],
]
CONSISTENCY_EXAMPLE = "en: cat face\nde: Katzengesicht\nja: 猫の顔\nru: морда кошки\nzh: 猫脸"

DEMO_CSS = """
/* Result grids: as many columns as fit (two on a phone), every row shown (no inner scroll box), whole
   captions under the images, small images at their own size (a 64 px emoji is not blown up). */
.ccr-gallery .grid-wrap { max-height: none !important; min-height: 0 !important; height: auto !important;
                          overflow: visible !important; }
.ccr-gallery .grid-container { grid-template-columns: repeat(auto-fill, minmax(min(8.5rem, 100%), 1fr)) !important;
                               grid-template-rows: none !important; grid-auto-rows: auto !important;
                               padding-top: 1.75rem; }
.ccr-gallery .thumbnail-item { aspect-ratio: auto !important; height: 100% !important; display: flex;
                               flex-direction: column; align-items: center; justify-content: space-between;
                               gap: 4px; padding: 6px 4px 4px; }
.ccr-gallery .thumbnail-item > img { width: auto !important; height: auto !important; max-width: 100%;
                                     max-height: 16rem; object-fit: contain; }
.ccr-gallery .caption-label { position: static !important; max-width: 100% !important; white-space: normal !important;
                              overflow-wrap: break-word; text-overflow: clip !important; text-align: center;
                              border: 0 !important; opacity: 1 !important; }
/* One row per language: a fixed number of columns that shrink to fit, tighter on a phone. */
.ccr-rows .grid-container { grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr)) !important; }
.ccr-rows .caption-label { font-size: 0.75em !important; hyphens: auto; }
@media (max-width: 640px) {
  .ccr-rows .grid-container { gap: 4px !important; }
  .ccr-rows .thumbnail-item { padding: 4px 1px 2px; }
}
/* Result tables (widths in % of the table: column_widths) in proportional type, smaller on a phone. */
.ccr-table { --font-mono: var(--font); }
@media (max-width: 640px) { .ccr-table { --input-text-size: var(--text-sm); } }
/* The examples' table wraps its text instead of overflowing sideways. */
#t2i-examples table { width: 100%; table-layout: fixed; }
#t2i-examples td, #t2i-examples th { overflow-wrap: break-word; white-space: normal; }
"""

INTRO = """# Cross-lingual image search with 1-to-K contrastive learning
A CCR model (Nie et al., KDD 2024) puts images and captions in ten languages in one space. Type a query
in any language, rank captions for an image, or see whether several languages agree."""


def describe_gallery(index: GalleryIndex) -> str:
    """One line on where the gallery's images come from."""
    source = index.manifest["source"]
    if source["kind"] == "folder":
        return f"{len(index)} images of the folder `{source['folder']}`"
    return (f"{len(index)} images of `{source['benchmark']}` (split {source['split']}), captions in "
            f"{', '.join(source['languages'])}")


class ShownImages:
    """The gallery images as the page shows them: RGB PNGs at most ``SHOWN_SIZE`` pixels on their longer
    side, each written once into a temporary folder of their own (removed with the demo or at exit).

    The app hands Gradio these copies, never a path of the gallery, and Gradio sends them from its cache:
    so no other file of the gallery's folders (a note, a hidden key) is ever on the web. Gradio copies
    returned files from the system's temporary folder, where this one is. (Images handed to Gradio as PIL
    images are rewritten in its cache at every request, which truncates the file another request is
    sending; copies of files are written atomically.)
    """

    def __init__(self):
        self._folder = tempfile.TemporaryDirectory(prefix="ccr-demo-shown-")

    def __call__(self, path: str | os.PathLike) -> str:
        """The shown copy of the gallery image at ``path``, made on first use (atomically: requests that
        make it at once each write a complete copy)."""
        shown = Path(self._folder.name) / f"{hashlib.sha256(os.fsencode(path)).hexdigest()[:32]}.png"
        if not shown.is_file():
            image = to_rgb_image(path)
            image.thumbnail((SHOWN_SIZE, SHOWN_SIZE))
            atomic_write(shown, lambda temporary: image.save(temporary, format="PNG"))
        return str(shown)


def whole_number(value, name: str) -> int:
    """A count as the page or an API client sent it, as an int (rounded); anything but a finite number
    raises ValueError. Its range is the handler's to check."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a whole number, got {value!r}.")
    return round(value)


def uploaded_path(value) -> str | None:
    """The path of an uploaded image as the page or an API client sent it (a file payload, or a path when
    an example or a direct call passes one), None for none; the file itself is checked by
    :func:`handlers.open_upload`."""
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, dict) and value.get("path"):
        return value["path"]
    raise ValueError("The image could not be read: upload it as a PNG, JPEG, WebP, GIF or BMP file.")


def describe_model(model) -> str:
    """The model's folder and whether it is trained, for the page."""
    state = ("⚠️ untrained (random projections and heads, as ccr build-default saves them): results are at "
             "chance level" if getattr(model.config, "untrained", False) else "trained")
    return f"`{model.name_or_path}`, {state}"


def build_demo(index: GalleryIndex, model, processor, title: str = "ccr-1tok demo") -> gr.Blocks:
    """The app over ``index`` with ``model`` / ``processor`` (loaded once, shared by every request); serve it
    with :func:`launch_demo`, which adds its style sheet."""
    languages = known_languages(index)
    has_captions = index.caption_embeds is not None
    shown_image = ShownImages()
    most = min(MAX_K, len(index))

    def shown(items):
        """Gallery items ``[(gallery path, label)]`` as the page shows them (:class:`ShownImages`)."""
        return [(shown_image(path), label) for path, label in items]

    @handlers.friendly([])
    def search(query, language, k, rerank):
        """Text -> image: the top k gallery images for a query in any language."""
        items, message = handlers.text_to_image(query, index, model, processor, language=language,
                                                k=whole_number(k, "k"), rerank=whole_number(rerank, "rerank"))
        return shown(items), message

    @handlers.friendly(None, pd.DataFrame(), None)
    def describe(upload=None, pick=None):
        """Image -> text: the captions of each language ranked for an uploaded or a picked gallery image."""
        upload = uploaded_path(upload)
        image, *results = handlers.image_to_text(upload, pick, index, model, processor)
        # an upload is shown from Gradio's upload folder, where it is; a gallery image as pixels
        return (shown_image(image) if image and not upload else image, *results)

    @handlers.friendly([], pd.DataFrame())
    def compare(concept):
        """Consistency: one concept in several languages ("code: query" lines), the results side by side."""
        items, table, message = handlers.consistency(concept, index, model, processor)
        return shown(items), table, message

    with gr.Blocks(title=title) as demo:
        gr.Markdown(INTRO + f"\n\nGallery: {describe_gallery(index)}.", elem_id="about")
        gr.Markdown(f"**Model:** {describe_model(model)}.", elem_id="model-state")
        with gr.Tab("Text → image"):
            with gr.Row():
                query = gr.Textbox(label="Query (any language)", placeholder="e.g. rotes Herz, 猫の顔, кошка",
                                   scale=4, min_width=200, elem_id="t2i-query")
                language = gr.Dropdown(languages, value=languages[0], label="Caption language",
                                       allow_custom_value=True, scale=1, min_width=120)
            with gr.Row():
                k = gr.Slider(1, most, min(8, most), step=1, precision=0, label="Number of results",
                              min_width=200)
                rerank = gr.Slider(0, most, min(saved_search_reranking(model.config)[0], most), step=1, precision=0,
                                   label="Re-rank the top N with the fusion encoder (0: off; starts at the "
                                   "model's saved choice)", min_width=200)
            button = gr.Button("Search", variant="primary", elem_id="t2i-search")
            status = gr.Markdown(label="Status", elem_id="t2i-status")
            gallery = gr.Gallery(label="Results", columns=4, allow_preview=False, elem_id="t2i-gallery",
                                 elem_classes=["ccr-gallery"])
            inputs, outputs = [query, language, k, rerank], [gallery, status]
            gr.Examples([[text, code if code in languages else languages[0], k.value, rerank.value]
                         for text, code in TEXT_EXAMPLES], inputs, outputs, fn=search, run_on_click=True,
                        cache_examples=False, visible_columns=[0, 1], elem_id="t2i-examples")
            button.click(search, inputs, outputs, api_name="text_to_image", preprocess=False)
            query.submit(search, inputs, outputs, api_visibility="private", preprocess=False)
        with gr.Tab("Image → text"):
            with gr.Row():
                upload = gr.Image(type="filepath", sources=["upload", "clipboard", "webcam"], height=260,
                                  label="Upload, paste or take a photo", elem_id="i2t-upload")
                pick = gr.Dropdown(handlers.pick_choices(index) if has_captions else [], value=None,
                                   label="…or pick a gallery image", allow_custom_value=True, elem_id="i2t-pick")
            describe_button = gr.Button("Rank captions", variant="primary", elem_id="i2t-rank")
            i2t_status = gr.Markdown(label="Status", elem_id="i2t-status")
            with gr.Row():
                ranked = gr.Image(label="Ranked image", type="filepath", height=220, interactive=False,
                                  min_width=200, elem_id="i2t-image")
                chart = gr.Plot(label="Gold caption rank per language", show_label=False, min_width=200,
                                elem_id="i2t-chart")  # its title says what it is
            captions = gr.Dataframe(label="Captions ranked per language", wrap=True, elem_id="i2t-table",
                                    column_widths=["18%", "12%", "52%", "18%"], elem_classes=["ccr-table"])
            describe_button.click(describe, [upload, pick], [ranked, captions, chart, i2t_status],
                                  api_name="image_to_text", preprocess=False)
        with gr.Tab("Consistency"):
            concept = gr.Textbox(label="One concept, one language per line ('code: query')", lines=5,
                                 value=CONSISTENCY_EXAMPLE, elem_id="cons-text")
            compare_button = gr.Button("Compare languages", variant="primary", elem_id="cons-compare")
            cons_status = gr.Markdown(label="Status", elem_id="cons-status")
            side_by_side = gr.Gallery(label=f"Top {handlers.CONSISTENCY_TOP} per language",
                                      columns=min(handlers.CONSISTENCY_TOP, len(index)), allow_preview=False,
                                      elem_id="cons-gallery", elem_classes=["ccr-gallery", "ccr-rows"])
            table = gr.Dataframe(label="Results per language", wrap=True, elem_id="cons-table",
                                 column_widths=["34%", "12%", "36%", "18%"], elem_classes=["ccr-table"])
            compare_button.click(compare, [concept], [side_by_side, table, cons_status], api_name="consistency",
                                 preprocess=False)
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_SIZE)
    return demo


def launch_demo(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, **options):
    """Serve ``demo`` (non-blocking with ``prevent_thread_lock=True``), sending files from Gradio's own
    folders only: uploads and the images of answers (copies: :class:`ShownImages`), no folder of the
    gallery, whose notes, hidden files and even images are refused (403) when asked for by path. Uploads
    are limited to ``handlers.MAX_UPLOAD_BYTES``; the page gets ``DEMO_CSS``."""
    return demo.launch(server_name=host, server_port=port, allowed_paths=[], css=DEMO_CSS,
                       max_file_size=f"{handlers.MAX_UPLOAD_BYTES // 2**20}mb", **options)
