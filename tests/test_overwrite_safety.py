"""Overwrite safety of every writer: an existing output is refused without --overwrite (every byte kept),
replaced with it (the user's other files kept byte for byte, stale artifacts gone), and a write that fails
midway leaves the old output complete. CLI cases run the real ``ccr`` main (in this process)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from evaluation.eval_fixtures import LANGUAGES, write_parquet_benchmark  # tests/ is on the path (rootdir)
from killed_runs import run_ccr_killed_at
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModel

from modeling_ccr import atomic_io
from modeling_ccr.app.testing import run_ccr_in_process
from modeling_ccr.atomic_io import OutputKind, atomic_write, write_output
from modeling_ccr.default_model import save_model_folder
from modeling_ccr.evaluation.report import write_report
from modeling_ccr.testing import save_tiny_model, tiny_ccr_model, tiny_ccr_processor

REPO_ROOT = Path(__file__).resolve().parents[1]
THING = OutputKind("a thing folder", lambda folder: (folder / "thing.json").is_file(), ("thing.json", "part-*.bin"))


def tree(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` by relative path (empty folders as "dir")."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*")) if p.is_file() or not any(p.iterdir())}


def add_user_files(folder: Path) -> dict[str, str]:
    """A user's notes.txt and eval_results/ (with a nested file and an empty folder) in ``folder``."""
    (folder / "notes.txt").write_text("trained on my photos, lr 3e-4\n")
    (folder / "eval_results" / "run1").mkdir(parents=True)
    (folder / "eval_results" / "run1" / "scores.json").write_text('{"r1": 41.5}\n')
    (folder / "eval_results" / "empty").mkdir()
    return user_part(folder)


def user_part(folder: Path) -> dict[str, str]:
    """:func:`tree` of the files :func:`add_user_files` writes."""
    return {path: digest for path, digest in tree(folder).items() if path.startswith(("notes.txt", "eval_results"))}


def siblings(folder: Path) -> list[str]:
    """Names beside ``folder`` that start with a dot (staging and set-aside folders)."""
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith("."))


def ccr(*args: str) -> subprocess.CompletedProcess:
    """``ccr ARGS`` run in this process: its exit code and what it printed (the process boundary is not what
    these tests check, and a fresh interpreter per call cost seconds of imports each)."""
    return run_ccr_in_process(*args)


def assert_refused(result: subprocess.CompletedProcess, output: Path) -> None:
    assert result.returncode != 0, result.stdout[-2000:]
    assert str(output) in result.stderr and "--overwrite" in result.stderr, result.stderr[-2000:]


def write_thing(payload: bytes, parts: int = 1):
    def write(staging: Path) -> None:
        (staging / "thing.json").write_text(json.dumps({"parts": parts}))
        for part in range(parts):
            (staging / f"part-{part}.bin").write_bytes(payload)

    return write


# The module's rule, on a small kind of output


def test_refused_without_overwrite_and_foreign_folders_refused_even_with_it(tmp_path):
    output = tmp_path / "out"
    write_output(output, write_thing(b"old"), THING)
    add_user_files(output)
    before = tree(output)
    with pytest.raises(ValueError, match="already exists and holds a thing folder.*pass --overwrite") as refused:
        write_output(output, write_thing(b"new"), THING)
    assert str(output) in str(refused.value) and "notes.txt" in str(refused.value)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep")
    with pytest.raises(ValueError, match="is not a thing folder.*thesis.tex"):
        write_output(foreign, write_thing(b"new"), THING, overwrite=True)
    assert tree(output) == before and tree(foreign) == {"thesis.tex": hashlib.sha256(b"keep").hexdigest()}
    assert siblings(output) == []


def test_overwrite_replaces_the_artifacts_keeps_user_files_and_drops_stale_ones(tmp_path):
    output = tmp_path / "out"
    write_output(output, write_thing(b"old", parts=3), THING)
    user = add_user_files(output)
    kept = write_output(output, write_thing(b"new", parts=1), THING, overwrite=True)
    assert kept == ["eval_results/run1/scores.json", "notes.txt"]
    assert user_part(output) == user
    assert sorted(p.name for p in output.iterdir()) == ["eval_results", "notes.txt", "part-0.bin", "thing.json"]
    assert (output / "part-0.bin").read_bytes() == b"new"  # part-1/part-2 of the old output are gone
    assert siblings(output) == []


def test_a_write_failing_midway_leaves_the_old_output_and_no_staging(tmp_path):
    output = tmp_path / "out"
    write_output(output, write_thing(b"old", parts=2), THING)
    add_user_files(output)
    before = tree(output)

    def fail_halfway(staging: Path) -> None:
        write_thing(b"new")(staging)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_output(output, fail_halfway, THING, overwrite=True)
    assert tree(output) == before and siblings(output) == []


def test_the_two_rename_fallback_gives_the_same_result(tmp_path, monkeypatch):
    """Where renameat2 is missing (not Linux), the old folder is renamed away and the new one in."""
    monkeypatch.setattr(atomic_io, "_exchange", lambda first, second: False)
    output = tmp_path / "out"
    write_output(output, write_thing(b"old", parts=2), THING)
    add_user_files(output)
    write_output(output, write_thing(b"new"), THING, overwrite=True)
    assert (output / "part-0.bin").read_bytes() == b"new" and not (output / "part-1.bin").exists()
    assert (output / "notes.txt").is_file() and siblings(output) == []


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        atomic_write(target, lambda path: (path.write_text("half"), (_ for _ in ()).throw(RuntimeError("x"))))
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]


# Model folders: stale weight shards, and the writers' CLIs


def test_stale_shards_do_not_survive_an_overwrite_with_a_single_file_model(tmp_path):
    output = tmp_path / "model"
    old = tiny_ccr_model(seed=1)
    old.save_pretrained(output, max_shard_size="100KB")
    tiny_ccr_processor().save_pretrained(output)
    assert len(list(output.glob("model-0000*-of-0000*.safetensors"))) > 1
    assert (output / "model.safetensors.index.json").is_file()
    (output / "notes.txt").write_text("mine\n")
    new = tiny_ccr_model(seed=2)
    save_model_folder(new, tiny_ccr_processor(), output, "", overwrite=True)
    assert sorted(p.name for p in output.glob("*.safetensors*")) == ["model.safetensors"]
    loaded = AutoModel.from_pretrained(output)
    for name, tensor in new.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, msg=name)
    assert not torch.equal(loaded.state_dict()["text_projection.weight"], old.state_dict()["text_projection.weight"])
    assert (output / "notes.txt").read_text() == "mine\n"


@pytest.fixture()
def trained_model(tmp_path) -> Path:
    """A CCR model folder someone trained, with their notes and eval_results/."""
    folder = save_tiny_model(tmp_path / "trained", seed=7)
    add_user_files(folder)
    return folder


def test_build_default_refuses_a_trained_model_folder(trained_model):
    before = tree(trained_model)
    result = ccr("build-default", "--output", str(trained_model))
    assert_refused(result, trained_model)
    assert "a CCR model folder" in result.stderr
    assert tree(trained_model) == before


@pytest.mark.slow
def test_build_default_with_overwrite_replaces_the_model_and_keeps_the_rest(trained_model):
    user = user_part(trained_model)
    old_weights = (trained_model / "model.safetensors").read_bytes()
    result = ccr("build-default", "--output", str(trained_model), "--overwrite")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (trained_model / "model.safetensors").read_bytes() != old_weights
    assert json.loads((trained_model / "config.json").read_text())["vision_config"]["model_type"] == "efficientnet_lite"
    assert user_part(trained_model) == user and siblings(trained_model) == []


def test_train_refuses_an_existing_model_then_replaces_it_with_overwrite(tmp_path):
    start = save_tiny_model(tmp_path / "start", seed=3)
    data = tmp_path / "data"
    write_parquet_benchmark(data, split="train", num_images=6, seed=1)
    run = tmp_path / "run"
    save_tiny_model(run / "model", seed=8)
    user = add_user_files(run / "model")
    before = tree(run)
    command = ["train", "--model", str(start), "--dataset", str(data), "--languages", ",".join(LANGUAGES),
               "--per-device-train-batch-size", "3", "--max-steps", "2", "--save-steps", "2",
               "--output-dir", str(run), "--disable-tqdm", "True"]
    refused = ccr(*command)
    assert_refused(refused, run / "model")
    assert tree(run) == before
    old_weights = load_file(run / "model" / "model.safetensors")
    result = ccr(*command, "--overwrite")
    assert result.returncode == 0, result.stderr[-3000:]
    new_weights = load_file(run / "model" / "model.safetensors")
    assert not torch.equal(new_weights["text_projection.weight"], old_weights["text_projection.weight"])
    assert json.loads((run / "model" / "training_run.json").read_text())["steps"] == 2
    assert user_part(run / "model") == user
    # a second --overwrite run starts over: the first run's checkpoints are set aside, not resumed or mixed
    again = ccr(*command, "--overwrite")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((run / "model" / "training_run.json").read_text())["resumed_from"] is None
    aside = [p for p in run.iterdir() if p.name.startswith("checkpoints-replaced-")]
    assert len(aside) == 1 and (aside[0] / "checkpoint-2" / "trainer_state.json").is_file()


# Reports, indexes, the main job


def test_evaluate_refuses_an_existing_report_then_replaces_only_its_files(tmp_path):
    model = save_tiny_model(tmp_path / "model", seed=4)
    data = tmp_path / "data"
    write_parquet_benchmark(data, split="test", num_images=6, seed=5)
    folder = tmp_path / "reports"
    folder.mkdir()
    report = {"tr": {}, "ir": {}, "mean_recall": 0.0, "mrv": {"tr": None, "ir": None}, "tie_rule": "", "model": "old",
              "dataset": "x", "split": "test", "languages": [], "num_images": 0, "k_test": None, "reranked": False,
              "mrv_kind": "std"}
    write_report(report, {"tr": np.zeros((0, 1)), "ir": np.zeros((0, 1))}, folder / "report.json")
    user = add_user_files(folder)
    before = tree(folder)
    command = ["evaluate", str(model), "--dataset", str(data), "--no-rerank", "--output", str(folder / "report.json"),
               "--no-progress"]
    assert_refused(ccr(*command), folder / "report.json")
    assert tree(folder) == before
    result = ccr(*command, "--overwrite")
    assert result.returncode == 0, result.stderr[-3000:]
    after = tree(folder)
    for name in ("report.json", "report.md", "report_recall.png", "report_rank_std.png"):
        assert after[name] != before[name], name
    assert json.loads((folder / "report.json").read_text())["num_images"] == 6
    assert user_part(folder) == user
    assert sorted(after) == sorted(before)  # nothing else written or deleted


def test_evaluate_with_overwrite_refuses_a_json_that_is_not_a_report(tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"lr": 0.1}\n')
    model = save_tiny_model(tmp_path / "model", seed=4)
    result = ccr("evaluate", str(model), "--output", str(config), "--overwrite")
    assert result.returncode != 0 and "is not an evaluation report" in result.stderr
    assert config.read_text() == '{"lr": 0.1}\n'


def test_index_of_another_model_refused_then_rebuilt_keeping_user_files(tmp_path):
    from modeling_ccr.app.index import GalleryIndex, build_index, folder_source

    images = tmp_path / "images"
    images.mkdir()
    for index in range(4):
        Image.fromarray(np.random.default_rng(index).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            images / f"{index}.png")
    first, second = save_tiny_model(tmp_path / "m1", seed=1), save_tiny_model(tmp_path / "m2", seed=2)
    output = tmp_path / "index"
    build_index(AutoModel.from_pretrained(first).eval(), tiny_ccr_processor(), folder_source(images), output,
                model_dir=first, progress=False)
    user = add_user_files(output)
    before = tree(output)
    command = ["index", str(second), str(images), "--output", str(output), "--no-progress"]
    assert_refused(ccr(*command), output)
    assert tree(output) == before
    result = ccr(*command, "--overwrite")
    assert result.returncode == 0, result.stderr[-3000:]
    assert GalleryIndex(output).manifest["model_dir"] == str(second.resolve())
    assert tree(output)["image_embeds.npy"] != before["image_embeds.npy"]
    assert user_part(output) == user
    assert siblings(output) == []


def test_main_job_refuses_an_earlier_run_before_any_work(tmp_path):
    run = tmp_path / "main"
    (run / "eval").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"model_dir": "x", "steps": 1, "timings": {}}))
    add_user_files(run)
    before = tree(run)
    result = ccr("main-job", "--output", str(run), "--max-steps", "1")
    assert_refused(result, run / "summary.json")
    assert "embedded default model" not in result.stdout  # refused before building or training anything
    assert tree(run) == before


def test_main_job_script_passes_its_flags_through():
    script = (REPO_ROOT / "scripts" / "main_job.sh").read_text()
    assert 'ccr main-job --output "${1:-runs/main}" "${@:2}"' in script


# Hub exports


def test_export_refused_then_replaced_keeping_user_files_and_dropping_stale_onnx(tmp_path):
    model = save_tiny_model(tmp_path / "model", seed=5)
    output = tmp_path / "hub"
    first = ccr("export", str(model), "--output", str(output))
    assert first.returncode == 0, first.stderr[-3000:]
    (output / "onnx").mkdir()
    (output / "onnx" / "image_encoder.onnx").write_bytes(b"graph of the old weights")
    user = add_user_files(output)
    before = tree(output)
    assert_refused(ccr("export", str(model), "--output", str(output)), output)
    assert tree(output) == before
    save_tiny_model(model, seed=6)  # retrained
    result = ccr("export", str(model), "--output", str(output), "--overwrite")
    assert result.returncode == 0, result.stderr[-3000:]
    assert tree(output)["model.safetensors"] != before["model.safetensors"]
    assert not (output / "onnx").exists()  # ONNX graphs of the old weights must not be published with the new
    assert user_part(output) == user


# Interrupted writes and file modes


def test_the_staging_folder_of_a_killed_export_is_removed_by_the_next_run(tmp_path, caplog):
    model = save_tiny_model(tmp_path / "model", seed=5)
    output = tmp_path / "hub"
    assert ccr("export", str(model), "--output", str(output)).returncode == 0
    user = add_user_files(output)
    before = tree(output)
    # killed while it writes the card, after the weights: its staging folder is left beside the output (export_model
    # imports model_card when it runs, so the card builder's own module is patched)
    run_ccr_killed_at("hub_cards.model_card:model_card", "export", model, "--output", output, "--overwrite")
    staging = [name for name in siblings(output) if re.fullmatch(r"\.hub\.[a-z0-9_]{8}\.staging", name)]
    assert siblings(output) == sorted([*staging, ".hub.lock"]) and len(staging) == 1  # the lock file: stale
    assert (output.parent / staging[0] / "model.safetensors").is_file() and tree(output) == before
    (output.parent / ".hub.notes.staging").mkdir()  # not named as staging folders are: never touched
    result = ccr("export", str(model), "--output", str(output), "--overwrite")
    assert result.returncode == 0, result.stderr[-3000:]
    assert siblings(output) == [".hub.notes.staging"] and user_part(output) == user
    removed = [r.getMessage() for r in caplog.records if "staging folder" in r.getMessage()]
    assert len(removed) == 1 and removed[0].startswith(
        f"removed 1 staging folder(s) of an interrupted write of {output}")
    assert staging[0] in removed[0]


@pytest.mark.parametrize(("umask", "bits", "expected"), [(0o022, 0o044, 0o044), (0o077, 0o077, 0)],
                         ids=["umask-022-readable-by-others", "umask-077-private"])
def test_written_files_keep_the_umask_permissions(tmp_path, umask, bits, expected):
    """Weights included (safetensors writes them private), and files written with atomic_write."""
    previous = os.umask(umask)
    try:
        folder = tmp_path / "model"
        save_model_folder(tiny_ccr_model(), tiny_ccr_processor(), folder, "licences\n")
        atomic_write(folder / "summary.json", lambda path: path.write_text("{}"))
    finally:
        os.umask(previous)
    modes = {path.name: path.stat().st_mode & 0o777 for path in [folder, *folder.iterdir()]}
    assert "model.safetensors" in modes and "summary.json" in modes
    assert {name: oct(mode) for name, mode in modes.items() if mode & bits != expected} == {}
