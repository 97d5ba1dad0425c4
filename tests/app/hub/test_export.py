"""`ccr export`: the folder loads where ccr-1tok is absent, the declared pipeline runs on it, ONNX matches."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hub_helpers import HIDE_PACKAGES, run_hidden
from PIL import Image

from modeling_ccr.app.hub.export import export_model
from modeling_ccr.app.hub.onnx_export import run_onnx
from modeling_ccr.app.testing import run_ccr_in_process
from modeling_ccr.modeling_ccr import CCRModel
from modeling_ccr.processing_ccr import CCRProcessor

EMBED_SCRIPT = HIDE_PACKAGES + textwrap.dedent(
    """
    import json
    import torch
    from PIL import Image
    from transformers import AutoModel, AutoProcessor
    folder, captions = sys.argv[1], json.loads(sys.argv[2])
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    images = [Image.new("RGB", (40, 36), (200, 30, 30)), Image.new("RGB", (40, 36), (30, 30, 200))]
    batch = processor(images=images, captions=captions)
    with torch.no_grad():
        image_embeds = model.get_image_features(batch["pixel_values"])
        text_embeds = model.get_text_features(batch["input_ids"], batch["attention_mask"])
    assert not any(name.split(".")[0] in ("modeling_ccr", "hub_cards") for name in sys.modules)
    print(json.dumps({"class": type(model).__module__, "image": image_embeds.tolist(), "text": text_embeds.tolist()}))
    """
)

PIPELINE_SCRIPT = HIDE_PACKAGES + textwrap.dedent(
    """
    import json
    from transformers import pipeline
    folder, image, labels, template = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
    classify = pipeline("zero-shot-image-classification", model=folder, trust_remote_code=True)
    print(json.dumps(classify(image, candidate_labels=labels, hypothesis_template=template), ensure_ascii=False))
    """
)


def _embeddings(folder: Path, captions: list[list[str]]) -> tuple[torch.Tensor, torch.Tensor]:
    model, processor = CCRModel.from_pretrained(folder).eval(), CCRProcessor.from_pretrained(folder)
    images = [Image.new("RGB", (40, 36), (200, 30, 30)), Image.new("RGB", (40, 36), (30, 30, 200))]
    batch = processor(images=images, captions=captions)
    with torch.no_grad():
        return (model.get_image_features(batch["pixel_values"]),
                model.get_text_features(batch["input_ids"], batch["attention_mask"]))


def test_export_holds_the_hub_files(tiny_export):
    names = {str(p.relative_to(tiny_export)) for p in tiny_export.rglob("*") if p.is_file()}
    assert {"config.json", "model.safetensors", "README.md", "LICENSES.md", "processor_config.json",
            "tokenizer.json", "configuration_ccr.py", "modeling_ccr.py", "model_checks.py", "processing_ccr.py",
            "configuration_efficientnet_lite.py", "modeling_efficientnet_lite.py"} <= names
    auto_map = json.loads((tiny_export / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"] == auto_map["AutoModelForZeroShotImageClassification"] == "modeling_ccr.CCRModel"
    assert "test weights" in (tiny_export / "LICENSES.md").read_text()  # the source folder's licences are kept


def test_export_loads_without_the_package_and_gives_the_same_embeddings(tiny_model_dir, tiny_export, tmp_path):
    captions = [["red", "rot"], ["blue", "blau"]]
    expected_image, expected_text = _embeddings(tiny_model_dir, captions)
    got = run_hidden(EMBED_SCRIPT, str(tiny_export), json.dumps(captions), cwd=tmp_path)
    assert got["class"].startswith("transformers_modules.")
    assert torch.allclose(torch.tensor(got["image"]), expected_image, atol=1e-6)
    assert torch.allclose(torch.tensor(got["text"]), expected_text, atol=1e-6)


def _pipeline_reference(folder: Path, image: Image.Image, labels: list[str]) -> dict[str, float]:
    """Label probabilities computed through the processor (which adds the caption prefix itself)."""
    model, processor = CCRModel.from_pretrained(folder).eval(), CCRProcessor.from_pretrained(folder)
    with torch.no_grad():
        image_embeds = model.get_image_features(processor(images=[image])["pixel_values"])
        text = processor(text=labels)
        text_embeds = model.get_text_features(text["input_ids"], text["attention_mask"])
        probs = (image_embeds @ text_embeds.T / model.clamped_temperature()).softmax(dim=-1)[0]
    return dict(zip(labels, probs.tolist(), strict=True))


def _check_pipeline(folder: Path, tmp_path: Path, hidden: bool = True) -> list[dict]:
    """The declared pipeline on ``folder`` ranks German and Japanese labels as the model's own embeddings do:
    in a fresh interpreter where ccr-1tok cannot be imported (``hidden``), or in this process (the same
    call, without the seconds a fresh interpreter spends importing transformers' pipelines)."""
    from transformers import pipeline

    from modeling_ccr.data import load_benchmark

    test = load_benchmark("cldr-emoji", split="test", languages=["de", "ja"])
    image_path = tmp_path / "emoji.png"
    test[0]["image"].save(image_path)
    labels = [test[i]["captions"][language] for i in range(3) for language in ("de", "ja")]
    prefix = CCRProcessor.from_pretrained(folder).caption_prefix
    if hidden:
        ranking = run_hidden(PIPELINE_SCRIPT, str(folder), str(image_path), json.dumps(labels, ensure_ascii=False),
                             prefix + "{}", cwd=tmp_path)
    else:
        classify = pipeline("zero-shot-image-classification", model=str(folder), trust_remote_code=True)
        ranking = classify(str(image_path), candidate_labels=labels, hypothesis_template=prefix + "{}")
    reference = _pipeline_reference(folder, Image.open(image_path).convert("RGB"), labels)
    assert sorted(entry["label"] for entry in ranking) == sorted(labels)
    assert [entry["label"] for entry in ranking] == sorted(labels, key=lambda label: -reference[label])
    for entry in ranking:
        assert entry["score"] == pytest.approx(reference[entry["label"]], abs=1e-5)
    return ranking


def test_zero_shot_pipeline_ranks_german_and_japanese_labels(tiny_export, tmp_path):
    _check_pipeline(tiny_export, tmp_path)


def _check_onnx(folder: Path, model_dir: Path) -> float:
    """Run the exported graphs on a batch unlike the export's own check (5 images, longer texts)."""
    model, processor = CCRModel.from_pretrained(model_dir).eval(), CCRProcessor.from_pretrained(model_dir)
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)) for _ in range(5)]
    pixel_values = processor(images=images)["pixel_values"]
    text = processor(text=["Katze", "a long caption with many words in it, longer than any before", "x"])
    with torch.no_grad():
        image_ref = model.get_image_features(pixel_values).numpy()
        text_ref = model.get_text_features(text["input_ids"], text["attention_mask"]).numpy()
    image_got = run_onnx(folder / "onnx" / "image_encoder.onnx", {"pixel_values": pixel_values.numpy()})
    text_got = run_onnx(folder / "onnx" / "text_encoder.onnx",
                        {"input_ids": text["input_ids"].numpy(), "attention_mask": text["attention_mask"].numpy()})
    assert image_got.shape == image_ref.shape and text_got.shape == text_ref.shape
    diff = max(np.abs(image_got - image_ref).max(), np.abs(text_got - text_ref).max())
    assert diff < 1e-4
    return float(diff)


def test_onnx_export_of_a_tiny_model_matches_pytorch(tiny_model_dir, tmp_path):
    result = run_ccr_in_process("export", tiny_model_dir, "--output", tmp_path / "out", "--onnx",
                                "--repo-id", "test-org/onnx-tiny")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ONNX vs PyTorch" in result.stdout
    # the CLI's --repo-id is the card's title; the ids it was not given are named as placeholders
    assert "its card is for test-org/onnx-tiny\n" in result.stdout
    assert "placeholder ids" in result.stdout and "--metric-space ccr-1tok/mrv" in result.stdout
    assert (tmp_path / "out" / "README.md").read_text().split("\n---\n", 1)[1].strip().startswith(
        "# test-org/onnx-tiny\n")
    _check_onnx(tmp_path / "out", tiny_model_dir)


def test_export_never_replaces_an_existing_folder_without_overwrite(tiny_model_dir, tmp_path):
    output = tmp_path / "out"
    export_model(tiny_model_dir, output)
    (output / "notes.txt").write_text("mine")
    (output / "README.md").write_text("old card")
    with pytest.raises(ValueError, match="--overwrite"):
        export_model(tiny_model_dir, output)
    assert (output / "README.md").read_text() == "old card"
    result = export_model(tiny_model_dir, output, overwrite=True)
    assert result.kept == ["notes.txt"] and (output / "notes.txt").read_text() == "mine"
    assert (output / "README.md").read_text() != "old card"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep")
    with pytest.raises(ValueError, match="not a CCR model folder"):
        export_model(tiny_model_dir, foreign, overwrite=True)
    assert [p.name for p in foreign.iterdir()] == ["thesis.tex"]



def test_re_exporting_an_export_keeps_one_code_licence_line(tiny_export, tmp_path):
    licences = (tiny_export / "LICENSES.md").read_text()
    assert licences.count("- Model code") == 1 and "test weights" in licences
    again = export_model(tiny_export, tmp_path / "again").folder
    assert (again / "LICENSES.md").read_text() == licences
    assert (export_model(again, tmp_path / "third").folder / "LICENSES.md").read_text() == licences


def test_export_cli_error_is_one_line(tmp_path):
    result = run_ccr_in_process("export", tmp_path / "nothing", "--output", tmp_path / "out")
    assert result.returncode == 2 and result.stderr.startswith("ccr export: ")
    assert result.stderr.strip().count("\n") == 0


@pytest.mark.slow
def test_default_model_export_pipeline_and_onnx(tmp_path):
    from modeling_ccr.default_model import ensure_default_model

    model_dir = ensure_default_model()
    result = export_model(model_dir, tmp_path / "default", with_onnx=True)
    assert max(result.onnx_max_abs_diff.values()) < 1e-4
    _check_onnx(tmp_path / "default", model_dir)
    ranking = _check_pipeline(tmp_path / "default", tmp_path, hidden=False)  # the tiny export's runs hidden
    card = (tmp_path / "default" / "README.md").read_text()
    assert "intfloat/multilingual-e5-small" in card and 'hypothesis_template="query: {}"' in card
    from huggingface_hub import ModelCard

    data = ModelCard.load(tmp_path / "default" / "README.md").data  # the default model records both towers
    assert data.base_model == ["timm/tf_efficientnet_lite0.in1k", "intfloat/multilingual-e5-small"]
    assert data.language and "dequantised to float32" in card and "**These weights are untrained.**" in card
    assert len(ranking) == 6
