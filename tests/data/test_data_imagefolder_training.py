"""A tiny random model trains for a few steps on an imagefolder dataset and is evaluated on its test split."""

from __future__ import annotations

import math

import pytest
import torch
from test_data_imagefolder import write_image_folder
from transformers import AutoModel, AutoProcessor

from modeling_ccr.data import load_benchmark
from modeling_ccr.data.arguments import DataArguments
from modeling_ccr.evaluation.pipeline import evaluate_retrieval
from modeling_ccr.testing import tiny_ccr_model, tiny_ccr_processor
from modeling_ccr.training import CCRTrainingArguments, ModelArguments, train

SPLITS = {"train": [0, 1, 2, 3, 4, 5], "test": [0, 2, 4, 5]}


@pytest.mark.parametrize("layout", ["csv", "jsonl-dict"])
def test_train_and_evaluate_on_an_image_folder(tmp_path, layout):
    data = write_image_folder(tmp_path / "data", layout, splits=SPLITS)
    model_dir = tmp_path / "model"
    tiny_ccr_model("vit").save_pretrained(model_dir)
    tiny_ccr_processor().save_pretrained(model_dir)

    result = train(
        CCRTrainingArguments(per_device_train_batch_size=3, max_steps=4, save_steps=4, logging_steps=2,
                             learning_rate=1e-3, output_dir=str(tmp_path / "run"), disable_tqdm=True,
                             train_vision_layers=1, train_text_layers=1),
        ModelArguments(model=str(model_dir)),
        DataArguments(dataset=str(data), languages=["en", "de", "fr"]),
    )
    assert result["steps"] == 4 and math.isfinite(result["final_loss"])

    model = AutoModel.from_pretrained(result["model_dir"]).eval()
    start = tiny_ccr_model("vit")
    assert not torch.equal(model.text_projection.weight, start.text_projection.weight)  # it trained
    processor = AutoProcessor.from_pretrained(result["model_dir"])
    test = load_benchmark(data, split="test")
    with torch.no_grad():
        evaluation = evaluate_retrieval(model, processor, test, k_test=None)
        batch = processor(images=list(test["image"]), captions=[list(c.values()) for c in test["captions"]])
        images = model.get_image_features(batch["pixel_values"])
        texts = model.get_text_features(batch["input_ids"], batch["attention_mask"]).view(4, 3, -1)
    assert evaluation.languages == ["en", "de", "fr"]
    # the ranks are those of the similarities of the trained model, per language (0-based)
    for lang in range(3):
        scores = images @ texts[:, lang].T  # [image, caption]
        gold = scores.diagonal()
        torch.testing.assert_close(
            evaluation.ranks.tr[:, lang].cpu(), (scores > gold[:, None]).sum(1), check_dtype=False
        )
        torch.testing.assert_close(
            evaluation.ranks.ir[:, lang].cpu(), (scores > gold[None, :]).sum(0), check_dtype=False
        )
