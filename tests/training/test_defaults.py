"""Each training default has one home: the MLM masking of the masking function, the objective, a CCR config
and ``ccr train`` come from ``configuration_ccr`` (share and cap) and ``losses.mlm`` (the rule)."""

from __future__ import annotations

import inspect

from modeling_ccr.configuration_ccr import DEFAULT_MLM_MAX_MASKS, DEFAULT_MLM_PROBABILITY, CCRConfig
from modeling_ccr.losses import DEFAULT_MLM_MASKING, mask_tokens_for_mlm
from modeling_ccr.training import CCRObjective, CCRTrainingArguments


def test_the_mlm_masking_defaults_agree_everywhere():
    function = inspect.signature(mask_tokens_for_mlm).parameters
    objective = inspect.signature(CCRObjective).parameters
    config = CCRConfig()
    assert (DEFAULT_MLM_PROBABILITY, DEFAULT_MLM_MAX_MASKS, DEFAULT_MLM_MASKING) == (0.4, 12, "skip-gram")
    probabilities = (function["mask_probability"].default, objective["mlm_probability"].default,
                     config.mlm_probability)
    assert probabilities == (DEFAULT_MLM_PROBABILITY,) * 3
    caps = (function["max_masks"].default, objective["mlm_max_masks"].default, config.mlm_max_masks)
    assert caps == (DEFAULT_MLM_MAX_MASKS,) * 3
    rules = (function["masking"].default, objective["mlm_masking"].default,
             CCRTrainingArguments(output_dir="unused").mlm_masking)
    assert rules == (DEFAULT_MLM_MASKING,) * 3
