"""Training objectives of CCR, computed on embeddings (model-independent).

Contrastive losses (texts are image-major: row j*K + k is caption k of image j):
    one_to_k_contrastive_loss / OneToKContrastiveLoss      the 1-to-K loss (KCL) of Nie et al.
    cross_modal_contrastive_loss / CrossModalContrastiveLoss    baseline: one language per image
    cross_lingual_contrastive_loss / CrossLingualContrastiveLoss  baseline: English as the pivot
The nn.Module forms gather the global batch across processes with gradients; all share the skeleton
of ``GatheredContrastiveLoss`` (base.py). These functions and modules check their input. The cores they
use, ``one_to_k_loss_terms`` (defined in the remote-code file modeling_ccr.py, which
``CCRModel.forward(return_loss=True)`` uses too) and ``cross_lingual_loss_terms``, trust theirs.

Fusion-encoder objectives, as pure tensor functions:
    sample_itm_triplets, positive_language_weights,   multilingual ITM with hard samples
    build_itm_pairs, itm_loss, itm_accuracy, negatives_sharing_text
    mask_tokens_for_mlm, mlm_loss                     cross-modal MLM (single tokens or skip-gram spans)

Fidelity to the released code (github.com/BUAADreamer/CCRK: models/xvlm.py, models/model_pretrain_mm.py,
dataset/pretrain_dataset_multilingual.py). What matches, and the option that gives it:

- 1-to-K weighting: ``weighting="released"`` (default), (L_i2t + L_t2i / K) / 2; ``"symmetric"`` is the
  paper's formula.
- ITM positive language: ``sample_itm_triplets(positive_language="released")`` (default), weights
  max(p) + 1e-5 - p over the image's own K captions, p = softmax of each image's similarities to all N*K
  texts of the process's batch, max over the whole matrix; ``"hardest"`` draws from softmax(-s) instead.
- Gathering: ``gather_with_grad="released"`` (the same as False) is the released all-gather, whose
  backward keeps only the local slice: the contrastive gradient upstream of the embeddings is 1/W of
  the full-batch one on W processes. The default ``"exact"`` gives the full-batch gradient.
- MLM masking: ``mask_tokens_for_mlm`` with its defaults (``masking=DEFAULT_MLM_MASKING``, "skip-gram";
  mask_probability 0.4 and max_masks 12, ``configuration_ccr.DEFAULT_MLM_PROBABILITY`` and
  ``DEFAULT_MLM_MAX_MASKS``, which a CCR config and ``CCRObjective`` start from; skipgram_probability 0.2,
  skipgram_size 3) is the released span rule and 80/10/10 replacement, as training uses it;
  ``masking="tokens"`` masks single positions.
- MLM head: ``CCRForPreTraining.from_backbones`` starts it from the text backbone's LM head when it has
  one.
- ITM and MLM sampling run on each process's own batch (max(p) above is over the local matrix).
- ITM hard negatives: ``sample_itm_triplets(negative_temperature=None)`` (default) draws them with the
  contrastive temperature, as released (``ccr train --itm_negative_temperature 0``); a temperature of their
  own is this project's option, for easier negatives, and ``ccr train`` draws at 0.3 by default: with the
  released draw (the contrastive temperature falls to 0.02-0.03, so nearly every draw is the single most
  similar item) a paper head stays at its prior over the default's 600 steps (BENCHMARKS.md); a residual head
  (``--itm_residual true``) learns with either draw.
- MLM: ``ccr train`` leaves it off by default (``--mlm_weight 0``; the paper's objective: ``--mlm_weight 1``):
  on the default's 600 steps it delays the ITM head's escape from its prior and lowers its AUCs, with no
  gain in retrieval (BENCHMARKS.md). ``CCRObjective`` weighs every component 1 unless told otherwise.
- ITM loss: ``itm_loss(balanced=False)`` (default) is the released mean over the 3N pairs;
  ``balanced=True`` (``ccr train --itm_balanced``) weighs the positive and negative pairs half each.
- ITM negatives' mix: ``sample_itm_triplets(random_share=0)`` (default, ``ccr train --itm_random_negative_share 0``)
  draws every negative from the hard-negative softmax, as released; a share above 0 draws that share uniformly
  among the same candidates (this project's option).
- ITM head: ``config.itm_residual=False`` (default) is the released head, an MLP on the fusion CLS;
  ``itm_residual=True`` (``ccr train --itm_residual true``) adds ``a * cos(v, w) + b`` of the pair's dual-encoder
  embeddings to its "matches" logit and starts its last layer at zero (this project's option: re-ranking starts
  as the dual encoder's ranking); ``--detach_itm_similarity false`` lets ITM train the embeddings through it.
- Fusion input: every loss trains the image tower through the image tokens, as released; ``ccr train
  --detach_fusion_image_tokens`` (``CCRObjective(detach_fusion_image_tokens=True)``) stops ITM's and MLM's
  gradient there, so the tower trains on the contrastive loss alone.

What differs:

- MLM target count: the release counts [CLS] and [EOS] in the caption length (round(0.4 * (n + 2))
  targets) and can mask the final [EOS]; here n counts only non-special tokens, which alone are masked.
- ITM hard negatives: the release adds 1e-5 to every softmax weight before removing the image's own
  items, a floor that gives every other item a tiny chance; here the draw is the plain softmax over the
  other items.
"""

from ..modeling_ccr import one_to_k_loss_terms
from .base import GATHER_GRADIENTS, GatheredContrastiveLoss
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
    itm_accuracy,
    itm_loss,
    negatives_sharing_text,
    positive_language_weights,
    sample_itm_triplets,
)
from .mlm import DEFAULT_MLM_MASKING, IGNORE_INDEX, MASKING_RULES, mask_tokens_for_mlm, mlm_loss
from .one_to_k import WEIGHTINGS, OneToKContrastiveLoss, one_to_k_contrastive_loss

__all__ = [
    "DEFAULT_MLM_MASKING",
    "GATHER_GRADIENTS",
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
    "itm_accuracy",
    "itm_loss",
    "mask_tokens_for_mlm",
    "mlm_loss",
    "negatives_sharing_text",
    "one_to_k_contrastive_loss",
    "one_to_k_loss_terms",
    "positive_language_weights",
    "sample_caption_languages",
    "sample_itm_triplets",
    "select_captions",
]
