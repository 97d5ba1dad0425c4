"""``CCRTrainer``: a transformers Trainer for :class:`~modeling_ccr.training.CCRForPreTraining`.

The model computes the objective (contrastive + ITM + MLM); the Trainer logs each component, clamps the
temperature and gives the parameter groups their learning rates.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from transformers import Trainer, TrainerCallback

from .objective import COMPONENTS
from .pretraining_model import CCRForPreTraining

# Parameters that start from scratch (the rest come from pretrained towers) get a larger learning rate,
# as the paper gives new parameters twice the base rate. The retrieval projections and the temperature,
# single linear maps on pretrained features, take a larger one still; the cross-attention and the heads
# collapse to a constant ITM prediction at ten times the base rate (measured on the embedded benchmark).
# The image tower's top blocks, fine-tuned on a new domain, take a rate of their own. A residual ITM head's
# scale and bias of the similarity (two scalars that calibrate it) learn at the projections' rate.
PROJECTION_MARKERS = ("vision_projection", "text_projection", "temperature", "itm_head.log_similarity_scale",
                      "itm_head.similarity_bias")
NEW_PARAMETER_MARKERS = ("itm_head", "mlm_head", "crossattention")
VISION_MARKERS = ("vision_model.",)


def parameter_group(name: str) -> str:
    """``"projection"``, ``"new"`` (other weights initialised from scratch), ``"vision"`` (the image
    tower) or ``"pretrained"`` (the text tower and the fusion layers' self-attention and feed-forward)."""
    if any(marker in name for marker in PROJECTION_MARKERS):
        return "projection"
    if any(marker in name for marker in NEW_PARAMETER_MARKERS):
        return "new"
    if any(marker in name for marker in VISION_MARKERS):
        return "vision"
    return "pretrained"


class TemperatureClampCallback(TrainerCallback):
    """Clamp the learnable temperature into ``[temperature_min, temperature_max]`` after every optimiser step."""

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None:
            ccr = getattr(model, "ccr", model)  # CCRForPreTraining or a bare CCRModel
            with torch.no_grad():
                ccr.temperature.clamp_(ccr.config.temperature_min, ccr.config.temperature_max)


class CCRTrainer(Trainer):
    """Trainer for :class:`CCRForPreTraining`.

    ``compute_loss`` runs ``model(**batch)``, its output a dict whatever the config's ``return_dict``; each
    component of the output (``contrastive``, ``itm``, ``mlm``) is averaged between logging steps and logged
    as ``loss_<name>``; the temperature and the ITM diagnostics (``itm_accuracy``, ``itm_negatives_same_text``)
    under their own names, so a head stuck at the prior shows in the progress bar's logs. The
    per-batch mean loss is divided by the gradient-accumulation steps by the Trainer
    (``loss_is_scaled_for_ga = False``). The learning rate of each parameter group (see
    :func:`parameter_group`) is the base rate times ``args.new_parameter_lr_multiplier``,
    ``args.projection_lr_multiplier`` or ``args.vision_lr_multiplier`` (1 where ``args`` lacks them).
    """

    loss_is_scaled_for_ga = False

    def __init__(self, model: CCRForPreTraining, args, *more, **kwargs):
        super().__init__(model, args, *more, **kwargs)
        self.lr_multipliers = {
            "pretrained": 1.0,
            "new": float(getattr(args, "new_parameter_lr_multiplier", 1.0)),
            "projection": float(getattr(args, "projection_lr_multiplier", 1.0)),
            "vision": float(getattr(args, "vision_lr_multiplier", 1.0)),
        }
        self.model_accepts_loss_kwargs = False  # transformers 4.x reads this instead of loss_is_scaled_for_ga
        self._component_sums: dict[str, float] = defaultdict(float)
        self._component_count = 0
        self.add_callback(TemperatureClampCallback())

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs, return_dict=True)
        if model.training:
            for name, value in outputs.components().items():
                self._component_sums[f"loss_{name}" if name in COMPONENTS else name] += float(value.detach())
            for name, value in outputs.diagnostics().items():
                self._component_sums[name] += float(value)
            self._component_count += 1
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._component_count:
            for key, total in self._component_sums.items():
                logs[key] = round(total / self._component_count, 5)
            self._component_sums.clear()
            self._component_count = 0
        super().log(logs, *args, **kwargs)

    def create_optimizer(self, model=None):
        """AdamW (or ``args.optim``) with a group per (parameter group, weight decay or not)."""
        if self.optimizer is not None:
            return self.optimizer
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        groups: dict[tuple[str, bool], list[torch.nn.Parameter]] = defaultdict(list)
        for name, parameter in opt_model.named_parameters():
            if parameter.requires_grad:
                groups[(parameter_group(name), name in decay)].append(parameter)
        param_groups = [
            {
                "params": params,
                "weight_decay": self.args.weight_decay if with_decay else 0.0,
                "lr": self.args.learning_rate * self.lr_multipliers[group],
            }
            for (group, with_decay), params in sorted(groups.items())
        ]
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        self.optimizer = optimizer_cls(param_groups, **optimizer_kwargs)
        return self.optimizer
