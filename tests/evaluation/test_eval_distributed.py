"""Sharding across torch.distributed processes (gloo on CPU, launched with torchrun for real)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from distributed_rank_worker import K_TEST, N_LANGUAGES, seeded_problem
from eval_fixtures import torchrun

from modeling_ccr.evaluation.distributed import DistributedContext
from modeling_ccr.evaluation.ranks import retrieval_ranks
from modeling_ccr.evaluation.rerank import TwoStageReranker

WORKER = Path(__file__).with_name("distributed_rank_worker.py")


@pytest.mark.parametrize("num_items", [0, 1, 7, 13, 100])
@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_shards_partition_the_items_in_order(num_items, world_size):
    contexts = [DistributedContext(rank=rank, world_size=world_size) for rank in range(world_size)]
    shards = [context.shard(num_items) for context in contexts]
    assert [index for shard in shards for index in shard] == list(range(num_items))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_one_process_is_a_no_op():
    context = DistributedContext()
    tensor = torch.arange(6).view(3, 2)
    assert context.shard(5) == range(5) and context.gather_rows(tensor) is tensor


def test_sharded_ranks_equal_one_process(tmp_path):
    """Under torchrun; ``ccr evaluate`` runs under ``accelerate launch`` in tests/app/test_eval_cli.py."""
    output = tmp_path / "ranks.json"
    completed = torchrun([str(WORKER), str(output)], cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(output.read_text())
    image_embeds, text_embeds, itm_table = seeded_problem()
    reranker = TwoStageReranker(lambda images, texts: itm_table[images, texts], k_test=K_TEST)
    expected = retrieval_ranks(image_embeds, text_embeds, N_LANGUAGES, reranker=reranker)
    assert result["world_size"] == 2
    assert result["gathered_embeddings_equal"]
    assert result["small_gathers_equal"] == [True, True]  # a block of 0 rows on one process, then on both
    assert result["shards_match_accelerate"] == [True, True]  # per process
    assert result["tr"] == expected.tr.tolist() and result["ir"] == expected.ir.tolist()
