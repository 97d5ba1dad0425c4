"""Configuration of EfficientNet-Lite (Tan & Le 2019, the "Lite" variants for edge devices).

EfficientNet-Lite is EfficientNet without squeeze-and-excitation, with ReLU6 instead of swish and with
the stem (32 channels) and head (1280 channels) kept fixed when the network is scaled. The five named
variants lite0..lite4 differ only in width and depth coefficients, input resolution and dropout.
"""

from __future__ import annotations

from transformers import PretrainedConfig

# variant -> (width_coefficient, depth_coefficient, image_size, dropout_rate), as published with the
# TensorFlow reference (efficientnet/lite/efficientnet_lite_builder.py).
EFFICIENTNET_LITE_VARIANTS: dict[str, tuple[float, float, int, float]] = {
    "lite0": (1.0, 1.0, 224, 0.2),
    "lite1": (1.0, 1.1, 240, 0.2),
    "lite2": (1.1, 1.2, 260, 0.3),
    "lite3": (1.2, 1.4, 280, 0.3),
    "lite4": (1.4, 1.8, 300, 0.3),
}


class EfficientNetLiteConfig(PretrainedConfig):
    r"""Configuration of an [`EfficientNetLiteModel`].

    The width, depth, resolution and dropout default to those of `variant`; any of them given
    explicitly overrides the variant's value. The seven stages are described by the per-stage lists
    (`kernel_sizes`, `strides`, `expand_ratios`, `in_channels`, `out_channels`, `num_block_repeats`)
    before scaling: channels are multiplied by `width_coefficient` and rounded to a multiple of
    `depth_divisor`; repeats are multiplied by `depth_coefficient` and rounded up, except in the first
    and the last stage, which keep their repeats (the "fixed stem and head" rule of the Lite models).

    Args:
        variant (`str`, defaults to `"lite0"`): one of `"lite0"` .. `"lite4"`.
        width_coefficient (`float`, *optional*): channel multiplier of the stages.
        depth_coefficient (`float`, *optional*): repeat multiplier of the middle stages.
        image_size (`int`, *optional*): the training resolution (the model accepts any size).
        dropout_rate (`float`, *optional*): dropout before the classifier.
        num_channels (`int`, defaults to 3): input channels.
        stem_channels (`int`, defaults to 32): output channels of the stem convolution (not scaled).
        hidden_size (`int`, defaults to 1280): channels of the head 1x1 convolution, i.e. the feature
            dimension of `last_hidden_state` and `pooler_output` (not scaled).
        depth_divisor (`int`, defaults to 8): channel counts are rounded to multiples of this.
        kernel_sizes, strides, expand_ratios, in_channels, out_channels, num_block_repeats
            (`list[int]`, 7 entries each): the stage layout of EfficientNet-B0/Lite0.
        drop_connect_rate (`float`, defaults to 0.2): stochastic-depth rate of the last block while
            training; block `i` of `n` drops its residual branch with probability `rate * i / n`.
        batch_norm_eps (`float`, defaults to 1e-3): epsilon of every batch norm.
        batch_norm_momentum (`float`, defaults to 0.01): PyTorch-convention momentum (TensorFlow's
            decay 0.99 corresponds to 0.01).
        num_labels (`int`, defaults to 1000): classes of the ImageNet-style classifier head.
    """

    model_type = "efficientnet_lite"

    def __init__(
        self,
        variant: str = "lite0",
        width_coefficient: float | None = None,
        depth_coefficient: float | None = None,
        image_size: int | None = None,
        dropout_rate: float | None = None,
        num_channels: int = 3,
        stem_channels: int = 32,
        hidden_size: int = 1280,
        depth_divisor: int = 8,
        kernel_sizes: list[int] | tuple[int, ...] = (3, 3, 5, 3, 5, 5, 3),
        strides: list[int] | tuple[int, ...] = (1, 2, 2, 2, 1, 2, 1),
        expand_ratios: list[int] | tuple[int, ...] = (1, 6, 6, 6, 6, 6, 6),
        in_channels: list[int] | tuple[int, ...] = (32, 16, 24, 40, 80, 112, 192),
        out_channels: list[int] | tuple[int, ...] = (16, 24, 40, 80, 112, 192, 320),
        num_block_repeats: list[int] | tuple[int, ...] = (1, 2, 2, 3, 3, 4, 1),
        drop_connect_rate: float = 0.2,
        batch_norm_eps: float = 1e-3,
        batch_norm_momentum: float = 0.01,
        initializer_range: float = 0.01,
        **kwargs,
    ):
        if variant not in EFFICIENTNET_LITE_VARIANTS:
            raise ValueError(
                f"Unknown EfficientNet-Lite variant {variant!r}; "
                f"use one of {sorted(EFFICIENTNET_LITE_VARIANTS)}."
            )
        stage_lists = {
            "kernel_sizes": kernel_sizes,
            "strides": strides,
            "expand_ratios": expand_ratios,
            "in_channels": in_channels,
            "out_channels": out_channels,
            "num_block_repeats": num_block_repeats,
        }
        lengths = {name: len(values) for name, values in stage_lists.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(
                f"The per-stage lists must all have one entry per stage, got lengths {lengths}; "
                "give every list the same number of entries."
            )
        default_width, default_depth, default_size, default_dropout = EFFICIENTNET_LITE_VARIANTS[variant]
        self.variant = variant
        self.width_coefficient = float(default_width if width_coefficient is None else width_coefficient)
        self.depth_coefficient = float(default_depth if depth_coefficient is None else depth_coefficient)
        self.image_size = int(default_size if image_size is None else image_size)
        self.dropout_rate = float(default_dropout if dropout_rate is None else dropout_rate)
        self.num_channels = num_channels
        self.stem_channels = stem_channels
        self.hidden_size = hidden_size
        self.depth_divisor = depth_divisor
        for name, values in stage_lists.items():
            setattr(self, name, [int(v) for v in values])
        self.drop_connect_rate = drop_connect_rate
        self.batch_norm_eps = batch_norm_eps
        self.batch_norm_momentum = batch_norm_momentum
        self.initializer_range = initializer_range
        if "id2label" not in kwargs and "num_labels" not in kwargs:
            kwargs["num_labels"] = 1000
        super().__init__(**kwargs)


__all__ = ["EFFICIENTNET_LITE_VARIANTS", "EfficientNetLiteConfig"]
