"""The Space folder: its card's front matter is a complete Gradio Space config pinned to the tested gradio."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
from huggingface_hub import metadata_load

SPACE_DIR = Path(__file__).resolve().parents[2] / "spaces_demo"


def test_space_card_front_matter_and_requirements():
    meta = metadata_load(SPACE_DIR / "README.md")
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gr.__version__
    assert (SPACE_DIR / meta["app_file"]).is_file()
    assert meta["python_version"] and meta["license"] == "mit"
    assert meta["models"] and meta["datasets"] and "cross-lingual" in meta["tags"]
    requirements = (SPACE_DIR / "requirements.txt").read_text().splitlines()
    assert f"gradio=={gr.__version__}" in requirements
    assert any(line.startswith("faiss-cpu") for line in requirements)
