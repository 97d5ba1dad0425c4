"""``ccr demo [MODEL_DIR] [--gallery DIR]``: serve the Gradio demo on 127.0.0.1.

With no MODEL_DIR the trained default model is used, trained first (``ccr train`` defaults, with a
progress bar) into the cache when the cache has none. The gallery is an index folder (``ccr index``), a
folder of images or, by default, the embedded benchmark's test split; the last two are indexed into the
cache on first use (``<cache>/demo-galleries/<model folder + source>``) with each image's tokens, so that
re-ranking reads them instead of encoding the images again, and that index is reused at every later start,
rebuilt only when the model's files or the images changed (or it lacks the tokens: built by an older version).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

from ...cache import cache_root
from ..cli import model_folder, port_number

TRAINED_DEFAULT_NAME = "trained-default-v2"  # v2: the ITM recipe that learns (ccr train defaults)
GALLERY_CACHE_NAME = "demo-galleries"
DEFAULT_GALLERY = "cldr-emoji"


def ensure_trained_default(cache_dir: str | os.PathLike | None = None, model_args=None, data_args=None,
                           **training_overrides) -> Path:
    """The trained default model folder ``<cache>/trained-default-v2/model``, trained on first use.

    Training is ``modeling_ccr.training.run.train`` with the default arguments (``model_args`` /
    ``data_args`` and ``training_overrides``, fields of ``CCRTrainingArguments``, replace some, e.g. in
    tests); an interrupted first training resumes from its last checkpoint.
    """
    from ...training.run import (
        CCRTrainingArguments,
        find_resume_checkpoint,
        set_aside_incomplete_checkpoints,
        train,
    )

    run_dir = cache_root(cache_dir) / TRAINED_DEFAULT_NAME
    if (run_dir / "model" / "config.json").is_file():
        return run_dir / "model"
    set_aside_incomplete_checkpoints(run_dir / "checkpoints")
    resume = find_resume_checkpoint(run_dir / "checkpoints") is not None
    args = CCRTrainingArguments(output_dir=str(run_dir), resume=resume, **training_overrides)
    return Path(train(args, model_args, data_args)["model_dir"])


def ensure_gallery(model, processor, model_dir: str | os.PathLike, gallery: str | None,
                   cache_dir: str | os.PathLike | None = None, progress: bool = True):
    """The :class:`GalleryIndex` to serve: ``gallery`` itself when it is an index folder, else an index of
    that image folder (or of the embedded benchmark's test split) in the cache, built on first use with the
    images' tokens (``keep_image_tokens``: re-ranking reads them) and reused while current (keyed by the model
    folder and the source; rebuilt when either's files change, or when a cached index lacks the tokens).
    With ``progress``, says on stderr which index it serves and whether it was built or reused, and notes
    that an index folder given without image tokens re-ranks by encoding the images again (it is the user's:
    it is served as it is, not rebuilt)."""
    from ..index.gallery import MANIFEST, GalleryIndex, build_index, model_fingerprint
    from ..index.sources import benchmark_source, folder_source

    if gallery is not None and (Path(gallery) / MANIFEST).is_file():
        index = GalleryIndex(gallery)
        if index.model_fingerprint != model_fingerprint(model_dir):
            raise ValueError(f"the gallery index {gallery} was built with another model: rebuild it with "
                             f"'ccr index {model_dir} IMAGES --output {gallery}' or pass its model")
        if progress and index.image_tokens is None:
            print(f"ccr demo: note: the gallery index {gallery} keeps no image tokens, so re-ranking reads and "
                  f"encodes its top images again at every query; 'ccr index {model_dir} IMAGES --output {gallery} "
                  "--keep-image-tokens' makes it faster", file=sys.stderr)
        return index
    source = benchmark_source(DEFAULT_GALLERY, split="test") if gallery is None else folder_source(gallery)
    key = hashlib.sha256(f"{Path(model_dir).resolve()}\0{source.description}".encode()).hexdigest()[:16]
    output = cache_root(cache_dir) / GALLERY_CACHE_NAME / key
    result = build_index(model, processor, source, output, model_dir=model_dir, keep_image_tokens=True,
                         progress=progress)
    if progress:
        done = "reused" if result.status == "current" else f"{result.status} ({result.count} images), reused next time"
        print(f"ccr demo: gallery index {output}: {done}", file=sys.stderr)
    return GalleryIndex(output)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR", nargs="?", default=None, type=model_folder,
                        help="a saved CCR model folder (default: the trained default, trained on first use)")
    parser.add_argument("--gallery", default=None,
                        help="an index folder (ccr index) or a folder of images "
                             "(default: the embedded benchmark's test split)")
    parser.add_argument("--port", type=port_number, default=None,
                        help="port on 127.0.0.1 (default: 7860 or the next free one)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cpu)")


def run(args: argparse.Namespace) -> int:
    from ..index.session import load_model, untrained_warning
    from .app import build_demo, launch_demo

    try:
        model_dir = args.model_dir or ensure_trained_default()
        model, processor = load_model(model_dir, args.device)
        warning = untrained_warning(model, model_dir)
        if warning:
            print(f"ccr demo: warning: {warning}", file=sys.stderr)
        index = ensure_gallery(model, processor, model_dir, args.gallery)
    except (ValueError, OSError) as error:
        print(f"ccr demo: error: {error}", file=sys.stderr)
        return 2
    launch_demo(build_demo(index, model, processor), port=args.port)
    return 0
