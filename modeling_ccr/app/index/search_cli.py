"""``ccr search INDEX QUERY [QUERY ...] [--lang xx] [--k 10] [--rerank N] [--json]``: text -> image search of a
gallery index; the model loads once for all the queries.

The model is the one the index was built with (its folder is recorded in the index); a model whose files
changed since is refused, since its embeddings would not match the index.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..cli import model_folder

RESULT_KEYS = ("id", "path", "score", "similarity", "reranked", "caption")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("index", metavar="INDEX", help="a gallery index folder (ccr index)")
    parser.add_argument("query", nargs="+", help="one or more queries, in any language (the model loads once for all)")
    parser.add_argument("--lang", default=None,
                        help="language of the captions printed beside the results (default: the first the gallery has)")
    parser.add_argument("--k", type=int, default=10, help="results to print (default 10)")
    parser.add_argument("--rerank", type=int, default=None, metavar="N",
                        help="re-score the top N with the fusion encoder, 0 for similarity only (default: the "
                        "re-ranking saved in the model's config by ccr main-job, else 0)")
    parser.add_argument("--model", default=None, type=model_folder,
                        help="the model folder (default: the one that built the index)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per query: {\"query\", \"results\": [{\"rank\", \"id\", \"path\", "
                        "\"score\", \"similarity\", \"reranked\", \"caption\"}]}")


def run(args: argparse.Namespace) -> int:
    from .gallery import GalleryIndex
    from .session import (
        check_counts,
        check_language,
        check_query,
        open_index,
        text_to_image_rows,
        untrained_warning,
    )

    try:
        # what was typed is checked before the model loads
        queries = [check_query(query) for query in args.query]
        gallery = GalleryIndex(args.index)
        if args.lang and not gallery.languages:
            raise ValueError(f"--lang picks the captions printed beside the results, but {args.index} holds no "
                             "captions (an index of an image folder): leave --lang out")
        check_language(args.lang, gallery)
        check_counts(args.k, 0 if args.rerank is None else args.rerank)
        index, model, processor = open_index(args.index, args.model)
        warning = untrained_warning(model, args.model or index.manifest["model_dir"])
        if warning:
            print(f"ccr search: warning: {warning}", file=sys.stderr)
        answers = [(query, text_to_image_rows(query, index, model, processor, language=args.lang, k=args.k,
                                              rerank=args.rerank)) for query in queries]
    except (ValueError, OSError) as error:
        print(f"ccr search: error: {error}", file=sys.stderr)
        return 2
    for query, rows in answers:
        if args.json:
            results = [{"rank": rank, **{key: row[key] for key in RESULT_KEYS}}
                       for rank, row in enumerate(rows, start=1)]
            print(json.dumps({"query": query, "results": results}, ensure_ascii=False))
            continue
        if len(answers) > 1:
            print(f"query: {query}")
        for rank, row in enumerate(rows, start=1):
            caption = f"  {row['caption']}" if row["caption"] else ""
            print(f"{rank:>3}  {row['score']:+.4f}  {row['id']}  {row['path']}{caption}")
    return 0
