"""``ccr train``: train or fine-tune a CCR model with the 1-to-K objective (or a baseline style).

With no arguments it fine-tunes the embedded default model on the embedded benchmark's train split and
saves a model folder that ``AutoModel.from_pretrained`` loads. The same command runs on CUDA (bf16
where supported) and under ``accelerate launch`` / ``torchrun`` on several GPUs or CPU processes (gloo).

The options are the fields of ``ModelArguments``, ``DataArguments`` and ``CCRTrainingArguments``
(``transformers.TrainingArguments`` plus the objective's settings), read by
``transformers.HfArgumentParser``: ``--max_steps`` and ``--max-steps`` both work. ``--config run.yaml``
(or ``.json``) gives any of them as a mapping; flags on the command line win over the file.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from accelerate import PartialState
from transformers import HfArgumentParser, TrainingArguments

from ..data.arguments import DataArguments
from ..process_group import end_process_group
from ..training.run import CCRTrainingArguments, ModelArguments, train
from .cli import DefaultsHelpFormatter, OneLineErrors

ARGUMENT_CLASSES = (ModelArguments, DataArguments, CCRTrainingArguments)


class TrainParser(OneLineErrors, HfArgumentParser):
    """``HfArgumentParser`` whose usage errors print one line, as every ``ccr`` command's do."""


def build_parser(prog: str, description: str) -> HfArgumentParser:
    """The parser of ``ccr train``. Its help shows the project's own options first (the model, the data,
    the objective and ``--config``), then the ``transformers.TrainingArguments`` ones under their own
    heading; the usage line is one line, not every option again."""
    parser = TrainParser(ARGUMENT_CLASSES, prog=prog, description=description, usage="%(prog)s [options]",
                         formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--config", help="JSON or YAML file of options (keys as the flags, with underscores); "
                        "flags given on the command line win")
    inherited = {field.name for field in dataclasses.fields(TrainingArguments)}
    ours = parser.add_argument_group("ccr train options (model, data, objective)")
    theirs = parser.add_argument_group("transformers.TrainingArguments options (the Trainer's own)")
    for action in list(parser._optionals._group_actions):  # argparse keeps no public API to regroup
        if action.dest in inherited:
            group = theirs
        elif action.dest in ("help", "config"):
            continue
        else:
            group = ours
        parser._optionals._group_actions.remove(action)
        group._group_actions.append(action)
    return parser


def parse_arguments(argv: list[str], prog: str = "ccr train", description: str = "") -> tuple[
        ModelArguments, DataArguments, CCRTrainingArguments]:
    """The three argument dataclasses from ``argv``: defaults, then the ``--config`` file, then the flags.

    An option the dataclasses refuse with a TypeError (a value of the wrong type from the file, a misspelt key
    of a nested option such as ``accelerator_config``) is the user's error: a ValueError naming it.
    """
    parser = build_parser(prog, description)
    config_path = parser.parse_known_args(argv)[0].config
    if config_path:
        values = _read_config(Path(config_path))
        known = {f.name for cls in ARGUMENT_CLASSES for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{config_path}: unknown training options {unknown}; run 'ccr train --help' for the list")
        parser.set_defaults(**values)
    try:
        model_args, data_args, training_args, _ = parser.parse_args_into_dataclasses(argv)
    except TypeError as error:
        source = f" (from {config_path} or the command line)" if config_path else ""
        message = f"invalid training options{source}: {error}; run 'ccr train --help' for what each takes"
        raise ValueError(message) from error
    return model_args, data_args, training_args


def _read_config(path: Path) -> dict[str, Any]:
    """The options of a ``--config`` file (YAML for ``.yaml`` / ``.yml``, else JSON), keys with underscores.

    A file that is missing, not UTF-8 text or not valid YAML / JSON raises a one-line ValueError naming the
    file and, for a syntax error, the line and column.
    """
    if not path.is_file():
        raise ValueError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text (byte {error.start}): "
                         "pass a YAML or JSON file of options") from None
    data = _parse_yaml(path, text) if path.suffix in (".yaml", ".yml") else _parse_json(path, text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of options, got {type(data).__name__}")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def _parse_yaml(path: Path, text: str) -> Any:
    """``text`` of the YAML file ``path`` parsed; a syntax error is a ValueError naming where it is."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)  # where the parser stopped, when it knows
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"{path} is not valid YAML{where}: {problem}; fix the file") from None


def _parse_json(path: Path, text: str) -> Any:
    """``text`` of the JSON file ``path`` parsed; a syntax error is a ValueError naming where it is."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}; fix "
                         "the file, or give it a .yaml name if it is YAML") from None


def run_argv(argv: list[str], prog: str, description: str) -> int:
    model_args, data_args, training_args = parse_arguments(argv, prog, description)
    start = time.perf_counter()
    result = train(training_args, model_args, data_args)
    wall = time.perf_counter() - start
    if PartialState().is_main_process:
        loss = result["final_loss"]
        print(f"training wall time {wall:.1f} s, {result['steps']} steps, final loss "
              + ("n/a (no step logged)" if loss is None else f"{loss:.4f}"))
        print(f"model saved to {result['model_dir']}")
    end_process_group()  # under a launcher: every process, once the trainer and its DDP model are gone
    return 0
