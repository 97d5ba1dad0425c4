"""Gathering embeddings across processes for in-batch contrastive losses.

Contrastive negatives come from the whole global batch, so every process needs the embeddings of
all the others. The gather here keeps autograd: the gradient that each process computes for the
gathered copy of rank r's rows is summed over processes and handed back to rank r. On one process,
or when ``torch.distributed`` is not available or not initialised, every function is a no-op.

Why not ``torch.distributed.nn.functional.all_gather``: recent torch releases deprecate it (a
FutureWarning on every call) in favour of a function in a private module, so this file builds
the same operation from the public collectives ``all_gather`` and ``all_reduce``, which every
backend (gloo, NCCL) supports.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def distributed_rank_and_world_size() -> tuple[int, int]:
    """(rank, world size) of the default process group, or (0, 1) when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _AllGatherWithGrad(torch.autograd.Function):
    """Row-wise all-gather whose backward sums the gradients of every copy of the local rows."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        rank, world_size = distributed_rank_and_world_size()
        ctx.rows = slice(rank * tensor.shape[0], (rank + 1) * tensor.shape[0])
        parts = [torch.empty_like(tensor) for _ in range(world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        # Every process back-propagated its own loss into the gathered rows of rank r;
        # rank r's input receives the sum of those gradients.
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rows]


def check_equal_batch_sizes(*tensors: torch.Tensor) -> None:
    """Raise ValueError unless every process holds tensors with the same numbers of rows.

    A row-wise all-gather needs equal shapes on all processes. Costs one tiny collective;
    a no-op on one process.
    """
    _, world_size = distributed_rank_and_world_size()
    if world_size == 1:
        return
    local = torch.tensor([t.shape[0] for t in tensors], device=tensors[0].device, dtype=torch.long)
    sizes = [torch.empty_like(local) for _ in range(world_size)]
    dist.all_gather(sizes, local)
    per_rank = [s.tolist() for s in sizes]
    if any(s != per_rank[0] for s in per_rank):
        raise ValueError(
            f"the per-process batches differ in size (rows per rank: {per_rank}); contrastive "
            "gathering needs the same batch on every process: drop the last incomplete batch "
            "(dataloader_drop_last=True / DataLoader(drop_last=True))"
        )


def gather_rows(tensor: torch.Tensor, with_grad: bool = True) -> torch.Tensor:
    """Concatenate ``tensor`` [n, ...] from all processes in rank order -> [world_size * n, ...].

    Rank r's rows sit at ``r * n : (r + 1) * n``, so a rank-major concatenation of image-major
    text batches stays image-major (text i belongs to image i // K).

    with_grad=True: gradients flow to every process's rows (summed over processes), so that
    with every process computing the same global loss the gradients match one process holding
    the whole batch. with_grad=False: the other processes' rows are constants and only the local
    rows (put back in place) carry gradients; cheaper, but not the full-batch gradient.
    Returns ``tensor`` itself on one process.
    """
    rank, world_size = distributed_rank_and_world_size()
    if world_size == 1:
        return tensor
    if with_grad:
        return _AllGatherWithGrad.apply(tensor)
    parts = [torch.empty_like(tensor) for _ in range(world_size)]
    with torch.no_grad():
        dist.all_gather(parts, tensor.contiguous())
    parts[rank] = tensor
    return torch.cat(parts, dim=0)
