"""Pinned numbers: a fixed-seed 20-step ``ccr train`` of the tiny model, then ``ccr evaluate`` of the trained
model, give the losses, ranks and metrics recorded here from the code of commit bd0acd9.

A refactoring of the model core (towers, fusion, heads, objective, feature cache, freezing) must leave
every number identical. A change that is meant to change them (a new default, another draw) records the new
numbers here, saying why, in the same commit.

The run covers what the refactorings move: the 1-to-K contrastive loss, ITM with hard negatives and MLM
(``--mlm-weight 1``, off by default), a partly trained text tower (its frozen bottom layer served by the
frozen-feature cache) and a partly trained image tower (EfficientNet-Lite: its frozen lower blocks cached;
ViT: run whole), and the two-stage evaluation (ITM re-ranking of the top 3). The run is a CPU run in float32
on one thread wherever the test runs (CUDA hidden, so no bf16 or GPU kernels), so that the sums are done in
the same order on machines with any number of cores.
"""

from __future__ import annotations

import json

import pytest
import torch
from evaluation.eval_fixtures import LANGUAGES, write_parquet_benchmark  # tests/ is on the path (rootdir)

from modeling_ccr.app.testing import run_ccr_in_process
from modeling_ccr.evaluation import report as report_module
from modeling_ccr.testing import save_tiny_model

# The components the Trainer logs every 4 steps (averaged over them, rounded to 5 decimals by CCRTrainer).
LOGGED = ("loss_contrastive", "loss_itm", "loss_mlm", "temperature", "itm_accuracy",
          "itm_negatives_same_text")

EXPECTED = {
    "efficientnet_lite": {
        "loss": [7.707059860229492, 7.493474006652832, 7.470871925354004, 7.462808609008789,
                 7.468235015869141],
        "log": {
            "loss_contrastive": [1.67466, 1.47734, 1.47484, 1.47375, 1.47364],
            "loss_itm": [0.66667, 0.65641, 0.64821, 0.64352, 0.64138],
            "loss_mlm": [5.36573, 5.35972, 5.34782, 5.34553, 5.35322],
            "temperature": [0.07064, 0.07314, 0.07536, 0.07675, 0.07732],
            "itm_accuracy": [0.66667, 0.66667, 0.66667, 0.66667, 0.66667],
            "itm_negatives_same_text": [0.0, 0.0, 0.0, 0.0, 0.0],
        },
        # 0-based gold rank [image, language] (TR) and [caption, language] (IR); languages en, de, fr
        "ranks": {
            "tr": [[7, 1, 3], [0, 0, 4], [1, 3, 2], [4, 6, 1], [5, 7, 7], [6, 2, 6], [3, 5, 0], [2, 4, 5]],
            "ir": [[3, 3, 7], [3, 4, 5], [2, 2, 0], [5, 5, 3], [2, 4, 6], [1, 5, 5], [4, 3, 5], [2, 2, 2]],
        },
        "report": {
            "tr": {
                "en": {"r1": 12.5, "r5": 62.5, "r10": 100.0, "mean_rank": 4.5, "median_rank": 4.5},
                "de": {"r1": 12.5, "r5": 62.5, "r10": 100.0, "mean_rank": 4.5, "median_rank": 4.5},
                "fr": {"r1": 12.5, "r5": 62.5, "r10": 100.0, "mean_rank": 4.5, "median_rank": 4.5},
            },
            "ir": {
                "en": {"r1": 0.0, "r5": 87.5, "r10": 100.0, "mean_rank": 3.75, "median_rank": 3.5},
                "de": {"r1": 0.0, "r5": 75.0, "r10": 100.0, "mean_rank": 4.5, "median_rank": 4.5},
                "fr": {"r1": 12.5, "r5": 37.5, "r10": 100.0, "mean_rank": 5.125, "median_rank": 6.0},
            },
            "mean_recall": 57.638888888888886,
            "mrv": {"tr": 1.6727260638655794, "ir": 1.1153550716504106},
        },
    },
    "vit": {
        "loss": [7.473877429962158, 7.4442138671875, 7.433703422546387, 7.428400039672852, 7.434089183807373],
        "log": {
            "loss_contrastive": [1.47989, 1.47557, 1.47373, 1.47352, 1.47352],
            "loss_itm": [0.65212, 0.64057, 0.63691, 0.63655, 0.63668],
            "loss_mlm": [5.34187, 5.32808, 5.32306, 5.31832, 5.32389],
            "temperature": [0.07066, 0.0734, 0.07528, 0.0762, 0.07656],
            "itm_accuracy": [0.66667, 0.66667, 0.66667, 0.66667, 0.66667],
            "itm_negatives_same_text": [0.0, 0.0, 0.0, 0.0, 0.0],
        },
        "ranks": {
            "tr": [[5, 3, 3], [3, 7, 1], [7, 5, 4], [4, 6, 5], [6, 2, 7], [1, 0, 0], [0, 4, 6], [2, 1, 2]],
            "ir": [[0, 0, 0], [5, 5, 5], [2, 2, 2], [1, 1, 1], [7, 7, 7], [6, 6, 6], [3, 3, 3], [4, 4, 4]],
        },
        "report": {
            "tr": {
                "en": {"r1": 12.5, "r5": 62.5, "r10": 100.0, "mean_rank": 4.5, "median_rank": 4.5},
                "de": {"r1": 12.5, "r5": 62.5, "r10": 100.0, "mean_rank": 4.5, "median_rank": 4.5},
                "fr": {"r1": 12.5, "r5": 62.5, "r10": 100.0, "mean_rank": 4.5, "median_rank": 4.5},
            },
            "ir": {
                "en": {"r1": 12.5, "r5": 62.5, "r10": 100.0, "mean_rank": 4.5, "median_rank": 4.5},
                "de": {"r1": 12.5, "r5": 62.5, "r10": 100.0, "mean_rank": 4.5, "median_rank": 4.5},
                "fr": {"r1": 12.5, "r5": 62.5, "r10": 100.0, "mean_rank": 4.5, "median_rank": 4.5},
            },
            "mean_recall": 58.333333333333336,
            "mrv": {"tr": 1.3873071510230468, "ir": 0.0},
        },
    },
}


@pytest.fixture()
def cpu_run(monkeypatch):
    """Torch on the CPU alone (CUDA hidden: no automatic bf16 or GPU device) and on one intra-op thread for
    the test, then the settings restored."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def train_and_evaluate(folder, vision: str, monkeypatch) -> dict:
    """The 20-step run and its evaluation: ``{"steps", "loss", "log", "report", "ranks"}`` (logged steps,
    their losses and components, the report's metrics, the gold ranks ``[item, language]`` per direction)."""
    model = save_tiny_model(folder / "model", vision=vision, seed=0)
    data = folder / "data"
    write_parquet_benchmark(data, split="train", num_images=8, seed=1)
    write_parquet_benchmark(data, split="test", num_images=8, seed=2)
    run = folder / "run"
    trained = run_ccr_in_process(
        "train", "--model", model, "--dataset", data, "--languages", ",".join(LANGUAGES),
        "--per-device-train-batch-size", "4", "--max-steps", "20", "--logging-steps", "4",
        "--save-steps", "100", "--mlm-weight", "1", "--train-text-layers", "1", "--train-vision-layers", "2",
        "--use-cpu", "True", "--cache-frozen-features", "True", "--output-dir", run, "--disable-tqdm", "True")
    assert trained.returncode == 0, trained.stderr[-3000:]

    ranks = {}
    write_report = report_module.write_report

    def keep_ranks(report, gold_ranks, output, overwrite=False):  # the per-query ranks of the report
        ranks.update({direction: value.tolist() for direction, value in gold_ranks.items()})
        return write_report(report, gold_ranks, output, overwrite)

    monkeypatch.setattr(report_module, "write_report", keep_ranks)
    evaluated = run_ccr_in_process(
        "evaluate", run / "model", "--dataset", data, "--split", "test", "--k-test", "3", "--batch-size", "4",
        "--device", "cpu", "--output", folder / "report.json", "--no-progress")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]

    history = json.loads((run / "model" / "training_run.json").read_text(encoding="utf-8"))["log_history"]
    logged = [entry for entry in history if "loss" in entry]
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    return {
        "steps": [entry["step"] for entry in logged],
        "loss": [entry["loss"] for entry in logged],
        "log": {name: [entry[name] for entry in logged] for name in LOGGED},
        "report": {key: report[key] for key in ("tr", "ir", "mean_recall", "mrv")},
        "ranks": ranks,
    }


@pytest.mark.parametrize("vision", ["efficientnet_lite", "vit"])
def test_a_20_step_run_and_its_evaluation_give_the_pinned_numbers(tmp_path, monkeypatch, cpu_run, vision):
    got = train_and_evaluate(tmp_path, vision, monkeypatch)
    expected = EXPECTED[vision]
    assert got["steps"] == [4, 8, 12, 16, 20]
    assert got["log"] == expected["log"]  # rounded by the trainer: exact
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-6, abs=0)  # the Trainer's float mean
    assert got["ranks"] == expected["ranks"]
    assert got["report"] == expected["report"]
