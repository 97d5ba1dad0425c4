"""Can the fusion encoder's ITM head tell an image's own caption from the others? Its ROC AUC on three sets of pairs.

For every image and language of a split, its own caption (a matching pair) against non-matching pairs of:
- random: the caption of another image, drawn at random, in the same language;
- training: the hard negatives ``ccr train`` draws (``sample_itm_triplets`` over batches of 64 images with the
  model's temperature): a negative image for the chosen caption and a negative caption (any language) for
  the image, scored beside the chosen positive, exactly the pairs of an ITM step;
- re-ranking: the dual encoder's top 16 captions of each image in that language, the pairs "replace"
  re-ranking scores.
Each pair is scored by its ITM margin (the "match" minus the "no match" logit). :func:`diagnose_itm` runs all
three; ``scripts/itm_diagnostics.py`` prints and plots them, ``scripts/quality_vs_probe.py`` reports the AUCs.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..losses import build_itm_pairs, sample_itm_triplets
from .encode import encode_benchmark
from .itm import EncodedTexts

TRAIN_BATCH_IMAGES = 64  # images per batch from which training draws its hard negatives
TOP_K = 16  # candidates re-ranked per query
PRIOR_LOSS = -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3))  # 2-way CE of a constant "1 in 3"


def roc_auc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """P(a matching pair scores above a non-matching one), ties counted half (Mann-Whitney U / (n_pos n_neg))."""
    above = (positive[:, None] > negative[None, :]).double().mean()
    tied = (positive[:, None] == negative[None, :]).double().mean()
    return float(above + 0.5 * tied)


class Encoded:
    """A split encoded once: image tokens ``[N, P, Cv]``, embeddings ``[N, D]`` and the fusion encoder's
    per-layer keys and values of each image (``image_memory``); per language, the captions' token ids / masks
    ``[N, L]``, encoder states ``[N, L, H]`` and embeddings ``[N, D]`` (row i: image i)."""

    def __init__(self, model, processor, dataset, languages: list[str], batch_size: int = 32):
        images = encode_benchmark(model, processor, dataset, languages, batch_size=batch_size, keep_image_tokens=True,
                                  encode_texts=False)
        self.image_tokens, self.image_embeds = images.image_tokens, images.image_embeds
        self.image_memory = model.fusion.image_memory(self.image_tokens)  # keys and values once per image
        # every language tokenised in one call, so that all captions share one padded length and pairs of
        # any languages stack into one batch; every state is kept in memory
        captions = dataset["captions"]
        texts = EncodedTexts(model, processor, [row[language] for language in languages for row in captions],
                             batch_size, max_cached_bytes=sys.maxsize)
        embeds = texts.embeddings()
        n = len(captions)
        self.texts = {}
        for position, language in enumerate(languages):
            rows = slice(position * n, (position + 1) * n)
            self.texts[language] = (texts.input_ids[rows], texts.attention_mask[rows], texts.cached[rows], embeds[rows])

    def margins(self, model, language_of: list[str], image_index: torch.Tensor, text_index: torch.Tensor,
                chunk: int = 256) -> torch.Tensor:
        """ITM margins ``[M]`` of the pairs (image ``image_index[m]``, caption ``text_index[m]`` of image
        ``text_index[m]`` in language ``language_of[m]``)."""
        margins = []
        for start in range(0, len(image_index), chunk):
            rows = range(start, min(start + chunk, len(image_index)))
            states = torch.stack([self.texts[language_of[m]][2][text_index[m]] for m in rows])
            mask = torch.stack([self.texts[language_of[m]][1][text_index[m]] for m in rows])
            images = image_index[start : start + len(rows)]
            fused = model.fusion(states, mask, self.image_memory, images, cls_only=True)
            texts = torch.stack([self.texts[language_of[m]][3][text_index[m]] for m in rows])
            logits = model.itm_head(fused[:, 0], model.itm_similarity(self.image_embeds, texts, images))
            margins.append(logits[:, 1] - logits[:, 0])
        return torch.cat(margins)


def random_pairs(encoded: Encoded, model, languages: list[str], generator: torch.Generator):
    """Own caption vs another image's caption (a random derangement), per language."""
    n = encoded.image_tokens.shape[0]
    own = torch.arange(n)
    positive, negative = [], []
    for language in languages:
        shift = torch.randint(1, n, (n,), generator=generator)
        other = (own + shift) % n  # never the image itself
        positive.append(encoded.margins(model, [language] * n, own, own))
        negative.append(encoded.margins(model, [language] * n, own, other))
    return torch.cat(positive), torch.cat(negative)


def training_pairs(encoded: Encoded, model, languages: list[str], generator: torch.Generator):
    """The pairs of ITM steps: triplets drawn as training draws them, over batches of 64 images."""
    n, k = encoded.image_tokens.shape[0], len(languages)
    order = torch.randperm(n, generator=generator)
    temperature = model.clamped_temperature()
    positive, negative, losses = [], [], []
    for start in range(0, n - 1, TRAIN_BATCH_IMAGES):
        batch = order[start : start + TRAIN_BATCH_IMAGES]
        if len(batch) < 2:
            break
        text_embeds = torch.stack([encoded.texts[lang][3][batch] for lang in languages], dim=1).flatten(0, 1)
        triplets = sample_itm_triplets(encoded.image_embeds[batch], text_embeds, temperature, generator=generator)
        image_rows, text_rows, labels = build_itm_pairs(triplets)
        language_of = [languages[int(row) % k] for row in text_rows]
        margins = encoded.margins(model, language_of, batch[image_rows], batch[text_rows // k])
        positive.append(margins[labels == 1])
        negative.append(margins[labels == 0])
        # the 2-way CE of the step, from the margin: softmax over (no match, match) = sigmoid(margin)
        losses.append(F.binary_cross_entropy_with_logits(margins, labels.float(), reduction="sum"))
    count = sum(len(p) + len(q) for p, q in zip(positive, negative, strict=True))
    return torch.cat(positive), torch.cat(negative), float(sum(losses) / count)


def reranking_pairs(encoded: Encoded, model, languages: list[str]):
    """Each image with its dual encoder's top-16 captions in each language (TR re-ranking's pairs)."""
    n = encoded.image_tokens.shape[0]
    positive, negative = [], []
    for language in languages:
        similarity = encoded.image_embeds @ encoded.texts[language][3].T
        top = similarity.topk(min(TOP_K, n), dim=1).indices
        image_index = torch.arange(n).repeat_interleave(top.shape[1])
        margins = encoded.margins(model, [language] * len(image_index), image_index, top.flatten())
        matches = top.flatten() == image_index
        positive.append(margins[matches])
        negative.append(margins[~matches])
    return torch.cat(positive), torch.cat(negative)


@dataclass
class ItmDiagnostics:
    """The margins of each pair set, ``{"random" | "training" | "re-ranking": (matching [P], non-matching [Q])}``,
    and the ITM loss of the training pairs (2-way cross-entropy, to compare with ``PRIOR_LOSS``)."""

    sets: dict[str, tuple[torch.Tensor, torch.Tensor]]
    training_loss: float

    def aucs(self) -> dict[str, float]:
        """``{set name: ROC AUC of the margin}``."""
        return {name: roc_auc(positive, negative) for name, (positive, negative) in self.sets.items()}


def diagnose_itm(model, processor, dataset, languages: list[str], seed: int = 0) -> ItmDiagnostics:
    """The three pair sets of a split in ``languages`` (a dataset in the common schema), scored by ``model``
    (in eval mode); the random draws come from a generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        encoded = Encoded(model, processor, dataset, languages)
        sets = {"random": random_pairs(encoded, model, languages, generator)}
        *training, loss = training_pairs(encoded, model, languages, generator)
        sets["training"] = tuple(training)
        sets["re-ranking"] = reranking_pairs(encoded, model, languages)
    return ItmDiagnostics(sets, loss)
