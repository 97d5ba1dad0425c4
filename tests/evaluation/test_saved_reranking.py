"""The re-ranking chosen for a model, saved in its config: checked, resolved against what a run asks for,
and used by ``ccr evaluate`` and search without flags; an entry saved with the weight's old key
(``itm_weight``, before it became ``rerank_weight``) and ``ccr evaluate --itm-weight`` keep working."""

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

COMBINE = {"mode": "combine", "k_test": 4, "rerank_weight": 0.5, "chosen_on": "tiny validation"}
OLD_COMBINE = {"mode": "combine", "k_test": 4, "itm_weight": 0.5, "chosen_on": "tiny validation"}  # saved before


@pytest.mark.parametrize("entry, message", [
    ({"mode": "rerank"}, "'mode' is one of"),
    ("combine", "'mode' is one of"),
    ({"mode": "combine", "k_test": 4}, r"missing \['rerank_weight'\]"),
    ({"mode": "replace", "k_test": 4, "rerank_weight": 1.0}, r"unknown \['rerank_weight'\]"),
    ({"mode": "replace", "k_test": 4, "itm_weight": 1.0}, r"unknown \['rerank_weight'\]"),
    ({**COMBINE, "itm_weight": 0.5}, r"unknown \['itm_weight'\]"),  # both names: which one is meant?
    ({"mode": "replace", "k_test": 0}, "k_test must be an integer >= 1"),
    ({"mode": "replace", "k_test": 2.5}, "k_test must be an integer >= 1"),
    ({"mode": "combine", "k_test": 4, "rerank_weight": float("nan")}, "rerank_weight must be a finite"),
    ({"mode": "combine", "k_test": 4, "itm_weight": float("inf")}, "rerank_weight must be a finite"),
])
def test_bad_entries_are_refused_by_the_config(entry, message):
    with pytest.raises(ValueError, match=message):
        CCRConfig(reranking=entry)


def test_a_good_entry_survives_a_config_round_trip(tmp_path):
    CCRConfig(reranking=COMBINE).save_pretrained(tmp_path)
    assert CCRConfig.from_pretrained(tmp_path).reranking == COMBINE
    assert check_reranking({"mode": "combine", "k_test": 4, "rerank_weight": 1})["rerank_weight"] == 1.0
    assert CCRConfig().reranking is None


def test_an_entry_saved_with_the_old_key_is_read_as_the_new_one_and_saved_with_it(tmp_path):
    assert check_reranking(OLD_COMBINE) == COMBINE and list(check_reranking(OLD_COMBINE)) == list(COMBINE)
    folder = save_tiny_model(tmp_path / "model")  # config.json as today's code writes it, then an old entry
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "reranking": OLD_COMBINE}))
    loaded = CCRConfig.from_pretrained(folder)
    assert loaded.reranking == COMBINE
    loaded.save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text())["reranking"] == COMBINE
    # set on a loaded config by hand (or by a folder's own older configuration_ccr.py): read alike
    assert resolve_reranking(SimpleNamespace(reranking=OLD_COMBINE)) == resolve_reranking(loaded)


@pytest.mark.parametrize("saved, asked, expected", [
    (None, {}, Reranking("replace", PAPER_K_TEST, None, "the paper's protocol")),
    (None, {"mode": "combine"}, Reranking("combine", PAPER_K_TEST, 1.0, "as asked")),
    (None, {"mode": "similarity"}, Reranking(None, None, None, "as asked")),
    (COMBINE, {}, Reranking("combine", 4, 0.5, "the model's saved choice: tiny validation")),
    (OLD_COMBINE, {}, Reranking("combine", 4, 0.5, "the model's saved choice: tiny validation")),
    (COMBINE, {"mode": "replace"},
     Reranking("replace", 4, None, "as asked; the rest from the model's saved choice: tiny validation")),
    (COMBINE, {"rerank_weight": 2.0},
     Reranking("combine", 4, 2.0, "as asked; the rest from the model's saved choice: tiny validation")),
    (COMBINE, {"mode": "replace", "k_test": 9}, Reranking("replace", 9, None, "as asked")),
    ({"mode": "similarity"}, {}, Reranking(None, None, None, "the model's saved choice")),
    ({"mode": "similarity"}, {"k_test": 3}, Reranking("replace", 3, None, "as asked")),
])
def test_what_is_asked_wins_and_the_rest_comes_from_the_saved_choice(saved, asked, expected):
    assert resolve_reranking(SimpleNamespace(reranking=saved), **asked) == expected


def test_ccr_evaluate_uses_the_saved_choice_and_flags_override_it(tmp_path):
    model_dir = save_tiny_model(tmp_path / "model")
    config = json.loads((model_dir / "config.json").read_text())
    config["reranking"] = OLD_COMBINE  # a folder saved before the key was renamed re-ranks as it did
    (model_dir / "config.json").write_text(json.dumps(config))
    data = tmp_path / "data"
    write_parquet_benchmark(data, split="test", num_images=6)
    common = ["evaluate", model_dir, "--dataset", data, "--no-progress"]
    saved = run_ccr_in_process(*common, "--output", tmp_path / "saved.json")
    assert saved.returncode == 0, saved.stderr[-2000:]
    assert "Loading weights" not in saved.stderr  # --no-progress hides transformers' bars too ...
    assert transformers_logging.is_progress_bar_enabled()  # ... for that command only
    report = json.loads((tmp_path / "saved.json").read_text())
    assert report["k_test"] == 4 and report["reranking"]["mode"] == "combine"
    assert report["reranking"]["rerank_weight"] == 0.5
    assert report["reranking"]["source"] == "the model's saved choice: tiny validation"
    paper = run_ccr_in_process(*common, "--rerank-mode", "replace", "--k-test", "6",
                               "--output", tmp_path / "paper.json")
    assert paper.returncode == 0, paper.stderr[-2000:]
    report = json.loads((tmp_path / "paper.json").read_text())
    assert (report["k_test"], report["reranking"]["mode"], report["reranking"]["source"]) == (6, "replace", "as asked")
    renamed = run_ccr_in_process(*common, "--rerank-weight", "2", "--output", tmp_path / "renamed.json")
    with pytest.warns(FutureWarning, match="--itm-weight is deprecated: use --rerank-weight"):
        old_flag = run_ccr_in_process(*common, "--itm-weight", "2", "--output", tmp_path / "old-flag.json")
    assert renamed.returncode == 0 and old_flag.returncode == 0, (renamed.stderr + old_flag.stderr)[-2000:]
    renamed, old_flag = (json.loads((tmp_path / f"{name}.json").read_text())
                        for name in ("renamed", "old-flag"))
    assert renamed["reranking"]["rerank_weight"] == 2.0
    assert {key: renamed[key] for key in ("tr", "ir", "mrv", "reranking")} == {
        key: old_flag[key] for key in ("tr", "ir", "mrv", "reranking")}
    similarity = run_ccr_in_process(*common, "--no-rerank", "--output", tmp_path / "similarity.json")
    assert similarity.returncode == 0 and json.loads((tmp_path / "similarity.json").read_text())["reranked"] is False
