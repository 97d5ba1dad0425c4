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

from ._validation import check_choice, check_temperature, infer_num_languages

_POSITIVE_LANGUAGE_MEANINGS = {
    "released": "max(softmax) + 1e-5 - softmax over the image's K captions, the authors' code",
    "hardest": "softmax(-s) over them",
}
POSITIVE_LANGUAGE_RULES = tuple(_POSITIVE_LANGUAGE_MEANINGS)


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


def _similarities(
    image_embeds: torch.Tensor, text_embeds: torch.Tensor, temperature: float | torch.Tensor
) -> tuple[torch.Tensor, int]:
    """Checked inputs -> (s [N, N*K] in float32 without gradient, K)."""
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
    return image_embeds.detach().float() @ text_embeds.detach().float().T / temperature, k


def _positive_weights(sim: torch.Tensor, k: int, positive_language: str) -> torch.Tensor:
    """Unnormalised draw weights [N, K] of each image's own K captions from s [N, N*K]."""
    n = sim.shape[0]
    own = torch.arange(n, device=sim.device)
    if positive_language == "released":
        p = F.softmax(sim, dim=1)
        return p.max() + 1e-5 - p.view(n, n, k)[own, own]
    return F.softmax(-sim.view(n, n, k)[own, own], dim=1)


@torch.no_grad()
def positive_language_weights(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    temperature: float | torch.Tensor,
    positive_language: str = "released",
) -> torch.Tensor:
    """The probabilities [N, K] with which each image's positive ITM caption is drawn.

    Args:
        image_embeds: [N, D] L2-normalised image embeddings, N >= 2.
        text_embeds: [N*K, D] L2-normalised texts, image-major (row j*K + k is caption k of image j).
        temperature: positive float or 0-dim tensor; s = v . w / temperature.
        positive_language: ``"released"`` or ``"hardest"``, see :func:`sample_itm_triplets`.

    Returns:
        float32 [N, K]: row j is the distribution over image j's languages (rows sum to 1).
    """
    check_choice("positive_language", positive_language, _POSITIVE_LANGUAGE_MEANINGS)
    sim, k = _similarities(image_embeds, text_embeds, temperature)
    weights = _positive_weights(sim, k, positive_language)
    return weights / weights.sum(dim=1, keepdim=True)


@torch.no_grad()
def sample_itm_triplets(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    temperature: float | torch.Tensor,
    generator: torch.Generator | None = None,
    positive_language: str = "released",
    negative_temperature: float | None = None,
    random_share: float = 0.0,
) -> ItmTriplets:
    """Draw the positive caption and the two hard negatives of every image.

    Args:
        image_embeds: [N, D] L2-normalised image embeddings, N >= 2.
        text_embeds: [N*K, D] L2-normalised texts, image-major (row j*K + k is caption k of image j).
        temperature: positive float or 0-dim tensor; s = v . w / temperature.
        generator: makes the draws reproducible (sampling runs on its device).
        positive_language: the rule for each image's positive caption, see below.
        negative_temperature: the temperature of the two negatives' softmaxes, when it is not
            ``temperature`` (None, the paper): larger draws easier negatives, and a very large one draws
            them nearly uniformly (random negatives).
        random_share: in [0, 1]; each negative is drawn from ``(1 - random_share) * softmax + random_share *
            uniform`` over the same candidates: a mix of hard and random negatives (0, the paper: hard only).

    Distributions, each from one similarity matrix s [N, N*K] of this process's batch (the negatives'
    from s' = v . w / negative_temperature when that is given):
        - positive language of image j, by ``positive_language``:
          ``"released"`` (default, the authors' code): weights
          max(p) + 1e-5 - p(j, j, k) over image j's own K captions, where p = softmax(s) over each
          image's row of all N*K texts and max(p) is the largest entry of the whole matrix p. The
          less similar caption is favoured, but weakly: every language keeps a share close to 1/K.
          ``"hardest"``: softmax_k(-s(j, j, k)) over image j's own K captions, so the language the
          image matches worst is by far the most likely (the paper's "probability grows as the
          similarity falls" with the contrastive temperature).
          :func:`positive_language_weights` returns either distribution.
        - negative image for that caption t: softmax_j'(s(j', t)) over the N images, image j
          excluded.
        - negative text of image j: softmax_i(s(j, i)) over all N*K texts, the K captions of
          image j excluded (a negative may be in another language).

    Returns:
        ``ItmTriplets`` of long [N] indices.

    Raises:
        ValueError: N < 2 (no negative exists), shapes that do not form an image-major batch, or
            an unknown ``positive_language``.
    """
    check_choice("positive_language", positive_language, _POSITIVE_LANGUAGE_MEANINGS)
    if not 0.0 <= random_share <= 1.0:
        raise ValueError(f"random_share must be in [0, 1] (the share of uniformly drawn negatives), got {random_share}")
    sim, k = _similarities(image_embeds, text_embeds, temperature)
    n = sim.shape[0]
    own = torch.arange(n, device=sim.device)
    positive_text = own * k + _draw(_positive_weights(sim, k, positive_language), generator)
    if negative_temperature is not None:
        sim, _ = _similarities(image_embeds, text_embeds, negative_temperature)

    text_to_image = sim[:, positive_text].T.clone()  # [N captions, N images]
    text_to_image[own, own] = float("-inf")
    negative_image = _draw(_negative_distribution(text_to_image, random_share), generator)

    image_to_text = sim.view(n, n, k).clone()  # [image, caption's image, language]
    image_to_text[own, own] = float("-inf")
    negative_text = _draw(_negative_distribution(image_to_text.view(n, n * k), random_share), generator)
    return ItmTriplets(positive_text, negative_image, negative_text)


def _negative_distribution(scores: torch.Tensor, random_share: float) -> torch.Tensor:
    """Rows of draw probabilities ``[R, C]`` from scores ``[R, C]`` (-inf: never drawn): the softmax, mixed with
    the uniform distribution over each row's finite entries at ``random_share``."""
    probabilities = F.softmax(scores, dim=1)
    if not random_share:
        return probabilities
    allowed = torch.isfinite(scores).float()
    return (1 - random_share) * probabilities + random_share * allowed / allowed.sum(dim=1, keepdim=True)


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


def itm_loss(logits: torch.Tensor, labels: torch.Tensor, balanced: bool = False) -> torch.Tensor:
    """2-way cross-entropy of ITM logits [M, 2] (class 1 = match) against labels long [M].

    ``balanced=False`` (the paper): the mean over the M pairs, where a step's 1 positive : 2 negatives make
    the constant answer "1 in 3" a comfortable minimum (0.637). ``balanced=True``: the mean over the
    positive pairs and the mean over the negative pairs, averaged, so each class weighs half and a constant
    answer costs ln 2 (a class absent from the pairs is left out).
    """
    if logits.ndim != 2 or logits.shape[1] != 2:
        raise ValueError(f"ITM logits must be [M, 2] (no-match, match), got {tuple(logits.shape)}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(
            f"ITM labels must be [M] = [{logits.shape[0]}] to match the logits, got {tuple(labels.shape)}"
        )
    if not balanced:
        return F.cross_entropy(logits, labels.long())
    losses = F.cross_entropy(logits, labels.long(), reduction="none")
    positive = labels == 1
    per_class = [losses[rows].mean() for rows in (positive, ~positive) if rows.any()]
    return torch.stack(per_class).mean()


@torch.no_grad()
def itm_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The share of pairs whose ITM logits ``[M, 2]`` put the larger value on the label's column (labels
    long ``[M]``); float32 0-dim. A head stuck at the 1-in-3 prior of the hard-negative pairs scores 2/3."""
    return (logits.argmax(dim=1) == labels).float().mean()


@torch.no_grad()
def negatives_sharing_text(triplets: ItmTriplets, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                           k: int) -> torch.Tensor:
    """The share of an ITM step's 2N hard negatives that are no negatives in their text: the negative text
    reads exactly as the positive caption (the same tokens, in any language), or the negative image has a
    caption, in any of its K languages, that does. float32 0-dim.

    ``input_ids`` / ``attention_mask`` are the step's image-major texts ``[N*K, L]`` (K captions per image)
    whose rows the triplets index; the triplets may cover only some of the N images (``[M]``, M <= N).
    """
    tokens = input_ids * attention_mask  # padding compares equal whatever its id

    def same(rows_a: torch.Tensor, rows_b: torch.Tensor) -> torch.Tensor:
        return ((tokens[rows_a] == tokens[rows_b]).all(dim=-1)
                & (attention_mask[rows_a] == attention_mask[rows_b]).all(dim=-1))

    positive = triplets.positive_text
    text_same = same(triplets.negative_text, positive)
    languages = torch.arange(k, device=positive.device)
    image_captions = triplets.negative_image[:, None] * k + languages  # [N, K] rows of each negative image
    image_same = same(image_captions, positive[:, None].expand_as(image_captions)).any(dim=1)
    return torch.cat([text_same, image_same]).float().mean()
