"""The --dataset options shared by the training and evaluation commands."""

from __future__ import annotations

import argparse

import pytest

from modeling_ccr.app.dataset_options import add_dataset_arguments
from modeling_ccr.data import load_benchmark
from modeling_ccr.data.arguments import load_dataset_from_args


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
