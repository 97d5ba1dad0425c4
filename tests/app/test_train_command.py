"""`ccr train` end to end on a tiny model: saving, killing mid-run and resuming, and early errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest
from PIL import Image
from transformers import AutoModel

from modeling_ccr.app.testing import run_ccr_in_process
from modeling_ccr.app.train import parse_arguments
from modeling_ccr.data.arguments import DataArguments
from modeling_ccr.testing import tiny_ccr_model, tiny_ccr_processor
from modeling_ccr.testing_processes import launcher_command, run_command
from modeling_ccr.training import CCRTrainingArguments, ModelArguments, train

COLOURS = [(220, 20, 20), (20, 200, 20), (20, 20, 220), (0, 0, 0), (255, 255, 255), (255, 150, 200)]
NAMES = {"en": ["red", "green", "blue", "black", "white", "pink"],
         "de": ["rot", "grün", "blau", "schwarz", "weiß", "rosa"],
         "fr": ["rouge", "vert", "bleu", "noir", "blanc", "rose"]}


def write_parquet_benchmark(folder: Path, missing_french_in_row: int | None = None) -> Path:
    """A 6-image benchmark in the common schema, as a parquet folder (``train.parquet``)."""
    rows = {"id": [], "image": [], "captions": []}
    for i, colour in enumerate(COLOURS):
        rows["id"].append(f"c{i}")
        rows["image"].append(Image.new("RGB", (12, 12), colour))
        captions = {lang: f"{NAMES[lang][i]} square" for lang in NAMES}
        if i == missing_french_in_row:
            captions["fr"] = None
        rows["captions"].append(captions)
    folder.mkdir(parents=True, exist_ok=True)
    dataset = datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image())
    dataset.to_parquet(str(folder / "train.parquet"))
    return folder


@pytest.fixture()
def tiny_run(tmp_path):
    model_dir = tmp_path / "model"
    tiny_ccr_model("vit").save_pretrained(model_dir)
    tiny_ccr_processor().save_pretrained(model_dir)
    return model_dir, write_parquet_benchmark(tmp_path / "data"), tmp_path / "run"


def train_command(model_dir, data_dir, output, *extra):
    return [sys.executable, "-m", "modeling_ccr.app.cli", "train", "--model", str(model_dir),
            "--dataset", str(data_dir),
            "--languages", "en,de,fr", "--per-device-train-batch-size", "3", "--logging-steps", "2",
            "--save-steps", "3", "--learning-rate", "1e-3", "--output-dir", str(output), "--disable-tqdm", "True",
            "--train-vision-layers", "1", "--train-text-layers", "1", *extra]


def test_kill_mid_run_then_resume_continues_from_the_last_checkpoint(tiny_run):
    model_dir, data_dir, output = tiny_run
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    command = train_command(model_dir, data_dir, output, "--max-steps", "400")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marker = output / "checkpoints" / "checkpoint-6" / "trainer_state.json"
    deadline = time.time() + 240
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (output / "model").exists()  # killed: no final model
    steps_done = max(int(p.name.split("-")[1]) for p in (output / "checkpoints").glob("checkpoint-*")
                     if (p / "trainer_state.json").exists())
    assert 6 <= steps_done < 400

    # the reruns in this process: what they do and say is the command's, not the interpreter's
    refused = run_ccr_in_process(*train_command(model_dir, data_dir, output, "--max-steps", "12")[3:])
    assert refused.returncode != 0 and "pass --resume" in refused.stderr

    max_steps = steps_done + 6
    resumed = run_ccr_in_process(*train_command(model_dir, data_dir, output, "--max-steps", str(max_steps),
                                                "--resume")[3:])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "final loss" in resumed.stdout
    record = json.loads((output / "model" / "training_run.json").read_text())
    assert record["steps"] == max_steps
    assert record["resumed_from"].endswith(f"checkpoint-{steps_done}")
    logged_steps = [entry["step"] for entry in record["log_history"] if "loss" in entry]
    assert logged_steps[0] <= steps_done < logged_steps[-1]  # the history before the kill is kept
    model = AutoModel.from_pretrained(output / "model")
    assert model.config.model_type == "ccr"


def test_bad_settings_fail_before_training(tiny_run, tmp_path):
    model_dir, data_dir, output = tiny_run
    model_args = ModelArguments(model=str(model_dir))
    with pytest.raises(ValueError, match="unknown loss_style"):
        CCRTrainingArguments(output_dir=str(output), loss_style="one-to-one")
    with pytest.raises(ValueError, match="unknown itm_positive_language"):
        CCRTrainingArguments(output_dir=str(output), itm_positive_language="easiest")
    broken = write_parquet_benchmark(tmp_path / "broken", missing_french_in_row=4)
    with pytest.raises(ValueError, match="fr"):
        train(CCRTrainingArguments(output_dir=str(output), per_device_train_batch_size=3), model_args,
              DataArguments(dataset=str(broken), languages=["en", "de", "fr"]))
    ragged = tmp_path / "ragged.yaml"
    ragged.write_text("loss_style: one-to-k\nbatch_size: 3\n")
    with pytest.raises(ValueError, match="unknown training options.*batch_size"):
        parse_arguments(["--config", str(ragged)])
    assert not (output / "checkpoints").exists()  # nothing trained, nothing written


def test_config_file_then_flags(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("max_steps: 7\nlanguages: en,de\nloss_style: cross-modal\nitm_weight: 0.5\n")
    model_args, data_args, args = parse_arguments(["--config", str(config), "--max-steps", "9", "--model", "m"])
    assert (args.max_steps, args.loss_style, args.itm_weight) == (9, "cross-modal", 0.5)  # the flag wins
    assert data_args.languages == ["en", "de"] and model_args.model == "m"
    as_json = tmp_path / "run.json"
    as_json.write_text(json.dumps({"train_vision_layers": 0, "languages": ["en", "fr"]}))
    _, data_args, args = parse_arguments(["--config", str(as_json)])
    assert args.train_vision_layers == 0 and data_args.languages == ["en", "fr"]
    _, data_args, args = parse_arguments(["--languages", "en", "de", "--mlm-masking", "tokens"])
    assert data_args.languages == ["en", "de"] and args.mlm_masking == "tokens"


def test_a_half_written_checkpoint_is_set_aside_not_used(tiny_run):
    from modeling_ccr.training.run import find_resume_checkpoint, set_aside_incomplete_checkpoints

    _, _, output = tiny_run
    good, half = output / "checkpoints" / "checkpoint-3", output / "checkpoints" / "checkpoint-6"
    good.mkdir(parents=True)
    (good / "trainer_state.json").write_text("{}")
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"partial")
    with pytest.raises(ValueError, match="checkpoint-6 is incomplete.*set incomplete checkpoints aside"):
        find_resume_checkpoint(output / "checkpoints")  # finding alone never resumes it, nor moves it
    assert half.is_dir() and good.is_dir()
    moved = set_aside_incomplete_checkpoints(output / "checkpoints")
    assert find_resume_checkpoint(output / "checkpoints") == good
    assert not half.exists() and len(list((output / "checkpoints").glob("incomplete-checkpoint-6-*"))) == 1
    assert moved == list((output / "checkpoints").glob("incomplete-checkpoint-6-*"))
    assert (moved[0] / "model.safetensors").read_bytes() == b"partial" and good.is_dir()  # kept, not deleted


def test_a_run_shorter_than_the_logging_interval_has_no_final_loss_and_strict_json(tiny_run):
    model_dir, data_dir, output = tiny_run
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "untrained": True}))  # as build-default saves it
    finished = run_ccr_in_process(*train_command(model_dir, data_dir, output, "--max-steps", "1",
                                                 "--logging-steps", "5")[3:])
    assert finished.returncode == 0, finished.stderr
    assert "1 steps, final loss n/a (no step logged)" in finished.stdout

    def refuse(constant):
        raise AssertionError(f"training_run.json holds {constant}, which strict JSON has not")

    record = json.loads((output / "model" / "training_run.json").read_text(encoding="utf-8"), parse_constant=refuse)
    assert record["steps"] == 1 and record["final_loss"] is None
    assert record["objective"]["itm_negative_temperature"] == 0.3  # ccr train's draw, recorded with the run
    assert AutoModel.from_pretrained(output / "model").config.untrained is False  # trained, however briefly
    assert record["allocator"]["reason"]  # the ccr process's allocator setting, recorded with the run
    assert record["frozen_feature_cache_fill"] is None  # 1 step of 3 of the 6 images: filled in the step


@pytest.mark.parametrize("launcher", ["accelerate", "torchrun"])
def test_two_process_training_ends_cleanly(tiny_run, launcher):
    """Two gloo processes train 2 steps, save one model, end their process group and exit 0 (a teardown
    that deadlocks fails here by the launcher's deadline, with the workers' stacks)."""
    model_dir, data_dir, output = tiny_run
    arguments = train_command(model_dir, data_dir, output, "--max-steps", "2", "--save-steps", "100")[1:]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    finished = run_command(launcher_command(launcher, arguments), timeout_s=240, env=env)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.count("model saved to") == 1  # process 0 saves and reports
    record = json.loads((output / "model" / "training_run.json").read_text(encoding="utf-8"))
    assert record["steps"] == 2
    # 6 images in steps of 2 processes x 3 images: one epoch per step (one process would need two).
    assert record["log_history"][-1]["epoch"] == pytest.approx(2.0)
    # The run sees every image, so each process filled its cache before training: the states of the frozen
    # text layer for all 18 captions; no image features, since the tiny ViT tower trains and has no frozen part.
    assert record["frozen_feature_cache_fill"]["images"] == 0 and record["frozen_feature_cache_fill"]["texts"] == 18
