"""Multilingual image-text matching (ITM) with hard samples, as pure functions on embeddings.

For a batch of N images with K captions each (image-major texts: row j*K + k is caption k of
image j), one step of ITM scores 3N (image, text) pairs with the fusion encoder:

- (image j, its chosen positive caption)            label 1
- (a hard negative image, that same caption)        label 0
- (image j, a hard negative text)                   label 0

The indices are drawn here from the contrastive similarities s = v . w / tau (no gradient flows
through the sampling); the fusion encoder and the ITM head stay in the model.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ._validation import check_temperature, infer_num_languages


class ItmTriplets(NamedTuple):
    """Indices drawn for one ITM step, each long [N], on the embeddings' device.

    positive_text: the chosen caption of image j, a row of the image-major text batch
        (positive_text[j] // K == j).
    negative_image: a hard negative image for that chosen caption (never j).
    negative_text: a hard negative text for image j, any language (negative_text[j] // K != j).
    """

    positive_text: torch.Tensor
    negative_image: torch.Tensor
    negative_text: torch.Tensor


def _draw(probabilities: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index per row of ``probabilities`` [R, C]; sampled on the generator's device."""
    device = probabilities.device
    if generator is not None:
        probabilities = probabilities.to(generator.device)
    return torch.multinomial(probabilities, 1, generator=generator).squeeze(1).to(device)


@torch.no_grad()
def sample_itm_triplets(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    temperature: float | torch.Tensor,
    generator: torch.Generator | None = None,
) -> ItmTriplets:
    """Draw the positive caption and the two hard negatives of every image.

    Args:
        image_embeds: [N, D] L2-normalised image embeddings, N >= 2.
        text_embeds: [N*K, D] L2-normalised texts, image-major (row j*K + k is caption k of image j).
        temperature: positive float or 0-dim tensor; s = v . w / temperature.
        generator: makes the draws reproducible (sampling runs on its device).

    Distributions, each from one similarity matrix s [N, N*K]:
        - positive language of image j: softmax_k(-s(j, j, k)) over its own K captions, so the
          language the image matches worst is the most likely (favouring the hardest). The
          authors' code draws with weights max(softmax_i2t) - softmax_i2t over the K captions,
          which favours the same captions but much more weakly; this sharper choice follows the
          paper's "probability grows as the similarity falls" with the contrastive temperature.
        - negative image for that caption t: softmax_j'(s(j', t)) over the N images, image j
          excluded.
        - negative text of image j: softmax_i(s(j, i)) over all N*K texts, the K captions of
          image j excluded (a negative may be in another language).

    Returns:
        ``ItmTriplets`` of long [N] indices.

    Raises:
        ValueError: N < 2 (no negative exists), or shapes that do not form an image-major batch.
    """
    k = infer_num_languages(image_embeds, text_embeds)
    check_temperature(temperature)
    n = image_embeds.shape[0]
    if n < 2:
        raise ValueError(
            f"ITM hard-negative sampling needs at least 2 images in the batch, got {n}: "
            "there is no negative image or text otherwise; use a larger batch"
        )
    if isinstance(temperature, torch.Tensor):
        temperature = temperature.detach().float()
    # Similarities in float32 whatever the embeddings' precision.
    sim = image_embeds.detach().float() @ text_embeds.detach().float().T / temperature  # [N, N*K]
    own = torch.arange(n, device=sim.device)
    sim_per_image = sim.view(n, n, k)  # [image, caption's image, language]

    positive_language = _draw(F.softmax(-sim_per_image[own, own], dim=1), generator)
    positive_text = own * k + positive_language

    text_to_image = sim[:, positive_text].T.clone()  # [N captions, N images]
    text_to_image[own, own] = float("-inf")
    negative_image = _draw(F.softmax(text_to_image, dim=1), generator)

    image_to_text = sim_per_image.clone()
    image_to_text[own, own] = float("-inf")
    negative_text = _draw(F.softmax(image_to_text.view(n, n * k), dim=1), generator)
    return ItmTriplets(positive_text, negative_image, negative_text)


def build_itm_pairs(triplets: ItmTriplets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 3N (image index, text index, label) pairs of one ITM step, each long [3N].

    Rows 0..N-1: (j, positive_text[j], 1); rows N..2N-1: (negative_image[j], positive_text[j], 0);
    rows 2N..3N-1: (j, negative_text[j], 0). Text indices are rows of the image-major text batch.
    """
    own = torch.arange(triplets.positive_text.shape[0], device=triplets.positive_text.device)
    image_index = torch.cat([own, triplets.negative_image, own])
    text_index = torch.cat([triplets.positive_text, triplets.positive_text, triplets.negative_text])
    labels = torch.cat([torch.ones_like(own), torch.zeros_like(own), torch.zeros_like(own)])
    return image_index, text_index, labels


def itm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean 2-way cross-entropy of ITM logits [M, 2] (class 1 = match) against labels long [M]."""
    if logits.ndim != 2 or logits.shape[1] != 2:
        raise ValueError(f"ITM logits must be [M, 2] (no-match, match), got {tuple(logits.shape)}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(
            f"ITM labels must be [M] = [{logits.shape[0]}] to match the logits, got {tuple(labels.shape)}"
        )
    return F.cross_entropy(logits, labels.long())
