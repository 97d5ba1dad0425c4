"""Sharding evaluation work across processes with accelerate; a no-op on one process.

Launched with ``torchrun`` or ``accelerate launch``, :func:`setup_distributed` joins the process group
through accelerate's ``PartialState`` (NCCL on GPUs, gloo on CPUs), the one place that knows this process's
rank. Every process works on a contiguous block of the items (:meth:`DistributedContext.shard`, the blocks
of ``PartialState.split_between_processes``) and :meth:`DistributedContext.gather_rows` concatenates the
results in rank order (accelerate's ``pad_across_processes`` and ``gather``), so the gathered tensors are
laid out exactly as on one process.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from accelerate import PartialState
from accelerate.utils import gather, gather_object, pad_across_processes

from ..process_group import end_process_group


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, and its compute ``device``.

    With ``world_size`` > 1 the collective methods run on accelerate's ``PartialState`` (made by
    :func:`setup_distributed`); a context for one process needs no process group.
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    owns_process_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, num_items: int) -> range:
        """This process's contiguous block of ``range(num_items)``; blocks differ in size by at most one.

        The blocks of accelerate's ``PartialState.split_between_processes`` (the first ``num_items %
        world_size`` processes take one item more), worked out for any ``rank`` so that a context can be
        planned without a process group.
        """
        base, extra = divmod(num_items, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return range(start, start + base + (1 if self.rank < extra else 0))

    def gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate every process's ``tensor`` along dim 0, in rank order (sizes along dim 0 may differ).

        ``tensor`` is ``(rows, *rest)``; ``rest`` and the dtype must agree across processes. Returns
        ``tensor`` itself on one process; otherwise a new ``(sum of rows, *rest)`` tensor on ``tensor``'s
        device.
        """
        if self.world_size == 1:
            return tensor
        local = tensor.to(PartialState().device)
        sizes = gather_object([local.shape[0]])
        padded = gather(pad_across_processes(local, dim=0)).unflatten(0, (len(sizes), max(sizes)))
        return torch.cat([block[:size] for block, size in zip(padded, sizes, strict=True)]).to(tensor.device)

    def barrier(self) -> None:
        if self.world_size > 1:
            PartialState().wait_for_everyone()

    def close(self) -> None:
        """Leave the process group if :func:`setup_distributed` created it (the end of this process's
        collective work: the process-wide ``PartialState`` is not made again). Every process must call it:
        it waits for the others, then destroys the group once nothing uses it
        (:func:`~modeling_ccr.process_group.end_process_group`)."""
        if self.owns_process_group:
            end_process_group()


def setup_distributed(device: str | None = None) -> DistributedContext:
    """Join the process group the launcher (``torchrun``, ``accelerate launch``) describes, through
    accelerate's ``PartialState``; on one process no group is made.

    ``device`` overrides the default, ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; a bare
    ``"cuda"`` also means ``cuda:LOCAL_RANK``. Processes on CUDA talk over NCCL, all others over gloo
    (accelerate's choice for CPUs; MPI instead where torch was built with it).
    """
    requested = torch.device(device) if device is not None else None
    on_cuda = requested.type == "cuda" if requested is not None else torch.cuda.is_available()
    group_existed = dist.is_initialized()
    state = PartialState(cpu=not on_cuda)
    if requested is not None and not (requested.type == "cuda" and requested.index is None):
        chosen = requested
    else:
        chosen = torch.device("cuda", state.local_process_index) if on_cuda else torch.device("cpu")
    return DistributedContext(
        rank=state.process_index,
        world_size=state.num_processes,
        device=chosen,
        owns_process_group=not group_existed and dist.is_initialized(),
    )
