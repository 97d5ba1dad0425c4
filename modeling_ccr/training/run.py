"""One training run: settings, data, model, which parameters train, the Trainer, checkpoints, the saved model.

Folder layout of a run (``settings.output``):
    checkpoints/checkpoint-N/   Trainer checkpoints (model, optimiser, scheduler, RNG, trainer state)
    model/                      the final model + processor, loadable with AutoModel / AutoProcessor,
                                with ``training_run.json`` (the settings, the objective, the losses).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoProcessor, TrainingArguments

from ..default_model import check_replaceable, ensure_default_model, save_model_folder
from ..losses import WEIGHTINGS
from ..modeling_ccr import CCRModel
from .collator import CCRDataCollator, check_languages
from .objective import LOSS_STYLES, CCRObjective
from .trainer import CCRTrainer

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
COMPLETE_MARKER = "trainer_state.json"  # the Trainer writes it last
MAX_IMAGES_TO_CACHE = 20_000  # frozen features are kept in memory by default up to this many images


@dataclass
class TrainSettings:
    """Every setting of ``ccr train`` (flag ``--max-steps`` = field ``max_steps``)."""

    model: str | None = None
    dataset: str = "cldr-emoji"
    data_dir: str | None = None
    image_dir: list[str] | None = None
    split: str = "train"
    languages: list[str] | None = None
    on_missing: str = "error"
    loss_style: str = "one-to-k"
    weighting: str = "released"
    max_steps: int = 250
    batch_size: int = 16
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    new_parameter_lr_multiplier: float = 2.0
    projection_lr_multiplier: float = 10.0
    warmup_ratio: float = 0.03
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    train_text_layers: int = 4
    train_vision: str = "none"
    contrastive_weight: float = 1.0
    itm_weight: float = 1.0
    mlm_weight: float = 1.0
    keyword_probability: float = 0.0
    save_steps: int = 50
    logging_steps: int = 10
    seed: int = 0
    output: str = "runs/ccr-default"
    resume: bool = False
    progress: bool = True
    dataloader_num_workers: int = 0
    cache_frozen_features: bool | None = None
    extra_training_arguments: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise a ValueError for settings that cannot work, before anything heavy is loaded."""
        if self.loss_style not in LOSS_STYLES:
            raise ValueError(f"unknown loss style {self.loss_style!r}: use one of {', '.join(LOSS_STYLES)}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {self.weighting!r}: use one of {', '.join(WEIGHTINGS)}")
        if self.train_vision not in ("none", "all"):
            raise ValueError(f"train_vision must be 'none' or 'all', got {self.train_vision!r}")
        for name in ("max_steps", "batch_size", "gradient_accumulation_steps", "save_steps", "logging_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2 and (self.itm_weight or self.loss_style != "one-to-k"):
            raise ValueError("batch_size must be >= 2: in-batch negatives need at least two images")


def set_trainable(
    model: CCRModel, train_text_layers: int, train_vision: str, weights: dict[str, float] | None = None
) -> dict[str, int]:
    """Choose what trains: the top ``train_text_layers`` text layers (-1: all and the embeddings), the
    image tower or not, and the fusion encoder, projections, heads and temperature. A component with a
    zero weight in ``weights`` freezes its head (and the fusion encoder when neither ITM nor MLM is on),
    so no trainable parameter is left without a gradient (DistributedDataParallel requires that).

    Returns counts ``{"trainable": n, "frozen": m}`` of parameters.
    """
    layers = model.text_model.get_submodule("encoder.layer")
    n_layers = len(layers)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    if train_text_layers >= 0:
        for name, parameter in model.text_model.named_parameters():
            if not name.startswith("encoder.layer."):
                parameter.requires_grad_(False)
        for layer in layers[: max(n_layers - train_text_layers, 0)]:
            layer.requires_grad_(False)
    if train_vision == "none":
        model.vision_model.requires_grad_(False)
    weights = weights or {}
    if not weights.get("itm", 1.0):
        model.itm_head.requires_grad_(False)
    if not weights.get("mlm", 1.0):
        model.mlm_head.requires_grad_(False)
    if not weights.get("itm", 1.0) and not weights.get("mlm", 1.0):
        model.fusion.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return {"trainable": trainable, "frozen": frozen}


def find_resume_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The last complete checkpoint (one whose trainer state was written).

    Incomplete ones (killed while saving) are never used. Process 0 renames them to
    ``incomplete-checkpoint-N-<time>``, a name the Trainer's checkpoint rotation does not touch, so they
    are kept for inspection rather than deleted; other processes only skip them.
    """
    if not checkpoint_dir.is_dir():
        return None
    complete = []
    for path in checkpoint_dir.iterdir():
        if not (path.is_dir() and path.name.startswith(CHECKPOINT_PREFIX) and path.name[len(CHECKPOINT_PREFIX):].isdigit()):
            continue
        if (path / COMPLETE_MARKER).is_file():
            complete.append(path)
        elif int(os.environ.get("RANK", "0")) == 0:
            aside = path.with_name(f"incomplete-{path.name}-{int(time.time())}")
            logger.warning("checkpoint %s is incomplete (killed while saving?): moved to %s", path, aside)
            path.rename(aside)
    return max(complete, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]), default=None)


def _load_training_data(settings: TrainSettings):
    from ..data import DEFAULT_LANGUAGES, load_benchmark

    dataset = load_benchmark(settings.dataset, split=settings.split, languages=settings.languages,
                             data_dir=settings.data_dir, image_dir=settings.image_dir, on_missing=settings.on_missing)
    languages = list(settings.languages or DEFAULT_LANGUAGES)
    check_languages(dataset.select_columns(["id", "captions"]), languages, where=f"{settings.dataset}/{settings.split}")
    if len(dataset) < settings.batch_size:
        raise ValueError(f"{len(dataset)} training images are fewer than one batch of {settings.batch_size}")
    return dataset, languages


def _training_arguments(settings: TrainSettings, checkpoint_dir: Path) -> TrainingArguments:
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    options = dict(
        output_dir=str(checkpoint_dir),
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        warmup_steps=math.ceil(settings.warmup_ratio * settings.max_steps),
        lr_scheduler_type="linear",
        logging_steps=settings.logging_steps,
        save_steps=settings.save_steps,
        save_total_limit=2,
        seed=settings.seed,
        bf16=bf16,
        dataloader_drop_last=True,
        dataloader_num_workers=settings.dataloader_num_workers,
        remove_unused_columns=False,
        report_to=[],
        disable_tqdm=not settings.progress,
        ddp_find_unused_parameters=False,
    )
    options.update(settings.extra_training_arguments)
    return TrainingArguments(**options)


def train(settings: TrainSettings) -> dict[str, Any]:
    """Run ``settings``; returns ``{"model_dir", "steps", "final_loss", "log_history"}``."""
    settings.validate()
    output = Path(settings.output)
    checkpoint_dir = output / "checkpoints"
    resume_from = find_resume_checkpoint(checkpoint_dir) if settings.resume else None
    if settings.resume and resume_from is None:
        raise ValueError(f"--resume: no complete checkpoint under {checkpoint_dir}; run without --resume to start")
    if not settings.resume and checkpoint_dir.is_dir() and any(checkpoint_dir.iterdir()):
        raise ValueError(f"{checkpoint_dir} already holds checkpoints: pass --resume to continue that run, "
                         "or choose another --output")
    final_dir = output / "model"
    check_replaceable(final_dir)  # before training, not after
    dataset, languages = _load_training_data(settings)
    english_index = languages.index("en") if "en" in languages else -1
    if settings.loss_style == "cross-lingual" and english_index < 0:
        raise ValueError(f"the cross-lingual style pivots on English, but 'en' is not among {languages}")

    model_dir = settings.model or str(_default_model_dir())
    model = CCRModel.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    weights = {"contrastive": settings.contrastive_weight, "itm": settings.itm_weight, "mlm": settings.mlm_weight}
    counts = set_trainable(model, settings.train_text_layers, settings.train_vision, weights)
    tokenizer = processor.tokenizer
    objective = CCRObjective(
        loss_style=settings.loss_style,
        weighting=settings.weighting,
        weights=weights,
        english_index=max(english_index, 0),
        mask_token_id=tokenizer.mask_token_id,
        special_token_ids=tokenizer.all_special_ids,
        vocab_size=model.config.text_config.vocab_size,
        mlm_probability=model.config.mlm_probability,
        mlm_max_masks=model.config.mlm_max_masks,
        seed=settings.seed,
        cache_frozen_features=_cache_frozen_features(settings, len(dataset)),
    )
    trainer = CCRTrainer(
        model=model,
        args=_training_arguments(settings, checkpoint_dir),
        train_dataset=dataset,
        data_collator=CCRDataCollator(processor, languages, settings.keyword_probability, settings.seed),
        objective=objective,
        new_parameter_lr_multiplier=settings.new_parameter_lr_multiplier,
        projection_lr_multiplier=settings.projection_lr_multiplier,
    )
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    wall = time.perf_counter() - start
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    final_loss = float(losses[-1]) if losses else float("nan")
    if trainer.is_world_process_zero():
        record = {
            "settings": dataclasses.asdict(settings),
            "model_init": model_dir,
            "languages": languages,
            "objective": objective.get_config_dict(),
            "parameters": counts,
            "steps": trainer.state.global_step,
            "final_loss": final_loss,
            "train_seconds_this_run": round(wall, 1),
            "resumed_from": str(resume_from) if resume_from else None,
            "log_history": trainer.state.log_history,
        }
        licence = Path(model_dir) / "LICENSES.md"
        note = licence.read_text(encoding="utf-8") if licence.is_file() else ""
        save_model_folder(model, processor, final_dir, note,
                          extra_files={"training_run.json": json.dumps(record, indent=2, default=str)})
    return {"model_dir": str(final_dir), "steps": trainer.state.global_step, "final_loss": final_loss,
            "log_history": trainer.state.log_history}


def _cache_frozen_features(settings: TrainSettings, n_images: int) -> bool:
    """Reuse frozen features: as set, or by default on a CPU for data sets of up to 20,000 images (a GPU
    recomputes them quickly, and its memory is better spent on batches)."""
    if settings.cache_frozen_features is not None:
        return settings.cache_frozen_features
    return not torch.cuda.is_available() and n_images <= MAX_IMAGES_TO_CACHE


def _default_model_dir() -> Path:
    return ensure_default_model()

