"""MRV (mean rank variance), the cross-lingual consistency metric of CCR^k (Nie et al., KDD 2024).

- Plain function, numpy only: ``evaluate_mrv.mean_rank_variance(ranks, kind="std")`` with ranks
  ``[N, K]`` (instance x language), plus ``rank_spread_per_instance`` and ``mean_rank_per_language``.
- ``evaluate`` module: ``evaluate.load("mrv")`` once ccr-1tok is installed (see ``evaluate_cache``),
  ``evaluate.load(os.path.dirname(evaluate_mrv.__file__))``, or ``evaluate.load("<org>/mrv")`` from the
  Hub once this folder is published as a Space (``mrv.py``, ``README.md``, ``app.py``).

The names are imported on first use: a ``.pth`` start-up hook imports this package in every Python
process, so importing it must stay free of numpy and evaluate.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "mean_rank_variance": "rank_variance",
    "mean_rank_per_language": "rank_variance",
    "rank_spread_per_instance": "rank_variance",
    "validate_ranks": "rank_variance",
    "register_in_evaluate_cache": "evaluate_cache",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
