"""The shared part of the contrastive loss modules: gathering the global batch across processes."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .distributed import check_equal_batch_sizes, distributed_rank_and_world_size, gather_rows

# As in the authors' CITATION.cff (github.com/BUAADreamer/CCRK); published at KDD 2024.
CITATION_ONE_TO_K = """@article{nie2024improving,
  title = {Improving the Consistency in Cross-Lingual Cross-Modal Retrieval with 1-to-K Contrastive Learning},
  author = {Nie, Zhijie and Zhang, Richong and Feng, Zhangchi and Huang, Hailang and Liu, Xudong},
  journal = {CoRR},
  volume = {abs/2406.18254},
  year = {2024},
  url = {https://arxiv.org/abs/2406.18254}
}"""


class GatheredContrastiveLoss(nn.Module):
    """Base class: in-batch contrastive losses whose negatives span the batches of all processes.

    Args:
        gather_with_grad: gather embeddings with autograd (default). With ``local_loss`` either
            way, the gradients then equal those of one process holding the whole global batch
            once DDP has averaged them over ranks (see ``gather``). With False, the other
            processes' embeddings are constants (a cheaper backward) and the gradients are not
            the full-batch ones: without ``local_loss`` the averaged gradients of everything
            upstream of the embeddings are the full-batch ones divided by the world size (the
            temperature's stays exact); with ``local_loss`` the terms where other processes'
            queries meet this process's embeddings are lost.
        local_loss: False (default): every process computes the loss over the whole global batch
            (all rows against all columns) and logs the global value. True: each process computes
            only its own rows (its images / texts as queries) against all gathered columns, so its
            logged loss is the mean over its rows; the mean over processes is the global loss.
            Less compute per process, the same gradients (with ``gather_with_grad``).

    On one process, or without an initialised ``torch.distributed``, no gathering happens and
    both options are irrelevant.
    """

    def __init__(self, gather_with_grad: bool = True, local_loss: bool = False) -> None:
        super().__init__()
        self.gather_with_grad = bool(gather_with_grad)
        self.local_loss = bool(local_loss)

    def gather(self, *tensors: torch.Tensor) -> tuple[list[torch.Tensor], slice | None]:
        """Gather row-aligned batches from all processes (rank-major order).

        Returns the gathered tensors and, with ``local_loss``, the slice of this process's rows
        in the gathered first tensor (None: use all rows). Row counts must be equal on all
        processes (checked). Image-major text batches stay image-major after gathering.

        Why the gradients match the full batch: with ``gather_with_grad`` the backward of the
        gather sums, for rank r's rows, the gradients that all W processes computed. Without
        ``local_loss`` each process holds the global loss L, so rank r's rows receive W * dL/dx_r;
        with ``local_loss`` process r' holds L_r' and L = mean_r' L_r', so the sum is again
        W * dL/dx_r. DDP then averages parameter gradients over the W ranks:
        (1/W) * sum_r W * dL/dx_r * dx_r/dtheta = dL/dtheta. A temperature parameter gets dL/dtheta
        (or dL_r/dtheta, averaging to dL/dtheta) directly. No extra scaling of the loss is needed.
        """
        rank, world_size = distributed_rank_and_world_size()
        if world_size == 1:
            return list(tensors), None
        check_equal_batch_sizes(*tensors)
        gathered = [gather_rows(t, with_grad=self.gather_with_grad) for t in tensors]
        n_local = tensors[0].shape[0]
        rows = slice(rank * n_local, (rank + 1) * n_local) if self.local_loss else None
        return gathered, rows

    def get_config_dict(self) -> dict[str, Any]:
        """The settings that define this loss, for model cards and logs."""
        return {"gather_with_grad": self.gather_with_grad, "local_loss": self.local_loss}
