"""The default training recipe against the linear probe, same seed and data, in one run.

    python scripts/quality_vs_probe.py [--output runs/quality] [--seed 0] [--k-test 16] [--skip-probe]
                                       [-- CCR_TRAIN_OPTIONS...]

Trains, from the embedded default model,
- the linear probe: frozen towers, only the projections and the temperature (1-to-K loss, 64 images x 600
  steps; ``ccr train --train-text-layers 0 --train-vision-layers 0 --itm-weight 0 --mlm-weight 0``), and
- the default recipe: ``ccr train`` with no options,
then evaluates both on the embedded benchmark's validation and test splits by similarity, with the
paper's ITM re-ranking ("replace") and with "combine" re-ranking (ITM weight chosen on validation), and
prints one Markdown table: mean recall, R@1, MRV (TR / IR), mean rank and wall times, then each model's ITM
AUCs on the validation split (``modeling_ccr.evaluation.itm_diagnostics``: its own caption against random
captions, the hard negatives training draws and the dual encoder's top 16). The table and a JSON file of every
figure are written to the output folder.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from transformers import AutoProcessor

from modeling_ccr.allocator import tune_allocator
from modeling_ccr.app.main_job import RANKINGS, evaluate_on_benchmark
from modeling_ccr.app.train import parse_arguments
from modeling_ccr.data import load_benchmark
from modeling_ccr.default_model import ensure_default_model
from modeling_ccr.evaluation.itm_diagnostics import diagnose_itm
from modeling_ccr.modeling_ccr import CCRModel
from modeling_ccr.training import train

PROBE = dict(train_text_layers=0, train_vision_layers=0, itm_weight=0.0, mlm_weight=0.0,
             per_device_train_batch_size=64, max_steps=600)
ITM_LANGUAGES = ["en", "de", "ja", "ru"]  # those of scripts/itm_diagnostics.py


def headline(report: dict) -> dict:
    """Mean recall, mean R@1 and mean rank over both directions and all languages, and MRV."""
    per_language = [values for direction in ("tr", "ir") for values in report[direction].values()]
    return {
        "mean_recall": report["mean_recall"],
        "r1": float(np.mean([values["r1"] for values in per_language])),
        "mean_rank": float(np.mean([values["mean_rank"] for values in per_language])),
        "mrv_tr": report["mrv"]["tr"],
        "mrv_ir": report["mrv"]["ir"],
    }


def main() -> None:
    tune_allocator()  # before the first large allocation (modeling_ccr.allocator says why)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="runs/quality", help="folder for both runs (must not hold them yet)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k-test", type=int, default=16, help="candidates re-ranked per query")
    parser.add_argument("--skip-probe", action="store_true", help="train and evaluate the default recipe only")
    parser.add_argument("recipe", nargs="*", metavar="-- CCR_TRAIN_OPTIONS",
                        help="ccr train options for the default recipe, after --")
    args = parser.parse_args()
    output = Path(args.output)
    base = str(ensure_default_model())
    runs = {"linear probe": PROBE, "default": {}}
    if args.skip_probe:
        del runs["linear probe"]
    results = {}
    for name, options in runs.items():
        folder = output / name.replace(" ", "-")
        start = time.perf_counter()
        extra = args.recipe if name == "default" else []
        model_args, data_args, training_args = parse_arguments(
            ["--model", base, "--output_dir", str(folder), "--seed", str(args.seed), "--disable_tqdm", "true",
             *(f"--{key}={value}" for key, value in options.items()), *extra])
        trained = train(training_args, model_args, data_args)
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        evaluation = evaluate_on_benchmark(trained["model_dir"], args.k_test, folder / "eval", progress=False)
        eval_s = time.perf_counter() - start
        results[name] = {
            "train_s": round(train_s, 1),
            "eval_s": round(eval_s, 1),
            "itm_auc": itm_aucs(trained["model_dir"], args.seed),
            "rerank_weight": evaluation["rerank_weight"],
            "final_itm_loss": _last(trained["log_history"], "loss_itm"),
            **{f"{split}_{ranking}": headline(evaluation[split][ranking])
               for split in ("validation", "test") for ranking in RANKINGS},
        }
    table = markdown(results, args.k_test)
    print(table)
    (output / "quality_vs_probe.md").write_text(table + "\n", encoding="utf-8")
    (output / "quality_vs_probe.json").write_text(json.dumps(results, indent=2), encoding="utf-8")


def itm_aucs(model_dir: str, seed: int) -> dict[str, float]:
    """The ITM head's validation AUCs of a model folder: ``{"random" | "training" | "re-ranking": AUC}``."""
    model = CCRModel.from_pretrained(model_dir).eval()
    dataset = load_benchmark("cldr-emoji", split="validation", languages=ITM_LANGUAGES)
    return diagnose_itm(model, AutoProcessor.from_pretrained(model_dir), dataset, ITM_LANGUAGES, seed=seed).aucs()


def markdown(results: dict, k_test: int) -> str:
    lines = [f"| model | split | ranking (top {k_test}) | mean recall | R@1 | MRV TR / IR | mean rank |",
             "|---|---|---|---|---|---|---|"]
    for name, result in results.items():
        for split in ("validation", "test"):
            for ranking in RANKINGS:
                row = result[f"{split}_{ranking}"]
                label = f"combine (weight {result['rerank_weight']})" if ranking == "combine" else ranking
                lines.append(f"| {name} | {split} | {label} | {row['mean_recall']:.2f} | {row['r1']:.2f} | "
                             f"{row['mrv_tr']:.2f} / {row['mrv_ir']:.2f} | {row['mean_rank']:.2f} |")
    lines.append("")
    for name, result in results.items():
        itm = result["final_itm_loss"]
        aucs = " / ".join(f"{auc:.3f}" for auc in result["itm_auc"].values())
        lines.append(f"- {name}: training {result['train_s']} s, evaluation {result['eval_s']} s"
                     + (f", last logged ITM loss {itm:.3f} (prior 0.637)" if itm is not None else "")
                     + f"; validation ITM AUC random / training / re-ranking {aucs}")
    if "linear probe" not in results:
        return "\n".join(lines)
    probe, default = results["linear probe"], results["default"]
    margin = default["test_similarity"]["mean_recall"] - probe["test_similarity"]["mean_recall"]
    lines.append(f"- test mean recall, default minus probe (similarity ranking): {margin:+.2f}")
    return "\n".join(lines)


def _last(log_history: list[dict], key: str) -> float | None:
    values = [entry[key] for entry in log_history if key in entry]
    return float(values[-1]) if values else None


if __name__ == "__main__":
    main()
