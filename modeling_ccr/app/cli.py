"""The ``ccr`` command line.

Each sub-command lives in its own module, which exposes ``add_arguments(parser)`` and
``run(args) -> int``, or ``run_argv(argv, prog, description) -> int`` when it parses its own options
(``ccr train`` reads dataclasses with ``transformers.HfArgumentParser``). This file only wires them together
and imports just the module of the sub-command being run, so one command's heavy imports never slow another
down.

Errors: bad input (a ``ValueError``, or a missing, existing, wrong-kind or forbidden file) prints one line
``ccr COMMAND: error: MESSAGE`` to stderr and exits 2; the traceback is printed too only with the global
``--debug`` flag (anywhere on the command line) or ``CCR_DEBUG=1``. Arguments are checked as they are
parsed (the ``type=`` validators below), before any model or data loads.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import traceback
from pathlib import Path

from ..allocator import tune_allocator

DEBUG_FLAG = "--debug"
# What a user's input can cause; anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError)

# (command words, module, one-line help)
SUBCOMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("build-default",), "modeling_ccr.app.build_default", "build the embedded default CCR model"),
    (("data", "build"), "modeling_ccr.app.dataset.build", "build the embedded 10-language emoji benchmark"),
    (("train",), "modeling_ccr.app.train", "train or fine-tune a CCR model"),
    (("evaluate",), "modeling_ccr.app.evaluate", "retrieval evaluation: Recall@K per language and MRV"),
    (("main-job",), "modeling_ccr.app.main_job", "the README's main job on the embedded default"),
    (("index",), "modeling_ccr.app.index.cli", "embed an image folder or a benchmark split into a gallery index"),
    (("search",), "modeling_ccr.app.index.search_cli", "text -> image search of a gallery index"),
    (("demo",), "modeling_ccr.app.demo.cli", "serve the Gradio demo on 127.0.0.1"),
    (("export",), "modeling_ccr.app.hub.export", "a Hub-ready folder: weights, code, card, licences (--onnx)"),
    (("export-companion",), "modeling_ccr.app.hub.companions",
     "the MRV metric Space, the benchmark dataset or the demo Space folder"),
    (("push",), "modeling_ccr.app.hub.push", "upload an exported folder or a Space to the Hub"),
    (("convert-ccrk",), "modeling_ccr.app.hub.convert_ccrk",
     "convert a released CCRK checkpoint to a CCR model folder"),
]


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default, except where its help text already states it, where the option is
    required, or where the default is None (which says nothing)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        if action.required or action.default is None or "default" in help_text.lower():
            return help_text
        return super()._get_help_string(action)


class OneLineErrors:
    """Parser mix-in: a usage error prints one line, ``PROG: error: MESSAGE (see 'PROG --help')``, exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class CommandParser(OneLineErrors, argparse.ArgumentParser):
    """The parser of one ``ccr`` sub-command."""


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def finite_float(text: str) -> float:
    """argparse type: a finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1 to 65535."""
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, got {value}")
    return value


# A saved tokenizer's vocabulary: a fast tokenizer's tokenizer.json, or the files a slow one is built from
# (SentencePiece models, WordPiece / BPE vocabularies, tiktoken ranks).
TOKENIZER_VOCABULARY_FILES = ("tokenizer.json", "*.model", "vocab.*", "*.tiktoken")


def model_folder(text: str) -> str:
    """argparse type of MODEL_DIR: an existing folder holding a CCR model's config.json and its tokenizer.

    The model type is checked by ``CCRConfig.from_pretrained`` (which refuses another ``model_type``), so
    a wrong folder fails here, before any weights or data load; so does a folder without tokenizer files
    (for which transformers would advise installing sentencepiece).
    """
    path = Path(text)
    if not path.is_dir():
        state = "is not a folder" if path.exists() else "does not exist"
        raise argparse.ArgumentTypeError(
            f"{text} {state}: pass the folder of a saved CCR model (ccr build-default, ccr train, ccr "
            "convert-ccrk or CCRModel.save_pretrained write one)"
        )
    if not (path / "config.json").is_file():
        raise argparse.ArgumentTypeError(
            f"{text} holds no config.json, so it is not a saved model folder: pass the folder that "
            "CCRModel.save_pretrained (or ccr build-default, ccr train) wrote"
        )
    from ..configuration_ccr import CCRConfig

    try:
        CCRConfig.from_pretrained(text)
    except (ValueError, OSError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if not any(any(path.glob(pattern)) for pattern in TOKENIZER_VOCABULARY_FILES):
        raise argparse.ArgumentTypeError(
            f"{text} holds no tokenizer files (tokenizer.json, or a vocabulary such as sentencepiece.bpe.model): "
            "copy them from the folder the model was saved from, or save the model's processor into it "
            "(processor.save_pretrained)"
        )
    return text


def _select(argv: list[str]) -> tuple[tuple[str, ...], str, str] | None:
    words = [w for w in argv if not w.startswith("-")]
    for entry in SUBCOMMANDS:
        if tuple(words[: len(entry[0])]) == entry[0]:
            return entry
    return None


def _options_of(argv: list[str], words: tuple[str, ...]) -> list[str]:
    """``argv`` less the command's words (the first non-option words), wherever options stand among them:
    ``ccr --help train`` is ``ccr train --help``."""
    rest, left = [], list(words)
    for word in argv:
        if left and not word.startswith("-") and word == left[0]:
            left.pop(0)
        else:
            rest.append(word)
    return rest


def _overview() -> str:
    lines = ["usage: ccr [--debug] COMMAND [options]", "", "commands:"]
    lines += [f"  {' '.join(words):<16} {help_text}" for words, _, help_text in SUBCOMMANDS]
    lines += ["", "Run 'ccr COMMAND --help' for a command's options; --debug shows tracebacks of errors."]
    return "\n".join(lines)


def _not_a_command(argv: list[str]) -> str:
    """The one-line error for a command line that names no known command."""
    words = [w for w in argv if not w.startswith("-")]
    if not words:
        return f"no command given (options {' '.join(argv)})"
    in_a_group = any(len(entry[0]) > 1 and entry[0][0] == words[0] for entry in SUBCOMMANDS)  # "data build"
    typed = " ".join(words[:2] if in_a_group else words[:1])
    names = ", ".join(" ".join(entry[0]) for entry in SUBCOMMANDS)
    return f"unknown command {typed!r}; the commands are {names} (run 'ccr --help' for what each does)"


def _run_command(entry: tuple[tuple[str, ...], str, str], argv: list[str]) -> int:
    words, module_name, help_text = entry
    prog = "ccr " + " ".join(words)
    module = importlib.import_module(module_name)
    options = _options_of(argv, words)
    if hasattr(module, "run_argv"):
        return int(module.run_argv(options, prog, help_text) or 0)
    parser = CommandParser(prog=prog, description=help_text, formatter_class=DefaultsHelpFormatter)
    module.add_arguments(parser)
    args = parser.parse_args(options)
    if not getattr(args, "no_progress", False):
        return int(module.run(args) or 0)
    from transformers.utils import logging as transformers_logging

    shown = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # --no-progress: transformers' "Loading weights" bars too
    try:
        return int(module.run(args) or 0)
    finally:
        if shown:
            transformers_logging.enable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    tune_allocator()  # every command, before the first large allocation (modeling_ccr.allocator says why)
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or os.environ.get("CCR_DEBUG") == "1"
    argv = [word for word in argv if word != DEBUG_FLAG]
    entry = _select(argv)
    if entry is None:
        if not argv or argv[0] in ("-h", "--help"):
            print(_overview())
            return 0
        print(f"ccr: error: {_not_a_command(argv)}", file=sys.stderr)
        return 2
    try:
        return _run_command(entry, argv)
    except USER_ERRORS as error:
        if debug:
            traceback.print_exc()
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"ccr {' '.join(entry[0])}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
