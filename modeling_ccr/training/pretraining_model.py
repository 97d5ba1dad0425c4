"""``CCRForPreTraining``: a CCR model with its pre-training objective and MLM head, as a head model.

Like ``BertForPreTraining`` or ``BlipForImageTextRetrieval``: ``forward(pixel_values, input_ids,
attention_mask, ...)`` computes the whole objective (contrastive + ITM + MLM, see
:class:`~modeling_ccr.training.objective.CCRObjective`) and returns a typed output with every component.
The retrieval model itself is ``model.ccr`` (a :class:`~modeling_ccr.CCRModel`, with the ITM head that
re-ranking uses); the masked-language-modelling head, which only pre-training uses, is ``model.mlm_head``.

Weights: this model's state dict holds the CCR model under ``ccr.`` and the MLM head under ``mlm_head.``. A
CCR model folder (:meth:`CCRForPreTraining.save_ccr_model`: ``ccr build-default``, ``ccr train``, ``ccr
convert-ccrk``) holds the CCR model's weights under their own names and the head's beside them under
``mlm_head.``, as when ``CCRModel`` held the head, so folders saved before and after it moved here are alike.
``CCRForPreTraining.from_pretrained`` loads the model and the head from such a folder or from a checkpoint
of this class (transformers 5 adds or drops the base-model prefix ``ccr.`` key by key); ``CCRModel`` and
``AutoModel`` load the CCR model from either and leave the head out. A checkpoint of this class saved while
``CCRModel`` held the head names it ``ccr.mlm_head.``: ``from_pretrained`` drops the prefix of those keys
too, and ``load_state_dict`` (the Trainer resuming a run) renames them (:func:`pretraining_key`).
transformers 4.x adds or drops the prefix for all of a checkpoint's keys or none, and refuses a model folder
here (its ``mlm_head.*`` keys are the head model's own): there, ``from_ccr_model(CCRModel.from_pretrained(
folder))`` trains with a new MLM head.

Not part of the remote-code set: the objective uses the loss modules of this package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from ..configuration_ccr import CCRConfig
from ..modeling_ccr import CCRModel, CCRPreTrainedModel, _load_tower
from .objective import CCRObjective

BASE_PREFIX = f"{CCRPreTrainedModel.base_model_prefix}."  # the CCR model's weights in this model's state dict
HEAD_PREFIX = "mlm_head."  # the MLM head's, here and in a model folder


class CCRMLMHead(nn.Module):
    """RoBERTa-style LM head: dense -> GELU -> LayerNorm -> decoder tied to the word embeddings + bias."""

    def __init__(self, config: CCRConfig):
        super().__init__()
        text = config.text_config
        self.dense = nn.Linear(text.hidden_size, text.hidden_size)
        self.layer_norm = nn.LayerNorm(text.hidden_size, eps=text.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(text.vocab_size))

    def forward(self, hidden: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        """hidden ``[M, L, H]``, word_embeddings ``[V, H]`` -> logits ``[M, L, V]``."""
        return self.layer_norm(F.gelu(self.dense(hidden))) @ word_embeddings.t() + self.bias


def pretraining_key(key: str) -> str:
    """The name in :class:`CCRForPreTraining`'s state dict of a weight named ``key`` in a CCR model folder
    (the CCR model's own names, ``mlm_head.*``) or in a checkpoint of that class, saved before the MLM head
    moved out of ``CCRModel`` (``ccr.mlm_head.*``) or after (``ccr.*``, ``mlm_head.*``)."""
    if key.startswith(BASE_PREFIX + HEAD_PREFIX):
        return key.removeprefix(BASE_PREFIX)
    return key if key.startswith((BASE_PREFIX, HEAD_PREFIX)) else BASE_PREFIX + key


def _rename_loaded_keys(module, state_dict, prefix, *args) -> None:
    """``load_state_dict`` pre-hook of :class:`CCRForPreTraining`: its keys in ``state_dict`` (those under
    ``prefix``) renamed by :func:`pretraining_key`, in place."""
    for key in [key for key in state_dict if key.startswith(prefix)]:
        renamed = prefix + pretraining_key(key.removeprefix(prefix))
        if renamed != key:
            state_dict[renamed] = state_dict.pop(key)


@dataclass
class CCRPreTrainingOutput(ModelOutput):
    """Output of :meth:`CCRForPreTraining.forward` (0-dim tensors; a skipped component is None and is left
    out of the output's keys).

    Attributes:
        loss: the weighted sum of the components.
        contrastive_loss: the contrastive term (1-to-K or the baseline style of the objective).
        itm_loss: hard-negative image-text matching cross-entropy over the 3N pairs.
        mlm_loss: cross-modal masked language modelling cross-entropy.
        temperature: the clamped temperature used in this step (detached).
        itm_accuracy: the share of the ITM pairs the head classifies right (2/3 for a head stuck at the prior).
        itm_negatives_same_text: the share of the hard negatives whose text reads as the positive caption.
    """

    loss: torch.Tensor | None = None
    contrastive_loss: torch.Tensor | None = None
    itm_loss: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    temperature: torch.Tensor | None = None
    itm_accuracy: torch.Tensor | None = None
    itm_negatives_same_text: torch.Tensor | None = None

    def components(self) -> dict[str, torch.Tensor]:
        """The computed components by name (``contrastive``, ``itm``, ``mlm``, ``temperature``), for logging."""
        parts = {"contrastive": self.contrastive_loss, "itm": self.itm_loss, "mlm": self.mlm_loss,
                 "temperature": self.temperature}
        return {name: value for name, value in parts.items() if value is not None}

    def diagnostics(self) -> dict[str, torch.Tensor]:
        """The step's ITM diagnostics by name (``itm_accuracy``, ``itm_negatives_same_text``), for logging."""
        parts = {"itm_accuracy": self.itm_accuracy, "itm_negatives_same_text": self.itm_negatives_same_text}
        return {name: value for name, value in parts.items() if value is not None}


class CCRForPreTraining(CCRPreTrainedModel):
    """CCR model plus its pre-training objective and MLM head.

    Args:
        config: the :class:`CCRConfig` of the model.
        objective: the :class:`CCRObjective` that ``forward`` computes. It holds what the config does not
            (loss style, weights, the tokenizer's mask and special ids, the sampling seed), so it is passed
            in: ``CCRForPreTraining.from_pretrained(folder, objective=CCRObjective(...))``.

    Example:
        >>> objective = CCRObjective(mask_token_id=tok.mask_token_id, special_token_ids=tok.all_special_ids,
        ...                          vocab_size=len(tok))
        >>> model = CCRForPreTraining.from_pretrained("runs/main/model", objective=objective)
        >>> output = model(**collator(rows))  # pixel_values [N, 3, H, W], image-major input_ids [N*K, L]
        >>> output.loss.backward()
    """

    def __init__(self, config: CCRConfig, objective: CCRObjective | None = None):
        super().__init__(config)
        self.ccr = CCRModel(config)
        self.mlm_head = CCRMLMHead(config)
        self.objective = objective
        self.register_load_state_dict_pre_hook(_rename_loaded_keys)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, CCRMLMHead):
            nn.init.zeros_(module.bias)

    @classmethod
    def from_ccr_model(cls, model: CCRModel, objective: CCRObjective | None = None) -> CCRForPreTraining:
        """The head model around an existing :class:`CCRModel` (shared, not copied), with a new MLM head
        initialised as a new model's (:meth:`from_backbones` starts it from a text backbone's LM head)."""
        with torch.device("meta"):  # the placeholder model built by __init__ is replaced at once
            wrapper = cls(model.config, objective)
        wrapper.ccr = model
        head = CCRMLMHead(model.config).to(device=model.device, dtype=model.dtype)
        head.apply(wrapper._init_weights)
        wrapper.mlm_head = head
        return wrapper

    @classmethod
    def from_backbones(
        cls,
        vision: str | PreTrainedModel,
        text: str | PreTrainedModel,
        text_layers: list[int] | None = None,
        fusion_layers: list[int] | None = None,
        objective: CCRObjective | None = None,
        **config_kwargs,
    ) -> CCRForPreTraining:
        """:meth:`CCRModel.from_backbones` (the arguments are its own) with an MLM head: a text tower that
        carries a masked-LM head (a BertForMaskedLM, RobertaForMaskedLM or XLMRobertaForMaskedLM model or
        folder, or a BertForPreTraining one) starts it, as the authors start theirs from XLM-R's LM head; a
        base model leaves it freshly initialised. An LM head that computes something else than
        :class:`CCRMLMHead` (another activation, an untied decoder) raises a ValueError before the CCR model
        is built.
        """
        text_tower = _load_tower(text, masked_lm=True)  # loaded once: the text layers and the LM head
        head = _masked_lm_head_state(text_tower)
        ccr = CCRModel.from_backbones(vision, text_tower, text_layers, fusion_layers, **config_kwargs)
        model = cls.from_ccr_model(ccr, objective)
        if head is not None:
            model.mlm_head.load_state_dict(head)
        return model

    def mlm_logits(self, fused_states: torch.Tensor) -> torch.Tensor:
        """Fusion states ``[M, L, H]`` (:meth:`CCRModel.fuse`) -> vocabulary logits ``[M, L, V]``, the decoder
        tied to the CCR model's word embeddings."""
        return self.mlm_head(fused_states, self.ccr.text_model.get_input_embeddings().weight)

    def model_folder_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights as a CCR model folder holds them: the CCR model's under their own names, the MLM
        head's under ``mlm_head.`` (this model's state dict without the ``ccr.`` prefix). ``load_state_dict``
        takes them back."""
        return {key.removeprefix(BASE_PREFIX): value for key, value in self.state_dict().items()}

    def save_ccr_model(self, save_directory: str | os.PathLike) -> None:
        """Save ``ccr`` as a CCR model folder (its ``save_pretrained``: config, remote code, weights) whose
        weights also hold the MLM head (:meth:`model_folder_state_dict`): ``AutoModel`` and
        ``CCRModel.from_pretrained`` load the CCR model from it, ``CCRForPreTraining.from_pretrained``
        both."""
        self.ccr.save_pretrained(save_directory, state_dict=self.model_folder_state_dict())

    def forward(
        self,
        pixel_values: torch.Tensor | None,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        image_ids: list[str] | None = None,
        text_image_index: torch.Tensor | None = None,
        text_language_index: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> CCRPreTrainingOutput | tuple:
        """pixel_values ``[N, 3, H, W]`` and image-major texts ``input_ids`` / ``attention_mask`` ``[N*K, L]``
        (row ``j*K + k`` is caption k of image j) -> the objective's components.

        ``image_ids`` (N strings, from :class:`~modeling_ccr.training.CCRDataCollator`) key the objective's
        frozen-feature cache when it is on; ``pixel_values`` is None when the cache holds every image.
        ``text_image_index`` / ``text_language_index`` (``[N*K]``, from the processor) only describe the layout
        and are accepted so ``model(**batch)`` works. With ``return_dict=False`` (None:
        ``config.return_dict``) the output is a tuple of the computed components, in the order of
        :class:`CCRPreTrainingOutput`'s fields (``loss`` first; a skipped one is left out).
        """
        if self.objective is None:
            raise ValueError(
                "CCRForPreTraining has no objective: load it with "
                "CCRForPreTraining.from_pretrained(folder, objective=CCRObjective(...))"
            )
        parts = self.objective(self.ccr, pixel_values, input_ids, attention_mask, image_ids=image_ids,
                               mlm_logits=self.mlm_logits)
        output = CCRPreTrainingOutput(
            loss=parts["loss"],
            contrastive_loss=parts["contrastive"],
            itm_loss=parts.get("itm"),
            mlm_loss=parts.get("mlm"),
            temperature=parts.get("temperature"),
            itm_accuracy=parts.get("itm_accuracy"),
            itm_negatives_same_text=parts.get("itm_negatives_same_text"),
        )
        use_dict = return_dict if return_dict is not None else self.config.return_dict
        return output if use_dict else output.to_tuple()


# The LM heads that CCRMLMHead can take over, as (dense, LayerNorm) in the head model; the decoder
# (``get_output_embeddings()``) holds the bias. Both compute dense -> GELU -> LayerNorm -> decoder tied
# to the word embeddings + bias, as CCRMLMHead does.
_MASKED_LM_HEADS = (
    ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm"),  # BERT
    ("lm_head.dense", "lm_head.layer_norm"),  # RoBERTa, XLM-R
)


def _masked_lm_head_state(model: PreTrainedModel) -> dict[str, torch.Tensor] | None:
    """The BERT or RoBERTa-family LM head of ``model`` as a ``CCRMLMHead`` state dict; None without one.

    Raises ValueError when the head does not compute what CCRMLMHead computes (another activation
    than GELU, or a decoder that is not tied to the word embeddings).
    """
    modules = dict(model.named_modules())
    for dense, layer_norm in _MASKED_LM_HEADS:
        if dense not in modules or layer_norm not in modules:
            continue
        activation = getattr(model.config, "hidden_act", "gelu") if dense.startswith("cls.") else "gelu"
        decoder = model.get_output_embeddings()
        tied = decoder is not None and torch.equal(decoder.weight, model.get_input_embeddings().weight)
        if activation != "gelu" or not tied:
            raise ValueError(
                f"the text backbone's LM head ({dense.split('.')[0]}) uses activation {activation!r} and "
                f"{'a tied' if tied else 'an untied'} decoder; CCR's MLM head is dense -> GELU -> LayerNorm -> "
                "decoder tied to the word embeddings: pass the base model (model.base_model) to start the "
                "MLM head fresh"
            )
        return {
            "dense.weight": modules[dense].weight, "dense.bias": modules[dense].bias,
            "layer_norm.weight": modules[layer_norm].weight, "layer_norm.bias": modules[layer_norm].bias,
            "bias": decoder.bias,
        }  # fmt: skip
    return None
