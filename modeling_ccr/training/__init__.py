"""Training CCR models: the objective, the data collator, the Trainer subclass and ``ccr train``."""

from .collator import CCRDataCollator
from .objective import LOSS_STYLES, CCRObjective
from .pretraining_model import CCRForPreTraining, CCRPreTrainingOutput
from .run import CCRTrainingArguments, ModelArguments, set_trainable, train
from .trainer import CCRTrainer, TemperatureClampCallback, parameter_group

__all__ = [
    "LOSS_STYLES",
    "CCRDataCollator",
    "CCRForPreTraining",
    "CCRObjective",
    "CCRPreTrainingOutput",
    "CCRTrainer",
    "CCRTrainingArguments",
    "ModelArguments",
    "TemperatureClampCallback",
    "parameter_group",
    "set_trainable",
    "train",
]
