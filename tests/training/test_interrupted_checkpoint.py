"""``ccr train`` killed (SIGKILL) while it saves its first checkpoint, then rerun with ``--resume``: the
incomplete checkpoint is set aside and the run starts from step 0, saying so, instead of sending the user
between "run without --resume" and "pass --resume". The killed run is a real process; the rerun runs
``ccr`` main in this process."""

from __future__ import annotations

import json

from evaluation.eval_fixtures import LANGUAGES, write_parquet_benchmark  # tests/ is on the path (rootdir)
from killed_runs import run_ccr_killed_at

from modeling_ccr.app.testing import run_ccr_in_process
from modeling_ccr.testing import save_tiny_model


def test_resume_after_a_kill_during_the_first_checkpoint_starts_from_step_0(tmp_path, caplog):
    model = save_tiny_model(tmp_path / "model", seed=3)
    data = tmp_path / "data"
    write_parquet_benchmark(data, split="train", num_images=6, seed=1)
    run = tmp_path / "run"
    command = ["train", "--model", str(model), "--dataset", str(data), "--languages", ",".join(LANGUAGES),
               "--per-device-train-batch-size", "3", "--max-steps", "1", "--save-steps", "1",
               "--output-dir", str(run), "--disable-tqdm", "True"]
    # The Trainer saves a checkpoint's weights and optimizer, then its RNG state, then trainer_state.json (the
    # completion marker): killed at the RNG state, the first checkpoint holds weights but is incomplete.
    run_ccr_killed_at("modeling_ccr.training.trainer:CCRTrainer._save_rng_state", *command)
    half = run / "checkpoints" / "checkpoint-1"
    assert (half / "model.safetensors").is_file() and not (half / "trainer_state.json").exists()

    resumed = run_ccr_in_process(*command, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = json.loads((run / "model" / "training_run.json").read_text())
    assert record["steps"] == 1 and record["resumed_from"] is None
    assert (half / "trainer_state.json").is_file()  # the new run's own first checkpoint, complete
    aside = list((run / "checkpoints").glob("incomplete-checkpoint-1-*"))
    assert len(aside) == 1 and (aside[0] / "model.safetensors").is_file()  # kept, out of the way
    said = [r.getMessage() for r in caplog.records if "--resume" in r.getMessage()]
    assert said == [f"--resume: no complete checkpoint under {run / 'checkpoints'}: starting from step 0"]
