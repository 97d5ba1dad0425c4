"""The evaluation report: JSON, a Markdown table and two PNG plots, each written atomically.

For ``--output report.json`` the files are ``report.json``, ``report.md``, ``report_recall.png``
(per-language Recall@1/5/10 bars for TR and IR) and ``report_rank_std.png`` (histogram of the
per-instance std of the gold rank across languages, with the MRV marked). Plots use matplotlib's
``Figure`` directly (rendered by Agg, no pyplot state), so they work headless and in any thread.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from evaluate_mrv.rank_variance import rank_spread_per_instance

from ..allocator import allocator_state
from ..atomic_io import OutputKind, atomic_write, check_output_files, is_json_object_with
from .metrics import RECALL_KS
from .ranks import DIRECTIONS

DIRECTION_NAMES = {"tr": "TR (image -> text)", "ir": "IR (text -> image)"}
TIE_RULE = (
    "0-based rank = #candidates with a higher score + #candidates with an equal score and a lower index; "
    "with re-ranking, the top k_test candidates by similarity are ordered by their ITM logit and the rest "
    "follow in similarity order"
)


def build_report(
    metrics: dict,
    *,
    model_dir: str,
    dataset: str,
    split: str | None,
    languages: Sequence[str],
    num_images: int,
    k_test: int | None,
    mrv_kind: str = "std",
    rerank_mode: str = "replace",
    rerank_weight: float | None = None,
    reranking_source: str | None = None,
) -> dict:
    """The JSON report: run description plus :func:`~modeling_ccr.evaluation.metrics.retrieval_metrics`.

    ``rerank_mode`` / ``rerank_weight`` say how the top ``k_test`` were re-ranked (ignored without
    ``k_test``), ``reranking_source`` where that choice came from (e.g. the model's saved choice).
    ``allocator`` records the memory allocator setting of the process (:mod:`modeling_ccr.allocator`).
    """
    weight = rerank_weight if rerank_mode == "combine" else None
    reranking = None if k_test is None else {"mode": rerank_mode, "rerank_weight": weight,
                                             "source": reranking_source}
    return {
        "model": model_dir,
        "dataset": dataset,
        "split": split,
        "languages": list(languages),
        "num_images": num_images,
        "k_test": k_test,
        "reranked": k_test is not None,
        "reranking": reranking,
        "tr": metrics["tr"],
        "ir": metrics["ir"],
        "mean_recall": metrics["mean_recall"],
        "mrv": metrics["mrv"],
        "mrv_kind": mrv_kind,
        "recall_unit": "percent",
        "rank_base": "mean_rank and median_rank are 1-based; MRV does not depend on the base",
        "tie_rule": TIE_RULE,
        "allocator": allocator_state(),
    }


def markdown_table(report: dict) -> str:
    """One row per language: R@1/5/10, mean and median rank for TR and IR; then mean recall and MRV."""
    stage = f"two-stage, k_test = {report['k_test']}" if report["reranked"] else "similarity only"
    reranking = report.get("reranking") or {}
    if reranking.get("mode") == "combine":
        stage += f", combine with ITM weight {reranking['rerank_weight']:g}"
    if reranking.get("source"):
        stage += f" ({reranking['source']})"
    header = ["language"] + [
        f"{direction.upper()} {name}"
        for direction in DIRECTIONS
        for name in [*(f"R@{k}" for k in RECALL_KS), "MnR", "MedR"]
    ]
    lines = [
        f"Retrieval on {report['dataset']} ({report['split'] or 'default split'}, "
        f"{report['num_images']} images), model {report['model']}, {stage}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for language in report["languages"]:
        cells = [language]
        for direction in DIRECTIONS:
            values = report[direction][language]
            cells += [f"{values[f'r{k}']:.2f}" for k in RECALL_KS]
            cells += [f"{values['mean_rank']:.1f}", f"{values['median_rank']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    mrv = report["mrv"]
    mrv_text = ", ".join(
        f"{direction.upper()} {'n/a (one language)' if mrv[direction] is None else f'{mrv[direction]:.2f}'}"
        for direction in DIRECTIONS
    )
    lines += [
        "",
        f"Mean recall: {report['mean_recall']:.2f}. MRV ({report['mrv_kind']}, lower is better): {mrv_text}.",
        "Recall in percent; MnR / MedR: mean / median rank of the gold item (1 = first).",
    ]
    return "\n".join(lines) + "\n"


def plot_recall(report: dict, path: Path) -> None:
    """Grouped bars: Recall@1/5/10 per language, one panel per direction."""
    languages = report["languages"]
    positions = np.arange(len(languages))
    width = 0.8 / len(RECALL_KS)
    figure = Figure(figsize=(max(8, 1.2 * len(languages) + 4), 4))
    axes = figure.subplots(1, 2, sharey=True)
    for axis, direction in zip(axes, DIRECTIONS, strict=True):
        for offset, k in enumerate(RECALL_KS):
            values = [report[direction][language][f"r{k}"] for language in languages]
            axis.bar(positions + (offset - 1) * width, values, width, label=f"R@{k}")
        axis.set_xticks(positions, languages)
        axis.set_title(DIRECTION_NAMES[direction])
        axis.set_ylim(0, 100)
        axis.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("recall (%)")
    axes[1].legend(loc="upper right")
    figure.suptitle(f"Recall per language, mean recall {report['mean_recall']:.2f}")
    figure.tight_layout()
    atomic_write(path, lambda target: figure.savefig(target, format="png", dpi=120))


def plot_rank_spread(ranks: dict[str, np.ndarray], report: dict, path: Path) -> None:
    """Histogram of the per-instance spread of the gold rank across languages (std or variance, as the
    report's ``mrv_kind``), TR and IR, with its mean (the MRV) marked."""
    kind = report.get("mrv_kind", "std")
    figure = Figure(figsize=(10, 4))
    axes = figure.subplots(1, 2)
    for axis, direction in zip(axes, DIRECTIONS, strict=True):
        mrv = report["mrv"][direction]
        if mrv is None:
            axis.text(0.5, 0.5, "one language: no spread", ha="center", va="center", transform=axis.transAxes)
        else:
            spread = rank_spread_per_instance(ranks[direction], kind=kind)
            axis.hist(spread, bins=min(50, max(10, len(spread) // 20)), color="tab:blue", alpha=0.8)
            axis.axvline(float(spread.mean()), color="tab:red", label=f"mean (MRV, {kind}) {spread.mean():.2f}")
            axis.legend(loc="upper right")
        axis.set_title(DIRECTION_NAMES[direction])
        axis.set_xlabel(f"{kind} of the gold rank across languages")
    axes[0].set_ylabel("instances")
    figure.tight_layout()
    atomic_write(path, lambda target: figure.savefig(target, format="png", dpi=120))


def report_paths(output: str | os.PathLike) -> dict[str, Path]:
    """The output files for ``output`` (the JSON path): json, markdown, recall_plot and rank_std_plot."""
    json_path = Path(output)
    if json_path.suffix.lower() != ".json":
        raise ValueError(f"--output must name a .json file (the other files go beside it), got {output}")
    stem = json_path.with_suffix("")
    return {
        "json": json_path,
        "markdown": json_path.with_suffix(".md"),
        "recall_plot": stem.with_name(stem.name + "_recall.png"),
        "rank_std_plot": stem.with_name(stem.name + "_rank_std.png"),
    }


EVALUATION_REPORT = OutputKind(
    "an evaluation report (ccr evaluate)",
    lambda json_path: is_json_object_with(json_path, {"tr", "ir", "mean_recall", "mrv", "tie_rule"}),
    (),
)


def check_report_output(output: str | os.PathLike, overwrite: bool = False) -> dict[str, Path]:
    """The :func:`report_paths` of ``output``, after the overwrite rule: when any of them exists, the JSON
    must be an earlier report and ``overwrite`` set (ValueError otherwise, before any work)."""
    paths = report_paths(output)
    check_output_files(list(paths.values()), EVALUATION_REPORT, overwrite)
    return paths


def write_report(report: dict, ranks: dict[str, np.ndarray], output: str | os.PathLike,
                 overwrite: bool = False) -> dict[str, Path]:
    """Write the JSON report, the Markdown table and both plots; ranks ``{"tr", "ir"}`` are ``[N, K]``.

    An earlier report at ``output`` (its .json, .md, .png files) is replaced only with ``overwrite``; each
    file is replaced atomically, and nothing else beside it is touched.
    """
    paths = check_report_output(output, overwrite)
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    atomic_write(paths["json"], lambda target: target.write_text(text, encoding="utf-8"))
    table = markdown_table(report)
    atomic_write(paths["markdown"], lambda target: target.write_text(table, encoding="utf-8"))
    plot_recall(report, paths["recall_plot"])
    plot_rank_spread(ranks, report, paths["rank_std_plot"])
    return paths

