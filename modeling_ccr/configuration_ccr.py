"""Configuration of a CCR model: an image tower, a text tower, a fusion encoder and the heads.

Part of the remote-code set (configuration_ccr.py, modeling_ccr.py, model_checks.py, processing_ccr.py
and the EfficientNet-Lite files they import): it imports only torch, the public transformers API and
files of this folder, by relative imports.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, PretrainedConfig

from .configuration_efficientnet_lite import EfficientNetLiteConfig

# The Auto class of the pipeline a CCR model card declares (zero-shot image classification): every saved
# config maps it to the same class as AutoModel, so the pipeline loads any saved folder with remote code.
PIPELINE_AUTO_CLASS = "AutoModelForZeroShotImageClassification"
TEXT_POOLING_MODES = ("cls", "mean")
VISION_POOLING_MODES = ("mean", "cls")
RERANKING_MODES = ("similarity", "replace", "combine")
# The cross-modal MLM masking of the training objective, as released (mask_tokens_for_mlm and CCRObjective
# take these defaults from here).
DEFAULT_MLM_PROBABILITY = 0.4
DEFAULT_MLM_MAX_MASKS = 12


def check_reranking(value: Any) -> dict[str, Any] | None:
    """The ``reranking`` entry of a CCR config, checked: None, or a dict with
    ``"mode"``: ``"similarity"`` (rank by the dual encoder alone), ``"replace"`` (the ITM "matches" logit
    replaces the similarity of the top ``"k_test"`` candidates, the paper's protocol) or ``"combine"``
    (similarity + ``"rerank_weight"`` * logit over the top ``"k_test"``), plus an optional ``"chosen_on"``
    note (where and how it was chosen). Returns a copy with ``k_test`` an int and ``rerank_weight`` a
    float.

    The weight's key was ``"itm_weight"`` in configs saved before it was renamed (the name of a loss weight in
    ``ccr train``): such an entry is read as ``"rerank_weight"``, and the copy, which a save writes, holds the
    new key."""
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("mode") not in RERANKING_MODES:
        raise ValueError(
            f"reranking must be None or a dict whose 'mode' is one of {RERANKING_MODES}, got {value!r}: e.g. "
            "{'mode': 'combine', 'k_test': 16, 'rerank_weight': 0.1}"
        )
    if "itm_weight" in value and "rerank_weight" not in value:  # saved under the old name
        value = {"rerank_weight" if key == "itm_weight" else key: item for key, item in value.items()}
    needed = {"similarity": (), "replace": ("k_test",), "combine": ("k_test", "rerank_weight")}[value["mode"]]
    unknown = set(value) - {"mode", "chosen_on", *needed}
    missing = [key for key in needed if key not in value]
    if unknown or missing:
        raise ValueError(f"reranking {value!r}: mode {value['mode']!r} takes the keys {['mode', *needed, 'chosen_on']}"
                         + (f"; unknown {sorted(unknown)}" if unknown else "")
                         + (f"; missing {missing}" if missing else ""))
    checked = dict(value)
    if "k_test" in checked:
        if isinstance(checked["k_test"], bool) or not isinstance(checked["k_test"], int) or checked["k_test"] < 1:
            raise ValueError(f"reranking k_test must be an integer >= 1, got {checked['k_test']!r}")
    if "rerank_weight" in checked:
        weight = checked["rerank_weight"]
        if (isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight != weight
                or abs(weight) == float("inf")):
            raise ValueError(f"reranking rerank_weight must be a finite number, got {weight!r}")
        checked["rerank_weight"] = float(weight)
    return checked


def _sub_config(value: Any, default_model_type: str, name: str) -> PretrainedConfig:
    """Turn a sub-config given as a config object, a dict (with ``model_type``) or None into a config."""
    if isinstance(value, PretrainedConfig):
        return value
    if value is None:
        value = {"model_type": default_model_type}
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a transformers config or a dict with 'model_type', got {type(value).__name__}")
    value = dict(value)
    model_type = value.pop("model_type", default_model_type)
    if model_type == EfficientNetLiteConfig.model_type:
        return EfficientNetLiteConfig(**value)
    try:
        return AutoConfig.for_model(model_type, **value)
    except ValueError as error:
        raise ValueError(
            f"{name}: unknown model_type {model_type!r}. Use a transformers model type (e.g. 'swin', 'vit', "
            f"'clip_vision_model', 'bert', 'xlm-roberta') or '{EfficientNetLiteConfig.model_type}'."
        ) from error


def check_sub_configs(config_dict: dict[str, Any], source: str) -> None:
    """Refuse a saved CCR config (``source`` names it in the message) without ``vision_config`` and
    ``text_config`` mappings: ``save_pretrained`` always writes both, and without one the tower would be
    built in its default shape, which the saved weights do not fit."""
    for name in ("vision_config", "text_config"):
        if not isinstance(config_dict.get(name), dict):
            raise ValueError(
                f"{source} has no {name!r} mapping (the {name.split('_')[0]} tower's settings), which "
                "save_pretrained always writes: put back the config.json saved with the model's weights"
            )


class CCRConfig(PretrainedConfig):
    r"""Configuration of :class:`CCRModel`.

    Args:
        vision_config: config (or dict with ``model_type``) of the image tower: any transformers vision
            model whose ``last_hidden_state`` is ``[B, P, C]`` or ``[B, C, H, W]`` (Swin, ViT, CLIP vision,
            ConvNeXt ...), or ``efficientnet_lite``. Default: EfficientNet-Lite0.
        text_config: config (or dict) of the text tower (BERT, XLM-R ...). Its ``num_hidden_layers`` is the
            depth of the text-only encoder. Default: XLM-R base shape.
        num_text_layers: if given, overrides ``text_config.num_hidden_layers`` (the paper: 6).
        num_fusion_layers: depth of the fusion encoder (self-attention, cross-attention to the image tokens,
            feed-forward), which sits on top of the text encoder (the paper: 6).
        projection_dim: size of the shared retrieval space (the paper: 256).
        text_pooling: ``"cls"`` (first token, the paper) or ``"mean"`` (masked mean, as E5 was trained).
        vision_pooling: ``"mean"`` (the image CLS is the average of the tokens, prepended to them, as the
            paper does for Swin) or ``"cls"`` (token 0 of the tower output is already a CLS, as in ViT).
        temperature_init, temperature_min, temperature_max: the learnable contrastive temperature, its start
            value and the range it is clamped to (0.07 in [0.001, 0.5]).
        itm_hidden_size: hidden width of the ITM head MLP (default: twice the text hidden size).
        itm_residual: False (the paper): the ITM logits are the head MLP's alone. True: the "matches" logit adds
            ``a * cos(v, w) + b`` of the pair's dual-encoder embeddings (``a = exp(itm_head.log_similarity_scale)``
            and ``b`` learnt) to the MLP's, whose last layer starts at zero, so an untrained head ranks the
            pairs exactly as the dual encoder and training learns a correction on top.
        mlm_probability, mlm_max_masks: cross-modal MLM masking of the training objective: the share of a
            caption's tokens to predict and the most per caption (default: ``DEFAULT_MLM_PROBABILITY``,
            ``DEFAULT_MLM_MAX_MASKS``, as released).
        initializer_range: std of the normal initialisation of new weights.
        reranking: the second stage chosen for this model on a validation split (:func:`check_reranking`),
            which ``ccr evaluate``, ``ccr search``, the demo and the evaluation functions use when not told
            otherwise; None: nothing chosen (they re-rank as the paper does: "replace" over the top 128, or
            not at all where re-ranking is opt-in).
        untrained: True for a model whose projections and heads are new random weights
            (:meth:`CCRModel.from_backbones`, ``ccr build-default``): its retrieval is at chance, and ``ccr
            index``, ``ccr search`` and the demo say so; ``ccr train`` saves its model with False.
    """

    model_type = "ccr"
    sub_configs = {"text_config": AutoConfig, "vision_config": AutoConfig}

    def __init__(
        self,
        vision_config: PretrainedConfig | dict | None = None,
        text_config: PretrainedConfig | dict | None = None,
        num_text_layers: int | None = None,
        num_fusion_layers: int = 6,
        projection_dim: int = 256,
        text_pooling: str = "cls",
        vision_pooling: str = "mean",
        temperature_init: float = 0.07,
        temperature_min: float = 0.001,
        temperature_max: float = 0.5,
        itm_hidden_size: int | None = None,
        itm_residual: bool = False,
        mlm_probability: float = DEFAULT_MLM_PROBABILITY,
        mlm_max_masks: int = DEFAULT_MLM_MAX_MASKS,
        initializer_range: float = 0.02,
        reranking: dict[str, Any] | None = None,
        untrained: bool = False,
        **kwargs: Any,
    ):
        self.vision_config = _sub_config(vision_config, EfficientNetLiteConfig.model_type, "vision_config")
        self.text_config = _sub_config(text_config, "xlm-roberta", "text_config")
        if num_text_layers is not None:
            self.text_config.num_hidden_layers = int(num_text_layers)
        if text_pooling not in TEXT_POOLING_MODES:
            raise ValueError(f"text_pooling must be one of {TEXT_POOLING_MODES}, got {text_pooling!r}")
        if vision_pooling not in VISION_POOLING_MODES:
            raise ValueError(f"vision_pooling must be one of {VISION_POOLING_MODES}, got {vision_pooling!r}")
        if not 0 < temperature_min <= temperature_init <= temperature_max:
            raise ValueError(
                "need 0 < temperature_min <= temperature_init <= temperature_max, got "
                f"{temperature_min}, {temperature_init}, {temperature_max}"
            )
        if num_fusion_layers < 1:
            raise ValueError(f"num_fusion_layers must be >= 1 (the ITM and MLM heads read it), got {num_fusion_layers}")
        self.num_fusion_layers = int(num_fusion_layers)
        self.projection_dim = int(projection_dim)
        self.text_pooling = text_pooling
        self.vision_pooling = vision_pooling
        self.temperature_init = float(temperature_init)
        self.temperature_min = float(temperature_min)
        self.temperature_max = float(temperature_max)
        self.itm_hidden_size = int(itm_hidden_size or 2 * self.text_config.hidden_size)
        self.itm_residual = bool(itm_residual)
        self.mlm_probability = float(mlm_probability)
        self.mlm_max_masks = int(mlm_max_masks)
        self.initializer_range = float(initializer_range)
        self.reranking = check_reranking(reranking)
        self.untrained = bool(untrained)
        super().__init__(**kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> CCRConfig:
        """``PretrainedConfig.from_pretrained`` that refuses a folder (or Hub repository) holding another
        kind of model: its ``config.json`` must say ``model_type: "ccr"`` (or name no type).

        Raises ValueError naming the folder and the type it holds, instead of building a CCR config from
        another model's settings (which would then load as a randomly initialised CCR model).
        """
        config_dict, _ = cls.get_config_dict(pretrained_model_name_or_path, **kwargs)
        found = config_dict.get("model_type", cls.model_type)
        if found != cls.model_type:
            raise ValueError(
                f"{pretrained_model_name_or_path} holds a {found!r} model (model_type in its config.json), not "
                f"a CCR model (model_type {cls.model_type!r}). Pass the folder of a CCR model (written by "
                "CCRModel.save_pretrained, ccr build-default, ccr train or ccr convert-ccrk); load other "
                "models with transformers.AutoModel."
            )
        check_sub_configs(config_dict, f"the config.json of {pretrained_model_name_or_path}")
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs) -> CCRConfig:
        """``PretrainedConfig.from_dict`` (what ``AutoConfig`` reads a config.json with) that refuses a saved
        config lacking a tower's sub-config (:func:`check_sub_configs`)."""
        check_sub_configs(config_dict, "the CCR config.json")
        return super().from_dict(config_dict, **kwargs)

    @property
    def num_text_layers(self) -> int:
        """Depth of the text-only encoder (the text tower)."""
        return self.text_config.num_hidden_layers

    def to_dict(self) -> dict[str, Any]:
        """``PretrainedConfig.to_dict`` with both sub-configs as dicts, and ``auto_map``'s AutoModel entry also
        under ``PIPELINE_AUTO_CLASS``, so every saved folder serves the pipeline its card declares."""
        output = super().to_dict()
        output["vision_config"] = self.vision_config.to_dict()
        output["text_config"] = self.text_config.to_dict()
        output.pop("num_text_layers", None)
        auto_map = output.get("auto_map")
        if isinstance(auto_map, dict) and "AutoModel" in auto_map:
            output["auto_map"] = {**auto_map, PIPELINE_AUTO_CLASS: auto_map["AutoModel"]}
        return output


# save_pretrained writes auto_map for these classes, so a saved folder loads with trust_remote_code=True
CCRConfig.register_for_auto_class()
