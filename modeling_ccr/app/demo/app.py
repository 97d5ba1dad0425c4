"""The Gradio 6 app of the demo: three tabs over one gallery index and one model held in memory.

API endpoints (``gradio_client.Client(url).predict(..., api_name=...)``):
    /text_to_image  (query, language, k, rerank)  -> (gallery, message)
    /image_to_text  (upload file, picked item)    -> (image, caption table, gold-rank chart, message)
    /consistency    ("code: query" lines)         -> (table, message)
"""

from __future__ import annotations

import hashlib
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


def describe_model(model) -> str:
    """The model's folder and whether it is trained, for the page."""
    state = ("⚠️ untrained (random projections and heads, as ccr build-default saves them): results are at "
             "chance level" if getattr(model.config, "untrained", False) else "trained")
    return f"`{model.name_or_path}`, {state}"


def build_demo(index: GalleryIndex, model, processor, title: str = "ccr-1tok demo") -> gr.Blocks:
    """The app over ``index`` with ``model`` / ``processor`` (loaded once, shared by every request)."""
    languages = known_languages(index)
    has_captions = index.caption_embeds is not None
    shown_image = ShownImages()

    @handlers.friendly([])
    def search(query, language, k, rerank):
        items, message = handlers.text_to_image(query, index, model, processor, language=language, k=k,
                                                rerank=rerank)
        return [(shown_image(path), label) for path, label in items], message

    @handlers.friendly(None, pd.DataFrame(), None)
    def describe(upload, pick):
        shown, *results = handlers.image_to_text(upload, pick, index, model, processor)
        # an upload is shown from Gradio's upload folder, where it is; a gallery image as pixels
        return (shown_image(shown) if shown and not upload else shown, *results)

    def compare(text):
        return handlers.consistency(text, index, model, processor)

    with gr.Blocks(title=title) as demo:
        gr.Markdown(INTRO + f"\n\nGallery: {describe_gallery(index)}.\n\nModel: {describe_model(model)}.",
                    elem_id="about")
        with gr.Tab("Text → image"):
            with gr.Row():
                query = gr.Textbox(label="Query (any language)", placeholder="e.g. rotes Herz, 猫の顔, кошка",
                                   scale=4, elem_id="t2i-query")
                language = gr.Dropdown(languages, value=languages[0], label="Caption language",
                                       allow_custom_value=True, scale=1)
            with gr.Row():
                k = gr.Slider(1, min(MAX_K, len(index)), value=min(8, len(index)), step=1, label="Results")
                rerank = gr.Slider(0, min(MAX_K, len(index)), value=min(saved_search_reranking(model.config)[0], len(index)),
                                   step=1, label="Re-rank the top N with the fusion encoder (0: off; starts at the "
                                   "model's saved choice)")
            button = gr.Button("Search", variant="primary", elem_id="t2i-search")
            status = gr.Markdown(elem_id="t2i-status")
            gallery = gr.Gallery(label="Results", columns=4, height="auto", elem_id="t2i-gallery")
            gr.Examples([[text, code if code in languages else languages[0]] for text, code in TEXT_EXAMPLES],
                        [query, language])
            button.click(search, [query, language, k, rerank], [gallery, status], api_name="text_to_image")
            query.submit(search, [query, language, k, rerank], [gallery, status], api_name=False)
        with gr.Tab("Image → text"):
            with gr.Row():
                upload = gr.File(label="Upload an image", type="filepath", elem_id="i2t-upload")
                pick = gr.Dropdown(handlers.pick_choices(index) if has_captions else [], value=None,
                                   label="…or pick a gallery image", allow_custom_value=True, elem_id="i2t-pick")
            describe_button = gr.Button("Rank captions", variant="primary", elem_id="i2t-rank")
            i2t_status = gr.Markdown(elem_id="i2t-status")
            with gr.Row():
                shown = gr.Image(label="Image", type="filepath", height=220, interactive=False)
                chart = gr.Plot(label="Gold caption rank per language", elem_id="i2t-chart")
            captions = gr.Dataframe(label="Captions ranked per language", elem_id="i2t-table", wrap=True)
            describe_button.click(describe, [upload, pick], [shown, captions, chart, i2t_status],
                                  api_name="image_to_text")
        with gr.Tab("Consistency"):
            concept = gr.Textbox(label="One concept, one language per line ('code: query')", lines=5,
                                 value=CONSISTENCY_EXAMPLE, elem_id="cons-text")
            compare_button = gr.Button("Compare languages", variant="primary", elem_id="cons-compare")
            cons_status = gr.Markdown(elem_id="cons-status")
            table = gr.Dataframe(label="Top results per language (row r = r-th result)", wrap=True)
            compare_button.click(compare, [concept], [table, cons_status], api_name="consistency")
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_SIZE)
    return demo


def launch_demo(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, **options):
    """Serve ``demo`` (non-blocking with ``prevent_thread_lock=True``), sending files from Gradio's own
    folders only: uploads and the images of answers (copies: :class:`ShownImages`), no folder of the
    gallery, whose notes, hidden files and even images are refused (403) when asked for by path. Uploads
    are limited to ``handlers.MAX_UPLOAD_BYTES``."""
    return demo.launch(server_name=host, server_port=port, allowed_paths=[],
                       max_file_size=f"{handlers.MAX_UPLOAD_BYTES // 2**20}mb", **options)
