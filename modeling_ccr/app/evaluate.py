"""``ccr evaluate MODEL_DIR``: cross-lingual cross-modal retrieval evaluation.

Encodes the benchmark, ranks the gold item of every query in both directions and every language (TR:
image -> text, IR: text -> image), with the two-stage ITM re-ranking of the top ``k_test`` unless
``--no-rerank``, and writes Recall@1/5/10, mean / median rank and MRV as JSON, Markdown and PNG plots.

Several processes (``torchrun --nproc-per-node N -m modeling_ccr.app.cli evaluate ...`` or
``accelerate launch -m modeling_ccr.app.cli evaluate ...``) split the encoding and the ranking by image and
gather the results; process 0 writes the report.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from contextlib import nullcontext
from typing import TYPE_CHECKING

from ..constants import RERANKING_MODES
from ..output_lock import output_lock
from .cli import finite_float, model_folder, positive_int
from .dataset_options import add_dataset_arguments

if TYPE_CHECKING:
    from ..evaluation.distributed import DistributedContext

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR", type=model_folder,
                        help="a saved CCR model folder (save_pretrained)")
    add_dataset_arguments(parser)
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--k-test", type=positive_int, default=None,
                        help="candidates re-ranked by ITM per query (default: the model's saved choice, else 128)")
    parser.add_argument("--no-rerank", action="store_true",
                        help="rank by embedding similarity only (--rerank-mode similarity)")
    parser.add_argument("--rerank-mode", choices=RERANKING_MODES, default=None,
                        help="replace: the ITM logit replaces the similarity (the paper); combine: similarity + "
                        "--rerank-weight * logit (choose the weight on a validation split); similarity: no "
                        "re-ranking (default: the mode saved in the model's config by ccr main-job, else "
                        "replace)")
    parser.add_argument("--rerank-weight", type=finite_float, default=None,
                        help="the ITM logit's weight with --rerank-mode combine "
                        "(default: the model's saved choice, else 1)")
    parser.add_argument("--itm-weight", dest="rerank_weight", type=finite_float, action=DeprecatedItmWeight,
                        help=argparse.SUPPRESS)
    parser.add_argument("--output", default="report.json", help="JSON report (.md, .png files beside it)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier report at --output")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="images per encoding step")
    parser.add_argument("--itm-batch-size", type=positive_int, default=256, help="pairs per ITM forward pass")
    parser.add_argument("--chunk-size", type=positive_int, default=None,
                        help="images per scoring block, each against every language (default: auto)")
    parser.add_argument(
        "--mrv-kind", choices=("std", "variance"), default="std",
        help="per-instance spread averaged by MRV: std (the paper's scale, default) or variance",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda:LOCAL_RANK or cpu)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


class DeprecatedItmWeight(argparse.Action):
    """``--itm-weight``, the old name of ``--rerank-weight`` (``ccr train --itm_weight`` is a loss weight):
    stores the value as ``--rerank-weight`` does, with a FutureWarning naming the new flag."""

    def __call__(self, parser, namespace, values, option_string=None):
        warnings.warn("ccr evaluate --itm-weight is deprecated: use --rerank-weight (the same re-ranking "
                      "weight)", FutureWarning, stacklevel=2)
        setattr(namespace, self.dest, values)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.distributed import setup_distributed  # here: `ccr evaluate --help` stays light

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    context = setup_distributed(args.device)
    try:
        with output_lock(args.output) if context.is_main else nullcontext():  # before any work
            return _evaluate(args, context)
    finally:
        context.close()


def _evaluate(args: argparse.Namespace, context: DistributedContext) -> int:
    """The evaluation of :func:`run` in ``context`` (process 0 holds the lock of ``--output``)."""
    from transformers import AutoModel, AutoProcessor

    from ..data.arguments import load_dataset_from_args
    from ..evaluation.pipeline import evaluate_retrieval
    from ..evaluation.report import build_report, check_report_output, write_report
    from ..evaluation.rerank import resolve_reranking

    check_report_output(args.output, args.overwrite)  # a bad or taken --output fails before any work
    dataset = load_dataset_from_args(args, args.split)
    model = AutoModel.from_pretrained(args.model_dir).to(context.device).eval()
    processor = AutoProcessor.from_pretrained(args.model_dir)
    ranking = resolve_reranking(model.config, "similarity" if args.no_rerank else args.rerank_mode, args.k_test,
                                args.rerank_weight)
    if context.is_main:
        logger.info("ranking: %s", ranking.describe())
    result = evaluate_retrieval(
        model,
        processor,
        dataset,
        k_test=ranking.k_test,
        rerank_mode=ranking.mode or "replace",
        rerank_weight=ranking.rerank_weight if ranking.rerank_weight is not None else 1.0,
        batch_size=args.batch_size,
        itm_batch_size=args.itm_batch_size,
        chunk_size=args.chunk_size,
        mrv_kind=args.mrv_kind,
        context=context,
        progress=context.is_main and not args.no_progress,
    )
    if context.is_main:
        report = build_report(
            result.metrics,
            model_dir=args.model_dir,
            dataset=str(args.dataset),
            split=args.split,
            languages=result.languages,
            num_images=len(dataset),
            k_test=result.k_test,
            mrv_kind=args.mrv_kind,
            rerank_mode=ranking.mode,
            rerank_weight=ranking.rerank_weight,
            reranking_source=ranking.source,
        )
        ranks = {"tr": result.ranks.tr.numpy(), "ir": result.ranks.ir.numpy()}
        paths = write_report(report, ranks, args.output, overwrite=args.overwrite)
        sys.stdout.write(paths["markdown"].read_text(encoding="utf-8"))
        logger.info("wrote %s", ", ".join(str(path) for path in paths.values()))
    context.barrier()
    return 0
