"""scripts/itm_diagnostics.py (on modeling_ccr.evaluation.itm_diagnostics) as a user runs it, on a tiny model
and benchmark: the three pair sets, their AUCs and the plot; and its AUC against values worked out by hand."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from eval_fixtures import LANGUAGES, tiny_benchmark, write_parquet_benchmark

from modeling_ccr.app.testing import run_script_in_process
from modeling_ccr.evaluation.itm_diagnostics import Encoded, roc_auc
from modeling_ccr.testing import save_tiny_model, tiny_ccr_model, tiny_ccr_processor

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "itm_diagnostics.py"


def load_script():
    spec = importlib.util.spec_from_file_location("itm_diagnostics", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_auc_counts_pairs_and_ties_half():
    # 3 > 1, 3 > 2, 2 > 1, 2 = 2 (half): 3.5 of 4 pairs
    assert roc_auc(torch.tensor([3.0, 2.0]), torch.tensor([1.0, 2.0])) == pytest.approx(0.875)
    assert roc_auc(torch.tensor([0.0]), torch.tensor([1.0, 2.0])) == 0.0
    assert roc_auc(torch.tensor([5.0, 5.0]), torch.tensor([5.0])) == 0.5


def test_the_script_reports_three_pair_sets_and_a_plot(tmp_path, monkeypatch):
    model = save_tiny_model(tmp_path / "model")
    write_parquet_benchmark(tmp_path / "data", split="validation", num_images=20)
    plot = tmp_path / "itm.png"
    monkeypatch.chdir(tmp_path)
    script = load_script()
    result = run_script_in_process(script.main, SCRIPT, model, "--dataset", tmp_path / "data",
                      "--languages", ",".join(LANGUAGES), "--plot", plot)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = dict((name, (int(pos), int(neg), float(auc))) for name, pos, neg, auc in
                re.findall(r"^\| (random|training|re-ranking) \| (\d+) \| (\d+) \| ([\d.]+) \|$", result.stdout, re.M))
    k = len(LANGUAGES)
    assert rows["random"][:2] == (20 * k, 20 * k)  # each image's own caption and another's, per language
    assert rows["training"][:2] == (20, 40)  # 1 positive and 2 hard negatives per image (batches of 20 < 64)
    assert rows["re-ranking"][0] + rows["re-ranking"][1] == 20 * k * 16  # top 16 captions per image and language
    assert all(0.0 <= auc <= 1.0 for _, _, auc in rows.values())
    assert re.search(r"ITM loss on the training pairs: \d+\.\d{4} \(prior of a constant answer for 1 in 3: 0\.6365\)",
                     result.stdout)
    assert plot.read_bytes().startswith(b"\x89PNG")
    written = plot.read_bytes()
    again = run_script_in_process(script.main, SCRIPT, model, "--dataset", tmp_path / "data", "--plot", plot)
    assert again.returncode == 2 and f"{plot} exists" in again.stderr  # an existing file is never replaced
    assert plot.read_bytes() == written


def test_the_script_runs_as_a_process(tmp_path):
    """The entry point as a user runs it: ``python scripts/itm_diagnostics.py`` on a missing model folder
    fails with one usage error line, before loading anything."""
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "no-model")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.splitlines()[-1] == (
        f"itm_diagnostics.py: error: argument model_dir: {tmp_path / 'no-model'} does not exist: pass the folder of "
        "a saved CCR model (ccr build-default, ccr train, ccr convert-ccrk or CCRModel.save_pretrained write one)")


def test_a_benchmark_the_loaders_refuse_is_one_line(tmp_path):
    model = save_tiny_model(tmp_path / "model")
    result = run_script_in_process(load_script().main, SCRIPT, model, "--dataset", tmp_path / "no-data",
                      "--plot", tmp_path / "itm.png")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"itm_diagnostics.py: error: '{tmp_path / 'no-data'}' "
                                                     "is neither a")
    assert not (tmp_path / "itm.png").exists()


def test_pairs_of_captions_in_languages_of_different_lengths_score_together():
    """Captions of every language are tokenised in one call, so they share one padded length (the default
    model's processor pads to the longest caption of a call) and pairs of any languages stack."""
    model, processor = tiny_ccr_model(), tiny_ccr_processor()
    text_calls = []

    def spy(**kwargs):
        if "text" in kwargs:
            text_calls.append(len(kwargs["text"]))
        return processor(**kwargs)

    dataset = tiny_benchmark(num_images=4).map(
        lambda row: {"captions": {**row["captions"], "en": row["captions"]["en"] + " and a much longer tail"}})
    with torch.inference_mode():
        encoded = Encoded(model, spy, dataset, list(LANGUAGES))
        margins = encoded.margins(model, ["en", "de"], torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert text_calls == [4 * len(LANGUAGES)]
    assert len({entry[0].shape[1] for entry in encoded.texts.values()}) == 1
    assert margins.shape == (2,) and torch.isfinite(margins).all()
