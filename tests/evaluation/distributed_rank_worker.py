"""Run by test_eval_distributed.py under torchrun: sharded, gathered ranks on seeded data (gloo).

Argument: the JSON file process 0 writes ({"world_size", "tr", "ir", "gathered_embeddings_equal",
"small_gathers_equal", "shards_match_accelerate"}).
"""

from __future__ import annotations

import json
import sys

import torch
from accelerate import PartialState
from accelerate.utils import gather_object

from modeling_ccr.evaluation.distributed import setup_distributed
from modeling_ccr.evaluation.ranks import retrieval_ranks
from modeling_ccr.evaluation.rerank import TwoStageReranker

N_IMAGES, N_LANGUAGES, K_TEST = 13, 3, 4


def seeded_problem() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integer embeddings (ties) and an image x text table of stand-in ITM logits."""
    generator = torch.Generator().manual_seed(21)
    image_embeds = torch.randint(-2, 3, (N_IMAGES, 4), generator=generator).float()
    text_embeds = torch.randint(-2, 3, (N_IMAGES * N_LANGUAGES, 4), generator=generator).float()
    itm_table = torch.randint(-3, 4, (N_IMAGES, N_IMAGES * N_LANGUAGES), generator=generator).float()
    return image_embeds, text_embeds, itm_table


def shards_match_accelerate(context, sizes=(0, 1, 2, 7, 13)) -> bool:
    """Whether this process's :meth:`shard` is the block accelerate's ``split_between_processes`` gives it."""
    blocks = []
    for size in sizes:
        with PartialState().split_between_processes(list(range(size))) as block:
            blocks.append(block == list(context.shard(size)))
    return all(blocks)


def main(output: str) -> None:
    context = setup_distributed()
    image_embeds, text_embeds, itm_table = seeded_problem()
    rows = context.shard(N_IMAGES)
    # Uneven shards (13 images over 2 processes): gathering the local blocks must rebuild the full tensors.
    gathered = context.gather_rows(text_embeds.view(N_IMAGES, N_LANGUAGES, -1)[rows.start : rows.stop])
    reranker = TwoStageReranker(lambda images, texts: itm_table[images, texts], k_test=K_TEST)
    shard = retrieval_ranks(
        image_embeds, text_embeds, N_LANGUAGES, queries=rows, reranker=reranker, chunk_size=2
    )
    tr, ir = context.gather_rows(shard.tr), context.gather_rows(shard.ir)
    # 1 row over 2 processes (one block empty) and 0 rows (every block empty).
    small_gathers_equal = []
    for size in (1, 0):
        block = context.shard(size)
        small_gathers_equal.append(torch.equal(context.gather_rows(image_embeds[block.start : block.stop]),
                                               image_embeds[:size]))
    matches = gather_object([shards_match_accelerate(context)])
    if context.is_main:
        result = {
            "world_size": context.world_size,
            "tr": tr.tolist(),
            "ir": ir.tolist(),
            "gathered_embeddings_equal": torch.equal(gathered.reshape(-1, 4), text_embeds),
            "small_gathers_equal": small_gathers_equal,
            "shards_match_accelerate": matches,
        }
        with open(output, "w", encoding="utf-8") as handle:
            json.dump(result, handle)
    context.barrier()
    context.close()


if __name__ == "__main__":
    main(sys.argv[1])
