"""The demo's handlers called as plain functions on a tiny random model and a tiny gallery, against
independent references (brute-force similarity, the ITM head, the evaluation's gold ranks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from demo_gallery import GALLERY_LANGUAGES, GALLERY_SIZE
from PIL import Image

from modeling_ccr.app.demo import handlers
from modeling_ccr.app.demo.app import describe_model
from modeling_ccr.app.demo.cli import ensure_gallery, ensure_trained_default
from modeling_ccr.app.index.search import encode_images, encode_queries
from modeling_ccr.data import load_benchmark
from modeling_ccr.evaluation import retrieval_ranks
from modeling_ccr.testing import save_tiny_model


def test_text_to_image_ranks_by_brute_force_similarity(gallery, loaded):
    model, processor = loaded
    items, message = handlers.text_to_image("rotes Herz", gallery, model, processor, language="de", k=6)
    expected = (encode_queries(model, processor, ["rotes Herz"]) @ gallery.image_embeds.T)[0].topk(6)
    assert [path for path, _ in items] == [str(gallery.image_path(int(i))) for i in expected.indices]
    for rank, ((path, label), score, i) in enumerate(zip(items, expected.values, expected.indices, strict=True), 1):
        assert Path(path).is_file()
        assert label == f"{rank}. {gallery.caption(int(i), 'de')} · {float(score):.3f}"
    assert message == f"6 of {GALLERY_SIZE} images for “rotes Herz” (cosine)."


def test_text_to_image_rerank_orders_the_top_n_by_the_itm_logit(gallery, loaded):
    model, processor = loaded
    query = "猫の顔"
    first_stage = (encode_queries(model, processor, [query]) @ gallery.image_embeds.T)[0].topk(8).indices
    pixels = processor(images=[str(gallery.image_path(int(i))) for i in first_stage[:5]])["pixel_values"]
    text = processor(text=[query] * 5)
    with torch.no_grad():
        logits = model.itm_logits(model.get_image_tokens(pixels), text["input_ids"], text["attention_mask"])[:, 1]
    order = [int(first_stage[int(j)]) for j in logits.argsort(descending=True)] + [int(i) for i in first_stage[5:]]
    items, message = handlers.text_to_image(query, gallery, model, processor, language="ja", k=8, rerank=5)
    assert [path for path, _ in items] == [str(gallery.image_path(i)) for i in order]
    assert "top 5 re-ranked" in message


def test_text_to_image_combines_as_the_models_saved_choice_says(gallery, loaded, monkeypatch):
    model, processor = loaded
    monkeypatch.setattr(model.config, "reranking", {"mode": "combine", "k_test": 3, "rerank_weight": 0.5})
    items, message = handlers.text_to_image("猫の顔", gallery, model, processor, language="ja", k=5, rerank=3)
    assert message.endswith("top 3 re-ranked by the fusion encoder (cosine + 0.5 × ITM logit).")
    scores = [float(label.rsplit("· ", 1)[1]) for _, label in items]
    assert scores[:3] == sorted(scores[:3], reverse=True) and len(items) == 5


@pytest.mark.parametrize("query, language, expected", [
    ("", "en", "The query is empty"),
    ("   ", "en", "The query is empty"),
    ("x" * 5000, "en", "The query has 5,000 characters"),
    ("Katze", "xx", "Unknown language code 'xx': use one of en, de, ja, ru, zh."),
])
def test_text_to_image_bad_input_gets_a_message(gallery, loaded, query, language, expected):
    items, message = handlers.text_to_image(query, gallery, *loaded, language=language)
    assert items == [] and message.startswith("⚠️ ") and expected in message


def test_image_to_text_for_a_gallery_item_gives_the_evaluation_gold_ranks(gallery, loaded):
    model, processor = loaded
    item = 7
    shown, table, chart, message = handlers.image_to_text(None, handlers.pick_choices(gallery)[item], gallery,
                                                           model, processor)
    assert shown == str(gallery.image_path(item))
    embeds = encode_images(model, processor, [Image.open(shown)])  # the image as the visitor sees it
    reference = retrieval_ranks(torch.cat([gallery.image_embeds[:item], embeds, gallery.image_embeds[item + 1:]]),
                                gallery.caption_embeds, len(GALLERY_LANGUAGES)).tr[item]
    expected = dict(zip(GALLERY_LANGUAGES, reference.tolist(), strict=True))
    assert message.startswith("Gold caption ranks: " + ", ".join(f"{c} {r}" for c, r in expected.items()))
    assert f"rank std {np.std(reference.numpy()):.2f}" in chart.axes[0].get_title()
    assert [bar.get_height() for bar in chart.axes[0].patches] == reference.tolist()
    top = handlers.TOP_CAPTIONS
    assert list(table.columns) == ["language", "rank", "caption", "score"]
    assert list(table["language"]) == [code for code in GALLERY_LANGUAGES for _ in range(top)]
    assert list(table["rank"]) == list(range(1, top + 1)) * len(GALLERY_LANGUAGES)
    scores = (gallery.caption_embeds.view(GALLERY_SIZE, len(GALLERY_LANGUAGES), -1)[:, 2] @ embeds[0]).topk(top)
    japanese = table[table["language"] == "ja"]
    assert list(japanese["caption"]) == [gallery.caption(int(i), "ja") for i in scores.indices]
    assert np.allclose(japanese["score"], scores.values.numpy(), atol=5e-4)  # rounded to 3 decimals


def test_image_to_text_for_an_upload(gallery, loaded, tmp_path):
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (300, 200), (200, 30, 30)).save(path)
    shown, table, chart, message = handlers.image_to_text(str(path), None, gallery, *loaded)
    assert shown == str(path) and chart is None and len(table) == handlers.TOP_CAPTIONS * len(GALLERY_LANGUAGES)
    assert message == f"Top {handlers.TOP_CAPTIONS} of {GALLERY_SIZE} captions in each language."


def test_an_upload_is_read_upright_as_its_exif_orientation_says(tmp_path):
    """A phone photo stored sideways with EXIF orientation 6 ("rotate 90° clockwise to show") is read as the
    phone showed it: the stored image's left side (red) on top."""
    stored = Image.new("RGB", (300, 200), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 150, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif, quality=95)
    upright = np.asarray(handlers.open_upload(path), dtype=int)
    assert upright.shape == (300, 200, 3)
    assert np.abs(upright[:140].mean(axis=(0, 1)) - [255, 0, 0]).max() < 10
    assert np.abs(upright[160:].mean(axis=(0, 1)) - [0, 0, 255]).max() < 10


def test_image_to_text_bad_input_gets_a_message(gallery, loaded, tmp_path, huge_image):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not an image")
    line = tmp_path / "line.png"
    Image.new("L", (8000, 1), 90).save(line)  # about 100 bytes: its resize to the model's input would take gigabytes
    cases = [
        ((str(huge_image), None), "The image is 10,000 x 10,000 pixels"),
        ((str(line), None), "The image (8,000 x 1 pixels) has an aspect ratio of 8,000:1, over the processor's limit"),
        ((str(text_file), None), "notes.txt is not an image the demo can read"),
        ((None, None), "Upload an image or pick one"),
        ((None, "no-such-id · ?"), "'no-such-id' is not an image of this gallery"),
    ]
    for arguments, expected in cases:
        shown, table, chart, message = handlers.image_to_text(*arguments, gallery, *loaded)
        assert shown is None and table.empty and chart is None
        assert message.startswith("⚠️ ") and expected in message, message


def test_consistency_aligns_rows_across_languages(gallery, loaded):
    model, processor = loaded
    queries = {"en": "cat face", "ja": "猫の顔", "ru": "морда кошки"}
    items, table, message = handlers.consistency("\n".join(f"{c}: {q}" for c, q in queries.items()), gallery,
                                                 model, processor, k=4)
    assert list(table.columns) == ["query", "rank", "result", "score"] and len(table) == 4 * len(queries)
    assert len(items) == 4 * len(queries)  # language by language: a grid of 4 columns shows one per row
    top_sets = []
    for row, (code, query) in enumerate(queries.items()):
        top = (encode_queries(model, processor, [query]) @ gallery.image_embeds.T)[0].topk(4)
        captions = [gallery.caption(int(i), "en") for i in top.indices]
        rows = table[table["query"] == f"{code}: {query}"]
        assert list(rows["rank"]) == [1, 2, 3, 4] and list(rows["result"]) == captions
        assert np.allclose(rows["score"], top.values.numpy(), atol=5e-4)
        assert items[4 * row: 4 * row + 4] == [(str(gallery.image_path(int(i))), f"{code} {rank}. {caption}")
                                               for rank, (i, caption)
                                               in enumerate(zip(top.indices, captions, strict=True), 1)]
        top_sets.append(set(top.indices.tolist()))
    shared, union = set.intersection(*top_sets), set.union(*top_sets)
    assert message.startswith(f"{len(shared)} of {len(union)} images are in every language's top 4")


@pytest.mark.parametrize("text, expected", [
    ("", "Type the concept in a few languages"),
    ("Katze", "Line 1 has no 'code:' in front"),
    ("de: Katze\nxx: cat", "Unknown language code 'xx'"),
    ("de: ", "The query is empty"),
    ("de: " + "x" * 5000, "The query has 5,000 characters"),
])
def test_consistency_bad_input_gets_a_message(gallery, loaded, text, expected):
    items, table, message = handlers.consistency(text, gallery, *loaded)
    assert items == [] and table.empty and message.startswith("⚠️ ") and expected in message


def test_ensure_trained_default_trains_once_into_the_cache(tiny_model_dir, tmp_path):
    data = tmp_path / "data"
    load_benchmark("cldr-emoji", split="train", languages=["en", "de"]).select(range(6)).to_parquet(
        str(data / "train.parquet"))
    from modeling_ccr.data.arguments import DataArguments
    from modeling_ccr.training import ModelArguments

    options = {"model_args": ModelArguments(model=str(tiny_model_dir)),
               "data_args": DataArguments(dataset=str(data), languages=["en", "de"]),
               "max_steps": 2, "per_device_train_batch_size": 3, "save_steps": 1, "disable_tqdm": True,
               "train_vision_layers": 1, "train_text_layers": 1}
    first = ensure_trained_default(tmp_path / "cache", **options)
    assert first == tmp_path / "cache" / "trained-default-v2" / "model"
    assert (first / "training_run.json").is_file()
    stamp = (first / "config.json").stat().st_mtime_ns
    assert ensure_trained_default(tmp_path / "cache", **options) == first
    assert (first / "config.json").stat().st_mtime_ns == stamp


def test_ensure_gallery_indexes_a_folder_once_and_checks_an_index_model(tiny_model_dir, loaded, gallery, tmp_path,
                                                                        capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        Image.new("RGB", (40, 30), colour).save(photos / f"{i}.jpg")
    index = ensure_gallery(*loaded, tiny_model_dir, str(photos), cache_dir=tmp_path / "cache")
    assert len(index) == 3 and index.caption_embeds is None and index.image_path(0) == photos / "0.jpg"
    assert f"gallery index {index.folder}: built (3 images)" in capsys.readouterr().err
    written = {path.name: path.stat().st_mtime_ns for path in index.folder.iterdir()}
    # the next start reuses the index: nothing is written again
    assert ensure_gallery(*loaded, tiny_model_dir, str(photos), cache_dir=tmp_path / "cache").folder == index.folder
    assert {path.name: path.stat().st_mtime_ns for path in index.folder.iterdir()} == written
    assert capsys.readouterr().err.strip().endswith(f"gallery index {index.folder}: reused")
    Image.new("RGB", (40, 30), (9, 9, 9)).save(photos / "3.jpg")  # a new image: indexed again
    assert len(ensure_gallery(*loaded, tiny_model_dir, str(photos), cache_dir=tmp_path / "cache", progress=False)) == 4
    _, _, _, message = handlers.image_to_text(str(photos / "0.jpg"), None, index, *loaded)
    assert message == "⚠️ This gallery has no captions: start the demo on a benchmark gallery to rank captions."
    other = save_tiny_model(tmp_path / "other", seed=3)
    with pytest.raises(ValueError, match="was built with another model"):
        ensure_gallery(*loaded, other, str(gallery.folder))


def test_the_demos_own_gallery_keeps_image_tokens_and_an_index_folder_without_them_is_served_with_a_note(
        tiny_model_dir, loaded, gallery, tmp_path, capsys):
    """A cached index without image tokens (made by an earlier version) is rebuilt with them, once: it is the
    demo's own cache, and every re-ranking query is faster after. A user's index folder without them is
    served as it is (re-ranking encodes the images), with one line saying how to make it faster."""
    from modeling_ccr.app.index import build_index, folder_source

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        Image.new("RGB", (40, 30), colour).save(photos / f"{i}.jpg")
    cache = tmp_path / "cache"
    index = ensure_gallery(*loaded, tiny_model_dir, str(photos), cache_dir=cache, progress=False)
    assert index.image_tokens.shape[0] == 3
    build_index(*loaded, folder_source(photos), index.folder, model_dir=tiny_model_dir, progress=False)  # no tokens
    assert ensure_gallery(*loaded, tiny_model_dir, str(photos), cache_dir=cache).image_tokens.shape[0] == 3
    assert capsys.readouterr().err.strip().endswith(f"gallery index {index.folder}: "
                                                    "rebuilt (3 images), reused next time")
    assert gallery.image_tokens is None
    served = ensure_gallery(*loaded, tiny_model_dir, str(gallery.folder))
    assert served.folder == gallery.folder and served.image_tokens is None
    assert capsys.readouterr().err == (
        f"ccr demo: note: the gallery index {gallery.folder} keeps no image tokens, so re-ranking reads and encodes "
        f"its top images again at every query; 'ccr index {tiny_model_dir} IMAGES --output {gallery.folder} "
        "--keep-image-tokens' makes it faster\n")
    items, message = handlers.text_to_image("rotes Herz", served, *loaded, language="de", k=3, rerank=3)
    assert len(items) == 3 and "top 3 re-ranked" in message


def test_the_page_says_which_model_and_whether_it_is_trained(tiny_model_dir, loaded, monkeypatch):
    model, _ = loaded
    assert describe_model(model) == f"`{tiny_model_dir}`, trained"
    monkeypatch.setattr(model.config, "untrained", True, raising=False)
    assert describe_model(model).startswith(f"`{tiny_model_dir}`, ⚠️ untrained")
