"""Sharding evaluation work across ``torch.distributed`` processes; a no-op on one process.

Launched with ``torchrun`` or ``accelerate launch``, every process reads ``RANK`` / ``WORLD_SIZE`` /
``LOCAL_RANK`` from the environment, joins a process group (NCCL on GPUs, gloo on CPUs), works on a
contiguous block of images and gathers the results in rank order, so the gathered tensors are laid out
exactly as on one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, and its compute ``device``."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    owns_process_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, num_items: int) -> range:
        """This process's contiguous block of ``range(num_items)``; blocks differ in size by at most one."""
        base, extra = divmod(num_items, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return range(start, start + base + (1 if self.rank < extra else 0))

    def gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate every process's ``tensor`` along dim 0, in rank order (sizes along dim 0 may differ).

        The other dimensions and the dtype must agree across processes. Returns ``tensor`` itself on one
        process; otherwise a new tensor on ``tensor``'s device.
        """
        if self.world_size == 1:
            return tensor
        local = tensor.to(self.device).contiguous()
        sizes = [torch.zeros(1, dtype=torch.long, device=self.device) for _ in range(self.world_size)]
        dist.all_gather(sizes, torch.tensor([local.shape[0]], device=self.device))
        longest = int(max(size.item() for size in sizes))
        padded = local.new_zeros((longest, *local.shape[1:]))
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        rows = [part[: int(size.item())] for part, size in zip(parts, sizes, strict=True)]
        return torch.cat(rows).to(tensor.device)

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group if this context created it."""
        if self.owns_process_group:
            dist.destroy_process_group()


def setup_distributed(device: str | None = None) -> DistributedContext:
    """Join the process group described by the launcher's environment (no-op when ``WORLD_SIZE`` <= 1).

    ``device`` overrides the default, ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; a bare
    ``"cuda"`` also means ``cuda:LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is not None:
        chosen = torch.device(device)
        if chosen.type == "cuda" and chosen.index is None:
            chosen = torch.device("cuda", local_rank)
    elif torch.cuda.is_available():
        chosen = torch.device("cuda", local_rank)
    else:
        chosen = torch.device("cpu")
    if world_size <= 1:
        return DistributedContext(device=chosen)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return DistributedContext(
        rank=dist.get_rank(), world_size=dist.get_world_size(), device=chosen, owns_process_group=owns
    )
