"""The model card of an exported CCR model: YAML metadata with a model-index, and a Markdown body.

The model-index holds, for every ``ccr evaluate`` report given, one result per direction (TR: image ->
text, IR: text -> image) with Recall@1/5/10, mean and median rank per language and the MRV over the
languages, plus the mean recall. ``metric_config`` names the language (or ``all``) and, when the report
re-ranked with the ITM head, the ``k_test`` used, so results of several reports stay apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from evaluate_mrv.mrv import _CITATION as CITATION  # the paper's BibTeX, as the metric card gives it

TEMPLATES = Path(__file__).resolve().parent / "templates"

PAPER_URL = "https://arxiv.org/abs/2406.18254"
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


def load_report(path: str | Path) -> dict:
    """Read a ``ccr evaluate`` JSON report, or raise a ValueError naming the file and what it lacks."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read the evaluation report {path}: {error}; pass the report.json of `ccr evaluate`") from error
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


def _training_view(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if record is None:
        return None
    settings = record.get("settings") if isinstance(record.get("settings"), dict) else {}
    data = _data_settings(record)
    return {
        "dataset": data.get("dataset"),
        "split": data.get("split"),
        "languages": record.get("languages"),
        "steps": record.get("steps"),
        "seconds": record.get("train_seconds_this_run"),
        "objective_json": json.dumps(record["objective"], indent=2, default=str) if "objective" in record else None,
        "settings_json": json.dumps(settings, indent=2, default=str) if settings else None,
    }


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


def model_card(
    model_dir: str | Path,
    reports: Sequence[Mapping],
    *,
    repo_id: str,
    base_models: Sequence[str],
    license: str,
    license_name: str | None = None,
    metric_space: str,
    demo_space: str | None = None,
    dataset_ids: Mapping[str, str] | None = None,
    caption_prefix: str = "",
    report_files: Sequence[str] = (),
) -> ModelCard:
    """The model card of the CCR model in ``model_dir`` with the results of ``reports`` (``ccr evaluate`` JSON).

    Args:
        repo_id: the model's Hub id, used in the usage examples.
        base_models: Hub ids of the towers the model started from.
        license: SPDX-style Hub licence id (``other`` with ``license_name`` for a combination).
        metric_space: Hub id of the MRV metric Space (``evaluate.load(metric_space)``).
        demo_space: Hub id of the demo Space (``ccr export-companion demo-space``), linked when given.
        dataset_ids: report dataset name -> Hub dataset id (for ``datasets`` and the model-index).
        caption_prefix: the processor's caption prefix (E5 towers: ``"query: "``), shown in the pipeline example.
        report_files: where the reports are stored in the exported folder, named in the card.
    """
    record = read_training_run(model_dir)
    dataset_ids = dict(dataset_ids or {})
    languages: list[str] = []
    for source in [*(r["languages"] for r in reports), (record or {}).get("languages") or []]:
        languages += [language for language in source if language not in languages]
    trained_on = _data_settings(record).get("dataset")
    dataset_names = [r["dataset"] for r in reports] + ([trained_on] if isinstance(trained_on, str) else [])
    datasets = list(dict.fromkeys(dataset_ids.get(name, name) for name in dataset_names))
    eval_results = [result for report in reports for result in eval_results_from_report(report, dataset_ids)]
    card_data = ModelCardData(
        language=languages or None,
        license=license,
        license_name=license_name,
        license_link="LICENSES.md" if license == "other" else None,
        library_name="transformers",
        pipeline_tag=PIPELINE_TAG,
        tags=["cross-lingual-cross-modal-retrieval", "image-text-retrieval", "multilingual", "ccr", "custom_code"],
        datasets=datasets or None,
        base_model=list(base_models) or None,
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results or None,
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATES / "model_card.md.j2"),
        repo_id=repo_id,
        model_title=repo_id.split("/")[-1],
        metric_space=metric_space,
        demo_space=demo_space,
        paper_url=PAPER_URL,
        caption_prefix=caption_prefix,
        example_labels_json=json.dumps(["eine Katze", "ein Hund", "猫", "犬"], ensure_ascii=False),
        results=[_results_view(report) for report in reports],
        report_files=list(report_files),
        training=_training_view(record),
        citation=CITATION.strip(),
        hub_datasets=[name for name in datasets if "/" in name],
    )
