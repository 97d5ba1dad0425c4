"""MRV, the mean rank variance of cross-lingual cross-modal retrieval, in plain numpy.

Nie et al., "Improving the Consistency in Cross-Lingual Cross-Modal Retrieval with 1-to-K Contrastive
Learning" (KDD 2024). For instance i and language l let r(i, l) be the rank of the gold item (image i's
caption in language l for text retrieval; image i for its caption in language l for image retrieval):

    MRV = (1/N) sum_i std_l( r(i, 1), ..., r(i, K) )      (population std, ddof = 0)

The released code takes the standard deviation although the name says variance, and the published
figures are on that scale, so ``kind="std"`` is the default; ``kind="variance"`` averages the true
variance instead. Lower is better; 0 means every language puts the gold item at the same rank.

This module is shared by the ``evaluate`` metric (``mrv.py`` beside it) and the ``modeling_ccr``
retrieval evaluation, and needs nothing but numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

SpreadKind = Literal["std", "variance"]
SPREAD_KINDS: tuple[str, ...] = ("std", "variance")


def validate_ranks(ranks: Sequence[Sequence[float]] | np.ndarray, min_languages: int = 2) -> np.ndarray:
    """Check gold ranks and return them as a float64 array ``[N, K]``.

    ``ranks[i][l]`` is the rank of instance i's gold item in language l: a finite number >= 0 (0-based
    ranks are the convention, any fixed base gives the same MRV). Every instance needs the same
    K >= ``min_languages`` languages (2 for MRV: K = 1 is refused, a spread needs two languages).
    Raises ValueError naming the problem and the fix.
    """
    try:
        array = np.asarray(ranks, dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise ValueError(_describe_unreadable(ranks, err)) from None
    if array.ndim >= 1 and array.shape[0] == 0:
        raise ValueError("ranks is empty: pass the per-language ranks of at least one instance")
    if array.ndim != 2:
        raise ValueError(
            f"ranks must be a list of instances, each a list of K per-language ranks (shape [N, K]); got an "
            f"array of shape {array.shape}: pass e.g. ranks=[[0, 2, 0, 6], [1, 1, 1, 1]]"
        )
    if array.shape[1] == 0:
        raise ValueError("every instance has an empty list of ranks: pass one rank per language")
    if array.shape[1] < min_languages:
        raise ValueError(
            f"MRV needs the ranks of each instance in at least {min_languages} languages, "
            f"got K={array.shape[1]}: "
            "a spread across languages is undefined for a single language, so K = 1 is refused; pass one "
            "rank per language for K >= 2 languages (for a monolingual benchmark report recall and mean rank)"
        )
    bad = ~np.isfinite(array)
    if bad.any():
        i, lang = map(int, np.argwhere(bad)[0])
        raise ValueError(
            f"rank of instance {i}, language {lang} is {array[i, lang]}: ranks must be finite numbers; "
            "check the scores the ranks came from for NaN or inf"
        )
    negative = array < 0
    if negative.any():
        i, lang = map(int, np.argwhere(negative)[0])
        raise ValueError(
            f"rank of instance {i}, language {lang} is {array[i, lang]}: ranks must be >= 0 "
            "(0 = the gold item came first)"
        )
    return array


def _describe_unreadable(ranks: object, err: Exception) -> str:
    """The error message for input numpy cannot turn into a 2-D float array (ragged or not numbers)."""
    if isinstance(ranks, Sequence) and not isinstance(ranks, (str, bytes)):
        lengths = []
        for row in ranks:
            if not isinstance(row, (Sequence, np.ndarray)) or isinstance(row, (str, bytes)):
                return f"ranks must be lists of numbers, got {row!r} ({err}): pass e.g. [[0, 2], [1, 1]]"
            lengths.append(len(row))
        if len(set(lengths)) > 1:
            first = lengths[0]
            i = next(index for index, n in enumerate(lengths) if n != first)
            return (
                f"ragged ranks: instance 0 has {first} languages but instance {i} has {lengths[i]}; every "
                "instance needs one rank per language, in the same language order"
            )
    return f"ranks must be a [N, K] list or array of numbers ({err}): pass e.g. [[0, 2, 0, 6], [1, 1, 1, 1]]"


def rank_spread_per_instance(
    ranks: Sequence[Sequence[float]] | np.ndarray, kind: SpreadKind = "std"
) -> np.ndarray:
    """Per-instance spread of the gold rank across languages: ranks ``[N, K]`` -> ``[N]``.

    ``kind="std"`` is the population standard deviation (ddof = 0), ``kind="variance"`` its square.
    """
    array = validate_ranks(ranks)
    if kind == "std":
        return array.std(axis=1)
    if kind == "variance":
        return array.var(axis=1)
    raise ValueError(f"kind must be one of {SPREAD_KINDS}, got {kind!r}")


def mean_rank_variance(ranks: Sequence[Sequence[float]] | np.ndarray, kind: SpreadKind = "std") -> float:
    """MRV: the mean over instances of :func:`rank_spread_per_instance`; ranks ``[N, K]``, K >= 2.

    >>> round(mean_rank_variance([[0, 2, 0, 6], [1, 1, 1, 1]]), 4)  # (sqrt(6) + 0) / 2
    1.2247
    """
    return float(rank_spread_per_instance(ranks, kind).mean())


def mean_rank_per_language(ranks: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Mean gold rank of each language: ranks ``[N, K]`` -> ``[K]`` (same base as the input ranks)."""
    return validate_ranks(ranks, min_languages=1).mean(axis=0)
