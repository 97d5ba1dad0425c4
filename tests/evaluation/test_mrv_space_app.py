"""The MRV Space: card front matter, requirements and the Gradio 6 app, served and called for real."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import gradio as gr
import pytest
from gradio_client import Client
from huggingface_hub import metadata_load

import evaluate_mrv

SPACE_DIR = Path(evaluate_mrv.__file__).resolve().parent


@pytest.fixture(scope="module")
def app():
    spec = importlib.util.spec_from_file_location("mrv_space_app", SPACE_DIR / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_card_front_matter_is_a_gradio_space_config():
    meta = metadata_load(SPACE_DIR / "README.md")
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == gr.__version__ == "6.31.0"
    assert (SPACE_DIR / meta["app_file"]).is_file()
    assert {"evaluate", "metric"} <= set(meta["tags"])
    requirements = (SPACE_DIR / "requirements.txt").read_text().split()
    assert any(line.startswith("evaluate") for line in requirements)


def test_parse_ranks_accepts_lines_and_json(app):
    assert app.parse_ranks("0, 2, 0, 6\n1 1 1 1\n") == [[0, 2, 0, 6], [1, 1, 1, 1]]
    assert app.parse_ranks("[[0, 2], [1, 1]]") == [[0, 2], [1, 1]]
    with pytest.raises(ValueError, match="line 2 is not a list of numbers"):
        app.parse_ranks("0, 1\nfirst, second")


def test_served_app_computes_mrv(app):
    _, url, _ = app.demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        client = Client(url, verbose=False)
        result = client.predict(app.EXAMPLE_RANKS, "std", app.EXAMPLE_LANGUAGES, api_name="/compute")
        assert result["mrv"] == pytest.approx(math.sqrt(6) / 2, abs=1e-12)
        assert result["mean_rank_per_language"] == {"en": 0.5, "de": 1.5, "ja": 0.5, "zh": 3.5}
        assert client.predict("[[0, 2, 0, 6]]", "variance", "", api_name="/compute") == {
            "mrv": 6.0,
            "mean_rank_per_language": [0.0, 2.0, 0.0, 6.0],
        }
        with pytest.raises(Exception, match="ragged ranks"):
            client.predict("0 1\n0 1 2", "std", "", api_name="/compute")
    finally:
        app.demo.close()
