"""Loss-style study: 1-to-K against the cross-modal and cross-lingual styles, under one budget.

    python scripts/study_loss_styles.py [--output runs/loss-styles] [--seeds 0 1 2] [--max-steps 100]
        [--k-test 16] [--jobs 2] [--groups NAME ...] [--report-only]

Trains, from the embedded default model, with the default recipe of ``ccr train`` (its data, images per
step, learning rates, ITM and MLM) at the study's step count (``--max-steps``, the same for every model) and
only the contrastive style changed, for every seed:

- one-to-k (released weighting), one-to-k (symmetric weighting), cross-modal, cross-lingual;
- the linear probe as a reference (frozen towers; projections and temperature only, 1-to-K loss, no ITM or
  MLM: ``scripts/quality_vs_probe.py``'s probe, at the study's steps),

and evaluates each model, and the untrained embedded default, on the embedded benchmark's test split in
its ten trained languages and zero-shot in five CLDR languages outside the image-text training (ko it pt pl
vi, built from the pinned CLDR package: ``modeling_ccr.app.dataset.unseen_languages``; the frozen multilingual
text tower was pretrained on text in them), by similarity and with the paper's ITM re-ranking of the top
``k_test`` ("replace"; the probe and the untrained model have untrained ITM heads, so their "replace" rows
re-rank by an untrained head). Nothing is chosen on the test split, so no
validation pass is needed. It prints, and writes to the output folder (``loss_styles.md``,
``loss_styles.json``, ``loss_styles.png``):

- per model and ranking, the mean and standard deviation over seeds of mean recall, R@1, MRV TR / IR and
  mean rank;
- each style's difference from one-to-k (released) with Welch's t-test over the seeds (p < 0.05: the difference
  of the means is larger than the seed-to-seed spread explains; no correction for the number of comparisons);
- per-language R@1 / R@5 / R@10 for TR and IR (mean over seeds);
- training and evaluation wall times and the last logged losses.

Each model is one job (a subprocess of this script, ``--jobs`` at a time with the cores shared out); a job
writes ``runs/<name>/result.json`` last, so a study stopped midway continues where it was when rerun
with the same options (finished jobs are read back, not repeated).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from quality_vs_probe import PROBE, headline

from modeling_ccr.allocator import tune_allocator
from modeling_ccr.atomic_io import atomic_write

FIGURES = ("mean_recall", "r1", "mrv_tr", "mrv_ir", "mean_rank")
RANKINGS = ("similarity", "replace")
REFERENCE_STYLE = "one-to-k (released)"


@dataclass(frozen=True)
class Model:
    """One model of the study: its training options (None: the untrained embedded default) and seed."""

    group: str
    options: dict | None
    seed: int | None

    @property
    def name(self) -> str:
        slug = self.group.replace(" (", "-").replace(")", "").replace(" ", "-")
        return slug if self.seed is None else f"{slug}-seed{self.seed}"


def study_groups() -> dict[str, dict | None]:
    """Group name -> training options beyond the default recipe (None: not trained)."""
    probe = {key: value for key, value in PROBE.items() if key != "max_steps"}
    return {
        "untrained": None,
        "linear probe": probe,
        REFERENCE_STYLE: {"loss_style": "one-to-k", "weighting": "released"},
        "one-to-k (symmetric)": {"loss_style": "one-to-k", "weighting": "symmetric"},
        "cross-modal": {"loss_style": "cross-modal"},
        "cross-lingual": {"loss_style": "cross-lingual"},
    }


def study_models(seeds: list[int]) -> list[Model]:
    """Every model, seed by seed (so a partial study has every style at its first seeds)."""
    groups = study_groups()
    models = [Model("untrained", None, None)]
    for seed in seeds:
        models += [Model(group, options, seed) for group, options in groups.items() if options is not None]
    return models


def run_one(model: Model, args: argparse.Namespace) -> None:
    """Train (unless untrained) and evaluate one model; writes ``runs/<name>/result.json`` last."""
    import torch
    from transformers import AutoProcessor

    from modeling_ccr import CCRModel
    from modeling_ccr.default_model import ensure_default_model
    from modeling_ccr.training import CCRTrainingArguments, ModelArguments, train
    from modeling_ccr.training.run import find_resume_checkpoint, set_aside_incomplete_checkpoints

    folder = Path(args.output) / "runs" / model.name
    base = str(ensure_default_model())
    result: dict = {"name": model.name, "group": model.group, "seed": model.seed, "threads": torch.get_num_threads()}
    model_dir, start = base, time.perf_counter()
    if model.options is not None:
        train_dir, checkpoints = folder / "train", folder / "train" / "checkpoints"
        if not (train_dir / "model" / "config.json").is_file():  # the model folder is published whole, last
            set_aside_incomplete_checkpoints(checkpoints)
            resume = find_resume_checkpoint(checkpoints) is not None  # else a fresh start, earlier files set aside
            train(CCRTrainingArguments(output_dir=str(train_dir), seed=model.seed, max_steps=args.max_steps,
                                       disable_tqdm=True, resume=resume, overwrite=not resume, **model.options),
                  ModelArguments(model=base))
            result["train_s"] = round(time.perf_counter() - start, 1)  # absent: trained by an earlier job
        model_dir = str(train_dir / "model")
        record = json.loads((train_dir / "model" / "training_run.json").read_text(encoding="utf-8"))
        result.update(final_losses=last_losses(record["log_history"]), resumed=record["resumed_from"] is not None)
    start = time.perf_counter()
    network = CCRModel.from_pretrained(model_dir).eval()
    result["reports"], result["left_out"] = evaluate_test_split(network, AutoProcessor.from_pretrained(model_dir),
                                                                model_dir, args.k_test, folder / "eval")
    result["eval_s"] = round(time.perf_counter() - start, 1)
    text = json.dumps(result, indent=2)
    atomic_write(folder / "result.json", lambda target: target.write_text(text, encoding="utf-8"))


def evaluate_test_split(network, processor, model_dir: str, k_test: int,
                        output: Path) -> tuple[dict[str, dict], list[str]]:
    """Reports ``{"<test|unseen>_<ranking>": report}`` of the test split in the ten trained languages and in
    the unseen ones, by similarity and with "replace" re-ranking of the top ``k_test``, and the ids of test
    images left out of both because CLDR has no name for them in an unseen language (none with the pinned
    package; the report prints them).

    Both language sets are ranked in one pass over the test images with all fifteen languages' captions:
    a query's candidates are always of its own language, so each set's ranks are columns of the joint ranks.
    """
    import torch

    from modeling_ccr.app.dataset.unseen_languages import unseen_language_split
    from modeling_ccr.data import DEFAULT_LANGUAGES, load_benchmark
    from modeling_ccr.evaluation.metrics import retrieval_metrics
    from modeling_ccr.evaluation.pipeline import PreparedEvaluation
    from modeling_ccr.evaluation.ranks import RetrievalRanks
    from modeling_ccr.evaluation.report import build_report, write_report

    unseen = unseen_language_split("test")
    test = load_benchmark("cldr-emoji", split="test")
    left_out = set(unseen.left_out)
    test = test.select([i for i, emoji in enumerate(test["id"]) if emoji not in left_out])
    if test["id"] != unseen.dataset["id"]:
        raise ValueError("the unseen-language split does not follow the test split's image order")
    captions = [{**trained, **other}
                for trained, other in zip(test["captions"], unseen.dataset["captions"], strict=True)]
    joint = test.remove_columns(["captions", "keywords"]).add_column("captions", captions)
    languages = list(DEFAULT_LANGUAGES) + unseen.languages
    sets = {"test": list(DEFAULT_LANGUAGES), "unseen": unseen.languages}
    reports = {}
    with torch.inference_mode():
        prepared = PreparedEvaluation(network, processor, joint, languages=languages, k_test=k_test)
        for ranking in RANKINGS:
            ranked = prepared.evaluate(None if ranking == "similarity" else ranking)
            for name, chosen in sets.items():
                columns = [languages.index(language) for language in chosen]
                ranks = RetrievalRanks(tr=ranked.ranks.tr[:, columns], ir=ranked.ranks.ir[:, columns])
                report = build_report(retrieval_metrics(ranks, chosen), model_dir=model_dir, dataset="cldr-emoji",
                                      split="test", languages=chosen, num_images=len(joint), k_test=ranked.k_test,
                                      rerank_mode=ranking)
                write_report(report, {"tr": ranks.tr.numpy(), "ir": ranks.ir.numpy()},
                             output / f"{name}_{ranking}.json", overwrite=True)
                reports[f"{name}_{ranking}"] = report
    return reports, unseen.left_out


def last_losses(log_history: list[dict]) -> dict[str, float]:
    """The last logged value of each loss component."""
    found = {}
    for entry in log_history:
        found.update({key: float(value) for key, value in entry.items() if key.startswith("loss_")})
    return found


def run_all(models: list[Model], args: argparse.Namespace) -> None:
    """Run the unfinished models as subprocesses of this script, ``args.jobs`` at a time."""
    todo = [m for m in models if not (Path(args.output) / "runs" / m.name / "result.json").is_file()]
    threads = max(1, len(os.sched_getaffinity(0)) // args.jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    running: list[tuple[Model, subprocess.Popen, float]] = []
    failed = []
    print(f"{len(models) - len(todo)} of {len(models)} models already done; running {len(todo)}, {args.jobs} at a "
          f"time with {threads} torch thread(s) each", flush=True)
    while todo or running:
        while todo and len(running) < args.jobs:
            model = todo.pop(0)
            log = Path(args.output) / "runs" / f"{model.name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            command = [sys.executable, __file__, "--run", model.name, "--output", args.output, "--max-steps",
                       str(args.max_steps), "--k-test", str(args.k_test), "--seeds", *map(str, args.seeds)]
            with log.open("w", encoding="utf-8") as handle:
                process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
            running.append((model, process, time.perf_counter()))
        time.sleep(2)
        for entry in list(running):
            model, process, started = entry
            if process.poll() is None:
                continue
            running.remove(entry)
            status = "done" if process.returncode == 0 else f"FAILED (exit {process.returncode}, see its .log)"
            print(f"{model.name}: {status} in {time.perf_counter() - started:.0f} s", flush=True)
            if process.returncode != 0:
                failed.append(model.name)
    if failed:
        raise SystemExit(f"{len(failed)} job(s) failed: {', '.join(failed)}; rerun to retry them")


def collect(models: list[Model], output: Path) -> dict[str, list[dict]]:
    """Group name -> the result.json of each finished model of that group; finished models of other seeds or
    groups in the folder are named on stderr (they are not reported)."""
    groups: dict[str, list[dict]] = {}
    for model in models:
        path = output / "runs" / model.name / "result.json"
        if path.is_file():
            groups.setdefault(model.group, []).append(json.loads(path.read_text(encoding="utf-8")))
    wanted = {model.name for model in models}
    others = sorted(path.parent.name for path in (output / "runs").glob("*/result.json")
                    if path.parent.name not in wanted)
    if others:
        print(f"not reported (outside --seeds / --groups): {', '.join(others)}", file=sys.stderr)
    return groups


def seed_figures(results: list[dict], report: str, name: str) -> list[float]:
    """One headline figure (:data:`FIGURES`) of one report (``"<test|unseen>_<ranking>"``), per seed."""
    return [headline(result["reports"][report])[name] for result in results]


def mean_std(values: list[float]) -> str:
    """``mean ± std`` over seeds (sample std, ddof 1), or the single value."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def summary_tables(groups: dict[str, list[dict]]) -> list[str]:
    """One table per (language set, ranking): mean ± std over seeds of the headline figures."""
    lines = []
    for evaluated, title in (("test", "test split, the 10 trained languages"),
                             ("unseen", "test split, 5 languages outside the image-text training (ko it pt pl vi), "
                                        "zero-shot")):
        for ranking in RANKINGS:
            lines += [f"### {title}: {ranking}", "",
                      "| model | seeds | mean recall | R@1 | MRV TR | MRV IR | mean rank |",
                      "|---|---:|---:|---:|---:|---:|---:|"]
            for group, results in groups.items():
                cells = " | ".join(mean_std(seed_figures(results, f"{evaluated}_{ranking}", name)) for name in FIGURES)
                lines.append(f"| {group} | {len(results)} | {cells} |")
            if ranking == "replace":
                lines += ["", "The linear probe and the untrained model have untrained ITM heads: their rows re-rank "
                          "by an untrained head. An ITM loss at chance is 0.637 (one positive in three); the last "
                          "logged ITM losses are in the wall-time table below."]
            lines.append("")
    return lines


def difference_table(groups: dict[str, list[dict]]) -> list[str]:
    """Each trained style against one-to-k (released), by similarity: difference of the means and Welch's
    t-test over the seeds (for MRV, lower is better)."""
    from scipy.stats import ttest_ind

    reference = groups.get(REFERENCE_STYLE, [])
    lines = [f"### Differences from {REFERENCE_STYLE}, similarity ranking", "",
             "Welch's t-test over seeds; 'yes' where p < 0.05: the difference of the means is larger than the "
             "seed-to-seed spread explains. No correction for the number of comparisons. Mean recall: higher is "
             "better; MRV: lower is better.", "",
             "| style | seeds (style / reference) | languages | figure | style - reference | p | exceeds spread |",
             "|---|---|---|---|---:|---:|---|"]
    skipped = []
    for group, results in groups.items():
        if group in ("untrained", REFERENCE_STYLE):
            continue
        if len(results) < 2 or len(reference) < 2:
            skipped.append(f"{group} ({len(results)} seed(s), reference {len(reference)})")
            continue
        for evaluated, label in (("test", "trained 10"), ("unseen", "unseen 5")):
            for name in ("mean_recall", "mrv_tr", "mrv_ir"):
                ours = seed_figures(results, f"{evaluated}_similarity", name)
                theirs = seed_figures(reference, f"{evaluated}_similarity", name)
                p_value = float(ttest_ind(ours, theirs, equal_var=False).pvalue)
                lines.append(f"| {group} | {len(ours)} / {len(theirs)} | {label} | {name} | "
                             f"{np.mean(ours) - np.mean(theirs):+.2f} | {p_value:.3f} | "
                             f"{'yes' if p_value < 0.05 else 'no'} |")
    if skipped:
        lines += ["", "Not tested (a t-test needs at least 2 seeds on each side): " + "; ".join(skipped)]
    return lines + [""]


def per_language_tables(groups: dict[str, list[dict]]) -> list[str]:
    """Per-language R@1 / R@5 / R@10 (mean over seeds), TR and IR, by similarity, trained and unseen languages."""
    lines = []
    for evaluated in ("test", "unseen"):
        for direction in ("tr", "ir"):
            first = next(iter(groups.values()))[0]["reports"][f"{evaluated}_similarity"]
            languages = list(first[direction])
            lines += [f"### Per language, {'TR (image -> text)' if direction == 'tr' else 'IR (text -> image)'}, "
                      f"{'trained' if evaluated == 'test' else 'unseen'} languages, similarity: R@1 / R@5 / R@10", "",
                      "| model | " + " | ".join(languages) + " |", "|---|" + "---:|" * len(languages)]
            for group, results in groups.items():
                cells = []
                for language in languages:
                    values = [[r["reports"][f"{evaluated}_similarity"][direction][language][f"r{k}"] for r in results]
                              for k in (1, 5, 10)]
                    cells.append(" / ".join(f"{np.mean(v):.1f}" for v in values))
                lines.append(f"| {group} | " + " | ".join(cells) + " |")
            lines.append("")
    return lines


def cost_lines(groups: dict[str, list[dict]]) -> list[str]:
    """Mean training and evaluation wall time per group, and the last logged losses (mean over seeds)."""
    lines = ["### Wall times (mean over seeds; runs resumed or trained by an earlier job are left out of train s) "
             "and the last logged losses (each of its own objective)", "",
             "| model | train s | eval s | last contrastive / ITM / MLM loss |", "|---|---:|---:|---|"]
    for group, results in groups.items():
        train_s = [r["train_s"] for r in results if "train_s" in r and not r.get("resumed")]
        losses = [r.get("final_losses", {}) for r in results]
        parts = [[loss[key] for loss in losses if key in loss] for key in ("loss_contrastive", "loss_itm", "loss_mlm")]
        lines.append(f"| {group} | {f'{np.mean(train_s):.0f}' if train_s else '-'} | "
                     f"{np.mean([r['eval_s'] for r in results]):.0f} | "
                     + " / ".join(f"{np.mean(values):.3f}" if values else "-" for values in parts) + " |")
    return lines + [""]


def plot(groups: dict[str, list[dict]], path: Path) -> None:
    """Bars: test mean recall (trained, unseen) and MRV (TR, IR, trained) per model, mean ± std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(groups)
    panels = (("mean recall (higher is better)", (("test", "mean_recall", "trained 10"),
                                                  ("unseen", "mean_recall", "unseen 5"))),
              ("MRV, trained languages (lower is better)", (("test", "mrv_tr", "TR"), ("test", "mrv_ir", "IR"))))
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for axis, (title, series) in zip(axes, panels, strict=True):
        width = 0.8 / len(series)
        for number, (evaluated, figure_name, label) in enumerate(series):
            values = [seed_figures(groups[g], f"{evaluated}_similarity", figure_name) for g in names]
            positions = np.arange(len(names)) + (number - (len(series) - 1) / 2) * width
            axis.bar(positions, [np.mean(v) for v in values], width,
                     yerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for v in values], capsize=3, label=label)
        axis.set_xticks(np.arange(len(names)), names, rotation=25, ha="right")
        axis.set_title(title)
        axis.legend()
    figure.suptitle("Loss styles on cldr-emoji test (similarity ranking), mean ± std over seeds")
    figure.tight_layout()
    atomic_write(path, lambda target: figure.savefig(target, dpi=110, format="png"))
    plt.close(figure)


def study_settings(groups: dict[str, list[dict]], output: Path) -> dict[str, list]:
    """The settings the finished models ran with, read from their files: ``{"max_steps", "k_test", "threads",
    "batch", "languages"}``, each a sorted list of the distinct values (steps, images per step and the number
    of training languages from each trained model's training_run.json)."""
    steps, k_test, threads, batch, languages = set(), set(), set(), set(), set()
    for results in groups.values():
        for result in results:
            k_test.add(result["reports"]["test_replace"]["k_test"])
            threads.add(result["threads"])
            record = output / "runs" / result["name"] / "train" / "model" / "training_run.json"
            if record.is_file():
                run = json.loads(record.read_text(encoding="utf-8"))
                steps.add(run["settings"]["training"]["max_steps"])
                batch.add(run["settings"]["training"]["per_device_train_batch_size"])
                languages.add(len(run["languages"]))
    return {"max_steps": sorted(steps), "k_test": sorted(k_test), "threads": sorted(threads), "batch": sorted(batch),
            "languages": sorted(languages)}


def check_one_budget(models: list[Model], args: argparse.Namespace) -> None:
    """Refuse to add models to a study folder whose finished models ran with other steps or k_test."""
    settings = study_settings(collect(models, Path(args.output)), Path(args.output))
    for name, value in (("max_steps", args.max_steps), ("k_test", args.k_test)):
        if settings[name] and settings[name] != [value]:
            raise SystemExit(f"{args.output} holds models of --{name.replace('_', '-')} {settings[name][0]}, not "
                             f"{value}: rerun with that value, or choose another --output for another budget")


def report(models: list[Model], args: argparse.Namespace) -> str:
    """The study's Markdown report from the finished models' results (also written to the output folder)."""
    from bench_common import describe_machine

    output = Path(args.output)
    groups = collect(models, output)
    if not groups:
        raise SystemExit(f"no finished model under {output / 'runs'}: run the study first")
    settings = study_settings(groups, output)
    if len(settings["max_steps"]) > 1 or len(settings["k_test"]) > 1:
        raise SystemExit(f"{output} mixes budgets (steps {settings['max_steps']}, k_test {settings['k_test']}): "
                         "report each budget from its own --output")
    steps = settings["max_steps"][0] if settings["max_steps"] else args.max_steps
    k_test = settings["k_test"][0]
    seeds = sorted({r["seed"] for results in groups.values() for r in results if r["seed"] is not None})
    left_out = sorted({emoji for results in groups.values() for r in results for emoji in r.get("left_out", [])})
    num_images = sorted({r["reports"]["test_similarity"]["num_images"] for results in groups.values() for r in results})
    lines = [describe_machine(), "",
             f"command: python scripts/study_loss_styles.py --output {args.output} --seeds {' '.join(map(str, seeds))} "
             f"--max-steps {steps} --k-test {k_test}"
             + ("" if set(args.groups) == set(study_groups()) else " --groups " + shlex.join(args.groups)),
             f"budget per trained model: {steps} steps x {'/'.join(map(str, settings['batch']))} images x "
             f"{'/'.join(map(str, settings['languages']))} captions; seeds {seeds}; re-ranking: top {k_test}; "
             f"{'/'.join(map(str, settings['threads']))} torch thread(s) per model",
             f"test images: {'/'.join(map(str, num_images))}"
             + (f" (left out, no CLDR name in an unseen language: {', '.join(left_out)})" if left_out else ""), ""]
    lines += summary_tables(groups) + difference_table(groups) + per_language_tables(groups) + cost_lines(groups)
    text = "\n".join(lines)
    atomic_write(output / "loss_styles.md", lambda target: target.write_text(text + "\n", encoding="utf-8"))
    atomic_write(output / "loss_styles.json", lambda target: target.write_text(json.dumps(groups, indent=2),
                                                                               encoding="utf-8"))
    plot(groups, output / "loss_styles.png")
    return text


def main() -> None:
    tune_allocator()  # before the first large allocation (modeling_ccr.allocator says why)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="runs/loss-styles", help="study folder (finished models are reused)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-steps", type=int, default=100,
                        help="training steps of every trained model (100: the 16 models take about 50 minutes on 2 "
                             "CPU cores, 2 jobs)")
    parser.add_argument("--k-test", type=int, default=16, help="candidates re-ranked per query")
    parser.add_argument("--jobs", type=int, default=2, help="models trained at once (the cores are shared out)")
    parser.add_argument("--groups", nargs="+", choices=list(study_groups()), default=list(study_groups()),
                        metavar="NAME", help="models to run and report (default: all): " + ", ".join(study_groups()))
    parser.add_argument("--report-only", action="store_true", help="only print the report of the finished models")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # one model, in a subprocess of the study
    args = parser.parse_args()
    models = [model for model in study_models(args.seeds) if model.group in args.groups]
    if args.run:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
        run_one(next(m for m in models if m.name == args.run), args)
        return
    if not args.report_only:
        check_one_budget(models, args)
        run_all(models, args)
    print(report(models, args))


if __name__ == "__main__":
    main()
