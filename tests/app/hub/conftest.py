"""Fixtures of the Hub tests: a tiny model folder with a real `ccr evaluate` report, and its export."""

from __future__ import annotations

from pathlib import Path

import pytest
from evaluation.eval_fixtures import tiny_benchmark  # tests/ is on the path (rootdir)

from modeling_ccr.app.hub.export import export_model
from modeling_ccr.default_model import save_model_folder
from modeling_ccr.evaluation import evaluate_retrieval
from modeling_ccr.evaluation.report import build_report, write_report
from modeling_ccr.testing import tiny_ccr_model, tiny_ccr_processor


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny CCR model folder (EfficientNet-Lite tower, so the remote code includes its files)."""
    folder = tmp_path_factory.mktemp("tiny") / "model"
    save_model_folder(tiny_ccr_model("efficientnet_lite"), tiny_ccr_processor(), folder,
                      "# Licences\n\n- test weights\n")
    return folder


@pytest.fixture(scope="session")
def tiny_reports(tiny_model_dir, tmp_path_factory) -> list[Path]:
    """Two real reports of the tiny model on a 3-language benchmark: similarity only, and re-ranked."""
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(tiny_model_dir).eval()
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    dataset = tiny_benchmark(num_images=12)
    folder = tmp_path_factory.mktemp("reports")
    paths = []
    for k_test in (None, 4):
        result = evaluate_retrieval(model, processor, dataset, k_test=k_test, batch_size=8)
        report = build_report(result.metrics, model_dir=str(tiny_model_dir), dataset="cldr-emoji", split="test",
                              languages=result.languages, num_images=len(dataset), k_test=result.k_test)
        ranks = {"tr": result.ranks.tr.numpy(), "ir": result.ranks.ir.numpy()}
        paths.append(write_report(report, ranks, folder / f"report-{k_test}.json")["json"])
    return paths


@pytest.fixture(scope="session")
def tiny_export(tiny_model_dir, tiny_reports, tmp_path_factory) -> Path:
    """``ccr export`` of the tiny model with its two reports, linking the demo Space ``test-org/demo``."""
    output = tmp_path_factory.mktemp("export") / "ccr-tiny"
    export_model(tiny_model_dir, output, tiny_reports, repo_id="test-org/ccr-tiny", demo_space="test-org/demo")
    return output
