"""Hub cards of ccr-1tok: the model card, the embedded benchmark's dataset card and the two Space cards.

Built on ``huggingface_hub`` (``ModelCard``, ``ModelCardData``, ``EvalResult``, ``DatasetCard``) and the
Jinja templates in ``templates/``. Every number a card shows is read from a ``ccr evaluate`` report or a
``training_run.json``; none is written by hand.
"""

from .dataset_card import benchmark_card
from .model_card import eval_results_from_report, model_card, report_metrics
from .space_cards import demo_space_card, metric_space_card

__all__ = [
    "benchmark_card",
    "demo_space_card",
    "eval_results_from_report",
    "metric_space_card",
    "model_card",
    "report_metrics",
]
