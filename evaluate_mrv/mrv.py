"""MRV (mean rank variance): the cross-lingual consistency metric of CCR^k, as an ``evaluate`` module.

Load it with ``evaluate.load("mrv")`` (installed with ccr-1tok), ``evaluate.load("path/to/evaluate_mrv")``
or ``evaluate.load("<org>/mrv")`` once published as a Space. The maths lives in ``rank_variance.py``
beside this file (``evaluate`` copies it along as a relative import); users without ``evaluate`` call
``evaluate_mrv.mean_rank_variance`` directly.
"""

from __future__ import annotations

import datasets
import evaluate

from .rank_variance import SPREAD_KINDS, mean_rank_per_language, mean_rank_variance, validate_ranks

_CITATION = """\
@inproceedings{nie2024ccrk,
  title     = {Improving the Consistency in Cross-Lingual Cross-Modal Retrieval
               with 1-to-K Contrastive Learning},
  author    = {Nie, Zhijie and Zhang, Richong and Feng, Zhangchi and Huang, Hailang and Liu, Xudong},
  booktitle = {Proceedings of the 30th ACM SIGKDD Conference on Knowledge Discovery and Data Mining},
  year      = {2024},
  url       = {https://arxiv.org/abs/2406.18254}
}
"""

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
        Ranks must be finite and >= 0; ragged lists, NaN, negative ranks and K = 1 raise ValueError.
    kind (`str`, defaults to `"std"`): `"std"` averages the per-instance population standard deviation
        (the published scale, e.g. 7.89); `"variance"` averages the true variance (the square of it).
    per_language (`bool`, defaults to `False`): also return the mean rank of each language.
    languages (`list` of `str`, *optional*): names of the K languages; when given, the per-language mean
        ranks are a dict keyed by these names (its length must be K).
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

    def _compute(
        self,
        ranks: list[list[float]],
        kind: str = "std",
        per_language: bool = False,
        languages: list[str] | None = None,
    ) -> dict:
        if kind not in SPREAD_KINDS:
            raise ValueError(f"kind must be one of {SPREAD_KINDS}, got {kind!r}")
        array = validate_ranks(ranks)
        if languages is not None and len(languages) != array.shape[1]:
            raise ValueError(
                f"got {len(languages)} language names for ranks in K={array.shape[1]} languages: "
                "give one name per rank column, in the same order"
            )
        result: dict = {"mrv": mean_rank_variance(array, kind=kind)}
        if per_language:
            means = [float(value) for value in mean_rank_per_language(array)]
            named = dict(zip(languages, means, strict=True)) if languages else None
            result["mean_rank_per_language"] = named or means
        return result
