"""Training objectives of CCR, computed on embeddings (model-independent).

Contrastive losses (texts are image-major: row j*K + k is caption k of image j):
    one_to_k_contrastive_loss / OneToKContrastiveLoss      the 1-to-K loss (KCL) of Nie et al.
    cross_modal_contrastive_loss / CrossModalContrastiveLoss    baseline: one language per image
    cross_lingual_contrastive_loss / CrossLingualContrastiveLoss  baseline: English as the pivot
The nn.Module forms gather the global batch across processes with gradients.

Fusion-encoder objectives, as pure tensor functions:
    sample_itm_triplets, positive_language_weights,   multilingual ITM with hard samples
    build_itm_pairs, itm_loss
    mask_tokens_for_mlm, mlm_loss                     cross-modal MLM (single tokens or skip-gram spans)
"""

from .base import GatheredContrastiveLoss
from .cross_lingual import (
    CrossLingualContrastiveLoss,
    cross_lingual_contrastive_loss,
    cross_lingual_loss_terms,
)
from .cross_modal import (
    CrossModalContrastiveLoss,
    cross_modal_contrastive_loss,
    sample_caption_languages,
    select_captions,
)
from .distributed import distributed_rank_and_world_size, gather_rows
from .itm import (
    POSITIVE_LANGUAGE_RULES,
    ItmTriplets,
    build_itm_pairs,
    itm_loss,
    positive_language_weights,
    sample_itm_triplets,
)
from .mlm import IGNORE_INDEX, MASKING_RULES, mask_tokens_for_mlm, mlm_loss
from .one_to_k import WEIGHTINGS, OneToKContrastiveLoss, one_to_k_contrastive_loss, one_to_k_loss_terms

__all__ = [
    "IGNORE_INDEX",
    "MASKING_RULES",
    "POSITIVE_LANGUAGE_RULES",
    "WEIGHTINGS",
    "CrossLingualContrastiveLoss",
    "CrossModalContrastiveLoss",
    "GatheredContrastiveLoss",
    "ItmTriplets",
    "OneToKContrastiveLoss",
    "build_itm_pairs",
    "cross_lingual_contrastive_loss",
    "cross_lingual_loss_terms",
    "cross_modal_contrastive_loss",
    "distributed_rank_and_world_size",
    "gather_rows",
    "itm_loss",
    "mask_tokens_for_mlm",
    "mlm_loss",
    "one_to_k_contrastive_loss",
    "one_to_k_loss_terms",
    "positive_language_weights",
    "sample_caption_languages",
    "sample_itm_triplets",
    "select_captions",
]
