"""The ``ccr`` command line.

Each sub-command lives in its own module, which exposes ``add_arguments(parser)`` and
``run(args) -> int``, or ``run_argv(argv, prog, description) -> int`` when it parses its own options
(``ccr train`` reads dataclasses with ``transformers.HfArgumentParser``). This file only wires them together and imports just the module of the
sub-command being run, so one command's heavy imports never slow another down.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (command words, module, one-line help)
SUBCOMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("build-default",), "modeling_ccr.default_model", "build the embedded default CCR model"),
    (("data", "build"), "modeling_ccr.data.build", "build the embedded 10-language emoji benchmark"),
    (("train",), "modeling_ccr.training.cli", "train or fine-tune a CCR model"),
    (("evaluate",), "modeling_ccr.evaluation.cli", "retrieval evaluation: Recall@K per language and MRV"),
    (("main-job",), "modeling_ccr.main_job", "the README's main job on the embedded default"),
    (("index",), "modeling_ccr.index.cli", "embed an image folder or a benchmark split into a gallery index"),
    (("search",), "modeling_ccr.index.search_cli", "text -> image search of a gallery index"),
    (("demo",), "modeling_ccr.demo.cli", "serve the Gradio demo on 127.0.0.1"),
    (("export",), "modeling_ccr.hub.export", "a Hub-ready folder: weights, code, card, licences (--onnx)"),
    (("export-companion",), "modeling_ccr.hub.companions", "the MRV metric Space, the benchmark dataset or the demo Space folder"),
    (("push",), "modeling_ccr.hub.push", "upload an exported folder or a Space to the Hub"),
    (("convert-ccrk",), "modeling_ccr.hub.convert_ccrk", "convert a released CCRK checkpoint to a CCR model folder"),
]


def _select(argv: list[str]) -> tuple[tuple[str, ...], str, str] | None:
    words = [w for w in argv if not w.startswith("-")]
    for entry in SUBCOMMANDS:
        if tuple(words[: len(entry[0])]) == entry[0]:
            return entry
    return None


def _overview() -> str:
    lines = ["usage: ccr COMMAND [options]", "", "commands:"]
    lines += [f"  {' '.join(words):<16} {help_text}" for words, _, help_text in SUBCOMMANDS]
    lines += ["", "Run 'ccr COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    entry = _select(argv)
    if entry is None:
        print(_overview(), file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    words, module_name, help_text = entry
    module = importlib.import_module(module_name)
    if hasattr(module, "run_argv"):
        return int(module.run_argv(argv[len(words):], "ccr " + " ".join(words), help_text) or 0)
    parser = argparse.ArgumentParser(prog="ccr " + " ".join(words), description=help_text)
    module.add_arguments(parser)
    args = parser.parse_args(argv[len(words):])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
