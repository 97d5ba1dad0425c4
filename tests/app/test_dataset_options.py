"""The --dataset options shared by the training and evaluation commands."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from modeling_ccr.app.dataset_options import add_dataset_arguments
from modeling_ccr.constants import DATASET_OPTIONS, ON_MISSING_CHOICES
from modeling_ccr.data import load_benchmark
from modeling_ccr.data.arguments import DataArguments, load_dataset_from_args


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_dataset_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_load_the_embedded_benchmark():
    args = parse([])
    assert (args.dataset, args.data_dir, args.image_dir, args.languages, args.on_missing) == (
        "cldr-emoji",
        None,
        None,
        None,
        "error",
    )
    assert load_dataset_from_args(args, "validation").num_rows == 200


def test_languages_and_policy_reach_the_loader():
    args = parse(["--languages", "ja, en", "--on-missing", "drop", "--image-dir", "a", "--image-dir", "b"])
    assert args.languages == ["ja", "en"] and args.image_dir == ["a", "b"]
    test = load_dataset_from_args(parse(["--languages", "ja,en"]), "test")
    assert test["captions"] == load_benchmark("cldr-emoji", split="test", languages=["ja", "en"])["captions"]
    with pytest.raises(SystemExit):
        parse(["--on-missing", "ignore"])


def test_train_and_evaluate_read_one_declaration_of_the_options():
    """``ccr evaluate``'s flags and ``ccr train``'s ``DataArguments`` take each shared option's default, help
    and choices from ``constants.DATASET_OPTIONS``."""
    parser = argparse.ArgumentParser()
    add_dataset_arguments(parser)
    flags = {action.dest: action for action in parser._actions}
    fields = {field.name: field for field in dataclasses.fields(DataArguments)}
    assert set(DATASET_OPTIONS) <= set(flags) and set(DATASET_OPTIONS) <= set(fields)
    for name, option in DATASET_OPTIONS.items():
        assert flags[name].default == fields[name].default == option.default, name
        assert flags[name].help.startswith(option.help), name
        assert fields[name].metadata["help"].startswith(option.help), name
        assert flags[name].choices == option.choices
        assert fields[name].metadata.get("choices") == (option.choices and list(option.choices))
    assert flags["on_missing"].choices == ON_MISSING_CHOICES
