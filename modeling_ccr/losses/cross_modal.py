"""Cross-modal style baseline: one language per image per step, 1-to-1 InfoNCE.

The pre-training of UC2 and CCLM pairs each image with ONE caption in ONE randomly chosen
language per step. The loss is then the symmetric CLIP-style InfoNCE over the N chosen pairs:

    L = (L_i2t + L_t2i) / 2,  L_i2t = -(1/N) sum_j log softmax_j'(v_j . w_j' / tau)[j],
                               L_t2i = -(1/N) sum_j log softmax_j'(w_j . v_j' / tau)[j]

with w_j the chosen caption of image j. This is the 1-to-K loss with K = 1 on the chosen texts.
"""

from __future__ import annotations

from typing import Any

import torch

from ..modeling_ccr import one_to_k_loss_parts
from ._validation import infer_num_languages
from .base import GatheredContrastiveLoss

# As in the authors' README (github.com/zengyan-97/CCLM); published at ACL 2023.
CITATION_CROSS_MODAL = """@article{zeng2022cross,
  title = {Cross-View Language Modeling: Towards Unified Cross-Lingual Cross-Modal Pre-training},
  author = {Zeng, Yan and Zhou, Wangchunshu and Luo, Ao and Zhang, Xinsong},
  journal = {arXiv preprint arXiv:2206.00621},
  year = {2022}
}"""


def sample_caption_languages(
    num_images: int, num_languages: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw one language index per image, uniformly from range(num_languages) -> long [num_images].

    Drawn on the generator's device (CPU without one); reproducible for a seeded generator.
    """
    device = generator.device if generator is not None else None
    return torch.randint(num_languages, (num_images,), generator=generator, device=device)


def select_captions(text_embeds: torch.Tensor, num_images: int, languages: torch.Tensor) -> torch.Tensor:
    """Pick caption ``languages[j]`` of every image j from image-major texts [N*K, D] -> [N, D]."""
    k = text_embeds.shape[0] // num_images
    languages = torch.as_tensor(languages, dtype=torch.long).to(text_embeds.device)
    if languages.shape != (num_images,):
        raise ValueError(
            f"languages must hold one index per image, shape ({num_images},), got {tuple(languages.shape)}"
        )
    if not bool(((languages >= 0) & (languages < k)).all()):
        raise ValueError(f"languages must lie in range(K) = range({k}), got {languages.tolist()}")
    rows = torch.arange(num_images, device=text_embeds.device) * k + languages
    return text_embeds[rows]


def cross_modal_contrastive_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    temperature: float | torch.Tensor,
    generator: torch.Generator | None = None,
    languages: torch.Tensor | None = None,
    return_parts: bool = False,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Cross-modal style baseline on one process's batch.

    Args:
        image_embeds, text_embeds, temperature: images [N, D] and their image-major texts [N*K, D],
            L2-normalised, and the temperature, as for ``one_to_k_contrastive_loss``.
        generator: draws the language of each image (``sample_caption_languages``).
        languages: long [N], the language index to use for each image instead of drawing one.
        return_parts: also return the two directions.

    Returns:
        (L_i2t + L_t2i) / 2 as a 0-dim tensor, or a dict {"loss", "i2t", "t2i"}.
    """
    loss = CrossModalContrastiveLoss(generator=generator)
    return loss.on_local_batch(image_embeds, text_embeds, temperature, return_parts, languages=languages)


class CrossModalContrastiveLoss(GatheredContrastiveLoss):
    """Cross-modal style baseline over the global batch of all processes.

    Each process draws the languages of its own images (seed each process's generator
    differently), then the chosen pairs are gathered and scored with 1-to-1 InfoNCE.

    Args:
        generator: draws the languages (None: torch's default generator).
        gather_with_grad, local_loss: see ``GatheredContrastiveLoss``.
    """

    citation = CITATION_CROSS_MODAL

    def __init__(
        self,
        generator: torch.Generator | None = None,
        gather_with_grad: bool | str = "exact",
        local_loss: bool = False,
    ):
        super().__init__(gather_with_grad=gather_with_grad, local_loss=local_loss)
        self.generator = generator

    def forward(
        self,
        image_embeds: torch.Tensor,
        text_embeds: torch.Tensor,
        temperature: float | torch.Tensor,
        languages: torch.Tensor | None = None,
        return_parts: bool = False,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """image_embeds [N, D], image-major text_embeds [N*K, D] of this process, optional
        languages long [N] -> the loss (a dict {"loss", "i2t", "t2i"} with ``return_parts``)."""
        return super().forward(image_embeds, text_embeds, temperature, return_parts, languages=languages)

    def local_batch(
        self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, languages: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The images [N, D] and their chosen captions [N, D]: caption ``languages[j]`` of image j, drawn
        with the generator when ``languages`` is None."""
        k = infer_num_languages(image_embeds, text_embeds)
        n_images = image_embeds.shape[0]
        if languages is None:
            languages = sample_caption_languages(n_images, k, self.generator)
        return image_embeds, select_captions(text_embeds, n_images, languages)

    def loss_parts(
        self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, temperature: float | torch.Tensor,
        image_rows: slice | None,
    ) -> dict[str, torch.Tensor]:
        """{"loss", "i2t", "t2i"}: the 1-to-K loss with K = 1 (either weighting) on the chosen pairs."""
        return one_to_k_loss_parts(image_embeds, text_embeds, temperature, "symmetric", image_rows)

    def get_config_dict(self) -> dict[str, Any]:
        return {"language_sampling": "uniform, one per image per step", **super().get_config_dict()}
