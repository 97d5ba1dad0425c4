"""Training CCR models: the objective, the data collator, the Trainer subclass and ``ccr train``."""

from .collator import CCRDataCollator
from .objective import CCRObjective
from .pretraining_model import CCRForPreTraining, CCRPreTrainingOutput
from .run import CCRTrainingArguments, ModelArguments, set_trainable, train
from .styles import (
    CONTRASTIVE_STYLES,
    LOSS_STYLES,
    ContrastiveStyle,
    StyleOptions,
    register_style,
    style_class,
)
from .trainer import CCRTrainer, TemperatureClampCallback, parameter_group

__all__ = [
    "CONTRASTIVE_STYLES",
    "LOSS_STYLES",
    "CCRDataCollator",
    "CCRForPreTraining",
    "CCRObjective",
    "CCRPreTrainingOutput",
    "CCRTrainer",
    "CCRTrainingArguments",
    "ContrastiveStyle",
    "ModelArguments",
    "StyleOptions",
    "TemperatureClampCallback",
    "parameter_group",
    "register_style",
    "set_trainable",
    "style_class",
    "train",
]
