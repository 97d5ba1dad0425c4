"""``ccr build-default``: the embedded default CCR model (:mod:`modeling_ccr.default_model`) written to a folder."""

from __future__ import annotations

import argparse

from .cli import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, help="folder to write the model and processor to")
    parser.add_argument("--projection-dim", type=positive_int, default=256,
                        help="size of the retrieval space (default 256)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the model files of an existing CCR model folder (its other files are kept)")


def run(args: argparse.Namespace) -> int:
    from ..default_model import build_default_model  # here: `ccr build-default --help` stays light

    model, _ = build_default_model(args.output, projection_dim=args.projection_dim, overwrite=args.overwrite)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"saved the default CCR model ({n_params / 1e6:.1f} M parameters) to {args.output}")
    return 0
