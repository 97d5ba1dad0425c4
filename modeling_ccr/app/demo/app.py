"""The Gradio 6 app of the demo: three tabs over one gallery index and one model held in memory.

API endpoints (``gradio_client.Client(url).predict(..., api_name=...)``):
    /text_to_image  (query, language, k, rerank)  -> (gallery, message)
    /image_to_text  (upload file, picked item)    -> (image, caption table, gold-rank chart, message)
    /consistency    ("code: query" lines)         -> (table, message)
"""

from __future__ import annotations

import gradio as gr

from ..index.gallery import GalleryIndex
from ..index.session import MAX_K, known_languages
from . import handlers

CONCURRENCY_LIMIT = 4  # requests served at once; the rest wait in the queue
QUEUE_SIZE = 64
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


def build_demo(index: GalleryIndex, model, processor, title: str = "ccr-1tok demo") -> gr.Blocks:
    """The app over ``index`` with ``model`` / ``processor`` (loaded once, shared by every request)."""
    languages = known_languages(index)
    has_captions = index.caption_embeds is not None

    def search(query, language, k, rerank):
        return handlers.text_to_image(query, index, model, processor, language=language, k=k, rerank=rerank)

    def describe(upload, pick):
        return handlers.image_to_text(upload, pick, index, model, processor)

    def compare(text):
        return handlers.consistency(text, index, model, processor)

    with gr.Blocks(title=title) as demo:
        gr.Markdown(INTRO + f"\n\nGallery: {describe_gallery(index)}.")
        with gr.Tab("Text → image"):
            with gr.Row():
                query = gr.Textbox(label="Query (any language)", placeholder="e.g. rotes Herz, 猫の顔, кошка",
                                   scale=4, elem_id="t2i-query")
                language = gr.Dropdown(languages, value=languages[0], label="Caption language",
                                       allow_custom_value=True, scale=1)
            with gr.Row():
                k = gr.Slider(1, min(MAX_K, len(index)), value=min(8, len(index)), step=1, label="Results")
                rerank = gr.Slider(0, min(MAX_K, len(index)), value=0, step=1,
                                   label="Re-rank the top N with the fusion encoder (0: off)")
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


def launch_demo(demo: gr.Blocks, index: GalleryIndex, host: str = "127.0.0.1", port: int | None = None, **options):
    """Serve ``demo`` (non-blocking with ``prevent_thread_lock=True``); the gallery's image folder is the
    only folder besides Gradio's own that the server may send files from."""
    return demo.launch(server_name=host, server_port=port, allowed_paths=[str(index.image_root), str(index.folder)],
                       max_file_size=f"{handlers.MAX_UPLOAD_BYTES // 2**20}mb", **options)
