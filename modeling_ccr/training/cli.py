"""``ccr train``: train or fine-tune a CCR model with the 1-to-K objective (or a baseline style).

With no arguments it fine-tunes the embedded default model on the embedded benchmark's train split and
saves a model folder that ``AutoModel.from_pretrained`` loads. The same command runs on CUDA (bf16
where supported) and under ``accelerate launch`` / ``torchrun`` on several GPUs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from ..data.cli_args import add_dataset_arguments
from ..losses import WEIGHTINGS
from .objective import LOSS_STYLES
from .run import TrainSettings, train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainSettings()
    parser.add_argument("--config", help="JSON or YAML file of settings (keys as the flags, with underscores); "
                        "flags given on the command line win")
    parser.add_argument("--model", help="CCR model folder to start from (default: the embedded default model)")
    add_dataset_arguments(parser, default=defaults.dataset)
    # None = not given on the command line, so a --config file's value is kept
    parser.set_defaults(dataset=None, on_missing=None)
    parser.add_argument("--split", help=f"split to train on (default {defaults.split})")
    parser.add_argument("--loss-style", choices=LOSS_STYLES, help=f"default {defaults.loss_style}")
    parser.add_argument("--weighting", choices=WEIGHTINGS, help=f"1-to-K weighting (default {defaults.weighting})")
    parser.add_argument("--max-steps", type=int, help=f"optimiser steps (default {defaults.max_steps})")
    parser.add_argument("--batch-size", type=int, help=f"images per device per step (default {defaults.batch_size})")
    parser.add_argument("--gradient-accumulation-steps", type=int)
    parser.add_argument("--learning-rate", type=float, help=f"base learning rate (default {defaults.learning_rate})")
    parser.add_argument("--new-parameter-lr-multiplier", type=float,
                        help="learning-rate factor of the cross-attention and the ITM / MLM heads (default 2)")
    parser.add_argument("--projection-lr-multiplier", type=float,
                        help="learning-rate factor of the retrieval projections and the temperature (default 10)")
    parser.add_argument("--train-text-layers", type=int,
                        help="how many top text-encoder layers train (-1: all, embeddings too)")
    parser.add_argument("--train-vision", choices=["none", "all"], help="train the image tower or keep it frozen")
    parser.add_argument("--cache-frozen-features", action=argparse.BooleanOptionalAction, default=None,
                        help="compute the frozen image tower's tokens and the frozen text layers' states once and keep "
                        "them in memory (default: on a CPU, for data sets of up to 20,000 images)")
    parser.add_argument("--contrastive-weight", type=float)
    parser.add_argument("--itm-weight", type=float)
    parser.add_argument("--mlm-weight", type=float)
    parser.add_argument("--keyword-probability", type=float, help="chance to swap a caption for a CLDR keyword")
    parser.add_argument("--save-steps", type=int, help="checkpoint every N steps")
    parser.add_argument("--logging-steps", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--output", help=f"output folder (default {defaults.output})")
    parser.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint in --output")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def settings_from_args(args: argparse.Namespace) -> TrainSettings:
    """Defaults, then the config file, then the flags given."""
    values: dict[str, Any] = {}
    if args.config:
        values.update(_read_config(Path(args.config)))
    for key, value in vars(args).items():
        if key in ("config", "no_progress") or value is None or (key == "resume" and value is False):
            continue
        values[key] = value
    if args.no_progress:
        values["progress"] = False
    if isinstance(values.get("languages"), str):  # a config file may give "en,de,fr"
        values["languages"] = [code.strip() for code in values["languages"].split(",") if code.strip()]
    known = set(TrainSettings.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown training settings {unknown}; known: {sorted(known)}")
    return TrainSettings(**values)


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of settings, got {type(data).__name__}")
    return {key.replace("-", "_"): value for key, value in data.items()}


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    start = time.perf_counter()
    result = train(settings)
    wall = time.perf_counter() - start
    if int(os.environ.get("RANK", "0")) == 0:
        loss = result["final_loss"]
        print(f"training wall time {wall:.1f} s, {result['steps']} steps, final loss "
              f"{loss:.4f}" if math.isfinite(loss) else f"training wall time {wall:.1f} s")
        print(f"model saved to {result['model_dir']}")
    return 0
