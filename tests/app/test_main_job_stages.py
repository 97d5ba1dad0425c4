"""Stage wall times and peak memory: the recorder against known allocations and sleeps, and ``ccr main-job``'s
stages end to end."""

from __future__ import annotations

import argparse
import json
import mmap
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from modeling_ccr import default_model, training
from modeling_ccr.app import main_job, stages
from modeling_ccr.app.stages import StageRecorder
from modeling_ccr.default_model import ensure_default_model
from modeling_ccr.testing import save_tiny_model

README = Path(__file__).resolve().parents[2] / "README.md"
BIG_BYTES = 300_000_000
BIG_GIB = BIG_BYTES / 2**30
SLEEP_S = 0.3

MAIN_JOB_STAGES = [
    "build or load the default model",
    "train: load model + data",  # 2 steps see 16 of 1,085 images: the cache fills in them, no fill stage
    "train: steps + save",
    "load the trained model",
    "validation: encode + prepare re-ranking",
    "validation: choose the re-ranking (scores every pair once)",
    "validation: rank 3 ways + reports",
    "test: encode + prepare re-ranking",
    "test: rank 3 ways + reports",
]

needs_clear_refs = pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(),
                                      reason="resetting the peak needs Linux's /proc/self/clear_refs")


def rss_gib() -> float:
    """The current resident memory, from /proc/self/status (VmRSS), in GiB."""
    return int(re.search(r"^VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)[1]) / 2**20


def touch_big_array() -> None:
    """Maps BIG_BYTES of anonymous memory, writes every page, then unmaps it: the pages come from the kernel
    and go back to it at once, whatever the allocator keeps of freed memory (``modeling_ccr.allocator``)."""
    chunk = b"\1" * 2**20
    with mmap.mmap(-1, BIG_BYTES) as block:
        for _ in range(BIG_BYTES // len(chunk)):
            block.write(chunk)
        block.write(chunk[: BIG_BYTES % len(chunk)])
        assert block[BIG_BYTES - 1] == 1


@needs_clear_refs
def test_each_stage_reports_its_own_peak_and_the_process_peak_survives():
    recorder = StageRecorder()
    baseline = rss_gib()
    with recorder.stage("allocate"):
        touch_big_array()
    after_allocation = rss_gib()
    with recorder.stage("sleep"):
        time.sleep(SLEEP_S)
    allocate, sleep = recorder.records
    assert allocate.peak_rss_gib >= baseline + BIG_GIB - 0.01  # 10 MiB for what the process gives back meanwhile
    assert after_allocation < baseline + 0.1  # the array is gone ...
    assert sleep.peak_rss_gib < allocate.peak_rss_gib - 0.8 * BIG_GIB  # ... so the reset peak is far below
    assert sleep.peak_rss_gib >= after_allocation - 0.05
    assert (allocate.peak_rss_scope, sleep.peak_rss_scope) == ("stage", "stage")
    assert SLEEP_S <= sleep.wall_s < SLEEP_S + 2.0
    # The last reset lowered the process's VmHWM, yet the overall peak still holds the allocation.
    overall = recorder.overall_peak_rss_gib()
    assert overall >= baseline + BIG_GIB - 0.01
    assert (recorder.table().splitlines()[-1].startswith("| total |")
            and f"{overall:.2f} (process peak)" in recorder.table())
    assert f"| {recorder.overall_peak_rss_gib():.2f} (process peak) |" in recorder.table()


def test_without_clear_refs_the_peak_is_marked_since_start(monkeypatch, tmp_path):
    recorder = StageRecorder()
    with recorder.stage("allocate"):
        touch_big_array()
    monkeypatch.setattr(stages, "CLEAR_REFS", tmp_path / "no-proc" / "clear_refs")  # as on a system without it
    with recorder.stage("little"):
        pass
    allocate, little = recorder.records
    assert little.peak_rss_scope == "since start"
    assert little.peak_rss_gib >= allocate.peak_rss_gib  # the lifetime peak, the earlier stage's included
    table = recorder.table()
    assert f"| little | {little.wall_s:.1f} |" in table and f"{little.peak_rss_gib:.2f} * |" in table
    assert "peak RSS since the process started" in table
    assert little.as_json()["peak_rss_scope"] == "since start"


def test_table_rows_shares_and_json():
    recorder = StageRecorder()
    with recorder.stage("sleep"):
        time.sleep(SLEEP_S)
    time.sleep(SLEEP_S)  # outside any stage
    table = recorder.table()
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in table.splitlines()[2:]}
    assert list(rows) == ["sleep", "outside the stages", "total"]
    total_s = float(rows["total"][1])
    assert total_s >= 2 * SLEEP_S
    assert float(rows["sleep"][1]) + float(rows["outside the stages"][1]) == pytest.approx(total_s, abs=0.11)
    assert int(rows["sleep"][2].rstrip("%")) == pytest.approx(100 * float(rows["sleep"][1]) / total_s, abs=2)
    record = recorder.as_json()[0]
    expected_keys = ({"stage", "wall_s", "peak_rss_gib", "peak_rss_scope"}
                     | ({"peak_cuda_gib"} if recorder.cuda else set()))
    assert set(record) == expected_keys
    assert record["wall_s"] == round(recorder.records[0].wall_s, 2)


def test_stages_do_not_nest():
    recorder = StageRecorder()
    with recorder.stage("outer"):
        with pytest.raises(ValueError, match="stages do not nest"):
            with recorder.stage("inner"):
                pass
    assert [record.stage for record in recorder.records] == ["outer"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the CUDA peak needs a GPU")
def test_cuda_peak_per_stage():
    recorder = StageRecorder()
    with recorder.stage("gpu"):
        block = torch.ones(2**28, device="cuda")  # 1 GiB of float32
        del block
    with recorder.stage("little"):
        torch.ones(16, device="cuda")
    gpu, little = recorder.records
    assert gpu.peak_cuda_gib >= 1.0
    assert little.peak_cuda_gib < 0.1
    assert "peak CUDA GiB" in recorder.table()


def test_main_job_keeps_one_record_of_its_times(tmp_path, monkeypatch, capsys):
    """The job's times are its stages' (summary.json's "stages"), and what it prints of them is read from the
    same records: no second clock. Stand-ins for the default model, the training and the evaluation (each
    tested on its own) record their stages as the real ones do."""
    model = save_tiny_model(tmp_path / "default")

    def train(args, model_args, stage):
        Path(args.output_dir, "model").mkdir(parents=True)  # the run folder, as training makes it
        for name in ("train: load model + data", "train: steps + save"):
            with stage(name):
                time.sleep(0.02)
        return {"model_dir": str(model), "steps": 1, "final_loss": 0.5}

    def evaluate_on_benchmark(model_dir, k_test, output, progress, overwrite, recorder, max_images):
        for split in main_job.SPLITS:
            with recorder.stage(f"{split}: rank 3 ways + reports"):
                pass
        report = {"mean_recall": 50.0, "mrv": {"tr": 1.0, "ir": 1.0}}
        return {"reranking": {"mode": "similarity"}, "rerank_weight": 0.0, "rerank_weight_validation_recall": {},
                **{split: dict.fromkeys(main_job.RANKINGS, report) for split in main_job.SPLITS}}

    monkeypatch.setattr(default_model, "ensure_default_model", lambda: model)
    monkeypatch.setattr(training, "train", train)
    monkeypatch.setattr(main_job, "evaluate_on_benchmark", evaluate_on_benchmark)
    parser = argparse.ArgumentParser()
    main_job.add_arguments(parser)
    recorder = StageRecorder()
    assert main_job.run(parser.parse_args(["--output", str(tmp_path / "main")]), recorder) == 0
    summary = json.loads((tmp_path / "main" / "summary.json").read_text(encoding="utf-8"))
    assert "timings" not in summary and summary["stages"] == recorder.as_json()
    printed = capsys.readouterr().out
    build_s = recorder.wall_s("build or load the default model")
    assert build_s == recorder.records[0].wall_s
    assert f"embedded default model: {model} ({build_s:.1f} s)" in printed
    train_s = sum(record.wall_s for record in recorder.records if record.stage.startswith("train: "))
    assert recorder.wall_s("train: ") == train_s >= 0.04
    assert f"training wall time {train_s:.1f} s, 1 steps, final loss 0.5000" in printed


@pytest.mark.slow
def test_main_job_records_its_stages(tmp_path):
    model_bytes = sum(path.stat().st_size for path in ensure_default_model().glob("*.safetensors"))
    output = tmp_path / "main"
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "modeling_ccr.app.cli", "main-job", "--output", str(output),
                             "--max-steps", "2", "--train-batch-size", "8", "--k-test", "2", "--max-eval-images", "20",
                             "--no-progress"],
                            capture_output=True, text=True, timeout=1200)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((output / "summary.json").read_text())
    recorded = summary["stages"]
    assert [stage["stage"] for stage in recorded] == MAIN_JOB_STAGES
    assert sum(stage["wall_s"] for stage in recorded) <= elapsed
    assert all(stage["wall_s"] >= 0 and stage["peak_rss_scope"] == "stage" for stage in recorded)
    by_name = {stage["stage"]: stage for stage in recorded}
    for name in ("train: load model + data", "load the trained model"):  # both hold the model's weights
        assert by_name[name]["peak_rss_gib"] >= model_bytes / 2**30
    assert summary["max_eval_images"] == 20 and summary["steps"] == 2 and summary["train_batch_size"] == 8
    # the re-ranking chosen on validation is saved with the trained model, for evaluate, search and the demo
    saved = json.loads((output / "train" / "model" / "config.json").read_text())["reranking"]
    assert saved == summary["reranking"] and saved["mode"] in ("similarity", "replace", "combine")
    assert saved["chosen_on"].startswith("cldr-emoji validation (its first 20 images), mean recall")
    for split in ("validation", "test"):  # the first 20 images of each split, every ranking
        for ranking in ("similarity", "replace", "combine"):
            assert json.loads((output / "eval" / f"{split}_{ranking}.json").read_text())["num_images"] == 20
    # every file of the main job's run that the README names (runs/main/...) is one the job wrote
    named = set(re.findall(r"runs/main/([\w./-]*[\w/])", README.read_text(encoding="utf-8")))
    assert named and not [path for path in named if not (output / path).exists()]
    table = result.stdout[result.stdout.index("stages (wall time, peak memory):"):]
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")
            for line in table.splitlines() if line.startswith("| ")}
    for stage in recorded:
        assert float(rows[stage["stage"]][1]) == pytest.approx(stage["wall_s"], abs=0.06)
    assert "| total |" in table
