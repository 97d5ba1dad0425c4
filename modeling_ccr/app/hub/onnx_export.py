"""The two towers of a CCR model as ONNX graphs, checked with onnxruntime against PyTorch.

- ``image_encoder.onnx``: ``pixel_values [B, 3, H, W]`` (float32) -> ``image_embeds [B, D]``;
- ``text_encoder.onnx``: ``input_ids``, ``attention_mask [T, L]`` (int64) -> ``text_embeds [T, D]``.

Both include the projection and the L2 normalisation, so the outputs equal
``get_image_features`` / ``get_text_features``; B, T and L are dynamic.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ...modeling_ccr import CCRModel
from ...processing_ccr import CCRProcessor

ONNX_OPSET = 17
CHECK_CAPTIONS = ["a red circle", "ein roter Kreis", "un cercle rouge et un carré bleu", "ok"]


class ImageEncoder(nn.Module):
    """pixel_values ``[B, 3, H, W]`` -> L2-normalised image embeddings ``[B, D]``."""

    def __init__(self, model: CCRModel):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.get_image_features(pixel_values)


class TextEncoder(nn.Module):
    """input_ids, attention_mask ``[T, L]`` -> L2-normalised text embeddings ``[T, D]``."""

    def __init__(self, model: CCRModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.get_text_features(input_ids, attention_mask)


def check_inputs(processor: CCRProcessor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A check batch: 3 images ``[3, 3, H, W]`` and 4 captions of different lengths (padding included)."""
    images = [Image.new("RGB", (48, 40), colour) for colour in ((220, 30, 30), (30, 200, 60), (40, 40, 220))]
    pixel_values = processor(images=images)["pixel_values"]
    return pixel_values, dict(processor(text=CHECK_CAPTIONS))


def export_onnx(model: CCRModel, processor: CCRProcessor, folder: str | Path) -> dict[str, float]:
    """Write ``image_encoder.onnx`` and ``text_encoder.onnx`` into ``folder`` and check them.

    The graphs are traced on a batch of 2 and checked with onnxruntime on the :func:`check_inputs` batch
    (other batch sizes and lengths, so the dynamic axes are exercised). Returns the largest absolute
    difference to PyTorch per graph; raises ValueError if one exceeds 1e-4.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = model.eval().float()
    pixel_values, text = check_inputs(processor)
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about every shape check it freezes; the onnxruntime check below on other
        # batch sizes and lengths is what shows the graphs generalise.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        expected_image = model.get_image_features(pixel_values).numpy()
        expected_text = model.get_text_features(text["input_ids"], text["attention_mask"]).numpy()
        torch.onnx.export(
            ImageEncoder(model), (pixel_values[:2],), str(folder / "image_encoder.onnx"),
            input_names=["pixel_values"], output_names=["image_embeds"],
            dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
            opset_version=ONNX_OPSET, dynamo=False,
        )
        short = {name: value[:2, :-1] for name, value in text.items()}
        torch.onnx.export(
            TextEncoder(model), (short["input_ids"], short["attention_mask"]), str(folder / "text_encoder.onnx"),
            input_names=["input_ids", "attention_mask"], output_names=["text_embeds"],
            dynamic_axes={"input_ids": {0: "texts", 1: "length"}, "attention_mask": {0: "texts", 1: "length"},
                          "text_embeds": {0: "texts"}},
            opset_version=ONNX_OPSET, dynamo=False,
        )
    got_image = run_onnx(folder / "image_encoder.onnx", {"pixel_values": pixel_values.numpy()})
    got_text = run_onnx(folder / "text_encoder.onnx",
                        {name: value.numpy().astype(np.int64) for name, value in text.items()})
    diffs = {"image_encoder": float(np.abs(got_image - expected_image).max()),
             "text_encoder": float(np.abs(got_text - expected_text).max())}
    bad = {name: diff for name, diff in diffs.items() if diff > 1e-4}
    if bad:
        raise ValueError(f"the ONNX graphs differ from PyTorch by more than 1e-4: {bad}")
    return diffs


def run_onnx(path: str | Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Run one exported graph on CPU with onnxruntime; returns its single output."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)[0]
