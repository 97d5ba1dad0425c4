"""``ccr evaluate`` end to end: a tiny saved model on a tiny parquet benchmark, one and two processes."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from evaluation.eval_fixtures import LANGUAGES, torchrun, write_parquet_benchmark  # tests/ is on the path
from evaluation.eval_reference import reference_mrv, reference_ranks, reference_recall
from transformers import AutoModel, AutoProcessor

from modeling_ccr.app.cli import main
from modeling_ccr.testing import tiny_ccr_model, tiny_ccr_processor

K_TEST = 3


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ccr-evaluate")
    model_dir, data_dir = root / "model", root / "data"
    tiny_ccr_model(seed=4).save_pretrained(model_dir)
    tiny_ccr_processor().save_pretrained(model_dir)
    dataset = write_parquet_benchmark(data_dir, split="test", num_images=8, seed=5)
    return {"root": root, "model": str(model_dir), "data": str(data_dir), "dataset": dataset}


def evaluate_cli(setup: dict, output: Path, *extra: str) -> dict:
    args = ["evaluate", setup["model"], "--dataset", setup["data"], "--split", "test", "--batch-size", "3"]
    assert main([*args, "--output", str(output), "--no-progress", *extra]) == 0
    return json.loads(output.read_text(encoding="utf-8"))


def expected_ranks(setup: dict, k_test: int | None) -> dict[str, np.ndarray]:
    """Ranks computed independently: every image, text and pair through the model one at a time."""
    model = AutoModel.from_pretrained(setup["model"]).eval()
    processor = AutoProcessor.from_pretrained(setup["model"])
    dataset = setup["dataset"]
    texts = [row[language] for row in dataset["captions"] for language in LANGUAGES]
    with torch.no_grad():
        pixels = [processor(images=[image])["pixel_values"] for image in dataset["image"]]
        tokens = [model.get_image_tokens(pixel_values) for pixel_values in pixels]
        image_embeds = torch.cat([model.project_image_tokens(token) for token in tokens])
        text_embeds = torch.cat([model.get_text_features(**processor(text=[text])) for text in texts])

        def itm(images: torch.Tensor, text_index: torch.Tensor) -> torch.Tensor:
            return torch.stack([
                model.itm_logits(tokens[i], **processor(text=[texts[t]]))[0, 1]
                for i, t in zip(images.tolist(), text_index.tolist(), strict=True)
            ])

        return reference_ranks((image_embeds @ text_embeds.T).numpy(), len(LANGUAGES), k_test, itm)


def check_report(report: dict, ranks: dict[str, np.ndarray]) -> None:
    recalls = []
    for direction in ("tr", "ir"):
        for k in (1, 5, 10):
            expected = reference_recall(ranks[direction], k)
            recalls += expected
            got = [report[direction][language][f"r{k}"] for language in LANGUAGES]
            np.testing.assert_allclose(got, expected)
        for index, language in enumerate(LANGUAGES):
            expected_mean = statistics.mean(int(rank) + 1 for rank in ranks[direction][:, index])
            assert report[direction][language]["mean_rank"] == pytest.approx(expected_mean)
        assert report["mrv"][direction] == pytest.approx(reference_mrv(ranks[direction]))
    assert report["mean_recall"] == pytest.approx(statistics.mean(recalls))


def test_two_stage_report_matches_an_independent_computation(setup, tmp_path, capsys):
    report = evaluate_cli(setup, tmp_path / "report.json", "--k-test", str(K_TEST))
    assert report["k_test"] == K_TEST and report["reranked"] is True
    assert report["languages"] == list(LANGUAGES) and report["num_images"] == 8
    assert report["model"] == setup["model"]
    check_report(report, expected_ranks(setup, K_TEST))
    assert "| fr |" in capsys.readouterr().out
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "report.json", "report.md", "report_rank_std.png", "report_recall.png"
    ]


def test_similarity_only_report(setup, tmp_path):
    report = evaluate_cli(setup, tmp_path / "plain.json", "--no-rerank", "--languages", "fr,en")
    assert report["k_test"] is None and report["reranked"] is False
    assert report["languages"] == ["fr", "en"]
    ranks = expected_ranks(setup, None)
    order = [LANGUAGES.index("fr"), LANGUAGES.index("en")]
    for direction in ("tr", "ir"):
        for column, language in zip(order, ("fr", "en"), strict=True):
            expected = reference_recall(ranks[direction][:, [column]], 5)[0]
            assert report[direction][language]["r5"] == pytest.approx(expected)


def test_two_processes_give_the_single_process_report(setup, tmp_path):
    """``ccr evaluate`` under ``accelerate launch`` on 2 CPU processes (the library's sharding runs under
    torchrun in tests/evaluation/test_eval_distributed.py, training under both launchers)."""
    single = evaluate_cli(setup, tmp_path / "single.json", "--k-test", str(K_TEST))
    args = [
        "-m", "modeling_ccr.app.cli", "evaluate", setup["model"], "--dataset", setup["data"], "--split", "test",
        "--k-test", str(K_TEST), "--batch-size", "3", "--no-progress",
        "--output", str(tmp_path / "multi.json"),
    ]
    completed = torchrun(args, cwd=tmp_path, launcher="accelerate")
    assert completed.returncode == 0, completed.stderr[-3000:]
    multi = json.loads((tmp_path / "multi.json").read_text(encoding="utf-8"))
    for key in ("tr", "ir", "mrv", "languages", "k_test", "num_images"):
        assert multi[key] == pytest.approx(single[key]) if key == "mrv" else multi[key] == single[key]
    assert multi["mean_recall"] == pytest.approx(single["mean_recall"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--output", "report.txt"], "--output must name a .json file"),
        (["--k-test", "0"], "argument --k-test: must be at least 1, got 0"),
        (["--languages", "xx"], "has no language 'xx'; its language codes are en, de, fr"),
        (["--split", "nope"], "has no split 'nope'"),
    ],
)
def test_bad_arguments(setup, tmp_path, capsys, extra, message):
    output = ["--output", str(tmp_path / "r.json")]
    args = ["evaluate", setup["model"], "--dataset", setup["data"], *output, *extra]
    try:
        code = main(args)
    except SystemExit as exited:  # argparse's own checks
        code = exited.code
    assert code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    last = stderr.splitlines()[-1]
    assert last.startswith("ccr evaluate: error: ") and message in last, stderr
    assert not (tmp_path / "r.json").exists()
