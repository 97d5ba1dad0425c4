"""``CCRTrainer``: a transformers Trainer whose loss is the CCR objective (contrastive + ITM + MLM)."""

from __future__ import annotations

from collections import defaultdict

import torch
from transformers import Trainer, TrainerCallback

from .objective import CCRObjective

# Parameters that start from scratch (the rest come from pretrained towers) get a larger learning rate,
# as the paper gives new parameters twice the base rate. The retrieval projections and the temperature,
# single linear maps on pretrained features, take a larger one still; the cross-attention and the heads
# collapse to a constant ITM prediction at ten times the base rate (measured on the embedded benchmark).
PROJECTION_MARKERS = ("vision_projection", "text_projection", "temperature")
NEW_PARAMETER_MARKERS = ("itm_head", "mlm_head", "crossattention")


def parameter_group(name: str) -> str:
    """``"projection"``, ``"new"`` (other weights initialised from scratch) or ``"pretrained"``."""
    if any(marker in name for marker in PROJECTION_MARKERS):
        return "projection"
    if any(marker in name for marker in NEW_PARAMETER_MARKERS):
        return "new"
    return "pretrained"


class TemperatureClampCallback(TrainerCallback):
    """Clamp the learnable temperature into ``[temperature_min, temperature_max]`` after every optimiser step."""

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None:
            with torch.no_grad():
                model.temperature.clamp_(model.config.temperature_min, model.config.temperature_max)


class CCRTrainer(Trainer):
    """Trainer for CCR models.

    ``compute_loss`` runs ``model(**batch, objective=objective)`` and returns the weighted sum; each
    component (``contrastive``, ``itm``, ``mlm``) and the temperature are averaged between logging steps
    and logged as ``loss_<name>``. The per-batch mean loss is divided by the gradient-accumulation steps by
    the Trainer (``loss_is_scaled_for_ga = False``). ``new_parameter_lr_multiplier`` and
    ``projection_lr_multiplier`` scale the learning rate of the parameters that start from scratch (see
    :func:`parameter_group`).
    """

    loss_is_scaled_for_ga = False

    def __init__(
        self,
        *args,
        objective: CCRObjective,
        new_parameter_lr_multiplier: float = 2.0,
        projection_lr_multiplier: float = 10.0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.objective = objective
        self.lr_multipliers = {"pretrained": 1.0, "new": float(new_parameter_lr_multiplier),
                               "projection": float(projection_lr_multiplier)}
        self.model_accepts_loss_kwargs = False  # transformers 4.x reads this instead of loss_is_scaled_for_ga
        self._component_sums: dict[str, float] = defaultdict(float)
        self._component_count = 0
        self.add_callback(TemperatureClampCallback())

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        parts = model(**inputs, objective=self.objective)
        if model.training:
            for name, value in parts.items():
                if name != "loss":
                    self._component_sums[name] += float(value.detach())
            self._component_count += 1
        return (parts["loss"], parts) if return_outputs else parts["loss"]

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._component_count:
            for name, total in self._component_sums.items():
                key = name if name == "temperature" else f"loss_{name}"
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
