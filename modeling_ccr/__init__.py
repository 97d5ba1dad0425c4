"""ccr-1tok: cross-lingual cross-modal retrieval with 1-to-K contrastive learning.

Importing the package is light (no torch, no transformers): the public names below load on first use
(PEP 562), and the CCR classes are registered with the transformers Auto classes as soon as transformers
loads those (``modeling_ccr.auto_registration``), so an installed user loads saved models without
``trust_remote_code``; ``save_pretrained`` also writes ``auto_map`` and the code files, so the same folders
load with ``trust_remote_code=True`` where the package is absent.
"""

from __future__ import annotations

from . import auto_registration
from .lazy_exports import lazy_exports

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "CCRConfig": ".configuration_ccr",
    "CCRModel": ".modeling_ccr",
    "CCROutput": ".modeling_ccr",
    "CCRPreTrainedModel": ".modeling_ccr",
    "CCRProcessor": ".processing_ccr",
    "EfficientNetLiteConfig": ".configuration_efficientnet_lite",
    "EfficientNetLiteForImageClassification": ".modeling_efficientnet_lite",
    "EfficientNetLiteModel": ".modeling_efficientnet_lite",
    "OneToKContrastiveLoss": ".losses",
    "one_to_k_contrastive_loss": ".losses",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


auto_registration.install()
