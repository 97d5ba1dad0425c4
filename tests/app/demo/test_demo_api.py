"""The app served on 127.0.0.1 and called through gradio_client: every endpoint, its named and typed API,
bad input (answered without a traceback in the server log), 20 queries at once."""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from modeling_ccr.app.demo import handlers
from modeling_ccr.app.demo.app import SHOWN_SIZE, build_demo, launch_demo


@pytest.fixture(scope="module")
def client(gallery, loaded):
    demo = build_demo(gallery, *loaded)
    _, url, _ = launch_demo(demo, prevent_thread_lock=True, quiet=True)
    assert url.startswith("http://127.0.0.1:")
    try:
        yield Client(url, verbose=False)
    finally:
        demo.close()


def test_every_endpoint_answers(client, gallery, tmp_path):
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {
        "/text_to_image", "/image_to_text", "/consistency"}
    items, message = client.predict("Katzengesicht", "de", 4, 2, api_name="/text_to_image")
    assert len(items) == 4 and message.startswith("4 of 24 images for “Katzengesicht”, top 2 re-ranked")
    assert all(item["caption"].startswith(f"{rank}. ") for rank, item in enumerate(items, 1))
    items, message = client.predict("Katzengesicht", api_name="/text_to_image")  # the defaults: en, 8, 0
    assert len(items) == 8 and message == "8 of 24 images for “Katzengesicht” (cosine)."
    shown, table, chart, message = client.predict(pick=handlers.pick_choices(gallery)[3], api_name="/image_to_text")
    assert shown and chart is not None and message.startswith("Gold caption ranks: en ")
    assert table["headers"] == ["language", "rank", "caption", "score"] and len(table["data"]) == 5 * 5
    photo = tmp_path / "photo.png"
    Image.new("RGBA", (64, 48), (0, 90, 200, 255)).save(photo)
    shown, table, chart, message = client.predict(handle_file(str(photo)), api_name="/image_to_text")
    assert shown and chart is None and len(table["data"]) == 5 * 5
    items, table, message = client.predict("en: cat\nja: 猫\nru: кошка", api_name="/consistency")
    assert table["headers"] == ["query", "rank", "result", "score"] and len(table["data"]) == 3 * 5
    assert [item["caption"].split(".")[0] for item in items] == [f"{code} {rank}" for code in ("en", "ja", "ru")
                                                                 for rank in range(1, 6)]


def test_the_api_names_and_types_every_parameter_and_output(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]

    def parameters(endpoint):
        return [(p["parameter_name"], p["python_type"]["type"], p["parameter_has_default"], p["parameter_default"])
                for p in endpoints[endpoint]["parameters"]]

    languages = "Literal['en', 'de', 'ja', 'ru', 'zh']"
    assert parameters("/text_to_image") == [("query", "str", False, None), ("language", languages, True, "en"),
                                            ("k", "int", True, 8), ("rerank", "int", True, 0)]
    (upload, upload_type, *upload_default), (pick, _, *pick_default) = parameters("/image_to_text")
    assert (upload, upload_type, upload_default, pick, pick_default) == (
        "upload", "filepath", [True, None], "pick", [True, None])
    assert [(name, has_default) for name, _, has_default, _ in parameters("/consistency")] == [("concept", True)]
    assert {endpoint: [output["label"] for output in info["returns"]] for endpoint, info in endpoints.items()} == {
        "/text_to_image": ["Results", "Status"],
        "/image_to_text": ["Ranked image", "Captions ranked per language", "Gold caption rank per language", "Status"],
        "/consistency": ["Top 5 per language", "Results per language", "Status"],
    }
    usage = client.view_api(print_info=False, return_format="str")
    assert 'predict(query, language, k, rerank, api_name="/text_to_image") -> (results, status)' in usage
    assert 'predict(upload, pick, api_name="/image_to_text") -> (ranked_image, ' in usage


def test_bad_input_through_the_api_gets_a_message_and_no_traceback(client, tmp_path, huge_image, capfd):
    upload = tmp_path / "table.csv"
    upload.write_text("a,b\n1,2\n")
    cases = [
        (("", "en", 4, 0), "/text_to_image", "The query is empty"),
        (("x" * 5000, "en", 4, 0), "/text_to_image", "The query has 5,000 characters"),
        (("Katze", "klingon", 4, 0), "/text_to_image", "Unknown language code 'klingon'"),
        (("Katze", "en", 1000, 0), "/text_to_image",
         "Ask for 1 to 100 results and re-rank 0 to 100 of them (got k=1000"),
        (("Katze", "en", 0, 0), "/text_to_image", "Ask for 1 to 100 results"),
        (("Katze", "en", 4, -1), "/text_to_image", "(got k=4, rerank=-1)"),
        (("Katze", "en", "many", 0), "/text_to_image", "k must be a whole number, got 'many'"),
        ((handle_file(str(upload)), None), "/image_to_text", "table.csv is not an image the demo can read"),
        ((handle_file(str(huge_image)), None), "/image_to_text", "The image is 10,000 x 10,000 pixels"),
        ((None, None), "/image_to_text", "Upload an image or pick one"),
        (("xx: cat",), "/consistency", "Unknown language code 'xx'"),
    ]
    for arguments, endpoint, expected in cases:
        message = client.predict(*arguments, api_name=endpoint)[-1]
        assert message.startswith("⚠️ ") and expected in message and "Traceback" not in message
    items, message = client.predict("Katze", "en", 60, 0, api_name="/text_to_image")  # more than the gallery has
    assert len(items) == 24 and message.startswith("24 of 24 images")
    server_log = capfd.readouterr()
    assert "Traceback" not in server_log.err + server_log.out


def test_twenty_concurrent_queries_all_succeed(client):
    queries = [f"{word} {i}" for i, word in enumerate(["Herz", "猫", "кошка", "smile", "pomme"] * 4)]
    start = time.perf_counter()
    jobs = [client.submit(query, "en", 5, 0, api_name="/text_to_image") for query in queries]
    results = [job.result(timeout=max(1.0, 120 - (time.perf_counter() - start))) for job in jobs]
    assert all(len(items) == 5 and message.startswith(f"5 of 24 images for “{query}”")
               for query, (items, message) in zip(queries, results, strict=True))
    assert time.perf_counter() - start < 120


def test_no_file_of_the_gallery_folders_is_served_by_path(client, gallery, loaded):
    note = gallery.image_root / "secret.txt"
    key = gallery.image_path(0).parent / ".ssh" / "id_rsa"
    key.parent.mkdir()
    try:
        note.write_text("not for the web")
        key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----")
        for path in (note, key, gallery.image_path(0)):
            response = httpx.get(f"{client.src}gradio_api/file={path}")
            assert response.status_code == 403, (path, response.status_code)
    finally:
        note.unlink(missing_ok=True)
        key.unlink(missing_ok=True)
        key.parent.rmdir()


def test_the_images_of_an_answer_are_served_as_the_gallery_images(client, gallery, loaded):
    raw = Client(client.src, verbose=False, download_files=False)
    items, _ = raw.predict("rotes Herz", "de", 3, 0, api_name="/text_to_image")
    expected, _ = handlers.text_to_image("rotes Herz", gallery, *loaded, language="de", k=3)
    assert len(items) == 3
    for item, (path, _) in zip(items, expected, strict=True):
        response = httpx.get(item["image"]["url"])
        assert response.status_code == 200
        served = np.asarray(Image.open(io.BytesIO(response.content)), dtype=int)
        with Image.open(path) as original:
            assert max(original.size) <= SHOWN_SIZE  # shown at full size
            on_white = Image.alpha_composite(Image.new("RGBA", original.size, "white"), original.convert("RGBA"))
        reference = np.asarray(on_white.convert("RGB"), dtype=int)
        assert served.shape == reference.shape and np.abs(served - reference).max() <= 1  # PNG: rounding only
