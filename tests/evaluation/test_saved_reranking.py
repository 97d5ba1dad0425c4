"""The re-ranking chosen for a model, saved in its config: checked, resolved against what a run asks for,
and used by ``ccr evaluate`` and search without flags."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from eval_fixtures import write_parquet_benchmark
from transformers.utils import logging as transformers_logging

from modeling_ccr.app.testing import run_ccr_in_process
from modeling_ccr.configuration_ccr import CCRConfig, check_reranking
from modeling_ccr.evaluation.rerank import PAPER_K_TEST, Reranking, resolve_reranking
from modeling_ccr.testing import save_tiny_model

COMBINE = {"mode": "combine", "k_test": 4, "itm_weight": 0.5, "chosen_on": "tiny validation"}


@pytest.mark.parametrize("entry, message", [
    ({"mode": "rerank"}, "'mode' is one of"),
    ("combine", "'mode' is one of"),
    ({"mode": "combine", "k_test": 4}, r"missing \['itm_weight'\]"),
    ({"mode": "replace", "k_test": 4, "itm_weight": 1.0}, r"unknown \['itm_weight'\]"),
    ({"mode": "replace", "k_test": 0}, "k_test must be an integer >= 1"),
    ({"mode": "replace", "k_test": 2.5}, "k_test must be an integer >= 1"),
    ({"mode": "combine", "k_test": 4, "itm_weight": float("nan")}, "itm_weight must be a finite number"),
])
def test_bad_entries_are_refused_by_the_config(entry, message):
    with pytest.raises(ValueError, match=message):
        CCRConfig(reranking=entry)


def test_a_good_entry_survives_a_config_round_trip(tmp_path):
    CCRConfig(reranking=COMBINE).save_pretrained(tmp_path)
    assert CCRConfig.from_pretrained(tmp_path).reranking == COMBINE
    assert check_reranking({"mode": "combine", "k_test": 4, "itm_weight": 1})["itm_weight"] == 1.0
    assert CCRConfig().reranking is None


@pytest.mark.parametrize("saved, asked, expected", [
    (None, {}, Reranking("replace", PAPER_K_TEST, None, "the paper's protocol")),
    (None, {"mode": "combine"}, Reranking("combine", PAPER_K_TEST, 1.0, "as asked")),
    (None, {"mode": "similarity"}, Reranking(None, None, None, "as asked")),
    (COMBINE, {}, Reranking("combine", 4, 0.5, "the model's saved choice: tiny validation")),
    (COMBINE, {"mode": "replace"}, Reranking("replace", 4, None, "as asked; the rest from the model's saved choice: tiny validation")),
    (COMBINE, {"itm_weight": 2.0}, Reranking("combine", 4, 2.0, "as asked; the rest from the model's saved choice: tiny validation")),
    (COMBINE, {"mode": "replace", "k_test": 9}, Reranking("replace", 9, None, "as asked")),
    ({"mode": "similarity"}, {}, Reranking(None, None, None, "the model's saved choice")),
    ({"mode": "similarity"}, {"k_test": 3}, Reranking("replace", 3, None, "as asked")),
])
def test_what_is_asked_wins_and_the_rest_comes_from_the_saved_choice(saved, asked, expected):
    assert resolve_reranking(SimpleNamespace(reranking=saved), **asked) == expected


def test_ccr_evaluate_uses_the_saved_choice_and_flags_override_it(tmp_path):
    model_dir = save_tiny_model(tmp_path / "model")
    config = json.loads((model_dir / "config.json").read_text())
    config["reranking"] = COMBINE
    (model_dir / "config.json").write_text(json.dumps(config))
    data = tmp_path / "data"
    write_parquet_benchmark(data, split="test", num_images=6)
    common = ["evaluate", model_dir, "--dataset", data, "--no-progress"]
    saved = run_ccr_in_process(*common, "--output", tmp_path / "saved.json")
    assert saved.returncode == 0, saved.stderr[-2000:]
    assert "Loading weights" not in saved.stderr  # --no-progress hides transformers' bars too ...
    assert transformers_logging.is_progress_bar_enabled()  # ... for that command only
    report = json.loads((tmp_path / "saved.json").read_text())
    assert report["k_test"] == 4 and report["reranking"]["mode"] == "combine" and report["reranking"]["itm_weight"] == 0.5
    assert report["reranking"]["source"] == "the model's saved choice: tiny validation"
    paper = run_ccr_in_process(*common, "--rerank-mode", "replace", "--k-test", "6", "--output", tmp_path / "paper.json")
    assert paper.returncode == 0, paper.stderr[-2000:]
    report = json.loads((tmp_path / "paper.json").read_text())
    assert (report["k_test"], report["reranking"]["mode"], report["reranking"]["source"]) == (6, "replace", "as asked")
    similarity = run_ccr_in_process(*common, "--no-rerank", "--output", tmp_path / "similarity.json")
    assert similarity.returncode == 0 and json.loads((tmp_path / "similarity.json").read_text())["reranked"] is False
