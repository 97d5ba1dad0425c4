"""Training CCR models: the objective, the data collator, the Trainer subclass and ``ccr train``."""

from .collator import CCRDataCollator, check_languages
from .objective import LOSS_STYLES, CCRObjective
from .run import TrainSettings, set_trainable, train
from .trainer import CCRTrainer, TemperatureClampCallback, parameter_group

__all__ = [
    "LOSS_STYLES",
    "CCRDataCollator",
    "CCRObjective",
    "CCRTrainer",
    "TemperatureClampCallback",
    "TrainSettings",
    "check_languages",
    "parameter_group",
    "set_trainable",
    "train",
]
