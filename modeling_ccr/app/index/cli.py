"""``ccr index MODEL_DIR IMAGES --output INDEX``: embed an image folder or a benchmark split into a gallery index.

IMAGES is a folder of image files (searched recursively), indexed without captions, or a folder of images
with captions (metadata.jsonl / metadata.csv), a benchmark name or a parquet folder, indexed with its
captions (``--split``: default the folder's only split, else test; ``--languages``: default all).
Rerunning the same command resumes an interrupted build, does nothing when the
index is current and rebuilds it when the model's files or the images changed, or ``--keep-image-tokens``
(each image's tokens stored for re-ranking) was added or left out. Under ``torchrun`` or
``accelerate launch`` the images are split among the processes. A second run on the same ``--output`` is
refused while this one runs; an unwritable ``--output`` is reported before the model loads.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext

from ...constants import ON_MISSING_CHOICES
from ..cli import model_folder, positive_int
from .constants import DEFAULT_CHUNK_IMAGES, INDEX_TYPES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR", type=model_folder, help="a saved CCR model folder")
    parser.add_argument("images", metavar="IMAGES",
                        help="a folder of images (with a metadata.jsonl for captions), "
                        "or a benchmark name / parquet folder")
    parser.add_argument("--output", required=True, help="the index folder to write")
    parser.add_argument("--index-type", choices=INDEX_TYPES, default="flat",
                        help="flat: exact inner product (default); ivf or hnsw: approximate, for large galleries")
    parser.add_argument("--nlist", type=positive_int, default=None, help="IVF clusters (default about sqrt(images))")
    parser.add_argument("--split", default=None,
                        help="split of a benchmark or captioned folder (default: the folder's only split, else test)")
    parser.add_argument("--languages", default=None,
                        type=lambda text: [c.strip() for c in text.split(",") if c.strip()],
                        help="caption languages of a benchmark or captioned folder, comma-separated (default: all)")
    parser.add_argument("--data-dir", default=None, help="local copy of a published benchmark")
    parser.add_argument("--image-dir", action="append", default=None, help="benchmark image folder (repeatable)")
    parser.add_argument("--on-missing", choices=ON_MISSING_CHOICES, default="error",
                        help="an image that is missing or does not decode (or a caption missing in a chosen "
                        "language): stop with an error (default), or drop it and index the rest, listing and "
                        "counting what was left out")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="images per encoding step")
    parser.add_argument("--chunk-images", type=positive_int, default=DEFAULT_CHUNK_IMAGES,
                        help=f"images per resumable chunk (default {DEFAULT_CHUNK_IMAGES})")
    parser.add_argument("--keep-image-tokens", action="store_true",
                        help="also store each image's tokens (the fusion encoder's input) in float16 beside the "
                        "index, so that re-ranking (ccr search --rerank, the demo) reads them instead of decoding "
                        "and encoding the images again: P x Cv x 2 bytes per image, 128 kB for the default model "
                        "(50 x 1280 tokens; 38 MB for 300 images). "
                        "Rerunning without it rebuilds the index without them")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an index of another model or folder (its other files are kept)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda:LOCAL_RANK or cpu)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from transformers import AutoModel, AutoProcessor

    from ...evaluation.distributed import setup_distributed
    from ...output_lock import output_lock
    from .gallery import build_index, discard_interrupted_work, indexed_count, output_state
    from .session import untrained_warning
    from .sources import skipped_summary, source_from_argument

    context = setup_distributed(args.device)
    try:
        with output_lock(args.output) if context.is_main else nullcontext():  # before any model loads
            source = source_from_argument(args.images, split=args.split, languages=args.languages,
                                          data_dir=args.data_dir, image_dir=args.image_dir,
                                          on_missing=args.on_missing)
            state = output_state(args.output, args.model_dir, source, args.index_type, args.nlist, args.overwrite,
                                 args.keep_image_tokens)
            if state == "current":
                if context.is_main:
                    discard_interrupted_work(args.output)
                    print(f"index {args.output} is up to date: {indexed_count(args.output)} images ({args.index_type})")
                return 0
            source = source.without_unreadable(args.on_missing)  # before the model loads
            if source.num_skipped and context.is_main:
                print(f"ccr index: warning: {skipped_summary(source)}", file=sys.stderr)
            model = AutoModel.from_pretrained(args.model_dir).to(context.device).eval()
            processor = AutoProcessor.from_pretrained(args.model_dir)
            warning = untrained_warning(model, args.model_dir)
            if warning and context.is_main:
                print(f"ccr index: warning: {warning}", file=sys.stderr)
            result = build_index(model, processor, source, args.output, model_dir=args.model_dir,
                                 index_type=args.index_type, nlist=args.nlist, batch_size=args.batch_size,
                                 chunk_images=args.chunk_images, overwrite=args.overwrite,
                                 keep_image_tokens=args.keep_image_tokens, context=context,
                                 progress=context.is_main and not args.no_progress)
    except (ValueError, OSError) as error:
        print(f"ccr index: error: {error}", file=sys.stderr)
        return 2
    finally:
        context.close()
    if context.is_main:
        words = {"current": "is up to date", "built": "built", "rebuilt": "rebuilt"}[result.status]
        resumed = f", {result.resumed} resumed from an interrupted build" if result.resumed else ""
        tokens = ", image tokens kept" if args.keep_image_tokens else ""
        print(f"index {result.folder} {words}: {result.count} images ({args.index_type}){tokens}{resumed}")
    return 0
