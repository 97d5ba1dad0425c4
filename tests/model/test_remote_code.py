"""A saved CCR folder loads through the Auto classes with trust_remote_code where the package is absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import torch
from PIL import Image

from modeling_ccr.testing import tiny_ccr_model, tiny_ccr_processor

# Runs in a fresh interpreter with every import of the installed package refused.
REMOTE_SCRIPT = textwrap.dedent(
    """
    import sys, json
    class HidePackage:
        def find_spec(self, name, path=None, target=None):
            if name == "modeling_ccr" or name.startswith("modeling_ccr."):
                raise ImportError("modeling_ccr is hidden for this test")
            return None
    sys.meta_path.insert(0, HidePackage())
    sys.path = [p for p in sys.path if p not in ("", ".")]
    import torch
    from PIL import Image
    from transformers import AutoModel, AutoProcessor
    folder = sys.argv[1]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    assert "modeling_ccr" not in sys.modules
    images = [Image.new("RGB", (30, 30), (200, 30, 30)), Image.new("RGB", (30, 30), (30, 30, 200))]
    batch = processor(images=images, captions=[["red", "rot"], ["blue", "blau"]])
    with torch.no_grad():
        out = model(**batch)
        itm = model.score_pairs(out.image_tokens.repeat_interleave(2, dim=0), batch["input_ids"],
                                batch["attention_mask"])
    # the pipeline a CCR card declares, on the plain saved folder (no export step)
    from transformers import pipeline
    classify = pipeline("zero-shot-image-classification", model=folder, trust_remote_code=True)
    labels = [entry["label"]
              for entry in classify(images[0], candidate_labels=["red", "blue"], hypothesis_template="{}")]
    print(json.dumps({"model": type(model).__module__ + "." + type(model).__name__,
                      "pipeline_labels": labels,
                      "processor": type(processor).__name__,
                      "reranking": model.config.reranking,
                      "itm_residual": model.config.itm_residual, "itm": itm.tolist(),
                      "logits": out.logits_per_image.tolist()}))
    """
)


def test_remote_code_load_without_the_package(tmp_path):
    model, processor = tiny_ccr_model("efficientnet_lite", itm_residual=True), tiny_ccr_processor()
    with torch.no_grad():  # a residual ITM head as training leaves it: its MLP and scale moved from the start
        torch.nn.init.normal_(model.itm_head.classifier.weight, std=0.5)
        model.itm_head.log_similarity_scale.fill_(1.5)
        model.itm_head.similarity_bias.fill_(-0.25)
    model.config.reranking = {"mode": "combine", "k_test": 16, "rerank_weight": 0.05, "chosen_on": "a validation split"}
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_ccr.CCRModel"
    for name in ("configuration_ccr.py", "modeling_ccr.py", "model_checks.py", "processing_ccr.py",
                 "configuration_efficientnet_lite.py", "modeling_efficientnet_lite.py"):
        assert (tmp_path / name).is_file(), name
    images = [Image.new("RGB", (30, 30), (200, 30, 30)), Image.new("RGB", (30, 30), (30, 30, 200))]
    batch = processor(images=images, captions=[["red", "rot"], ["blue", "blau"]])
    with torch.no_grad():
        output = model(**batch)
        expected = output.logits_per_image
        expected_itm = model.score_pairs(output.image_tokens.repeat_interleave(2, dim=0), batch["input_ids"],
                                         batch["attention_mask"])

    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run([sys.executable, "-c", REMOTE_SCRIPT, str(tmp_path)], cwd=tmp_path.parent,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["model"].startswith("transformers_modules.") and report["model"].endswith(".CCRModel")
    assert report["processor"] == "CCRProcessor"
    assert report["reranking"] == model.config.reranking  # the saved re-ranking choice travels with the folder
    assert config["auto_map"]["AutoModelForZeroShotImageClassification"] == "modeling_ccr.CCRModel"
    with torch.no_grad():  # the pipeline ranks the labels as the model's own similarities do
        red, blue = model.get_text_features(**processor(text=["red", "blue"], return_tensors="pt"))
        image = model.get_image_features(processor(images=images[:1])["pixel_values"])[0]
    assert report["pipeline_labels"] == (["red", "blue"] if image @ red >= image @ blue else ["blue", "red"])
    assert torch.allclose(torch.tensor(report["logits"]), expected, atol=1e-5)
    assert report["itm_residual"] is True  # the head's kind and its weights travel with the folder
    torch.testing.assert_close(torch.tensor(report["itm"]), expected_itm, atol=1e-5, rtol=1e-5)
