"""1-to-K contrastive loss (KCL) of Nie et al., KDD 2024.

A batch holds N images and, for each, one caption in each of K languages. Texts are image-major:
row j*K + k is caption k of image j. With s(j, j', k) = v_j . w(j', k) / tau on L2-normalised
embeddings v (images) and w (texts):

    L_i2t = -(1/N) sum_j (1/K) sum_k log( exp s(j,j,k) / sum_{j'} sum_{k'} exp s(j,j',k') )
    L_t2i = -(1/N) sum_j (1/K) sum_k log( exp s(j,j,k) / sum_{j'} exp s(j',j,k) )

Image -> text has K positives in ONE softmax over all N*K texts (the other K-1 positives stay in
the denominator, so L_i2t >= log K, reached when the K languages share the mass equally);
text -> image is a plain softmax over the N images. Two weightings:

- ``"released"`` (default): (L_i2t + L_t2i / K) / 2, what the authors' code computes (its
  text -> image term is divided by K a second time); it produced the published numbers.
- ``"symmetric"``: (L_i2t + L_t2i) / 2, the formula as written in the paper.

For K = 1 both weightings are the usual symmetric 1-to-1 InfoNCE (CLIP loss).
"""

from __future__ import annotations

from typing import Any

import torch

from ..modeling_ccr import ONE_TO_K_WEIGHTINGS, one_to_k_loss_parts
from ._validation import check_choice
from .base import CITATION_ONE_TO_K, GatheredContrastiveLoss

WEIGHTINGS = tuple(ONE_TO_K_WEIGHTINGS)


def one_to_k_contrastive_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    temperature: float | torch.Tensor,
    weighting: str = "released",
    return_parts: bool = False,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """1-to-K contrastive loss on one process's batch.

    Args:
        image_embeds: [N, D] L2-normalised image embeddings.
        text_embeds: [N*K, D] L2-normalised text embeddings, image-major: row j*K + k is
            caption k of image j. K is inferred (N*K must be a multiple of N).
        temperature: positive float or 0-dim tensor; logits are similarity / temperature.
        weighting: "released" ((L_i2t + L_t2i / K) / 2, default) or "symmetric"
            ((L_i2t + L_t2i) / 2).
        return_parts: also return the unweighted terms.

    Returns:
        The loss as a 0-dim tensor, or with ``return_parts`` a dict {"loss", "i2t", "t2i"}.

    Raises:
        ValueError: shapes that do not form an image-major 1-to-K batch, an unknown weighting,
            a non-positive temperature.

    The embeddings are not checked for unit norm (that would cost a device synchronisation
    every step); un-normalised inputs give dot-product logits, which is a different loss.
    """
    loss = OneToKContrastiveLoss(weighting=weighting)
    return loss.on_local_batch(image_embeds, text_embeds, temperature, return_parts)


class OneToKContrastiveLoss(GatheredContrastiveLoss):
    """1-to-K contrastive loss over the global batch of all processes.

    Args:
        weighting: "released" (default) or "symmetric"; see the module docstring.
        gather_with_grad, local_loss: see ``GatheredContrastiveLoss``. With the defaults the
            gradients after DDP's averaging equal one process holding the whole batch.

    Called with image_embeds [N, D], image-major text_embeds [N*K, D] of this process, the
    temperature and ``return_parts`` (a dict {"loss", "i2t", "t2i"}).

    Example:
        >>> loss_fn = OneToKContrastiveLoss(weighting="released")
        >>> loss = loss_fn(image_embeds, text_embeds, model.temperature)  # [N, D], [N*K, D]
    """

    citation = CITATION_ONE_TO_K

    def __init__(
        self, weighting: str = "released", gather_with_grad: bool | str = "exact", local_loss: bool = False
    ):
        check_choice("weighting", weighting, ONE_TO_K_WEIGHTINGS)
        super().__init__(gather_with_grad=gather_with_grad, local_loss=local_loss)
        self.weighting = weighting

    def loss_parts(
        self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, temperature: float | torch.Tensor,
        image_rows: slice | None,
    ) -> dict[str, torch.Tensor]:
        """{"loss", "i2t", "t2i"} over images [N, D] and their image-major texts [N*K, D]."""
        return one_to_k_loss_parts(image_embeds, text_embeds, temperature, self.weighting, image_rows)

    def get_config_dict(self) -> dict[str, Any]:
        return {"weighting": self.weighting, **super().get_config_dict()}
