"""Recall@K, mean / median rank and MRV against loop references; the JSON / Markdown / PNG report."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest
import torch
from eval_reference import reference_mrv, reference_ranks, reference_recall
from PIL import Image

from modeling_ccr.atomic_io import atomic_write
from modeling_ccr.evaluation.metrics import direction_metrics, retrieval_metrics
from modeling_ccr.evaluation.ranks import RetrievalRanks, retrieval_ranks_from_similarity
from modeling_ccr.evaluation.report import (
    build_report,
    markdown_table,
    report_paths,
    write_report,
)

LANGUAGES = ["en", "de", "ja", "zh"]


@pytest.fixture(scope="module")
def ranks() -> RetrievalRanks:
    generator = torch.Generator().manual_seed(11)
    similarity = torch.randint(-4, 5, (60, 60 * len(LANGUAGES)), generator=generator).double()
    # Some signal on the gold pairs, so recall is above chance.
    similarity += 3 * torch.eye(60).repeat_interleave(len(LANGUAGES), dim=1)
    return retrieval_ranks_from_similarity(similarity, len(LANGUAGES), chunk_size=16)


def test_metrics_match_loop_references(ranks):
    metrics = retrieval_metrics(ranks, LANGUAGES)
    recalls = []
    for direction in ("tr", "ir"):
        array = getattr(ranks, direction).numpy()
        for k in (1, 5, 10):
            expected = reference_recall(array, k)
            recalls += expected
            got = [metrics[direction][language][f"r{k}"] for language in LANGUAGES]
            np.testing.assert_allclose(got, expected)
        for index, language in enumerate(LANGUAGES):
            column = [int(rank) + 1 for rank in array[:, index]]
            assert metrics[direction][language]["mean_rank"] == pytest.approx(statistics.mean(column))
            assert metrics[direction][language]["median_rank"] == pytest.approx(statistics.median(column))
        assert metrics["mrv"][direction] == pytest.approx(reference_mrv(array), rel=1e-12)
    assert metrics["mean_recall"] == pytest.approx(statistics.mean(recalls))
    assert 0 < metrics["tr"]["en"]["r10"] < 100


def test_variance_kind(ranks):
    metrics = retrieval_metrics(ranks, LANGUAGES, mrv_kind="variance")
    assert metrics["mrv"]["ir"] == pytest.approx(reference_mrv(ranks.ir.numpy(), variance=True), rel=1e-12)


def test_single_language_reports_no_mrv():
    similarity = torch.randn(9, 9, generator=torch.Generator().manual_seed(0))
    single = retrieval_ranks_from_similarity(similarity, 1)
    metrics = retrieval_metrics(single, ["en"])
    assert metrics["mrv"] == {"tr": None, "ir": None}
    expected = reference_ranks(similarity.numpy(), 1)
    assert metrics["tr"]["en"]["r1"] == pytest.approx(reference_recall(expected["tr"], 1)[0])


def test_language_count_must_match_the_rank_columns(ranks):
    with pytest.raises(ValueError, match="for 3 languages: need \\[N, K\\] with one column per language"):
        direction_metrics(ranks.tr.numpy(), LANGUAGES[:3])


def _report(ranks: RetrievalRanks) -> dict:
    return build_report(
        retrieval_metrics(ranks, LANGUAGES), model_dir="models/tiny", dataset="cldr-emoji", split="test",
        languages=LANGUAGES, num_images=60, k_test=16,
    )


def test_report_files(tmp_path, ranks):
    report = _report(ranks)
    arrays = {"tr": ranks.tr.numpy(), "ir": ranks.ir.numpy()}
    paths = write_report(report, arrays, tmp_path / "out" / "report.json")
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "report.json", "report.md", "report_rank_std.png", "report_recall.png"
    ]
    loaded = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert loaded == report
    assert {"tr", "ir", "mean_recall", "mrv", "languages", "k_test", "model"} <= set(loaded)
    assert set(loaded["tr"]["ja"]) == {"r1", "r5", "r10", "mean_rank", "median_rank"}
    table = paths["markdown"].read_text(encoding="utf-8")
    for language in LANGUAGES:
        assert f"| {language} | {report['tr'][language]['r1']:.2f} |" in table
    assert f"TR {report['mrv']['tr']:.2f}" in table
    for name in ("recall_plot", "rank_std_plot"):
        with Image.open(paths[name]) as image:
            assert image.format == "PNG" and image.width > 400


def test_markdown_for_similarity_only_and_one_language():
    single = retrieval_ranks_from_similarity(torch.eye(5), 1)
    report = build_report(
        retrieval_metrics(single, ["en"]), model_dir="m", dataset="d", split=None, languages=["en"],
        num_images=5, k_test=None,
    )
    table = markdown_table(report)
    assert "similarity only" in table and "TR n/a (one language)" in table
    assert "| en | 100.00 | 100.00 | 100.00 | 1.0 | 1.0 |" in table


def test_output_must_be_a_json_path(tmp_path):
    with pytest.raises(ValueError, match="--output must name a .json file"):
        report_paths(tmp_path / "report.txt")


def test_interrupted_write_leaves_the_old_file_and_no_partial_one(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("previous report\n")

    def write_half_then_fail(path):
        path.write_text("half a tab")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, write_half_then_fail)
    assert [path.name for path in tmp_path.iterdir()] == ["report.md"]
    assert target.read_text() == "previous report\n"
