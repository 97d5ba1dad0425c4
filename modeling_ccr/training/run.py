"""One training run: arguments, data, model, which parameters train, the Trainer, checkpoints, the saved model.

The arguments are dataclasses read by ``transformers.HfArgumentParser`` (``ccr train``): ``ModelArguments``,
``modeling_ccr.data.arguments.DataArguments`` and ``CCRTrainingArguments`` (TrainingArguments plus the CCR
objective's settings).

Folder layout of a run (``output_dir``):
    checkpoints/checkpoint-N/   Trainer checkpoints (model, optimiser, scheduler, RNG, trainer state)
    model/                      the final model + processor, loadable with AutoModel / AutoProcessor,
                                with ``training_run.json`` (the settings, the objective, the losses).

An existing ``model/`` is replaced only with ``--overwrite`` or ``--resume`` (the same run going on), and then
its other files are kept (:func:`modeling_ccr.atomic_io.write_output`). Checkpoints of an earlier run are
resumed with ``--resume``; with ``--overwrite`` a new run starts and the old ones are renamed
``checkpoints-replaced-<time>`` (kept, never resumed). A checkpoint that a kill left incomplete is set aside
by ``--resume`` (renamed ``incomplete-checkpoint-N-<time>``); when no complete one is left, ``--resume``
starts from step 0 and says so. Process 0 holds the run folder's lock
(:func:`modeling_ccr.output_lock.output_lock`) for the whole run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoProcessor, TrainerCallback, TrainingArguments
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from ..allocator import allocator_state
from ..atomic_io import check_output
from ..configuration_ccr import CCRConfig
from ..constants import DEFAULT_MAX_STEPS, DEFAULT_TRAIN_BATCH_SIZE
from ..data.arguments import DataArguments, load_dataset_from_args
from ..default_model import CCR_MODEL_FOLDER, ensure_default_model, save_model_folder
from ..losses import DEFAULT_MLM_MASKING, GATHER_GRADIENTS, MASKING_RULES, POSITIVE_LANGUAGE_RULES, WEIGHTINGS
from ..modeling_ccr import CCRModel, ImageTowerAdapter, TextTowerAdapter
from ..output_lock import check_writable, output_lock
from .collator import CCRDataCollator
from .objective import CCRObjective
from .pretraining_model import CCRForPreTraining
from .styles import CONTRASTIVE_STYLES, LOSS_STYLES, style_class
from .trainer import CCRTrainer

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = f"{PREFIX_CHECKPOINT_DIR}-"
COMPLETE_MARKER = TRAINER_STATE_NAME  # the Trainer's _save_checkpoint writes it last
MAX_IMAGES_TO_CACHE = 20_000  # frozen features are kept in memory by default up to this many images
DEFAULT_OUTPUT = "runs/ccr-default"
PREFILL_BATCH_IMAGES = 64  # images (and their K captions) per forward when the frozen-feature cache is filled


@dataclass
class ModelArguments:
    """Which model ``ccr train`` starts from."""

    model: str | None = field(
        default=None, metadata={"help": "CCR model folder to start from (default: the embedded default model)"}
    )
    itm_residual: bool | None = field(
        default=None, metadata={"help": "train a residual ITM head (its match logit adds a learnt scale of the dual "
                                "encoder's similarity; config.itm_residual): true or false gives the model a new, "
                                "untrained head of that kind when its own is of the other kind (default: keep it)"})


@dataclass
class CCRTrainingArguments(TrainingArguments):
    """``transformers.TrainingArguments`` with this project's defaults and the CCR objective's settings.

    ``output_dir`` is the run folder: the Trainer's checkpoints go to ``output_dir/checkpoints`` and the
    final model to ``output_dir/model``. Every other TrainingArguments field keeps its meaning. Defaults
    (the embedded default's recipe for 2 CPU cores, see README "Training"): 600 steps of 64 images; the
    image tower's head conv (on cached block outputs), the projections, the fusion encoder and the heads
    train, the text tower stays frozen (its states cached); ITM on the first 32 images of each batch, its
    negatives drawn from all 64 at temperature 0.3; MLM off. The paper's objective, which on this budget
    leaves the ITM head at its prior (BENCHMARKS.md, "Why the ITM head stays at its prior"): ``--mlm_weight 1
    --itm_negative_temperature 0 --fusion_batch_size 16``.
    """

    output_dir: str = field(default=DEFAULT_OUTPUT, metadata={"help": "run folder (checkpoints/ and model/ inside)"})
    max_steps: int = field(default=DEFAULT_MAX_STEPS, metadata={"help": "optimiser steps"})
    per_device_train_batch_size: int = field(default=DEFAULT_TRAIN_BATCH_SIZE,
                                             metadata={"help": "images per device per step"})
    learning_rate: float = field(default=1e-4, metadata={"help": "base learning rate (pretrained weights)"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    warmup_steps: float = field(default=0.03, metadata={"help": "warm-up steps, or a ratio of max_steps if < 1"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    logging_steps: float = field(default=10, metadata={"help": "log every N steps"})
    save_steps: float = field(default=100, metadata={"help": "checkpoint every N steps"})
    save_total_limit: int | None = field(default=2, metadata={"help": "checkpoints kept"})
    dataloader_drop_last: bool = field(default=True, metadata={"help": "drop the last incomplete batch"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep the dataset columns the collator reads"})
    ddp_find_unused_parameters: bool | None = field(default=False, metadata={"help": "see TrainingArguments"})
    loss_style: str = field(default="one-to-k", metadata={"help": "contrastive style", "choices": list(LOSS_STYLES)})
    weighting: str = field(default="released", metadata={"help": "1-to-K weighting", "choices": list(WEIGHTINGS)})
    itm_positive_language: str = field(
        default="released", metadata={"help": "how one-to-k picks each image's ITM/MLM caption",
                                      "choices": list(POSITIVE_LANGUAGE_RULES)})
    mlm_masking: str = field(default=DEFAULT_MLM_MASKING,
                             metadata={"help": "MLM masking", "choices": list(MASKING_RULES)})
    contrastive_gather: str = field(
        default="exact", metadata={"help": "gradient of the cross-process gather: the exact full-batch one, or the "
                                   "released code's (1/W of it)", "choices": list(GATHER_GRADIENTS)})
    contrastive_weight: float = field(default=1.0, metadata={"help": "weight of the contrastive loss"})
    itm_weight: float = field(default=1.0, metadata={"help": "weight of the ITM loss (0: off)"})
    mlm_weight: float = field(
        default=0.0, metadata={"help": "weight of the MLM loss (0: off, the default: on 600 steps MLM holds the "
                               "ITM head at its prior, BENCHMARKS.md; the paper: 1)"})
    fusion_batch_size: int | None = field(
        default=32, metadata={"help": "images of each batch (the first ones) that train ITM and MLM; negatives come "
                              "from the whole batch (0: all)"})
    itm_negative_temperature: float = field(
        default=0.3, metadata={"help": "temperature of the ITM hard-negative draw (0: the model's contrastive one, "
                               "as the paper, which on 600 steps keeps a paper ITM head at its prior; "
                               "larger draws easier negatives)"})
    itm_balanced: bool = field(
        default=False, metadata={"help": "weigh ITM's positive and negative pairs equally (the paper: the mean over "
                                 "its pairs, 1 positive : 2 negatives)"})
    detach_fusion_image_tokens: bool = field(
        default=False, metadata={"help": "the fusion encoder's losses (ITM, MLM) send no gradient into the image "
                                 "tower, which then trains on the contrastive loss alone"})
    itm_random_negative_share: float = field(
        default=0.0, metadata={"help": "share of ITM negatives drawn uniformly at random instead of from the "
                               "hard-negative softmax (0: all hard, as the paper)"})
    detach_itm_similarity: bool = field(
        default=True, metadata={"help": "a residual ITM head's loss sends no gradient into the dual encoder's "
                                "embeddings through the similarity it reads (false: ITM trains them too)"})
    train_text_layers: int = field(default=0,
                                   metadata={"help": "top text-tower layers that train (-1: all, embeddings too)"})
    train_vision_layers: int = field(
        default=1, metadata={"help": "top image-tower layers that train, counting the head conv (or final norm) after "
                             "the block stack as the top one (-1: all, 0: none)"})
    new_parameter_lr_multiplier: float = field(
        default=2.0, metadata={"help": "learning-rate factor of the cross-attention and the ITM / MLM heads"})
    projection_lr_multiplier: float = field(
        default=10.0, metadata={"help": "learning-rate factor of the retrieval projections and the temperature"})
    vision_lr_multiplier: float = field(default=10.0, metadata={"help": "learning-rate factor of the image tower"})
    cache_frozen_features: bool | None = field(
        default=None, metadata={"help": "compute what frozen parts give (image-tower blocks, text layers) once and "
                                "keep it in memory (default: on a CPU, for data sets of up to 20,000 images)"})
    resume: bool = field(default=False, metadata={"help": "continue from the last complete checkpoint in output_dir "
                                                  "(from step 0 when there is none)"})
    overwrite: bool = field(
        default=False, metadata={"help": "replace the model files of output_dir/model (its other files are kept) and "
                                 "start a new run beside old checkpoints (renamed checkpoints-replaced-<time>)"})

    def __post_init__(self):
        """Checks the CCR settings (a ValueError before anything heavy), then TrainingArguments' own."""
        if self.max_steps < 1 or self.per_device_train_batch_size < 1:
            raise ValueError("max_steps and per_device_train_batch_size must be >= 1")
        for name, allowed in (("loss_style", tuple(CONTRASTIVE_STYLES)), ("weighting", WEIGHTINGS),
                              ("itm_positive_language", POSITIVE_LANGUAGE_RULES), ("mlm_masking", MASKING_RULES),
                              ("contrastive_gather", GATHER_GRADIENTS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}: use one of {', '.join(allowed)}")
        needed = max(style_class(self.loss_style).min_batch_images, 2 if self.itm_weight else 1)  # ITM: 2
        if self.per_device_train_batch_size < needed:
            raise ValueError(f"per_device_train_batch_size must be >= {needed}: in-batch negatives need at "
                             f"least {needed} images")
        if self.train_text_layers < -1 or self.train_vision_layers < -1:
            raise ValueError("train_text_layers and train_vision_layers must be >= -1 (-1: all)")
        if not self.itm_negative_temperature >= 0:
            raise ValueError(f"itm_negative_temperature must be > 0, or 0 for the model's contrastive temperature (the "
                             f"paper), got {self.itm_negative_temperature}")
        if not 0.0 <= self.itm_random_negative_share <= 1.0:
            raise ValueError(f"itm_random_negative_share must be in [0, 1], got {self.itm_random_negative_share}")
        if not self.use_cpu and not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            # Several processes and no GPU (torchrun / accelerate launch on CPUs): without use_cpu, accelerate
            # sees no distributed set-up and every process would train the whole data set alone.
            self.use_cpu = True
        self.warmup_steps = warmup_steps_for(self.warmup_steps, self.max_steps)  # steps, whatever the version
        super().__post_init__()

    def objective_weights(self) -> dict[str, float]:
        return {"contrastive": self.contrastive_weight, "itm": self.itm_weight, "mlm": self.mlm_weight}

    def itm_negative_draw_temperature(self) -> float | None:
        """The temperature :class:`CCRObjective` draws ITM negatives at: ``itm_negative_temperature``, or None
        (the model's contrastive temperature, the paper's draw) for 0."""
        return self.itm_negative_temperature or None


def warmup_steps_for(warmup_steps: float, max_steps: int) -> float:
    """The warm-up of ``warmup_steps`` as a number of steps: a value in (0, 1) is a ratio of ``max_steps``,
    ``ceil(ratio * max_steps)`` steps; 0 and a count are returned as they are. transformers 5 reads a value
    below 1 as a ratio too, 4.x as that many steps (no warm-up): :class:`CCRTrainingArguments` gives either
    the count."""
    return math.ceil(warmup_steps * max_steps) if 0 < warmup_steps < 1 else warmup_steps


def set_trainable(
    model: CCRForPreTraining | CCRModel, train_text_layers: int, train_vision_layers: int,
    weights: dict[str, float] | None = None,
) -> dict[str, int]:
    """Choose what trains in a pre-training model (or a bare CCR model, which has no MLM head): the top
    ``train_text_layers`` text layers (-1: all and the embeddings), the top
    ``train_vision_layers`` layers of the image tower (see :meth:`ImageTowerAdapter.train_top_layers`: 1 is
    EfficientNet-Lite's head conv, 2 adds its last block; -1: the whole tower, 0: none), and the fusion
    encoder, projections, heads and
    temperature. A component with a zero weight in ``weights`` freezes its head (and the fusion encoder
    when neither ITM nor MLM is on), so no trainable parameter is left without a gradient
    (DistributedDataParallel requires that).

    Returns counts ``{"trainable": n, "frozen": m}`` of parameters.
    """
    ccr = model.ccr if isinstance(model, CCRForPreTraining) else model
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    if train_text_layers >= 0:
        TextTowerAdapter(ccr.text_model).train_top_layers(train_text_layers)
    if train_vision_layers >= 0:
        ImageTowerAdapter(ccr.vision_model).train_top_layers(train_vision_layers)
    weights = weights or {}
    if not weights.get("itm", 1.0):
        ccr.itm_head.requires_grad_(False)
    if not weights.get("mlm", 1.0) and isinstance(model, CCRForPreTraining):
        model.mlm_head.requires_grad_(False)
    if not weights.get("itm", 1.0) and not weights.get("mlm", 1.0):
        ccr.fusion.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return {"trainable": trainable, "frozen": frozen}


def set_aside_incomplete_checkpoints(checkpoint_dir: Path) -> list[Path]:
    """Rename every ``checkpoint-N`` without its completion marker (killed while saving) to
    ``incomplete-checkpoint-N-<time>``; returns the new paths.

    The new name is one the Trainer's checkpoint rotation and :func:`find_resume_checkpoint` do not
    touch, so the folders are kept for inspection rather than deleted. Run it on process 0 only, with the
    other processes waiting (as :func:`train` does), so that no process looks for the last checkpoint
    while it is being set aside.
    """
    if not checkpoint_dir.is_dir():
        return []
    moved = []
    for path in sorted(checkpoint_dir.glob(f"{CHECKPOINT_PREFIX}*")):
        if path.is_dir() and path.name[len(CHECKPOINT_PREFIX):].isdigit() and not (path / COMPLETE_MARKER).is_file():
            aside = path.with_name(f"incomplete-{path.name}-{int(time.time())}")
            logger.warning("checkpoint %s is incomplete (killed while saving?): moved to %s", path, aside)
            path.rename(aside)
            moved.append(aside)
    return moved


def find_resume_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The last checkpoint under ``checkpoint_dir`` (transformers' ``get_last_checkpoint``); None if none.

    Raises ValueError when that checkpoint is incomplete (no completion marker): an incomplete one is never
    resumed; :func:`set_aside_incomplete_checkpoints` moves such ones out of the way first.
    """
    last = get_last_checkpoint(str(checkpoint_dir)) if checkpoint_dir.is_dir() else None
    if last is None:
        return None
    if not (Path(last) / COMPLETE_MARKER).is_file():
        raise ValueError(f"the last checkpoint {last} is incomplete (no {COMPLETE_MARKER}: killed while saving?); "
                         "set incomplete checkpoints aside first (set_aside_incomplete_checkpoints, as "
                         "`ccr train --resume` does) to resume from the last complete one")
    return Path(last)


def _set_aside_checkpoints(checkpoint_dir: Path) -> None:
    """Rename an earlier run's checkpoints to ``checkpoints-replaced-<time>`` (run it on process 0; kept for
    the user to delete), so that the new run neither mixes with nor resumes from them."""
    aside = checkpoint_dir.with_name(f"checkpoints-replaced-{time.strftime('%Y%m%d-%H%M%S')}")
    logger.warning("--overwrite: the earlier run's checkpoints %s are moved to %s", checkpoint_dir, aside)
    checkpoint_dir.rename(aside)


def _load_training_data(data_args: DataArguments, batch_size: int):
    """The training split in the training languages (default: ``DEFAULT_LANGUAGES``), which the loader
    checks every image for (``on_missing``); the collator then trusts its rows."""
    from ..data import DEFAULT_LANGUAGES

    languages = list(data_args.languages or DEFAULT_LANGUAGES)
    dataset = load_dataset_from_args(dataclasses.replace(data_args, languages=languages), split=data_args.split)
    if len(dataset) < batch_size:
        raise ValueError(f"{len(dataset)} training images are fewer than one batch of {batch_size}")
    return dataset, languages


def _resume_checkpoint(args: CCRTrainingArguments, checkpoint_dir: Path) -> Path | None:
    """The checkpoint ``--resume`` continues from: process 0 sets the incomplete ones aside while the
    others wait, then every process finds the last (complete) one."""
    with args.main_process_first(local=False, desc="setting incomplete checkpoints aside"):
        if args.process_index == 0:
            set_aside_incomplete_checkpoints(checkpoint_dir)
    return find_resume_checkpoint(checkpoint_dir)


def train(
    args: CCRTrainingArguments,
    model_args: ModelArguments | None = None,
    data_args: DataArguments | None = None,
    callbacks: list[TrainerCallback] | None = None,
    stage: Callable[[str], AbstractContextManager] | None = None,
) -> dict[str, Any]:
    """Run one training; returns ``{"model_dir", "steps", "final_loss", "log_history"}``, where ``final_loss`` is
    the last logged loss, or None when no step was logged (``max_steps`` below ``logging_steps``).

    ``callbacks`` are added to the Trainer's. ``stage(name)``, a context manager factory such as
    ``StageRecorder.stage`` of ``ccr main-job``, wraps the run's parts: "train: load model + data", "train:
    fill frozen-feature cache" and "train: steps + save". The cache (when it is on) is filled before the first
    step when the run sees every image at least once; a shorter run fills it with the images its steps meet.
    """
    stage = stage or (lambda name: nullcontext())
    with output_lock(args.output_dir) if args.process_index == 0 else nullcontext():  # before any work
        with stage("train: load model + data"):
            run = _set_up(args, model_args or ModelArguments(), data_args or DataArguments(), callbacks)
        if run.objective.feature_cache is not None and _covers_an_epoch(args, len(run.dataset)):
            with stage("train: fill frozen-feature cache"):
                start = time.perf_counter()
                sizes = prefill_frozen_features(run.trainer, run.objective, run.dataset, run.processor,
                                                run.languages, args)
                run.cache_fill = {**sizes, "seconds": round(time.perf_counter() - start, 1)}
            logger.info("frozen-feature cache: %d images, %d texts", sizes["images"], sizes["texts"])
        with stage("train: steps + save"):
            return _train_and_save(run, args)


def _covers_an_epoch(args: CCRTrainingArguments, n_images: int) -> bool:
    """Whether the run's steps see at least ``n_images`` images (all processes together)."""
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * max(args.world_size, 1)
    return args.max_steps * per_step >= n_images


def prefill_frozen_features(trainer: CCRTrainer, objective: CCRObjective, dataset, processor, languages: list[str],
                            args: CCRTrainingArguments) -> dict[str, int]:
    """Fill the objective's frozen-feature cache from the whole training set before the first step, in
    batches of ``PREFILL_BATCH_IMAGES`` images without gradients (:meth:`CCRObjective.prefill_feature_cache`),
    with a progress bar of its own. The captions are the data set's own (no keyword augmentation, whose
    draws stay the training collator's). Returns the cache's sizes."""
    from tqdm.auto import tqdm

    collator = CCRDataCollator(processor, languages)
    model = trainer.model.ccr  # the Trainer's unwrapped CCRForPreTraining
    bar = tqdm(total=len(dataset), desc="filling the frozen-feature cache", unit="image",
               disable=args.disable_tqdm or not trainer.is_world_process_zero())

    def batches():
        for start in range(0, len(dataset), PREFILL_BATCH_IMAGES):
            rows = [dataset[i] for i in range(start, min(start + PREFILL_BATCH_IMAGES, len(dataset)))]
            yield collator(rows)
            bar.update(len(rows))

    try:
        return objective.prefill_feature_cache(model, batches())
    finally:
        bar.close()


@dataclass
class _Run:
    """A training run set up by :func:`_set_up`, before its first step."""

    trainer: CCRTrainer
    objective: CCRObjective
    dataset: Any
    processor: Any
    languages: list[str]
    model_dir: str
    model_args: ModelArguments
    data_args: DataArguments
    counts: dict[str, int]
    resume_from: Path | None
    final_dir: Path
    replace_model: bool
    cache_fill: dict[str, float] | None = None  # what prefill_frozen_features cached, and its seconds


def _set_up(args: CCRTrainingArguments, model_args: ModelArguments, data_args: DataArguments,
            callbacks: list[TrainerCallback] | None) -> _Run:
    """Checks the outputs, loads the data and the model, chooses what trains and builds the Trainer."""
    output = Path(args.output_dir)
    check_writable(output / "model")  # the run writes into output_dir: fail before loading anything
    checkpoint_dir = output / "checkpoints"
    resume_from = _resume_checkpoint(args, checkpoint_dir) if args.resume else None
    if args.resume and resume_from is None and args.process_index == 0:
        # e.g. killed while saving its first checkpoint: nothing to go on from, so the run starts over
        logger.warning("--resume: no complete checkpoint under %s: starting from step 0", checkpoint_dir)
    final_dir = output / "model"
    replace_model = args.overwrite or resume_from is not None  # resumed: the model of the same run, going on
    check_output(final_dir, CCR_MODEL_FOLDER, replace_model, flag="--output-dir")  # before training, not after
    if not args.resume and checkpoint_dir.is_dir() and any(checkpoint_dir.iterdir()):
        if not args.overwrite:
            raise ValueError(f"{checkpoint_dir} already holds checkpoints: pass --resume to continue that run, "
                             "--overwrite to start a new one (the old checkpoints are set aside), or choose "
                             "another --output-dir")
        if args.process_index == 0:
            _set_aside_checkpoints(checkpoint_dir)
    dataset, languages = _load_training_data(data_args, args.per_device_train_batch_size)
    english_index = languages.index("en") if "en" in languages else -1
    if style_class(args.loss_style).needs_english and english_index < 0:
        raise ValueError(f"the {args.loss_style} style pivots on English, but 'en' is not among {languages}")

    model_dir = model_args.model or str(ensure_default_model())
    processor = AutoProcessor.from_pretrained(model_dir)
    tokenizer = processor.tokenizer
    config = CCRConfig.from_pretrained(model_dir)
    objective = CCRObjective(
        loss_style=args.loss_style,
        weighting=args.weighting,
        weights=args.objective_weights(),
        english_index=max(english_index, 0),
        mask_token_id=tokenizer.mask_token_id,
        special_token_ids=tokenizer.all_special_ids,
        vocab_size=config.text_config.vocab_size,
        mlm_probability=config.mlm_probability,
        mlm_max_masks=config.mlm_max_masks,
        seed=args.seed,
        process_index=args.process_index,
        cache_frozen_features=_cache_frozen_features(args, len(dataset)),
        itm_positive_language=args.itm_positive_language,
        mlm_masking=args.mlm_masking,
        gather_with_grad=args.contrastive_gather,
        fusion_batch_size=args.fusion_batch_size or None,
        itm_negative_temperature=args.itm_negative_draw_temperature(),
        itm_balanced=args.itm_balanced,
        detach_fusion_image_tokens=args.detach_fusion_image_tokens,
        detach_itm_similarity=args.detach_itm_similarity,
        itm_random_negative_share=args.itm_random_negative_share,
    )
    model = CCRForPreTraining.from_pretrained(model_dir, objective=objective)
    if model_args.itm_residual is not None and model_args.itm_residual != model.ccr.config.itm_residual:
        if args.process_index == 0:
            logger.warning("--itm_residual %s: %s's ITM head is replaced by a new, untrained %s head",
                           model_args.itm_residual, model_dir, "residual" if model_args.itm_residual else "paper")
        model.ccr.reset_itm_head(model_args.itm_residual)
    counts = set_trainable(model, args.train_text_layers, args.train_vision_layers, args.objective_weights())
    bf16 = args.bf16 or (torch.cuda.is_available() and torch.cuda.is_bf16_supported() and not args.fp16)
    trainer = CCRTrainer(
        model=model,
        args=dataclasses.replace(args, output_dir=str(checkpoint_dir), bf16=bf16),
        train_dataset=dataset,
        data_collator=CCRDataCollator(processor, languages, data_args.keyword_probability, args.seed,
                                      images_cached=None if objective.feature_cache is None
                                      else objective.feature_cache.holds_images),
        callbacks=callbacks,
    )
    return _Run(trainer, objective, dataset, processor, languages, model_dir, model_args, data_args, counts,
                resume_from, final_dir, replace_model)


def _train_and_save(run: _Run, args: CCRTrainingArguments) -> dict[str, Any]:
    """Runs the Trainer (from the checkpoint to resume, if any) and saves the model folder with its record."""
    trainer, resume_from = run.trainer, run.resume_from
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    wall = time.perf_counter() - start
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    final_loss = float(losses[-1]) if losses else None  # None, not NaN: training_run.json stays strict JSON
    if trainer.is_world_process_zero():
        record = {
            "settings": {"model": dataclasses.asdict(run.model_args), "data": dataclasses.asdict(run.data_args),
                         "training": args.to_dict()},
            "model_init": run.model_dir,
            "languages": run.languages,
            "objective": run.objective.get_config_dict(),
            "parameters": run.counts,
            "allocator": allocator_state(),
            "frozen_feature_cache_fill": run.cache_fill,
            "steps": trainer.state.global_step,
            "final_loss": final_loss,
            "train_seconds_this_run": round(wall, 1),
            "resumed_from": str(resume_from) if resume_from else None,
            "log_history": trainer.state.log_history,
        }
        licence = Path(run.model_dir) / "LICENSES.md"
        note = licence.read_text(encoding="utf-8") if licence.is_file() else ""
        trainer.model.ccr.config.untrained = False
        save_model_folder(trainer.model, run.processor, run.final_dir, note,
                          extra_files={"training_run.json": json.dumps(record, indent=2, default=str)},
                          overwrite=run.replace_model)
    return {"model_dir": str(run.final_dir), "steps": trainer.state.global_step, "final_loss": final_loss,
            "log_history": trainer.state.log_history}


def _cache_frozen_features(args: CCRTrainingArguments, n_images: int) -> bool:
    """Reuse frozen features: as set, or by default on a CPU for data sets of up to 20,000 images (a GPU
    recomputes them quickly, and its memory is better spent on batches)."""
    if args.cache_frozen_features is not None:
        return args.cache_frozen_features
    return not torch.cuda.is_available() and n_images <= MAX_IMAGES_TO_CACHE
