"""The ``ccr`` command line on bad input: one ``ccr COMMAND: error: ...`` line on stderr and exit 2, the
traceback only with ``--debug`` or ``CCR_DEBUG=1``; arguments refused before any model or data loads."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import BertConfig

from modeling_ccr.app.cli import SUBCOMMANDS, CommandParser, main
from modeling_ccr.app.testing import run_ccr_in_process
from modeling_ccr.data import DEFAULT_LANGUAGES
from modeling_ccr.testing import save_tiny_model

REPO = Path(__file__).resolve().parents[2]
COMMAND_NAMES = [" ".join(words) for words, _, _ in SUBCOMMANDS]


def ccr(*args: str, cwd: Path, debug_env: bool = False) -> subprocess.CompletedProcess:
    """``ccr ARGS`` as a user runs it: a fresh interpreter through the entry point's module, in ``cwd``."""
    env = {key: value for key, value in os.environ.items() if key != "CCR_DEBUG"}
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if debug_env:
        env["CCR_DEBUG"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "modeling_ccr.app.cli", *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture
def ccr_here(monkeypatch):
    """``ccr ARGS`` run in this process (the same ``main``, exit code and text, without a fresh interpreter's
    imports), in ``cwd``, with ``CCR_DEBUG=1`` only when ``debug_env``; the two subprocess tests below check
    that the real process prints the same single line."""

    def run(*args: str, cwd: Path, debug_env: bool = False) -> subprocess.CompletedProcess:
        monkeypatch.chdir(cwd)
        if debug_env:
            monkeypatch.setenv("CCR_DEBUG", "1")
        else:
            monkeypatch.delenv("CCR_DEBUG", raising=False)
        return run_ccr_in_process(*args)

    return run


def one_error_line(result: subprocess.CompletedProcess, prefix: str) -> str:
    """The single stderr line of a refused command, checked for exit 2 and no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(prefix), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("cli") / "model")


@pytest.fixture(scope="module")
def broken_weights_model_dir(tmp_path_factory):
    """A CCR folder whose weights would fail to load: a command that stops before loading never sees it."""
    folder = save_tiny_model(tmp_path_factory.mktemp("cli") / "broken")
    (folder / "model.safetensors").write_bytes(b"not weights")
    return folder


def test_unknown_command_names_it_and_lists_the_commands(tmp_path):
    result = ccr("foo", cwd=tmp_path)
    line = one_error_line(result, "ccr: error: unknown command 'foo'; the commands are ")
    assert line.endswith(f"the commands are {', '.join(COMMAND_NAMES)} (run 'ccr --help' for what each does)")
    assert result.stdout == ""


def test_unknown_subcommand_of_a_group(ccr_here, tmp_path):
    one_error_line(ccr_here("data", "biuld", cwd=tmp_path), "ccr: error: unknown command 'data biuld';")


def test_evaluate_on_a_missing_folder_says_so(ccr_here, tmp_path):
    missing = tmp_path / "no-such-model"
    line = one_error_line(ccr_here("evaluate", missing, cwd=tmp_path), "ccr evaluate: error: argument MODEL_DIR: ")
    assert f"{missing} does not exist: pass the folder of a saved CCR model" in line
    assert "Repo id" not in line


def test_evaluate_on_another_model_type_names_the_folder_and_type(ccr_here, tmp_path):
    bert = tmp_path / "bert"
    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8).save_pretrained(bert)
    line = one_error_line(ccr_here("evaluate", bert, cwd=tmp_path), "ccr evaluate: error: argument MODEL_DIR: ")
    assert f"{bert} holds a 'bert' model (model_type in its config.json), not a CCR model" in line


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (["evaluate", "{model}"], "--k-test"),
        (["evaluate", "{model}"], "--batch-size"),
        (["index", "{model}", "{missing}", "--output", "{out}"], "--chunk-images"),
        (["main-job"], "--k-test"),
    ],
)
def test_out_of_range_numbers_fail_before_anything_loads(ccr_here, broken_weights_model_dir, tmp_path, command, flag):
    """The model's weights are unreadable and the dataset does not exist: loading either would fail with
    another message, so the flag's own message shows nothing was loaded first."""
    names = {"model": broken_weights_model_dir, "missing": tmp_path / "no-data", "out": tmp_path / "index"}
    args = [part.format(**names) for part in command]
    result = ccr_here(*args, "--dataset", tmp_path / "no-data", flag, "0", cwd=tmp_path)
    assert one_error_line(result, f"ccr {command[0]}: error: ") == (
        f"ccr {command[0]}: error: argument {flag}: must be at least 1, got 0 (see 'ccr {command[0]} --help')"
    )
    assert not (tmp_path / "index").exists() and not (tmp_path / "report.json").exists()


def test_value_error_at_run_time_is_one_line(model_dir, tmp_path):
    missing = tmp_path / "no-data"
    result = ccr("evaluate", model_dir, "--dataset", missing, cwd=tmp_path)
    line = one_error_line(result, "ccr evaluate: error: ")
    assert line == (
        f"ccr evaluate: error: '{missing}' is neither a benchmark name (cldr-emoji, xflickrco, multi30k, "
        "coco-multilingual, wit, cclm) nor an existing folder (images with a metadata.jsonl or metadata.csv, or "
        "parquet files in the common schema)."
    )


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_debug_shows_the_traceback_then_the_line(ccr_here, model_dir, tmp_path, how):
    missing = tmp_path / "no-data"
    args = ["--debug", "evaluate", model_dir, "--dataset", missing] if how == "flag" else [
        "evaluate", model_dir, "--dataset", missing]
    result = ccr_here(*args, cwd=tmp_path, debug_env=how == "environment")
    assert result.returncode == 2
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert "in load_benchmark" in result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"ccr evaluate: error: '{missing}' is neither a benchmark")


@pytest.mark.parametrize("words", [words for words, _, _ in SUBCOMMANDS], ids=COMMAND_NAMES)
def test_help_shows_every_option_default(words):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        main([*words, "--help"])
    assert exited.value.code == 0
    text = out.getvalue()
    module = importlib.import_module(dict((w, m) for w, m, _ in SUBCOMMANDS)[words])
    if hasattr(module, "run_argv"):  # ccr train: HfArgumentParser over the argument dataclasses
        parser = module.build_parser("ccr train", "")
    else:
        parser = CommandParser()
        module.add_arguments(parser)
    options = [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
    with_default = [a for a in options if not a.required and a.default is not None]
    assert options and text.lower().count("default") >= len(with_default), text
    assert "default: None" not in text  # a required option, or one without a default, says nothing of one


# ----- a broken model folder or options file: one line, no traceback ------------------------------------------


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, colour in enumerate([(200, 30, 30), (30, 30, 200)]):
        Image.new("RGB", (20, 20), colour).save(folder / f"{i}.png")
    return folder


def _copy_model(model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(model_dir, tmp_path / "model"))


def test_index_with_nan_weights_is_refused_before_anything_is_written(ccr_here, model_dir, image_folder, tmp_path):
    folder = _copy_model(model_dir, tmp_path)
    weights = load_file(folder / "model.safetensors")
    weights["text_projection.weight"][0, 0] = float("nan")
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    result = ccr_here("index", folder, image_folder, "--output", tmp_path / "index", "--no-progress", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"ccr index: error: the weights of {folder} hold NaN or infinite values in text_projection.weight: the weight "
        "file is damaged or was saved from a training run that diverged; save, copy or download the model again, or "
        "load an earlier checkpoint"
    )
    assert not (tmp_path / "index").exists()



def test_index_refuses_embeddings_that_overflow_before_anything_is_written(ccr_here, model_dir, image_folder, tmp_path):
    """Finite weights that overflow float32 in the image projection make NaN embeddings, which matched nothing."""
    folder = _copy_model(model_dir, tmp_path)
    weights = load_file(folder / "model.safetensors")
    weights["vision_projection.weight"].fill_(3e38)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    result = ccr_here("index", folder, image_folder, "--output", tmp_path / "index", "--no-progress", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith(
        "ccr index: error: the embedding of image 0 holds NaN or infinite values, so it would match nothing: ")
    assert not (tmp_path / "index").exists()


def test_index_with_a_projection_dim_that_does_not_fit_the_weights_names_the_field(ccr_here, model_dir, image_folder,
                                                                                    tmp_path):
    folder = _copy_model(model_dir, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "projection_dim": 32}))  # the weights have 16
    result = ccr_here("index", folder, image_folder, "--output", tmp_path / "index", cwd=tmp_path)
    line = one_error_line(result, f"ccr index: error: config.json of {folder} and its weights disagree on "
                                  "projection_dim (32 in config.json): model.safetensors holds ")
    assert "Put back the config.json saved with these weights" in line


def test_a_config_without_text_config_is_refused_as_an_argument(ccr_here, model_dir, image_folder, tmp_path):
    folder = _copy_model(model_dir, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    del config["text_config"]
    (folder / "config.json").write_text(json.dumps(config))
    result = ccr_here("index", folder, image_folder, "--output", tmp_path / "index", cwd=tmp_path)
    assert one_error_line(result, "ccr index: error: argument MODEL_DIR: ") == (
        f"ccr index: error: argument MODEL_DIR: the config.json of {folder} has no 'text_config' mapping (the text "
        "tower's settings), which save_pretrained always writes: put back the config.json saved with the model's "
        "weights (see 'ccr index --help')"
    )


def test_a_model_folder_without_tokenizer_files_says_they_are_missing(ccr_here, model_dir, image_folder, tmp_path):
    folder = _copy_model(model_dir, tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    result = ccr_here("index", folder, image_folder, "--output", tmp_path / "index", cwd=tmp_path)
    line = one_error_line(result, f"ccr index: error: argument MODEL_DIR: {folder} holds no tokenizer files ")
    assert "copy them from the folder the model was saved from" in line and "sentencepiece or" not in line


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("run.yaml", "max_steps: [1, 2\nloss_style: one-to-k\n",
         "is not valid YAML at line 2, column 11: expected ',' or ']'"),
        ("run.json", '{"max_steps": 1,}', "is not valid JSON at line 1, column 17: Expecting property name"),
    ],
)
def test_a_broken_config_file_names_the_file_and_the_place(ccr_here, tmp_path, name, text, problem):
    (tmp_path / name).write_text(text)
    line = one_error_line(ccr_here("train", "--config", tmp_path / name, cwd=tmp_path), "ccr train: error: ")
    assert line.startswith(f"ccr train: error: {tmp_path / name} {problem}")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("accelerator_config:\n  split_batchs: true\n", "unexpected keyword argument 'split_batchs'"),
        ("max_steps: [1, 2]\n", "'<' not supported between instances of 'list' and 'int'"),
    ],
    ids=["misspelt nested keyword", "value of the wrong type"],
)
def test_a_config_option_the_arguments_refuse_is_one_line_naming_the_file(ccr_here, tmp_path, text, problem):
    """The options of a config file become the training arguments' keywords: a misspelt nested keyword or a
    value of the wrong type is the user's error (one line naming the file), not a traceback."""
    (tmp_path / "run.yaml").write_text(text)
    result = ccr_here("train", "--config", tmp_path / "run.yaml", cwd=tmp_path)
    line = one_error_line(result, "ccr train: error: ")
    assert line.startswith(f"ccr train: error: invalid training options (from {tmp_path / 'run.yaml'} or the "
                           "command line): ") and problem in line, line


def help_of(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        main(list(argv))
    assert exited.value.code == 0
    return out.getvalue()


@pytest.mark.parametrize("words", [("train",), ("index",), ("data", "build")], ids=" ".join)
def test_help_before_the_command_is_the_commands_help(words):
    assert help_of("--help", *words) == help_of(*words, "--help")


def test_train_help_shows_the_projects_options_before_the_trainers():
    text = help_of("train", "--help")
    usage, ours, theirs = (text.index(heading) for heading in (
        "usage: ccr train [options]\n", "ccr train options (model, data, objective):",
        "transformers.TrainingArguments options"))
    assert usage < ours < theirs
    for flag in ("--model", "--dataset", "--loss_style", "--itm_negative_temperature"):  # the project's
        assert ours < text.index(f"  {flag} ") < theirs, flag
    for flag in ("--learning_rate", "--per_device_train_batch_size", "--max_steps"):  # TrainingArguments'
        assert text.index(f"  {flag} ") > theirs, flag


def test_train_help_states_the_languages_it_trains_on_by_default():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(out.getvalue().split())
    assert f"(default: {','.join(DEFAULT_LANGUAGES)})" in help_text and "all the benchmark has" not in help_text


def test_train_into_a_finished_run_names_the_output_dir_flag(ccr_here, model_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(model_dir, run / "model")
    result = ccr_here("train", "--model", model_dir, "--output-dir", run, "--max-steps", "1", cwd=tmp_path)
    line = one_error_line(result, f"ccr train: error: {run / 'model'} already exists and holds a CCR model folder")
    assert line.endswith("pass --overwrite to replace a CCR model folder's files and keep your other files, or choose "
                         "another --output-dir")


def test_convert_ccrk_of_an_empty_file_says_it_is_empty(ccr_here, tmp_path):
    (tmp_path / "ccrk.th").write_bytes(b"")
    result = ccr_here("convert-ccrk", tmp_path / "ccrk.th", "--output", tmp_path / "out", cwd=tmp_path)
    assert one_error_line(result, "ccr convert-ccrk: error: ") == (
        f"ccr convert-ccrk: error: {tmp_path / 'ccrk.th'} is empty (0 bytes): the download or copy was cut short; "
        "fetch the checkpoint again"
    )
