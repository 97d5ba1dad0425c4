"""Generated cards load back with huggingface_hub and render without template leftovers."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from huggingface_hub import DatasetCard, ModelCard, SpaceCard
from markdown_it import MarkdownIt

from hub_cards import benchmark_card, demo_space_card, metric_space_card
from hub_cards.model_card import load_report
from hub_cards.space_cards import DEMO_FOLDER

LEFTOVERS = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}|\bNone\b|\bnan\b")


def _expected_metrics(report: dict) -> dict[tuple, float]:
    """The report's numbers, walked by hand: key (task_type, dataset split, metric_type, metric_config)."""
    stage = "" if report["k_test"] is None else f", ITM re-ranking of the top {report['k_test']}"
    tasks = {"tr": "image-to-text", "ir": "text-to-image"}
    names = {"r1": "recall@1", "r5": "recall@5", "r10": "recall@10", "mean_rank": "mean_rank", "median_rank": "median_rank"}
    expected = {}
    for direction, task in tasks.items():
        for language, values in report[direction].items():
            for field, metric in names.items():
                expected[(task, report["split"], metric, language + stage)] = values[field]
        expected[(task, report["split"], "mrv", "all" + stage)] = report["mrv"][direction]
    expected[("image-text-retrieval", report["split"], "mean_recall", "all" + stage)] = report["mean_recall"]
    return expected


def test_model_index_holds_every_metric_of_the_reports(tiny_export, tiny_reports):
    card = ModelCard.load(tiny_export / "README.md")
    parsed = {}
    for result in card.data.eval_results:
        key = (result.task_type, result.dataset_split, result.metric_type, result.metric_config)
        assert key not in parsed, f"two results for {key}"
        assert result.dataset_type == "ccr-1tok/cldr-emoji"
        parsed[key] = result.metric_value
    expected = {}
    for path in tiny_reports:
        expected.update(_expected_metrics(json.loads(path.read_text())))
    assert parsed == expected
    data = card.data
    assert data.library_name == "transformers" and data.pipeline_tag == "zero-shot-image-classification"
    assert data.language == ["en", "de", "fr"] and data.datasets == ["ccr-1tok/cldr-emoji"]
    assert data.license and "custom_code" in data.tags


def test_model_card_renders_without_template_leftovers(tiny_export, tiny_reports):
    card = ModelCard.load(tiny_export / "README.md")
    html = MarkdownIt().enable("table").render(card.text)
    assert not LEFTOVERS.search(card.text), LEFTOVERS.search(card.text)
    assert not LEFTOVERS.search(html)
    assert html.count("<table>") == len(tiny_reports)
    for path in tiny_reports:
        report = json.loads(path.read_text())
        for language in report["languages"]:
            assert f"<td>{language}</td>" in html
            assert f"<td>{report['ir'][language]['r10']:.2f}</td>" in html
        assert f"Mean recall: {report['mean_recall']:.2f}." in html
    assert 'trust_remote_code=True' in html and 'evaluate.load(&quot;ccr-1tok/mrv&quot;)' in html
    assert 'href="https://huggingface.co/spaces/ccr-1tok/mrv"' in html
    assert 'href="https://huggingface.co/datasets/ccr-1tok/cldr-emoji"' in html
    assert 'href="https://huggingface.co/spaces/test-org/demo"' in html
    # the reports the numbers come from travel with the card
    for path in tiny_reports:
        assert json.loads(path.read_text()) in [json.loads(p.read_text()) for p in (tiny_export / "evaluation").iterdir()]


def test_card_shows_the_training_record(tiny_model_dir, tmp_path):
    from modeling_ccr.app.hub.export import export_model

    model_dir = tmp_path / "trained"
    model_dir.mkdir()
    for path in tiny_model_dir.iterdir():
        (model_dir / path.name).write_bytes(path.read_bytes())
    record = {"settings": {"data": {"dataset": "cldr-emoji", "split": "train"}, "training": {"max_steps": 7}},
              "objective": {"loss_style": "one-to-k",
              "weights": {"contrastive": 1.0}}, "steps": 7, "train_seconds_this_run": 12.5,
              "languages": ["en", "de"], "log_history": [], "some_future_key": 1}
    (model_dir / "training_run.json").write_text(json.dumps(record))
    export_model(model_dir, tmp_path / "out")
    text = (tmp_path / "out" / "README.md").read_text()
    assert "- Steps: 7." in text and "12.5 s" in text and "`cldr-emoji` (train split), languages en, de" in text
    assert '"loss_style": "one-to-k"' in text
    assert "The demo:" not in text  # no demo Space given: none linked
    assert ModelCard.load(tmp_path / "out" / "README.md").data.language == ["en", "de"]
    assert not LEFTOVERS.search(text)


def test_bad_report_is_a_clear_value_error(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"dataset": "x"}))
    with pytest.raises(ValueError, match="not a `ccr evaluate` report"):
        load_report(path)
    with pytest.raises(ValueError, match="cannot read the evaluation report"):
        load_report(tmp_path / "missing.json")


def test_benchmark_card_round_trip(tmp_path):
    card = benchmark_card(["test-org/ccr-tiny"], "test-org/mrv")
    card.save(tmp_path / "README.md")
    loaded = DatasetCard.load(tmp_path / "README.md")
    assert loaded.data.language == ["en", "de", "fr", "cs", "zh", "ja", "id", "es", "ru", "tr"]
    assert [split["split"] for split in loaded.data.configs[0]["data_files"]] == ["train", "validation", "test"]
    assert "https://huggingface.co/test-org/ccr-tiny" in loaded.text
    assert "https://huggingface.co/spaces/test-org/mrv" in loaded.text
    assert "| train | 1085 |" in loaded.text  # the builder's own facts are kept
    assert not LEFTOVERS.search(MarkdownIt().enable("table").render(loaded.text))


def test_metric_space_card_round_trip(tmp_path):
    no_demo = metric_space_card(["test-org/ccr-tiny"], "test-org/cldr-emoji").text.split("## On the Hub")[-1]
    assert "/spaces/" not in no_demo and "test-org/ccr-tiny" in no_demo  # no demo Space given: no link
    card = metric_space_card(["test-org/ccr-tiny"], "test-org/cldr-emoji", demo_space="test-org/demo")
    card.save(tmp_path / "README.md")
    loaded = SpaceCard.load(tmp_path / "README.md")
    assert loaded.data.sdk == "gradio" and loaded.data.app_file == "app.py"
    assert "evaluate" in loaded.data.tags and "metric" in loaded.data.tags
    assert "https://huggingface.co/test-org/ccr-tiny" in loaded.text
    assert "https://huggingface.co/datasets/test-org/cldr-emoji" in loaded.text
    assert "https://huggingface.co/spaces/test-org/demo" in loaded.text
    assert "## Metric Description" in loaded.text and not LEFTOVERS.search(loaded.text)


def test_demo_space_card_round_trip(tmp_path):
    import gradio

    card = demo_space_card("test-org/ccr-tiny", "test-org/mrv", "test-org/cldr-emoji")
    card.save(tmp_path / "README.md")
    loaded = SpaceCard.load(tmp_path / "README.md")
    data = loaded.data
    assert (data.sdk, data.sdk_version, data.app_file) == ("gradio", gradio.__version__, "app.py")
    assert (data.python_version, data.license) == ("3.11", "mit")
    assert data.models == ["test-org/ccr-tiny"] and data.datasets == ["test-org/cldr-emoji"]
    assert {"cross-lingual", "image-search", "mrv"} <= set(data.tags)
    assert "https://huggingface.co/test-org/ccr-tiny" in loaded.text
    assert "https://huggingface.co/spaces/test-org/mrv" in loaded.text
    assert "https://huggingface.co/datasets/test-org/cldr-emoji" in loaded.text
    assert "**Text → image**" in loaded.text  # the demo's own description is kept
    assert not LEFTOVERS.search(MarkdownIt().enable("table").render(loaded.text))


def test_demo_space_card_refuses_a_gradio_pin_it_does_not_run(tmp_path):
    demo = tmp_path / "demo"
    shutil.copytree(DEMO_FOLDER, demo)
    requirements = demo / "requirements.txt"
    requirements.write_text(re.sub(r"gradio==\S+", "gradio==0.0.1", requirements.read_text(encoding="utf-8")))
    with pytest.raises(ValueError, match=r"pins gradio==0\.0\.1 but the installed gradio is"):
        demo_space_card("test-org/ccr-tiny", "test-org/mrv", "test-org/cldr-emoji", demo_folder=demo)
    (demo / "app.py").unlink()
    with pytest.raises(ValueError, match="names app_file 'app.py', which is not in"):
        demo_space_card("test-org/ccr-tiny", "test-org/mrv", "test-org/cldr-emoji", demo_folder=demo)
    with pytest.raises(ValueError, match="run from a clone"):
        demo_space_card("test-org/ccr-tiny", "test-org/mrv", "test-org/cldr-emoji", demo_folder=tmp_path / "none")
