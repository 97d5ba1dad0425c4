"""The model card of an exported CCR model: YAML metadata with a model-index, and a Markdown body.

The model-index holds, for every ``ccr evaluate`` report given, one result per direction (TR: image ->
text, IR: text -> image) with Recall@1/5/10, mean and median rank per language and the MRV over the
languages, plus the mean recall. ``metric_config`` names the language (or ``all``) and, when the report
re-ranked with the ITM head, the ``k_test`` used, so results of several reports stay apart.

Every sentence of the card is rendered from one record, :class:`ModelFacts`, built once by
:func:`model_facts` from the model folder (its ``config.json`` ``untrained`` flag and ``training_run.json``),
the reports and what the export was told (the repository id, where the towers come from, the Hub links).
So the card says the weights were trained only when a training record says so, shows scores (and the
sentences about them) only when reports were given, and marks every Hub id the user did not give as a
placeholder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

# the paper's BibTeX, as the metric card gives it (evaluate_mrv.citation: not evaluate_mrv.mrv, which imports
# evaluate, and evaluate transformers' pipelines: seconds for every `ccr push`)
from evaluate_mrv.citation import PAPER_CITATION

TEMPLATES = Path(__file__).resolve().parent / "templates"

PAPER_URL = "https://arxiv.org/abs/2406.18254"
PAPER = ("Nie et al., *Improving the Consistency in Cross-Lingual Cross-Modal Retrieval with 1-to-K Contrastive "
         f"Learning*, KDD 2024, [{PAPER_URL}]({PAPER_URL})")
PIPELINE_TAG = "zero-shot-image-classification"
DIRECTIONS = {
    # report key: (task_type, task_name, metric name prefix)
    "tr": ("image-to-text", "Text retrieval (image -> text)", "TR"),
    "ir": ("text-to-image", "Image retrieval (text -> image)", "IR"),
}
MEAN_RECALL_TASK = ("image-text-retrieval", "Cross-lingual image-text retrieval, TR and IR")
PER_LANGUAGE_METRICS = {
    # report field: (metric_type, metric name)
    "r1": ("recall@1", "R@1"),
    "r5": ("recall@5", "R@5"),
    "r10": ("recall@10", "R@10"),
    "mean_rank": ("mean_rank", "mean rank"),
    "median_rank": ("median_rank", "median rank"),
}
REPORT_FIELDS = ("dataset", "split", "languages", "tr", "ir", "mean_recall", "mrv", "k_test")
# The contrastive styles of `ccr train` (modeling_ccr.training.LOSS_STYLES), as the card names them.
OBJECTIVES = {
    "one-to-k": "**1-to-K contrastive learning** (CCR^k, the paper's objective: each image against its captions "
                "in all K languages at once)",
    "cross-modal": "the cross-modal baseline objective (1-to-1 InfoNCE between each image and its caption in one "
                   "sampled language), not 1-to-K",
    "cross-lingual": "the cross-lingual baseline objective (image-English and English-other-language InfoNCE), "
                     "not 1-to-K",
}
# Trainer settings of a training record that the card lists: (key in settings.training, label).
RECIPE_SETTINGS = (
    ("max_steps", "max steps"),
    ("per_device_train_batch_size", "images per device and step"),
    ("learning_rate", "learning rate"),
    ("warmup_steps", "warm-up steps (a ratio of max steps when below 1)"),
    ("weight_decay", "weight decay"),
    ("train_text_layers", "text-encoder layers trained (-1: all)"),
    ("train_vision_layers", "image-tower layers trained (-1: all)"),
    ("seed", "seed"),
)
# What the weights of a model folder are, as the card says it (ModelFacts.state).
WEIGHT_STATES = ("trained", "converted", "untrained", "unrecorded")
# Languages when neither a training record nor a report names any (the towers are multilingual).
UNMEASURED_LANGUAGES = ("multilingual",)
REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
# A repository the card's usage code loads: from_pretrained("...") or pipeline(..., model="...").
USAGE_REPO = re.compile(r'(?:from_pretrained\(\s*|\bmodel=)"([^"]+)"')


def check_repo_id(repo_id: str, option: str) -> str:
    """Returns ``repo_id`` when it is a Hub id ``org/name``; else raises a ValueError naming ``option`` to fix."""
    if not isinstance(repo_id, str) or not REPO_ID.fullmatch(repo_id) or ".." in repo_id:
        raise ValueError(f"{option} must be a Hub id 'org/name' (letters, digits, '-', '_', '.'), got {repo_id!r}")
    return repo_id


@dataclass(frozen=True)
class HubLink:
    """A Hub repository the card names: its id, and whether the user gave it (``given``) or the id is a
    placeholder, which the card says, naming the ``ccr export`` ``option`` that sets it."""

    repo_id: str
    given: bool
    option: str


@dataclass(frozen=True)
class TrainingRecipe:
    """What a ``training_run.json`` says its ``ccr train`` run did; None or empty where it does not say."""

    loss_style: str | None
    objective: str
    loss_weights: tuple[tuple[str, float], ...]
    dataset: str | None
    split: str | None
    languages: tuple[str, ...]
    steps: int | None
    settings: tuple[tuple[str, Any], ...]
    started_from: str | None
    resumed_from: str | None
    final_loss: float | None
    seconds: float | None
    trainable_parameters: int | None
    frozen_parameters: int | None
    objective_json: str | None
    settings_json: str | None


@dataclass(frozen=True)
class ModelFacts:
    """Everything a model card says, gathered once (:func:`model_facts`); the template only renders it.

    ``state`` is one of :data:`WEIGHT_STATES`: ``trained`` (a ``training_run.json`` records the run, in
    ``training``), ``converted`` (from a released checkpoint, ``converted_from``), ``untrained`` (the config's
    ``untrained`` flag: new projections and heads) or ``unrecorded`` (nothing says how the weights were made).
    ``languages`` are those of the training data and the reports (``languages_from`` says which), else
    :data:`UNMEASURED_LANGUAGES` (``languages_from`` empty).
    """

    repo_id: str
    state: str
    training: TrainingRecipe | None
    converted_from: str | None
    results: tuple[dict[str, Any], ...]
    eval_results: tuple[EvalResult, ...]
    report_files: tuple[str, ...]
    languages: tuple[str, ...]
    languages_from: str
    datasets: tuple[str, ...]
    base_models: tuple[str, ...]
    weight_notes: tuple[str, ...]
    license: str
    license_name: str | None
    metric_space: HubLink
    demo_space: HubLink | None
    dataset_links: tuple[HubLink, ...]
    caption_prefix: str


def load_report(path: str | Path) -> dict:
    """Read a ``ccr evaluate`` JSON report, or raise a ValueError naming the file and what it lacks."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read the evaluation report {path}: {error}; "
                         "pass the report.json of `ccr evaluate`") from error
    missing = [field for field in REPORT_FIELDS if not isinstance(report, dict) or field not in report]
    if missing:
        raise ValueError(f"{path} is not a `ccr evaluate` report (no {', '.join(missing)}); pass its report.json")
    return report


def _stage(report: Mapping) -> str:
    return "" if report.get("k_test") is None else f", ITM re-ranking of the top {report['k_test']}"


def report_metrics(report: Mapping) -> dict[tuple[str, str, str], float]:
    """Every metric of one report, keyed ``(task_type, metric_type, metric_config)``.

    Per language and direction: R@1/5/10 (percent), mean and median rank (1-based); per direction: MRV
    (``metric_config`` ``all``); and the mean recall. MRV is absent when the report has one language.
    """
    stage = _stage(report)
    metrics: dict[tuple[str, str, str], float] = {}
    for direction, (task_type, _, _) in DIRECTIONS.items():
        for language in report["languages"]:
            for field, (metric_type, _) in PER_LANGUAGE_METRICS.items():
                metrics[(task_type, metric_type, language + stage)] = float(report[direction][language][field])
        if report["mrv"].get(direction) is not None:
            metrics[(task_type, "mrv", "all" + stage)] = float(report["mrv"][direction])
    metrics[(MEAN_RECALL_TASK[0], "mean_recall", "all" + stage)] = float(report["mean_recall"])
    return metrics


def eval_results_from_report(report: Mapping, dataset_ids: Mapping[str, str] | None = None) -> list[EvalResult]:
    """The model-index entries of one report: one :class:`EvalResult` per entry of :func:`report_metrics`.

    ``dataset_ids`` maps a report's dataset name (``cldr-emoji``) to its Hub id (``org/cldr-emoji``);
    names without an entry are used as they are.
    """
    dataset_type = (dataset_ids or {}).get(report["dataset"], report["dataset"])
    task_names = {task_type: name for task_type, name, _ in DIRECTIONS.values()}
    task_names[MEAN_RECALL_TASK[0]] = MEAN_RECALL_TASK[1]
    prefixes = {task_type: prefix for task_type, _, prefix in DIRECTIONS.values()}
    metric_names = {metric_type: name for metric_type, name in PER_LANGUAGE_METRICS.values()}
    metric_names.update(mrv="MRV", mean_recall="mean recall")
    results = []
    for (task_type, metric_type, config), value in report_metrics(report).items():
        prefix = prefixes.get(task_type, "")
        results.append(
            EvalResult(
                task_type=task_type,
                task_name=task_names[task_type],
                dataset_type=dataset_type,
                dataset_name=f"{report['dataset']} ({report['split'] or 'default split'})",
                dataset_split=report["split"],
                metric_type=metric_type,
                metric_name=f"{prefix} {metric_names[metric_type]} ({config})".strip(),
                metric_config=config,
                metric_value=value,
            )
        )
    return results


def read_training_run(model_dir: str | Path) -> dict[str, Any] | None:
    """The training record ``training_run.json`` of a model folder (None if absent), read tolerantly:
    the card uses ``settings``, ``objective``, ``steps``, ``train_seconds_this_run`` and ``languages``
    where present."""
    path = Path(model_dir) / "training_run.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); restore it or remove it from the folder") from error
    return record if isinstance(record, dict) else None


def _data_settings(record: Mapping[str, Any] | None) -> dict[str, Any]:
    """The data part of a training record's settings (``settings.data``; older records keep it flat)."""
    settings = (record or {}).get("settings")
    if not isinstance(settings, dict):
        return {}
    return settings["data"] if isinstance(settings.get("data"), dict) else settings


def _training_settings(record: Mapping[str, Any]) -> dict[str, Any]:
    """The Trainer part of a training record's settings (``settings.training``; empty when absent)."""
    settings = record.get("settings")
    training = settings.get("training") if isinstance(settings, dict) else None
    return training if isinstance(training, dict) else {}


def objective_sentence(loss_style: str | None) -> str:
    """The card's words for a contrastive ``loss_style`` of ``ccr train`` (``None``: not recorded)."""
    if loss_style is None:
        return "an objective its training record does not name"
    return OBJECTIVES.get(loss_style, f"the `{loss_style}` objective")


def training_recipe(record: Mapping[str, Any]) -> TrainingRecipe:
    """The :class:`TrainingRecipe` of a ``training_run.json`` record (fields it lacks are None or empty)."""
    data = _data_settings(record)
    training = _training_settings(record)
    objective = record.get("objective") if isinstance(record.get("objective"), dict) else {}
    loss_style = objective.get("loss_style", training.get("loss_style"))
    weights = objective.get("weights") if isinstance(objective.get("weights"), dict) else {}
    parameters = record.get("parameters") if isinstance(record.get("parameters"), dict) else {}
    settings = record.get("settings") if isinstance(record.get("settings"), dict) else {}
    return TrainingRecipe(
        loss_style=loss_style,
        objective=objective_sentence(loss_style),
        loss_weights=tuple((name, float(value)) for name, value in weights.items()),
        dataset=data.get("dataset"),
        split=data.get("split"),
        languages=tuple(record.get("languages") or ()),
        steps=record.get("steps"),
        settings=tuple((label, training[key]) for key, label in RECIPE_SETTINGS if training.get(key) is not None),
        started_from=record.get("model_init"),
        resumed_from=record.get("resumed_from"),
        final_loss=record.get("final_loss"),
        seconds=record.get("train_seconds_this_run"),
        trainable_parameters=parameters.get("trainable"),
        frozen_parameters=parameters.get("frozen"),
        objective_json=json.dumps(objective, indent=2, default=str) if objective else None,
        settings_json=json.dumps(settings, indent=2, default=str) if settings else None,
    )


def _results_view(report: Mapping) -> dict[str, Any]:
    rows = []
    for language in report["languages"]:
        cells = [f"{report[d][language][f]:.2f}" for d in DIRECTIONS for f in ("r1", "r5", "r10")]
        cells += [f"{report[d][language]['mean_rank']:.1f}" for d in DIRECTIONS]
        rows.append({"language": language, "cells": cells})
    mrv = {d: (None if report["mrv"].get(d) is None else f"{report['mrv'][d]:.2f}") for d in DIRECTIONS}
    return {
        "dataset": report["dataset"],
        "split": report["split"] or "default split",
        "num_images": report.get("num_images"),
        "stage": "similarity only" if report.get("k_test") is None else f"ITM re-ranking of the top {report['k_test']}",
        "mrv_kind": report.get("mrv_kind", "std"),
        "rows": rows,
        "mean_recall": f"{report['mean_recall']:.2f}",
        "mrv": mrv,
    }


def read_untrained_flag(model_dir: str | Path) -> bool:
    """Returns the ``untrained`` flag of the folder's ``config.json`` (False when the config has none, as
    configs written before the flag existed); raises ValueError when the config cannot be read."""
    path = Path(model_dir) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {path} ({error}): pass a CCR model folder") from error
    return bool(config.get("untrained", False)) if isinstance(config, dict) else False


def _weight_state(model_dir: str | Path, record: Mapping[str, Any] | None, converted_from: str | None) -> str:
    """The :data:`WEIGHT_STATES` entry of a folder; ValueError when its config and its training record disagree."""
    untrained = read_untrained_flag(model_dir)
    if record is not None and untrained:
        raise ValueError(
            f"{model_dir} holds a training_run.json ({record.get('steps')} steps) but its config.json says untrained: "
            "`ccr train` writes both, so one was copied from elsewhere; "
            "remove training_run.json if these are untrained "
            'weights, or set "untrained": false in config.json if they are the trained ones')
    if record is not None:
        return "trained"
    if untrained:
        return "untrained"
    return "converted" if converted_from else "unrecorded"


def _languages_source(from_training: bool, from_reports: bool) -> str:
    """Returns the card's words for where its languages come from ("" when nothing names any)."""
    sources = (["its training data"] if from_training else []) + (["its evaluation reports"] if from_reports else [])
    return " and ".join(sources)


def model_facts(
    model_dir: str | Path,
    reports: Sequence[Mapping],
    *,
    repo_id: str,
    base_models: Sequence[str],
    license: str,
    license_name: str | None = None,
    metric_space: HubLink,
    demo_space: HubLink | None = None,
    dataset_links: Mapping[str, HubLink] | None = None,
    caption_prefix: str = "",
    report_files: Sequence[str] = (),
    weight_notes: Sequence[str] = (),
    converted_from: str | None = None,
) -> ModelFacts:
    """The :class:`ModelFacts` of the CCR model in ``model_dir`` with the results of ``reports``
    (``ccr evaluate`` JSON).

    Args:
        repo_id: the model's Hub id ``org/name``: the card's title and every usage example load it.
        base_models: Hub ids of the towers the model started from (image tower, text tower).
        license: Hub licence id of the weights (``other`` with ``license_name`` for a combination).
        metric_space: the MRV metric Space (``evaluate.load(metric_space)``), maybe a placeholder.
        demo_space: the demo Space (``ccr export-companion demo-space``); None: none given, none linked.
        dataset_links: report / training dataset name (``cldr-emoji``) -> its Hub dataset; other names stay as they are.
        caption_prefix: the processor's caption prefix (E5 towers: ``"query: "``), shown in the pipeline example.
        report_files: where the reports are stored in the exported folder, named in the card.
        weight_notes: sentences on where the weights come from (e.g. a dequantised tower), shown as given.
        converted_from: the released checkpoint the weights were converted from (``provenance.json``).

    Raises ValueError for a repo id that is not ``org/name`` and for a folder whose ``config.json`` says
    untrained while a ``training_run.json`` records a run.
    """
    check_repo_id(repo_id, "the repo id (--repo-id)")
    record = read_training_run(model_dir)
    state = _weight_state(model_dir, record, converted_from)
    training = training_recipe(record) if record is not None else None
    languages: list[str] = []
    for source in [*(r["languages"] for r in reports), training.languages if training else ()]:
        languages += [language for language in source if language not in languages]
    links = dict(dataset_links or {})
    dataset_ids = {name: link.repo_id for name, link in links.items()}
    dataset_names = [r["dataset"] for r in reports] + ([training.dataset] if training and training.dataset else [])
    datasets = tuple(dict.fromkeys(dataset_ids.get(name, name) for name in dataset_names))
    used_links = tuple(dict.fromkeys(links[name] for name in dataset_names if name in links))
    return ModelFacts(
        repo_id=repo_id,
        state=state,
        training=training,
        converted_from=converted_from if state == "converted" else None,
        results=tuple(_results_view(report) for report in reports),
        eval_results=tuple(result for report in reports for result in eval_results_from_report(report, dataset_ids)),
        report_files=tuple(report_files),
        languages=tuple(languages) or UNMEASURED_LANGUAGES,
        languages_from=_languages_source(bool(training and training.languages), any(r["languages"] for r in reports)),
        datasets=datasets,
        base_models=tuple(base_models),
        weight_notes=tuple(weight_notes),
        license=license,
        license_name=license_name,
        metric_space=metric_space,
        demo_space=demo_space,
        dataset_links=used_links,
        caption_prefix=caption_prefix,
    )


def model_card(facts: ModelFacts) -> ModelCard:
    """Returns the model card (YAML metadata and Markdown body) that renders ``facts`` and nothing else."""
    card_data = ModelCardData(
        language=list(facts.languages),
        license=facts.license,
        license_name=facts.license_name,
        license_link="LICENSES.md" if facts.license == "other" else None,
        library_name="transformers",
        pipeline_tag=PIPELINE_TAG,
        tags=["cross-lingual-cross-modal-retrieval", "image-text-retrieval", "multilingual", "ccr", "custom_code"],
        datasets=list(facts.datasets) or None,
        base_model=list(facts.base_models) or None,
        model_name=facts.repo_id,
        eval_results=list(facts.eval_results) or None,
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATES / "model_card.md.j2"),
        facts=facts,
        paper=PAPER,
        example_labels_json=json.dumps(["eine Katze", "ein Hund", "猫", "犬"], ensure_ascii=False),
        citation=PAPER_CITATION.strip(),
    )


def card_repo_ids(text: str) -> list[str]:
    """Returns the Hub ids a model card names as its own, in order and once each: its title (a ``# org/name``
    first heading) and every repository its usage code loads (``from_pretrained("...")``, ``model="..."``)."""
    body = text.split("\n---\n", 1)[-1] if text.startswith("---") else text
    title = re.search(r"^# (\S+)\s*$", body, re.MULTILINE)
    ids = ([title[1]] if title and REPO_ID.fullmatch(title[1]) else []) + USAGE_REPO.findall(body)
    return list(dict.fromkeys(ids))
