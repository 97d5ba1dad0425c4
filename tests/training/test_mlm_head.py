"""The MLM head belongs to CCRForPreTraining, not to CCRModel.

Checkpoints saved while CCRModel held the head keep loading:
``fixtures/model_folder_with_mlm_head_in_ccr_model`` is ``config.json`` and ``model.safetensors`` of
``save_tiny_model(folder)`` (ViT, seed 0) as that code wrote them, with the head's weights at the top level
of CCRModel's (``mlm_head.*``); a CCRForPreTraining or Trainer checkpoint of that code held the same weights
under ``ccr.`` (``ccr.mlm_head.*`` for the head).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_objective_and_trainer import _trainer, batch_of, objective_for, tiny_dataset

from modeling_ccr import CCRModel
from modeling_ccr.testing import save_tiny_model, tiny_ccr_model, tiny_ccr_processor, tiny_pretraining_model
from modeling_ccr.training import CCRForPreTraining, CCRPreTrainingOutput, set_trainable

OLD_FOLDER = Path(__file__).parent / "fixtures" / "model_folder_with_mlm_head_in_ccr_model"
HEAD_KEYS = {"mlm_head.bias", "mlm_head.dense.bias", "mlm_head.dense.weight", "mlm_head.layer_norm.bias",
             "mlm_head.layer_norm.weight"}


def _stored() -> dict[str, torch.Tensor]:
    return load_file(OLD_FOLDER / "model.safetensors")


def _assert_same_head(model: CCRForPreTraining, stored: dict[str, torch.Tensor]) -> None:
    head = model.mlm_head.state_dict()
    assert {f"mlm_head.{name}" for name in head} == HEAD_KEYS
    for name, value in head.items():
        assert torch.equal(value, stored[f"mlm_head.{name}"]), name


def _assert_same_weights(model: torch.nn.Module, reference: torch.nn.Module) -> None:
    got, want = model.state_dict(), reference.state_dict()
    assert got.keys() == want.keys()
    for name, value in want.items():
        assert torch.equal(got[name], value), name


def _load_quietly(model_class, folder: Path, capfd):
    """``model_class.from_pretrained(folder)``, checking that transformers reported nothing about the weights
    (no load report: no key unexpected, missing or newly initialised)."""
    capfd.readouterr()
    model = model_class.from_pretrained(folder)
    err = capfd.readouterr().err
    assert "LOAD REPORT" not in err and "mlm_head" not in err, err
    return model


def test_a_folder_saved_while_ccr_model_held_the_head_gives_it_to_ccr_for_pretraining(capfd):
    stored = _stored()
    assert HEAD_KEYS <= set(stored) and not any(key.startswith("ccr.") for key in stored)
    pretraining = _load_quietly(CCRForPreTraining, OLD_FOLDER, capfd)
    _assert_same_head(pretraining, stored)
    ccr = _load_quietly(CCRModel, OLD_FOLDER, capfd)  # what an AutoModel user gets
    assert not any("mlm" in name for name in ccr.state_dict())
    _assert_same_weights(pretraining.ccr, ccr)
    same_names = [name for name in ccr.state_dict() if name in stored]  # the ViT tower's are renamed on load
    assert len(same_names) > 100
    for name in same_names:
        assert torch.equal(ccr.state_dict()[name], stored[name]), name


def test_a_pretraining_checkpoint_saved_while_ccr_model_held_the_head_loads_too(tmp_path, capfd):
    stored = _stored()
    old = tmp_path / "checkpoint-100"  # as CCRForPreTraining.save_pretrained (the Trainer) wrote it then
    old.mkdir()
    save_file({f"ccr.{key}": value for key, value in stored.items()}, old / "model.safetensors",
              metadata={"format": "pt"})
    config = json.loads((OLD_FOLDER / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**config, "architectures": ["CCRForPreTraining"]}))
    reference = CCRForPreTraining.from_pretrained(OLD_FOLDER)

    pretraining = _load_quietly(CCRForPreTraining, old, capfd)
    _assert_same_weights(pretraining, reference)
    _assert_same_head(pretraining, stored)
    _assert_same_weights(_load_quietly(CCRModel, old, capfd), reference.ccr)

    # the Trainer resumes a run with load_state_dict: the head's old names are renamed there too
    old_names = {("ccr." + key if key.startswith("mlm_head.") else key): value
                 for key, value in reference.state_dict().items()}
    resumed = CCRForPreTraining.from_ccr_model(tiny_ccr_model("vit", seed=3))
    resumed.load_state_dict(old_names)  # strict: every key found its place
    _assert_same_weights(resumed, reference)


def test_a_folder_saved_now_holds_the_same_weights_under_the_same_names(tmp_path):
    save_tiny_model(tmp_path / "model")  # ViT, seed 0, as the fixture
    now = load_file(tmp_path / "model" / "model.safetensors")
    then = _stored()
    assert now.keys() == then.keys()
    for name, value in then.items():
        assert torch.equal(now[name], value), name
    assert json.loads((tmp_path / "model" / "config.json").read_text())["architectures"] == ["CCRModel"]


def test_a_saved_pretraining_model_round_trips_with_its_head(tmp_path, capfd):
    model = tiny_pretraining_model("efficientnet_lite", seed=2)
    model.save_ccr_model(tmp_path / "folder")
    model.save_pretrained(tmp_path / "checkpoint")  # the Trainer's checkpoints
    assert HEAD_KEYS <= set(load_file(tmp_path / "checkpoint" / "model.safetensors"))
    for folder in ("folder", "checkpoint"):
        _assert_same_weights(_load_quietly(CCRForPreTraining, tmp_path / folder, capfd), model)
        _assert_same_weights(_load_quietly(CCRModel, tmp_path / folder, capfd), model.ccr)


def test_return_dict_false_gives_the_components_as_a_tuple():
    processor = tiny_ccr_processor()
    batch = batch_of(tiny_dataset().select(range(4)), processor)
    model = tiny_pretraining_model("vit", seed=4)

    def run(**options):
        model.objective = objective_for(processor, seed=7, weights={"itm": 0.5, "mlm": 2.0})  # the same draws
        with torch.no_grad():
            return model(**batch, **options)

    as_dict = run()
    assert isinstance(as_dict, CCRPreTrainingOutput)
    fields = ("loss", "contrastive_loss", "itm_loss", "mlm_loss", "temperature", "itm_accuracy",
              "itm_negatives_same_text")
    expected = tuple(as_dict[name] for name in fields)
    for output in (run(return_dict=False), _with_config_return_dict(model, False, run)):
        assert isinstance(output, tuple) and len(output) == len(expected)
        for got, want in zip(output, expected, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    explicit = _with_config_return_dict(model, False, lambda: run(return_dict=True))
    assert isinstance(explicit, CCRPreTrainingOutput)


def _with_config_return_dict(model, value: bool, call):
    """``call()`` with ``model.config.return_dict`` set to ``value`` meanwhile."""
    saved = model.config.return_dict
    model.config.return_dict = value
    try:
        return call()
    finally:
        model.config.return_dict = saved


def test_the_trainer_reads_a_dict_whatever_the_config_says(tmp_path):
    processor, model = tiny_ccr_processor(), tiny_ccr_model("vit", seed=1)
    model.config.return_dict = False
    trainer = _trainer(tmp_path, model, processor, objective_for(processor))
    trainer.train()
    assert any("loss_mlm" in entry for entry in trainer.state.log_history)


def test_a_zero_mlm_weight_freezes_the_head_and_the_objective_needs_the_head_for_mlm():
    model = tiny_pretraining_model("vit")
    head = sum(p.numel() for p in model.mlm_head.parameters())
    on = set_trainable(model, train_text_layers=0, train_vision_layers=0, weights={"mlm": 1.0})
    assert all(p.requires_grad for p in model.mlm_head.parameters())
    off = set_trainable(model, train_text_layers=0, train_vision_layers=0, weights={"mlm": 0.0})
    assert not any(p.requires_grad for p in model.mlm_head.parameters())
    assert off["trainable"] == on["trainable"] - head and off["frozen"] == on["frozen"] + head
    assert on["trainable"] + on["frozen"] == sum(p.numel() for p in model.parameters())

    processor = tiny_ccr_processor()
    batch = batch_of(tiny_dataset().select(range(2)), processor)
    with pytest.raises(ValueError, match="MLM head.*CCRForPreTraining"):
        objective_for(processor)(model.ccr, batch["pixel_values"], batch["input_ids"],
                                 batch["attention_mask"])


def test_a_folder_without_the_head_loads_with_a_fresh_one(tmp_path):
    tiny_ccr_model("vit").save_pretrained(tmp_path / "model")  # a CCRModel alone: no head
    model = CCRForPreTraining.from_pretrained(tmp_path / "model")
    assert torch.equal(model.mlm_head.bias, torch.zeros_like(model.mlm_head.bias))
    assert torch.equal(model.mlm_head.layer_norm.weight, torch.ones_like(model.mlm_head.layer_norm.weight))
    assert torch.isfinite(model.mlm_head.dense.weight).all() and model.mlm_head.dense.weight.std() > 0
