"""The Space folder: its card's front matter is a complete Gradio Space config pinned to the tested gradio."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import gradio as gr
from huggingface_hub import metadata_load

SPACE_DIR = Path(__file__).resolve().parents[3] / "spaces_demo"


def test_space_card_front_matter_and_requirements():
    meta = metadata_load(SPACE_DIR / "README.md")
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gr.__version__
    assert (SPACE_DIR / meta["app_file"]).is_file()
    assert meta["python_version"] and meta["license"] == "mit"
    assert meta["models"] and meta["datasets"] and "cross-lingual" in meta["tags"]
    requirements = (SPACE_DIR / "requirements.txt").read_text().splitlines()
    assert f"gradio=={gr.__version__}" in requirements
    assert any(line.startswith("faiss-cpu") for line in requirements)


def test_space_app_builds_the_demo_from_its_settings(monkeypatch, tiny_model_dir, gallery):
    monkeypatch.setenv("CCR_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("CCR_GALLERY", str(gallery.folder))
    spec = importlib.util.spec_from_file_location("ccr_space_app", SPACE_DIR / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert isinstance(module.demo, gr.Blocks) and len(module.INDEX) == len(gallery)
    endpoints = {dependency.api_name for dependency in module.demo.fns.values()}
    assert {"text_to_image", "image_to_text", "consistency"} <= endpoints
