"""``ccr convert-ccrk CHECKPOINT.th --output DIR``: the paper's released checkpoints as CCR model folders.

The released pre-training checkpoints (``ccrk_2m_10lan_epoch_29.th``, ``ccrk_3m_10lan_epoch_29.th``, from
github.com/BUAADreamer/CCRK, MIT) hold ``{"model": state_dict, ...}`` of the authors' X-VLM style model:

- ``vision_encoder.*``: a Swin Transformer in the original (Microsoft) layout: ``patch_embed.proj``,
  ``layers.{i}.blocks.{j}.{norm1, attn.qkv, attn.proj, attn.relative_position_bias_table, norm2, mlp.fc1,
  mlp.fc2}``, ``layers.{i}.downsample.{norm, reduction}``, ``norm``. Its image CLS is the average of the
  normalised patch tokens, prepended to them (CCR's ``vision_pooling="mean"``).
- ``text_encoder.bert.*``: 12 BERT-layout layers taken from XLM-R-large (its odd layers); layers that have
  ``crossattention`` (6-11) form the fusion encoder, the others (0-5) the text encoder. Position ids count
  from 0, as in BERT, so the text tower is a ``bert`` model with XLM-R's vocabulary.
- ``text_encoder.cls.predictions.*``: the MLM head (decoder tied to the word embeddings);
  ``vision_proj`` / ``text_proj`` (1024 -> 256), ``itm_head.{0, 1, 3}`` (Linear, LayerNorm, GELU, Linear),
  ``temp``.

The mapping is written for this project from those names; shapes come from the checkpoint itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ...atomic_io import check_output
from ..cli import positive_int
from .export import PROVENANCE_FILE

if TYPE_CHECKING:
    import torch

    from ...configuration_ccr import CCRConfig

VISION = "vision_encoder."
TEXT_PREFIXES = ("text_encoder.bert.", "text_encoder.")  # pre-training (BertForMaskedLM) / retrieval (BertModel)
MLM = "text_encoder.cls.predictions."
# Buffers the released model stores but every model recomputes from its config.
RECOMPUTED = re.compile(r"(relative_position_index|attn_mask|position_ids)$")
# The pre-training images: resized to 224 px (bicubic), normalised with CLIP's mean and std.
IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]
MAX_TOKENS = 40
HEAD_SIZE = 64  # XLM-R-large: 1024 / 16 heads
PROVENANCE = {
    "base_model": ["microsoft/swin-base-patch4-window7-224-in22k", "FacebookAI/xlm-roberta-large"],
    "license": "mit",
}
LICENSE_NOTE = """# Licences of the weights in this folder

- Converted from the CCR^k checkpoint `{name}` released with "Improving the Consistency in Cross-Lingual
  Cross-Modal Retrieval with 1-to-K Contrastive Learning" (Nie et al., KDD 2024;
  github.com/BUAADreamer/CCRK, MIT licence). It was trained from Swin-B (ImageNet-22k; MIT,
  github.com/microsoft/Swin-Transformer) and XLM-R-large (MIT, FacebookAI/xlm-roberta-large).
- Tokenizer: XLM-R's SentencePiece model (MIT), from `{tokenizer}`.
"""
# Swin parameter names of transformers 5 first, then those of 4.x.
SWIN_BLOCK_NAMES = {
    "norm1": ("layernorm_before",),
    "norm2": ("layernorm_after",),
    "attn.proj": ("attention.o_proj", "attention.output.dense"),
    "attn.relative_position_bias_table": ("attention.relative_position_bias.relative_position_bias_table",
                                          "attention.self.relative_position_bias_table"),
    "mlp.fc1": ("mlp.fc1", "intermediate.dense"),
    "mlp.fc2": ("mlp.fc2", "output.dense"),
}
SWIN_QKV_NAMES = (("attention.q_proj", "attention.k_proj", "attention.v_proj"),
                  ("attention.self.query", "attention.self.key", "attention.self.value"))
HEAD_NAMES = {
    "vision_proj.": "vision_projection.", "text_proj.": "text_projection.",
    "itm_head.0.": "itm_head.dense.", "itm_head.1.": "itm_head.LayerNorm.", "itm_head.3.": "itm_head.classifier.",
    MLM + "transform.dense.": "mlm_head.dense.", MLM + "transform.LayerNorm.": "mlm_head.layer_norm.",
}


@dataclass
class ConversionReport:
    """What the conversion did with every key: ``mapped`` (released -> ours), ``split`` (a fused qkv ->
    three of ours), ``recomputed`` (buffers rebuilt from the config), ``tied`` (equal to a mapped tensor),
    ``unmapped`` (released keys no rule takes) and ``missing`` (our keys nothing filled)."""

    mapped: dict[str, str] = field(default_factory=dict)
    split: dict[str, list[str]] = field(default_factory=dict)
    recomputed: list[str] = field(default_factory=list)
    tied: dict[str, str] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model state dict of a released checkpoint (``{"model": ...}`` or a bare state dict).

    Loaded with ``torch.load(weights_only=True)``: no code in the file is run. A missing, empty or
    unreadable file raises a ValueError naming it.
    """
    import torch  # here, as the other heavy imports: `ccr convert-ccrk --help` stays light

    if os.path.isfile(path) and os.path.getsize(path) == 0:  # torch's own error for it has no message
        raise ValueError(f"{path} is empty (0 bytes): the download or copy was cut short; fetch the checkpoint again")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise ValueError(f"checkpoint not found: {path}") from error
    except Exception as error:  # noqa: BLE001 - torch raises several types for a file it cannot read
        raise ValueError(f"{path} is not a torch checkpoint that loads with weights_only=True: {error}") from error
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not any(str(key).startswith(VISION) for key in state):
        raise ValueError(f"{path} holds no CCRK model state dict (no '{VISION}*' keys): pass a released .th checkpoint")
    return {key: value for key, value in state.items() if isinstance(value, torch.Tensor)}


def _text_prefix(state: dict[str, torch.Tensor]) -> str:
    for prefix in TEXT_PREFIXES:
        if prefix + "embeddings.word_embeddings.weight" in state:
            return prefix
    raise ValueError("no text_encoder embeddings in the checkpoint: it is not a CCRK model")


def _layer_indices(state: dict, pattern: str) -> list[int]:
    found = {int(m.group(1)) for key in state if (m := re.match(pattern, key))}
    return sorted(found)


def ccrk_config(state: dict[str, torch.Tensor], image_size: int = 224,
                text_attention_heads: int | None = None) -> CCRConfig:
    """The CCR config of a released state dict: every size read from the tensors' shapes.

    ``image_size``: the resolution the checkpoint is used at (224 for pre-training). ``text_attention_heads``:
    not visible in shapes; default hidden size / 64 (16 for XLM-R-large).
    """
    from ...configuration_ccr import CCRConfig

    patch = state[VISION + "patch_embed.proj.weight"]
    stages = _layer_indices(state, re.escape(VISION) + r"layers\.(\d+)\.")
    depths = [len(_layer_indices(state, re.escape(f"{VISION}layers.{i}.blocks.") + r"(\d+)\.")) for i in stages]
    tables = [state[f"{VISION}layers.{i}.blocks.0.attn.relative_position_bias_table"] for i in stages]
    window = (math.isqrt(tables[0].shape[0]) + 1) // 2
    embed_dim = patch.shape[0]
    vision_config = {
        "model_type": "swin", "image_size": image_size, "patch_size": patch.shape[-1], "num_channels": patch.shape[1],
        "embed_dim": embed_dim, "depths": depths, "num_heads": [t.shape[1] for t in tables], "window_size": window,
        "mlp_ratio": state[VISION + "layers.0.blocks.0.mlp.fc1.weight"].shape[0] / embed_dim,
        "qkv_bias": VISION + "layers.0.blocks.0.attn.qkv.bias" in state, "layer_norm_eps": 1e-5,
        "drop_path_rate": 0.0, "hidden_act": "gelu",
    }
    prefix = _text_prefix(state)
    layers = _layer_indices(state, re.escape(prefix) + r"encoder\.layer\.(\d+)\.")
    fusion = [i for i in layers if f"{prefix}encoder.layer.{i}.crossattention.self.query.weight" in state]
    if not fusion or fusion != layers[len(layers) - len(fusion):]:
        raise ValueError("expected the top text layers to have cross-attention, "
                         f"found it in layers {fusion} of {layers}")
    words = state[prefix + "embeddings.word_embeddings.weight"]
    hidden = words.shape[1]
    heads = text_attention_heads or max(1, hidden // HEAD_SIZE)
    text_config = {
        "model_type": "bert", "vocab_size": words.shape[0], "hidden_size": hidden,
        "num_hidden_layers": len(layers) - len(fusion), "num_attention_heads": heads,
        "intermediate_size": state[f"{prefix}encoder.layer.0.intermediate.dense.weight"].shape[0],
        "max_position_embeddings": state[prefix + "embeddings.position_embeddings.weight"].shape[0],
        "type_vocab_size": state[prefix + "embeddings.token_type_embeddings.weight"].shape[0],
        "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "layer_norm_eps": 1e-5, "hidden_act": "gelu",
    }
    return CCRConfig(
        vision_config=vision_config, text_config=text_config, num_fusion_layers=len(fusion),
        projection_dim=state["vision_proj.weight"].shape[0], text_pooling="cls", vision_pooling="mean",
        itm_hidden_size=state["itm_head.0.weight"].shape[0],
    )  # the MLM masking: CCRConfig's defaults, the released values


def _first_present(candidates: tuple[str, ...], prefix: str, suffix: str, ours: dict) -> str:
    for name in candidates:
        if f"{prefix}{name}{suffix}" in ours:
            return f"{prefix}{name}{suffix}"
    return f"{prefix}{candidates[0]}{suffix}"  # reported as a missing target below


def map_state_dict(
    state: dict[str, torch.Tensor], ours: dict[str, torch.Tensor], num_text_layers: int
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Map a released state dict onto the keys of ``ours`` (a model folder's: the CCR model's and the MLM
    head's, :meth:`~modeling_ccr.training.CCRForPreTraining.model_folder_state_dict`).

    Raises ValueError listing every tensor whose shape differs from ours. Returns the converted state
    dict and the report (every released key is mapped, split, recomputed, tied or listed as unmapped).
    """
    import torch

    report = ConversionReport()
    converted: dict[str, torch.Tensor] = {}
    text = _text_prefix(state)

    def put(source: str, target: str, value: torch.Tensor) -> None:
        converted[target] = value
        report.mapped[source] = target

    for key, value in state.items():
        if RECOMPUTED.search(key):
            report.recomputed.append(key)
        elif key.startswith(VISION):
            _map_vision(key[len(VISION):], key, value, ours, put, converted, report)
        elif key.startswith(MLM + "decoder."):
            twin = text + "embeddings.word_embeddings.weight" if key.endswith("weight") else MLM + "bias"
            if twin in state and torch.equal(value, state[twin]):
                report.tied[key] = twin
            else:
                report.unmapped.append(key)
        elif key == MLM + "bias":
            put(key, "mlm_head.bias", value)
        elif key == "temp":
            put(key, "temperature", value.reshape(()))
        elif any(key.startswith(source) for source in HEAD_NAMES):
            source = next(source for source in HEAD_NAMES if key.startswith(source))
            put(key, HEAD_NAMES[source] + key[len(source):], value)
        elif key.startswith(text) and not key.startswith(MLM):
            rest = key[len(text):]
            match = re.match(r"encoder\.layer\.(\d+)\.(.*)", rest)
            if match is None:
                put(key, "text_model." + rest, value)
            elif int(match.group(1)) < num_text_layers:
                put(key, f"text_model.encoder.layer.{match.group(1)}.{match.group(2)}", value)
            else:
                put(key, f"fusion.layer.{int(match.group(1)) - num_text_layers}.{match.group(2)}", value)
        else:
            report.unmapped.append(key)

    # A rule whose target this transformers version names differently: report the source as unmapped.
    for source, target in list(report.mapped.items()):
        if target not in ours:
            report.unmapped.append(source)
            converted.pop(report.mapped.pop(source))
    for source, targets in list(report.split.items()):
        if any(target not in ours for target in targets):
            report.unmapped.append(source)
            for target in report.split.pop(source):
                converted.pop(target)
    mismatched = [f"{target}: released {tuple(value.shape)}, CCR {tuple(ours[target].shape)}"
                  for target, value in converted.items() if target in ours and value.shape != ours[target].shape]
    if mismatched:
        raise ValueError(f"{len(mismatched)} tensor(s) do not fit the CCR model: " + "; ".join(mismatched[:5])
                         + (" ..." if len(mismatched) > 5 else "") + " - is this a CCRK checkpoint?")
    report.missing = sorted(set(ours) - set(converted))
    report.unmapped.sort()
    return converted, report


def _map_vision(rest: str, key: str, value: torch.Tensor, ours: dict, put, converted: dict,
                report: ConversionReport) -> None:
    """One ``vision_encoder.*`` tensor (``rest`` without the prefix) onto the transformers Swin of ``ours``."""
    out = "vision_model."
    block = re.match(r"layers\.(\d+)\.blocks\.(\d+)\.(.+?)((?:\.weight|\.bias)?)$", rest)
    if block:
        stage, index, module, suffix = block.groups()
        prefix = f"{out}encoder.layers.{stage}.blocks.{index}."
        if module == "attn.qkv":
            names = next((n for n in SWIN_QKV_NAMES if f"{prefix}{n[0]}{suffix}" in ours), SWIN_QKV_NAMES[0])
            targets = [f"{prefix}{name}{suffix}" for name in names]
            for target, part in zip(targets, value.chunk(3, dim=0), strict=True):
                converted[target] = part.contiguous()
            report.split[key] = targets
        elif module in SWIN_BLOCK_NAMES:
            put(key, _first_present(SWIN_BLOCK_NAMES[module], prefix, suffix, ours), value)
        else:
            report.unmapped.append(key)
        return
    simple = {"patch_embed.proj.": "embeddings.patch_embeddings.projection.", "patch_embed.norm.": "embeddings.norm.",
              "norm.": "layernorm."}
    for source, target in simple.items():
        if rest.startswith(source):
            return put(key, out + target + rest[len(source):], value)
    if re.match(r"layers\.\d+\.downsample\.", rest):
        return put(key, out + "encoder." + rest, value)
    report.unmapped.append(key)


def ccrk_image_processor(image_size: int):
    """Resize to ``image_size`` square (bicubic), rescale to 0..1, normalise with CLIP's mean and std."""
    try:
        from transformers import ViTImageProcessorPil as processor_class
    except ImportError:  # transformers 4.x
        from transformers import ViTImageProcessor as processor_class
    return processor_class(size={"height": image_size, "width": image_size}, resample=3,
                           image_mean=IMAGE_MEAN, image_std=IMAGE_STD)


def convert_ccrk(
    checkpoint: str | os.PathLike,
    output_dir: str | os.PathLike,
    tokenizer: str | os.PathLike,
    image_size: int = 224,
    text_attention_heads: int | None = None,
    *,
    overwrite: bool = False,
) -> ConversionReport:
    """Convert a released CCRK checkpoint into a CCR model folder at ``output_dir`` (written atomically).

    An existing model folder there is replaced only with ``overwrite`` (checked before the checkpoint is
    read; see :func:`~modeling_ccr.default_model.save_model_folder`).

    ``tokenizer``: a folder or Hub id with XLM-R's tokenizer (``FacebookAI/xlm-roberta-large``). The folder
    also gets ``conversion_report.json`` (the :class:`ConversionReport`) and ``provenance.json``.
    """
    from transformers import AutoTokenizer

    from ...default_model import CCR_MODEL_FOLDER, save_model_folder
    from ...processing_ccr import CCRProcessor
    from ...training.pretraining_model import CCRForPreTraining

    check_output(output_dir, CCR_MODEL_FOLDER, overwrite)
    state = read_checkpoint(checkpoint)
    config = ccrk_config(state, image_size=image_size, text_attention_heads=text_attention_heads)
    model = CCRForPreTraining(config).eval()  # the released MLM head goes with the model
    converted, report = map_state_dict(state, model.model_folder_state_dict(), config.num_text_layers)
    model.load_state_dict(converted, strict=False)
    processor = CCRProcessor(ccrk_image_processor(image_size), AutoTokenizer.from_pretrained(tokenizer),
                             max_length=MAX_TOKENS)
    if len(processor.tokenizer) != config.text_config.vocab_size:
        raise ValueError(f"the tokenizer has {len(processor.tokenizer)} tokens but the checkpoint's vocabulary "
                         f"{config.text_config.vocab_size}: pass XLM-R's tokenizer (FacebookAI/xlm-roberta-large)")
    name = Path(checkpoint).name
    provenance = {**PROVENANCE, "source_checkpoint": name, "source_sha256": _sha256(checkpoint)}
    save_model_folder(model, processor, output_dir, LICENSE_NOTE.format(name=name, tokenizer=tokenizer),
                      extra_files={"conversion_report.json": json.dumps(asdict(report), indent=2),
                                   PROVENANCE_FILE: json.dumps(provenance, indent=2)}, overwrite=overwrite)
    return report


def _sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a released checkpoint, e.g. ccrk_3m_10lan_epoch_29.th")
    parser.add_argument("--output", required=True, help="the CCR model folder to write (new or empty)")
    parser.add_argument("--tokenizer", default="FacebookAI/xlm-roberta-large",
                        help="folder or Hub id of XLM-R's tokenizer (default FacebookAI/xlm-roberta-large)")
    parser.add_argument("--image-size", type=positive_int, default=224, help="image resolution (224 in pre-training)")
    parser.add_argument("--text-attention-heads", type=positive_int, default=None,
                        help="attention heads of the text layers (default hidden size / 64: 16 for XLM-R-large)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the model files of an existing CCR model folder (its other files are kept)")


def run(args: argparse.Namespace) -> int:
    try:
        report = convert_ccrk(args.checkpoint, args.output, args.tokenizer, args.image_size, args.text_attention_heads,
                              overwrite=args.overwrite)
    except (ValueError, OSError) as error:
        print(f"ccr convert-ccrk: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    print(f"converted {len(report.mapped) + len(report.split)} tensors into {args.output} "
          f"({len(report.split)} fused qkv split, {len(report.recomputed)} buffers recomputed, "
          f"{len(report.tied)} tied)")
    for label, keys in (("unmapped (not converted)", report.unmapped),
                        ("missing (left at their initial values)", report.missing)):
        if keys:
            print(f"{len(keys)} {label}: {', '.join(keys[:20])}{' ...' if len(keys) > 20 else ''}")
    return 0
