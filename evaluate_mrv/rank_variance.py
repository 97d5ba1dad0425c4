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

import numbers
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
    Booleans, strings and complex numbers, which numpy would turn into numbers silently, are refused.
    Raises ValueError naming the problem and the fix.
    """
    _refuse_non_numbers(ranks)
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


def _is_real_number(value: object) -> bool:
    return isinstance(value, (numbers.Real, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _refuse_non_numbers(ranks: object) -> None:
    """Raises ValueError for ranks numpy would convert without complaint although they are not numbers:
    booleans (True -> 1.0), numeric strings ("3" -> 3.0), complex numbers (imaginary part dropped)."""
    fix = "pass ranks as numbers, e.g. [[0, 2, 0, 6], [1, 1, 1, 1]]"
    if ranks is None or isinstance(ranks, (str, bytes)):
        raise ValueError(f"ranks must be a [N, K] list or array of numbers, got {ranks!r}: {fix}")
    if hasattr(ranks, "__array__") and not isinstance(ranks, (list, tuple)):  # numpy arrays, torch tensors
        kind = np.asarray(ranks).dtype.kind
        if kind in "iuf":
            return
        if kind != "O":
            raise ValueError(f"ranks is an array of dtype {np.asarray(ranks).dtype}, not of numbers: {fix}")
    if not isinstance(ranks, (Sequence, np.ndarray)):
        return  # numpy's own conversion reports it
    for i, row in enumerate(ranks):
        values = row if isinstance(row, (Sequence, np.ndarray)) and not isinstance(row, (str, bytes)) else [row]
        for lang, value in enumerate(values):
            if not _is_real_number(value):
                raise ValueError(
                    f"ranks must be a [N, K] list or array of numbers; the rank of instance {i}, language {lang} "
                    f"is {value!r} ({type(value).__name__}): {fix}"
                )


def check_kind(kind: object) -> None:
    """Raises ValueError unless ``kind`` is one of ``SPREAD_KINDS``."""
    if not isinstance(kind, str) or kind not in SPREAD_KINDS:
        raise ValueError(f"kind must be one of {SPREAD_KINDS}, got {kind!r}")


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
    check_kind(kind)
    array = validate_ranks(ranks)
    return array.std(axis=1) if kind == "std" else array.var(axis=1)


def mean_rank_variance(ranks: Sequence[Sequence[float]] | np.ndarray, kind: SpreadKind = "std") -> float:
    """MRV: the mean over instances of :func:`rank_spread_per_instance`; ranks ``[N, K]``, K >= 2.

    >>> round(mean_rank_variance([[0, 2, 0, 6], [1, 1, 1, 1]]), 4)  # (sqrt(6) + 0) / 2
    1.2247
    """
    return float(rank_spread_per_instance(ranks, kind).mean())


def mean_rank_per_language(ranks: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Mean gold rank of each language: ranks ``[N, K]`` -> ``[K]`` (same base as the input ranks)."""
    return validate_ranks(ranks, min_languages=1).mean(axis=0)
