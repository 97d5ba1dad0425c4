"""Direct implementations of the contrastive losses with Python loops and the math module.

Written from the formulas in docs (Nie et al., KDD 2024), independently of modeling_ccr.losses:
no tensors, no softmax helpers; texts are image-major (row j*K + k is caption k of image j).
"""

from __future__ import annotations

import math

import torch


def random_batch(n_images: int, k: int, dim: int, seed: int, normalise: bool = True):
    """float64 image embeddings [N, D] and image-major text embeddings [N*K, D]."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n_images, dim, generator=g, dtype=torch.float64)
    texts = torch.randn(n_images * k, dim, generator=g, dtype=torch.float64)
    if normalise:
        images = images / images.norm(dim=1, keepdim=True)
        texts = texts / texts.norm(dim=1, keepdim=True)
    return images, texts


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _log_sum_exp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def one_to_k_reference(images, texts, tau: float, weighting: str) -> tuple[float, float, float]:
    """(loss, L_i2t, L_t2i) of the 1-to-K loss, straight from the formula."""
    v, w = images.tolist(), texts.tolist()
    n = len(v)
    k = len(w) // n

    def s(j: int, j2: int, kk: int) -> float:
        return _dot(v[j], w[j2 * k + kk]) / tau

    i2t = t2i = 0.0
    for j in range(n):
        all_texts = [s(j, j2, k2) for j2 in range(n) for k2 in range(k)]
        for kk in range(k):
            i2t -= (s(j, j, kk) - _log_sum_exp(all_texts)) / (n * k)
            t2i -= (s(j, j, kk) - _log_sum_exp([s(j2, j, kk) for j2 in range(n)])) / (n * k)
    weight = {"released": 1.0 / k, "symmetric": 1.0}[weighting]
    return (i2t + weight * t2i) / 2, i2t, t2i


def info_nce_reference(queries: list[list[float]], keys: list[list[float]], tau: float) -> float:
    """Symmetric 1-to-1 InfoNCE, (L_q->k + L_k->q) / 2: pair j is (queries[j], keys[j])."""
    n = len(queries)
    forward = backward = 0.0
    for j in range(n):
        positive = _dot(queries[j], keys[j]) / tau
        forward -= (positive - _log_sum_exp([_dot(queries[j], keys[i]) / tau for i in range(n)])) / n
        backward -= (positive - _log_sum_exp([_dot(keys[j], queries[i]) / tau for i in range(n)])) / n
    return (forward + backward) / 2


def cross_modal_reference(images, texts, tau: float, languages: list[int]) -> float:
    """1-to-1 InfoNCE between image j and its caption in language languages[j]."""
    v, w = images.tolist(), texts.tolist()
    k = len(w) // len(v)
    chosen = [w[j * k + lang] for j, lang in enumerate(languages)]
    return info_nce_reference(v, chosen, tau)


def cross_lingual_reference(images, texts, tau: float, english: int) -> tuple[float, float, float]:
    """(loss, image-English InfoNCE, mean English-other InfoNCE), halves averaged."""
    v, w = images.tolist(), texts.tolist()
    n = len(v)
    k = len(w) // n
    captions = [[w[j * k + lang] for j in range(n)] for lang in range(k)]
    image_english = info_nce_reference(v, captions[english], tau)
    others = [
        info_nce_reference(captions[english], captions[lang], tau) for lang in range(k) if lang != english
    ]
    english_other = sum(others) / len(others)
    return (image_english + english_other) / 2, image_english, english_other
