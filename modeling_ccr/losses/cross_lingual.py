"""Cross-lingual style baseline: English as the pivot between images and the other languages.

Images are aligned with their English captions, and English captions with their translations:

    L = (L_img-en + (1/(K-1)) sum_{l != en} L_en-l) / 2

where every term is a symmetric 1-to-1 InfoNCE over the N items of the batch,
InfoNCE(a, b) = (L_a->b + L_b->a) / 2, with the same temperature for image-text and text-text
pairs. The K-1 text-text terms are averaged first, so the cross-modal and the cross-lingual
halves weigh the same whatever K is. The other languages never meet an image directly, which
is how English-X alignment errors propagate (Nie et al., KDD 2024, Section 1).
"""

from __future__ import annotations

from typing import Any

import torch

from ..modeling_ccr import one_to_k_loss_parts
from ._validation import infer_num_languages
from .base import CITATION_ONE_TO_K, GatheredContrastiveLoss


def _check_english_index(num_languages: int, english_index: int) -> None:
    if num_languages < 2:
        raise ValueError(
            "the cross-lingual loss needs English and at least one other language per image (K >= 2), "
            f"got K = {num_languages}: pass every language's caption, image-major"
        )
    if not 0 <= english_index < num_languages:
        raise ValueError(
            f"english_index must be the position of English among the K = {num_languages} captions "
            f"of an image (an int in range({num_languages})), got {english_index!r}"
        )


def cross_lingual_loss_terms(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    temperature: float | torch.Tensor,
    english_index: int = 0,
    image_rows: slice | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two halves (L_img-en, mean_l L_en-l) of the cross-lingual loss, as 0-dim tensors.

    Args:
        image_embeds: [N, D] L2-normalised image embeddings.
        text_embeds: [N*K, D] L2-normalised texts, image-major (row j*K + k is caption k of
            image j), K >= 2.
        temperature: positive float or 0-dim tensor.
        english_index: which k is English.
        image_rows: a contiguous slice of items to use as queries in every InfoNCE (None: all),
            see ``one_to_k_loss_terms``.

    The inputs are trusted, as those of ``one_to_k_loss_terms``: ``cross_lingual_contrastive_loss``
    and ``CrossLingualContrastiveLoss`` check them.
    """
    k = text_embeds.shape[0] // image_embeds.shape[0]
    texts = text_embeds.reshape(image_embeds.shape[0], k, -1)  # [N, K, D]
    english = texts[:, english_index]

    def info_nce(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return one_to_k_loss_parts(queries, keys, temperature, "symmetric", image_rows)["loss"]

    english_other = [info_nce(english, texts[:, lang]) for lang in range(k) if lang != english_index]
    return info_nce(image_embeds, english), torch.stack(english_other).mean()


def cross_lingual_contrastive_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    temperature: float | torch.Tensor,
    english_index: int = 0,
    return_parts: bool = False,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Cross-lingual style baseline on one process's batch.

    Args:
        image_embeds, text_embeds, temperature: images [N, D] and their image-major texts [N*K, D],
            L2-normalised, and the temperature, as for ``one_to_k_contrastive_loss``.
        english_index: the position of English among each image's K captions (default 0).
        return_parts: also return the halves.

    Returns:
        (L_img-en + mean_{l != en} L_en-l) / 2 as a 0-dim tensor, or a dict
        {"loss", "image_english", "english_other"}.
    """
    loss = CrossLingualContrastiveLoss(english_index=english_index)
    return loss.on_local_batch(image_embeds, text_embeds, temperature, return_parts)


class CrossLingualContrastiveLoss(GatheredContrastiveLoss):
    """Cross-lingual style baseline over the global batch of all processes.

    Args:
        english_index: the position of English among each image's K captions (default 0).
        gather_with_grad, local_loss: see ``GatheredContrastiveLoss``.

    Called with image_embeds [N, D], image-major text_embeds [N*K, D] of this process, the
    temperature and ``return_parts`` (a dict {"loss", "image_english", "english_other"}).
    """

    citation = CITATION_ONE_TO_K

    def __init__(
        self, english_index: int = 0, gather_with_grad: bool | str = "exact", local_loss: bool = False
    ):
        if isinstance(english_index, bool) or not isinstance(english_index, int) or english_index < 0:
            raise ValueError(f"english_index must be a non-negative int, got {english_index!r}")
        super().__init__(gather_with_grad=gather_with_grad, local_loss=local_loss)
        self.english_index = english_index

    def local_batch(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Check the batch as the base class does, and that K >= 2 holds ``english_index``."""
        _check_english_index(infer_num_languages(image_embeds, text_embeds), self.english_index)
        return image_embeds, text_embeds

    def loss_parts(
        self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, temperature: float | torch.Tensor,
        image_rows: slice | None,
    ) -> dict[str, torch.Tensor]:
        """{"loss", "image_english", "english_other"}: (L_img-en + mean_{l != en} L_en-l) / 2."""
        image_english, english_other = cross_lingual_loss_terms(
            image_embeds, text_embeds, temperature, self.english_index, image_rows
        )
        loss = (image_english + english_other) / 2
        return {"loss": loss, "image_english": image_english, "english_other": english_other}

    def get_config_dict(self) -> dict[str, Any]:
        return {"english_index": self.english_index, **super().get_config_dict()}
