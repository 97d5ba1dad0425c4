"""Hub cards of ccr-1tok: the model card, the embedded benchmark's dataset card and the two Space cards.

Built on ``huggingface_hub`` (``ModelCard``, ``ModelCardData``, ``EvalResult``, ``DatasetCard``) and the
Jinja templates in ``templates/``. Every number a card shows is read from a ``ccr evaluate`` report or a
``training_run.json``; none is written by hand. The model card renders one :class:`ModelFacts` record
(:func:`model_facts`), so no sentence of it contradicts another.
"""

from .dataset_card import benchmark_card
from .model_card import (
    HubLink,
    ModelFacts,
    TrainingRecipe,
    card_repo_ids,
    eval_results_from_report,
    model_card,
    model_facts,
    report_metrics,
)
from .space_cards import demo_space_card, metric_space_card

__all__ = [
    "HubLink",
    "ModelFacts",
    "TrainingRecipe",
    "benchmark_card",
    "card_repo_ids",
    "demo_space_card",
    "eval_results_from_report",
    "metric_space_card",
    "model_card",
    "model_facts",
    "report_metrics",
]
