"""``CCRForPreTraining``: a CCR model with its pre-training objective as a head model.

Like ``BertForPreTraining`` or ``BlipForImageTextRetrieval``: ``forward(pixel_values, input_ids,
attention_mask, ...)`` computes the whole objective (contrastive + ITM + MLM, see
:class:`~modeling_ccr.training.objective.CCRObjective`) and returns a typed output with every component.
The retrieval model itself is ``model.ccr`` (a :class:`~modeling_ccr.CCRModel`); its weights are stored
under the prefix ``ccr.``, so ``CCRForPreTraining.from_pretrained`` loads a plain CCR model folder and
``CCRModel.from_pretrained`` loads a checkpoint of this class.

Not part of the remote-code set: the objective uses the loss modules of this package.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput

from ..configuration_ccr import CCRConfig
from ..modeling_ccr import CCRModel, CCRPreTrainedModel
from .objective import CCRObjective


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
    """CCR model plus its pre-training objective.

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
        self.objective = objective
        self.post_init()

    @classmethod
    def from_ccr_model(cls, model: CCRModel, objective: CCRObjective | None = None) -> CCRForPreTraining:
        """The head model around an existing :class:`CCRModel` (shared, not copied)."""
        with torch.device("meta"):  # the placeholder model built by __init__ is replaced at once
            wrapper = cls(model.config, objective)
        wrapper.ccr = model
        return wrapper.to(model.device)

    def forward(
        self,
        pixel_values: torch.Tensor | None,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        image_ids: list[str] | None = None,
        text_image_index: torch.Tensor | None = None,
        text_language_index: torch.Tensor | None = None,
    ) -> CCRPreTrainingOutput:
        """pixel_values ``[N, 3, H, W]`` and image-major texts ``input_ids`` / ``attention_mask`` ``[N*K, L]``
        (row ``j*K + k`` is caption k of image j) -> the objective's components.

        ``image_ids`` (N strings, from :class:`~modeling_ccr.training.CCRDataCollator`) key the objective's
        frozen-feature cache when it is on; ``pixel_values`` is None when the cache holds every image.
        ``text_image_index`` / ``text_language_index`` (``[N*K]``, from the processor) only describe the layout
        and are accepted so ``model(**batch)`` works.
        """
        if self.objective is None:
            raise ValueError(
                "CCRForPreTraining has no objective: load it with "
                "CCRForPreTraining.from_pretrained(folder, objective=CCRObjective(...))"
            )
        parts = self.objective(self.ccr, pixel_values, input_ids, attention_mask, image_ids=image_ids)
        return CCRPreTrainingOutput(
            loss=parts["loss"],
            contrastive_loss=parts["contrastive"],
            itm_loss=parts.get("itm"),
            mlm_loss=parts.get("mlm"),
            temperature=parts.get("temperature"),
            itm_accuracy=parts.get("itm_accuracy"),
            itm_negatives_same_text=parts.get("itm_negatives_same_text"),
        )
