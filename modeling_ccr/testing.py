"""Tiny random CCR models, pre-training models and processors (hidden 32, 2 layers, 32 px images) for tests
and examples.

They run on a CPU in milliseconds and need no download: the tokenizer is a character-level XLM-R style
unigram tokenizer built in memory.
"""

from __future__ import annotations

import string

import torch
from transformers import XLMRobertaTokenizer

from .configuration_ccr import CCRConfig
from .modeling_ccr import CCRModel
from .processing_ccr import CCRProcessor
from .training.objective import CCRObjective
from .training.pretraining_model import CCRForPreTraining, CCRMLMHead

TINY_IMAGE_SIZE = 32


def tiny_tokenizer() -> XLMRobertaTokenizer:
    """A character-level XLM-R style tokenizer (unigram over letters, digits and punctuation)."""
    specials = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    chars = string.ascii_letters + string.digits + string.punctuation + "äöüéèçñß"
    pieces = [("▁", -2.0)] + [("▁" + c, -3.0) for c in chars] + [(c, -4.0) for c in chars]
    return XLMRobertaTokenizer(vocab=specials + pieces + [("<mask>", 0.0)])


def tiny_vision_config(kind: str = "vit") -> dict:
    """A 32 px vision tower config: ``"vit"``, ``"swin"``, ``"clip"`` or ``"efficientnet_lite"``."""
    if kind == "vit":
        return {"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                "intermediate_size": 64, "image_size": TINY_IMAGE_SIZE, "patch_size": 8}
    if kind == "swin":
        return {"model_type": "swin", "image_size": TINY_IMAGE_SIZE, "patch_size": 4, "embed_dim": 16,
                "depths": [1, 1], "num_heads": [2, 4], "window_size": 4}
    if kind == "clip":
        return {"model_type": "clip_vision_model", "hidden_size": 32, "num_hidden_layers": 2,
                "num_attention_heads": 4, "intermediate_size": 64, "image_size": TINY_IMAGE_SIZE, "patch_size": 8}
    if kind == "efficientnet_lite":
        return {"model_type": "efficientnet_lite", "width_coefficient": 0.25, "depth_coefficient": 0.5,
                "image_size": TINY_IMAGE_SIZE}
    raise ValueError(f"unknown tiny vision tower {kind!r}: use vit, swin, clip or efficientnet_lite")


def tiny_text_config(vocab_size: int, model_type: str = "xlm-roberta", num_layers: int = 2) -> dict:
    """A hidden-32 text tower config of ``num_layers`` layers, without dropout (deterministic tests)."""
    return {"model_type": model_type, "vocab_size": vocab_size, "hidden_size": 32, "num_hidden_layers": num_layers,
            "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 80,
            "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
            "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def tiny_ccr_config(vision: str = "vit", **overrides) -> CCRConfig:
    """A CCR config with tiny towers, 2 text layers, 2 fusion layers and a 16-d retrieval space."""
    options = {"num_fusion_layers": 2, "projection_dim": 16,
               "vision_pooling": "cls" if vision in ("vit", "clip") else "mean"}
    options.update(overrides)
    return CCRConfig(vision_config=tiny_vision_config(vision),
                     text_config=tiny_text_config(len(tiny_tokenizer())), **options)


class _DrawnWithTheMLMHead(CCRModel):
    """A CCRModel that builds an MLM head just before its weights are initialised, as CCRModel did while it held
    the head: the random draws come in the same order, so a seed gives the tiny models it gave then (numbers
    pinned on them hold). Its state dict has the layout of a model folder."""

    def post_init(self):
        self.mlm_head = CCRMLMHead(self.config)
        super().post_init()


def tiny_pretraining_model(
    vision: str = "vit", seed: int = 0, objective: CCRObjective | None = None, **overrides
) -> CCRForPreTraining:
    """A randomly initialised tiny pre-training model in eval mode (seeded; ``overrides`` are config fields)."""
    config = tiny_ccr_config(vision, **overrides)
    torch.manual_seed(seed)
    weights = _DrawnWithTheMLMHead(config).state_dict()
    with torch.random.fork_rng(devices=[]):  # the model they go to leaves the generator as the draws left it
        model = CCRForPreTraining(config, objective)
    model.load_state_dict(weights)
    return model.eval()


def tiny_ccr_model(vision: str = "vit", seed: int = 0, **overrides) -> CCRModel:
    """A randomly initialised tiny CCR model in eval mode (seeded): the ``ccr`` of :func:`tiny_pretraining_model`."""
    return tiny_pretraining_model(vision, seed, **overrides).ccr


def tiny_image_processor():
    """A 32 px resize + normalise image processor that needs no torchvision."""
    try:
        from transformers import ViTImageProcessorPil as processor_class
    except ImportError:  # transformers 4.x: the PIL implementation is ViTImageProcessor itself
        from transformers import ViTImageProcessor as processor_class
    return processor_class(size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
                           image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])


def tiny_ccr_processor(max_length: int = 24) -> CCRProcessor:
    """A processor matching :func:`tiny_ccr_model` (32 px images, the character tokenizer)."""
    return CCRProcessor(tiny_image_processor(), tiny_tokenizer(), max_length=max_length)


def save_tiny_model(folder, vision: str = "vit", seed: int = 0):
    """Save :func:`tiny_pretraining_model` (a CCR model folder with the MLM head) and :func:`tiny_ccr_processor`
    into ``folder``."""
    tiny_pretraining_model(vision, seed=seed).save_ccr_model(folder)
    tiny_ccr_processor().save_pretrained(folder)
    return folder
