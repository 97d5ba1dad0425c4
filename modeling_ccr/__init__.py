"""ccr-1tok: cross-lingual cross-modal retrieval with 1-to-K contrastive learning.

Importing the package registers the CCR classes with the transformers Auto classes, so an installed
user loads saved models without ``trust_remote_code``; ``save_pretrained`` also writes ``auto_map`` and
the code files, so the same folders load with ``trust_remote_code=True`` where the package is absent.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForZeroShotImageClassification,
    AutoProcessor,
)

from .configuration_ccr import CCRConfig
from .configuration_efficientnet_lite import EfficientNetLiteConfig
from .losses import OneToKContrastiveLoss, one_to_k_contrastive_loss
from .modeling_ccr import CCRModel, CCROutput, CCRPreTrainedModel
from .modeling_efficientnet_lite import EfficientNetLiteForImageClassification, EfficientNetLiteModel
from .processing_ccr import CCRProcessor

__version__ = "0.1.0"

AutoConfig.register(CCRConfig.model_type, CCRConfig, exist_ok=True)
AutoModel.register(CCRConfig, CCRModel, exist_ok=True)
AutoModelForZeroShotImageClassification.register(CCRConfig, CCRModel, exist_ok=True)
AutoProcessor.register(CCRConfig, CCRProcessor, exist_ok=True)
AutoConfig.register(EfficientNetLiteConfig.model_type, EfficientNetLiteConfig, exist_ok=True)
AutoModel.register(EfficientNetLiteConfig, EfficientNetLiteModel, exist_ok=True)
AutoModelForImageClassification.register(EfficientNetLiteConfig, EfficientNetLiteForImageClassification, exist_ok=True)

CCRConfig.register_for_auto_class()
CCRModel.register_for_auto_class("AutoModel")
CCRProcessor.register_for_auto_class("AutoProcessor")

__all__ = [
    "CCRConfig",
    "CCRModel",
    "CCROutput",
    "CCRPreTrainedModel",
    "CCRProcessor",
    "EfficientNetLiteConfig",
    "EfficientNetLiteForImageClassification",
    "EfficientNetLiteModel",
    "OneToKContrastiveLoss",
    "one_to_k_contrastive_loss",
]
