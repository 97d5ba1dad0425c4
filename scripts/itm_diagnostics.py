"""Can the fusion encoder's ITM head tell an image's own caption from the others? Measured on a model folder.

    python scripts/itm_diagnostics.py MODEL_DIR [--dataset cldr-emoji] [--split validation]
        [--languages en,de,ja,ru] [--plot itm_logits.png]

For every image and language, its own caption against three sets of non-matching pairs (random captions, the
hard negatives training draws, the dual encoder's top 16: ``modeling_ccr.evaluation.itm_diagnostics``). Per set
it prints the ROC AUC of the ITM margin (the "match" minus the "no match" logit) and the pair counts, and for
the training set the ITM loss against its prior (a constant answer for 1 positive in 3: 0.637); the plot shows
the margins of matching and non-matching pairs per set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from modeling_ccr.allocator import tune_allocator
from modeling_ccr.app.cli import model_folder
from modeling_ccr.data import load_benchmark
from modeling_ccr.evaluation.itm_diagnostics import PRIOR_LOSS, diagnose_itm, roc_auc


def plot(sets: dict[str, tuple[torch.Tensor, torch.Tensor]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 3.6), sharey=False)
    for axis, (name, (positive, negative)) in zip(axes, sets.items(), strict=True):
        low = float(min(positive.min(), negative.min()))
        high = float(max(positive.max(), negative.max()))
        bins = torch.linspace(low, high + 1e-6, 41).tolist()
        axis.hist(negative.tolist(), bins=bins, alpha=0.6, density=True, label=f"non-matching ({len(negative)})")
        axis.hist(positive.tolist(), bins=bins, alpha=0.6, density=True, label=f"matching ({len(positive)})")
        axis.set_title(f"{name}: AUC {roc_auc(positive, negative):.3f}")
        axis.set_xlabel("ITM margin (match - no match logit)")
        axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    tune_allocator()  # before the first large allocation (modeling_ccr.allocator says why)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=model_folder, help="a saved CCR model folder")
    parser.add_argument("--dataset", default="cldr-emoji", help="benchmark name or folder (common schema)")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--languages", default="en,de,ja,ru", help="comma-separated language codes")
    parser.add_argument("--plot", default="itm_logits.png", help="where the histogram plot goes (PNG; a new file)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from transformers import AutoModel, AutoProcessor

    if Path(args.plot).exists():
        parser.error(f"{args.plot} exists: give --plot a new file name (nothing is replaced)")
    languages = [code.strip() for code in args.languages.split(",") if code.strip()]
    model = AutoModel.from_pretrained(args.model_dir).eval()
    processor = AutoProcessor.from_pretrained(args.model_dir)
    try:
        dataset = load_benchmark(args.dataset, split=args.split, languages=languages)
    except ValueError as error:  # a benchmark the loaders refuse: one line, not a traceback
        parser.error(" ".join(str(error).split()))
    diagnostics = diagnose_itm(model, processor, dataset, languages, seed=args.seed)
    sets, loss = diagnostics.sets, diagnostics.training_loss
    print(f"ITM diagnostics: {args.model_dir}, {args.dataset} {args.split} ({len(dataset)} images), "
          f"languages {', '.join(languages)}, seed {args.seed}")
    print("| pairs | matching | non-matching | ROC AUC of the ITM margin |")
    print("|---|---:|---:|---:|")
    for (name, (positive, negative)), auc in zip(sets.items(), diagnostics.aucs().values(), strict=True):
        print(f"| {name} | {len(positive)} | {len(negative)} | {auc:.3f} |")
    print(f"ITM loss on the training pairs: {loss:.4f} (prior of a constant answer for 1 in 3: {PRIOR_LOSS:.4f})")
    plot(sets, Path(args.plot), f"{args.model_dir} ({args.split})")
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
