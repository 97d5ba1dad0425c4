"""The shared skeleton of the contrastive losses: checks, gathering the global batch, the output.

Every contrastive loss is a subclass of :class:`GatheredContrastiveLoss` that says only what differs:
its options (constructor, ``get_config_dict``), ``citation``, ``local_batch`` (checks one process's
batch and picks the rows to score) and ``loss_parts`` (the loss over the gathered batch). The module
(``forward``) gathers across processes; its functional form is the same loss on one process's batch
(``on_local_batch``).

Gradient through the gather, ``gather_with_grad``:

- ``"exact"`` (or True, the default): the backward of the gather sums, for each process's rows, the
  gradients that all W processes computed for them. After DDP's averaging every parameter gets the
  gradient of one process holding the whole global batch.
- ``"released"`` (or False): the other processes' rows are constants; each process back-propagates
  only into its own rows. This is what the authors' code does (its all-gather's backward returns the
  local slice of the incoming gradient without summing across processes). Without ``local_loss``
  every process computes the global loss L, so rank r's embeddings receive dL/dx_r instead of
  W * dL/dx_r, and after DDP's averaging everything upstream of the embeddings gets 1/W of the
  full-batch contrastive gradient (the temperature, used directly by every process, keeps its full
  gradient). Next to ITM and MLM, which are computed per process, the contrastive loss then weighs
  1/W as much as on one device. With ``local_loss`` the terms where other processes' queries meet
  this process's embeddings are lost altogether.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from evaluate_mrv.citation import PAPER_CITATION

from ._validation import check_temperature, infer_num_languages
from .distributed import check_equal_batch_sizes, distributed_rank_and_world_size, gather_rows

GATHER_GRADIENTS = ("exact", "released")


def _gather_gradient(gather_with_grad: bool | str) -> str:
    """True / "exact" -> "exact"; False / "released" -> "released"; anything else is refused."""
    if gather_with_grad is True or gather_with_grad == "exact":
        return "exact"
    if gather_with_grad is False or gather_with_grad == "released":
        return "released"
    raise ValueError(
        f"gather_with_grad={gather_with_grad!r} is not a gradient mode: use 'exact' (or True, the full-batch "
        "gradient, default) or 'released' (or False, the authors' code: other processes' rows are constants, "
        "1/W of the contrastive gradient)"
    )


# The paper's BibTeX entry lives once, in evaluate_mrv/citation.py (the metric folder cannot import this package).
CITATION_ONE_TO_K = PAPER_CITATION


class GatheredContrastiveLoss(nn.Module):
    """Base class: in-batch contrastive losses whose negatives span the batches of all processes.

    Args:
        gather_with_grad: the gradient through the gather (see the module docstring): ``"exact"``
            (or True, default): the gradients equal those of one process holding the whole global
            batch once DDP has averaged them over ranks, with ``local_loss`` either way.
            ``"released"`` (or False): the other processes' embeddings are constants (a cheaper
            backward, the authors' behaviour); without ``local_loss`` the averaged gradients of
            everything upstream of the embeddings are the full-batch ones divided by the world size
            (the temperature's stays exact); with ``local_loss`` the terms where other processes'
            queries meet this process's embeddings are lost.
        local_loss: False (default): every process computes the loss over the whole global batch
            (all rows against all columns) and logs the global value. True: each process computes
            only its own rows (its images / texts as queries) against all gathered columns, so its
            logged loss is the mean over its rows; the mean over processes is the global loss.
            Less compute per process, the same gradients (with ``gather_with_grad="exact"``).

    On one process, or without an initialised ``torch.distributed``, no gathering happens and
    both options are irrelevant.

    Subclasses set ``citation`` (BibTeX of the loss) and override ``loss_parts`` and, where they check
    more or score other rows than the given ones, ``local_batch``.
    """

    citation: str

    def __init__(self, gather_with_grad: bool | str = "exact", local_loss: bool = False) -> None:
        super().__init__()
        self.gather_with_grad = _gather_gradient(gather_with_grad)
        self.local_loss = bool(local_loss)

    def gather(self, *tensors: torch.Tensor) -> tuple[list[torch.Tensor], slice | None]:
        """Gather row-aligned batches from all processes (rank-major order).

        Returns the gathered tensors and, with ``local_loss``, the slice of this process's rows
        in the gathered first tensor (None: use all rows). Row counts must be equal on all
        processes (checked). Image-major text batches stay image-major after gathering.

        Why the gradients match the full batch: with ``gather_with_grad="exact"`` the backward of the
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
        gathered = [gather_rows(t, with_grad=self.gather_with_grad == "exact") for t in tensors]
        n_local = tensors[0].shape[0]
        rows = slice(rank * n_local, (rank + 1) * n_local) if self.local_loss else None
        return gathered, rows

    def get_config_dict(self) -> dict[str, Any]:
        """The settings that define this loss, for model cards and logs."""
        return {"gather_with_grad": self.gather_with_grad, "local_loss": self.local_loss}

    def local_batch(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Check one process's image batch [N, D] against its image-major texts [N*K, D]; return the
        row-aligned tensors that ``loss_parts`` scores (here: both, as given)."""
        infer_num_languages(image_embeds, text_embeds)
        return image_embeds, text_embeds

    def loss_parts(
        self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, temperature: float | torch.Tensor,
        image_rows: slice | None,
    ) -> dict[str, torch.Tensor]:
        """The loss (key "loss") and its parts, 0-dim, over the (gathered) tensors of ``local_batch``;
        ``image_rows``: the rows to use as queries, None for all. Inputs are checked before."""
        raise NotImplementedError(f"{type(self).__name__} must define loss_parts")

    def forward(
        self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, temperature: float | torch.Tensor,
        return_parts: bool = False, **batch_options: Any,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """image_embeds [N, D] and image-major text_embeds [N*K, D] of this process -> the loss over the
        global batch of all processes, 0-dim (with ``return_parts`` the dict of ``loss_parts``).
        ``batch_options`` go to ``local_batch``."""
        return self._loss(image_embeds, text_embeds, temperature, return_parts, batch_options, gather=True)

    def on_local_batch(
        self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, temperature: float | torch.Tensor,
        return_parts: bool = False, **batch_options: Any,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """``forward`` on this process's batch alone, whatever the process group (the functional forms)."""
        return self._loss(image_embeds, text_embeds, temperature, return_parts, batch_options, gather=False)

    def _loss(
        self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, temperature: float | torch.Tensor,
        return_parts: bool, batch_options: dict[str, Any], gather: bool,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        check_temperature(temperature)
        batch = self.local_batch(image_embeds, text_embeds, **batch_options)
        batch, rows = self.gather(*batch) if gather else (batch, None)
        parts = self.loss_parts(*batch, temperature, rows)
        return parts if return_parts else parts["loss"]
