"""MRV (mean rank variance): the cross-lingual consistency metric of CCR^k, as an ``evaluate`` module.

Load it with ``evaluate.load("mrv")`` (installed with ccr-1tok), ``evaluate.load("path/to/evaluate_mrv")``
or ``evaluate.load("<org>/mrv")`` once published as a Space. The maths lives in ``rank_variance.py``
beside this file (``evaluate`` copies it along as a relative import); users without ``evaluate`` call
``evaluate_mrv.mean_rank_variance`` directly.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

from .citation import PAPER_CITATION
from .rank_variance import check_kind, mean_rank_per_language, mean_rank_variance, validate_ranks

_CITATION = PAPER_CITATION + "\n"

_DESCRIPTION = """\
MRV (mean rank variance) measures how consistently a cross-lingual cross-modal retrieval model ranks the
gold item across K languages. For each instance it takes the population standard deviation (ddof = 0)
of the gold item's rank over the K languages, then averages over instances. 0 means every language put
the gold item at the same rank; lower is better. Read it beside Recall@K and mean rank: a model that
ranks a few "hub" items high for every query can score a low MRV at chance recall.
"""

_KWARGS_DESCRIPTION = """
Args:
    ranks (`list` of `list` of `float`): per instance, the rank of the gold item in each of K >= 2
        languages, in the same language order for every instance (0-based: 0 = retrieved first).
        Ranks must be finite and >= 0; ragged lists, NaN, negative ranks, booleans, strings and K = 1
        raise ValueError.
    kind (`str`, defaults to `"std"`): `"std"` averages the per-instance population standard deviation
        (the published scale, e.g. 7.89); `"variance"` averages the true variance (the square of it).
    per_language (`bool`, defaults to `False`): also return the mean rank of each language.
    languages (`list` of `str`, *optional*): names of the K languages; when given, the per-language mean
        ranks are a dict keyed by these names (K distinct non-empty strings).
Raises:
    ValueError: for any malformed argument, naming the problem and the fix.
Returns:
    mrv (`float`): the mean over instances of the per-instance spread of the gold rank.
    mean_rank_per_language (`list` of `float` or `dict`): only with `per_language=True`.
Examples:
    >>> mrv = evaluate.load("mrv")
    >>> mrv.compute(ranks=[[0, 2, 0, 6], [1, 1, 1, 1]])  # (sqrt(6) + 0) / 2
    {'mrv': 1.224744871391589}
    >>> mrv.compute(ranks=[[0, 2, 0, 6], [1, 1, 1, 1]], kind="variance", per_language=True,
    ...             languages=["en", "de", "ja", "zh"])
    {'mrv': 3.0, 'mean_rank_per_language': {'en': 0.5, 'de': 1.5, 'ja': 0.5, 'zh': 3.5}}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MRV(evaluate.Metric):
    """Mean rank variance over K languages (Nie et al., KDD 2024)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"ranks": datasets.Sequence(datasets.Value("float64"))}),
            reference_urls=["https://arxiv.org/abs/2406.18254", "https://github.com/BUAADreamer/CCRK"],
        )

    def compute(self, *, predictions=None, references=None, **kwargs) -> dict | None:
        """``evaluate.Metric.compute``, with every argument checked before any rank is stored, so that bad
        input raises ValueError naming the problem (never an Arrow or type error from the feature encoder)."""
        _check_options(kwargs.get("kind", "std"), kwargs.get("per_language", False), kwargs.get("languages"))
        return super().compute(predictions=predictions, references=references, **kwargs)

    def add_batch(self, *, predictions=None, references=None, **kwargs) -> None:
        """``evaluate.Metric.add_batch`` of ``ranks`` ``[n, K]``, checked as ``compute`` checks them."""
        if kwargs.get("ranks") is not None:
            validate_ranks(kwargs["ranks"])
        super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs) -> None:
        """``evaluate.Metric.add`` of one instance's ``ranks`` ``[K]``, checked as ``compute`` checks them."""
        if kwargs.get("ranks") is not None:
            validate_ranks([kwargs["ranks"]])
        super().add(prediction=prediction, reference=reference, **kwargs)

    def _compute(
        self,
        ranks: list[list[float]],
        kind: str = "std",
        per_language: bool = False,
        languages: list[str] | None = None,
    ) -> dict:
        array = validate_ranks(ranks)
        if languages is not None and len(languages) != array.shape[1]:
            raise ValueError(
                f"got {len(languages)} language names for ranks in K={array.shape[1]} languages: "
                "give one name per rank column, in the same order"
            )
        result: dict = {"mrv": mean_rank_variance(array, kind=kind)}
        if per_language:
            means = [float(value) for value in mean_rank_per_language(array)]
            result["mean_rank_per_language"] = dict(zip(languages, means, strict=True)) if languages else means
        return result


def _check_options(kind: object, per_language: object, languages: object) -> None:
    """Raises ValueError for a ``kind`` not in SPREAD_KINDS, a ``per_language`` that is not a bool, or
    ``languages`` that are not a list of distinct non-empty strings."""
    check_kind(kind)
    if not isinstance(per_language, (bool, np.bool_)):
        raise ValueError(f"per_language must be True or False, got {per_language!r}")
    if languages is None:
        return
    if not isinstance(languages, (list, tuple)) or not all(isinstance(name, str) and name for name in languages):
        raise ValueError(
            f"languages must be a list of non-empty language names such as ['en', 'de'], got {languages!r}"
        )
    repeated = sorted({name for name in languages if languages.count(name) > 1})
    if repeated:
        raise ValueError(
            f"languages lists {repeated} more than once: give each of the K rank columns its own name, "
            "in the same order as the columns"
        )
