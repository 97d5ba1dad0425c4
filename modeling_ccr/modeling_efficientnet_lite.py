"""EfficientNet-Lite in PyTorch, as a transformers model.

Architecture (Tan & Le 2019, Lite variants): a 3x3 stride-2 stem convolution with a fixed 32 channels,
seven stages of mobile inverted-bottleneck blocks (1x1 expansion, depthwise KxK, 1x1 projection, each
followed by batch norm; ReLU6 after the first two; identity shortcut when shape allows), then a 1x1
head convolution to a fixed `hidden_size` (1280) channels with batch norm and ReLU6. No
squeeze-and-excitation. Convolutions pad like TensorFlow's "SAME" (extra pixel at the bottom/right for
stride 2), which the published ImageNet weights were trained with.

Feature-map layout: the head output `[B, C, h, w]` is returned flattened row-major as
`last_hidden_state` `[B, h*w, C]` (token `t` is row `t // w`, column `t % w`); `pooler_output` is its
global average `[B, C]`. At 224 px, `h = w = 7`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndNoAttention,
    ImageClassifierOutputWithNoAttention,
)

from .configuration_efficientnet_lite import EfficientNetLiteConfig


def round_channels(channels: int, config: EfficientNetLiteConfig) -> int:
    """Scales a channel count by `config.width_coefficient` and rounds it to a multiple of
    `config.depth_divisor`, never going more than 10% below the scaled value (TensorFlow rule)."""
    divisor = config.depth_divisor
    scaled = channels * config.width_coefficient
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def stage_repeats(stage: int, config: EfficientNetLiteConfig) -> int:
    """Number of blocks in `stage`: the first and last stage keep their repeats, the others are scaled
    by `config.depth_coefficient` and rounded up."""
    repeats = config.num_block_repeats[stage]
    if stage in (0, len(config.num_block_repeats) - 1):
        return repeats
    return int(math.ceil(config.depth_coefficient * repeats))


def drop_path(hidden: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zeroes whole samples of a residual branch `[B, ...]` with probability
    `drop_prob` while training and rescales the kept ones by `1 / (1 - drop_prob)`."""
    if not training or drop_prob == 0.0:
        return hidden
    keep_prob = 1.0 - drop_prob
    mask_shape = (hidden.shape[0],) + (1,) * (hidden.dim() - 1)
    mask = torch.empty(mask_shape, dtype=hidden.dtype, device=hidden.device).bernoulli_(keep_prob)
    return hidden * mask / keep_prob


class SamePaddingConv2d(nn.Conv2d):
    """`nn.Conv2d` with TensorFlow "SAME" padding computed from the input size: the output is
    `ceil(size / stride)` and an odd total padding puts the extra pixel at the bottom/right."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1
    ):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, groups=groups, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, kernel, stride in zip(
            reversed(hidden.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True
        ):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(hidden, pads))


class EfficientNetLiteConvNormAct(nn.Module):
    """Convolution, batch norm and optional ReLU6: `[B, C_in, H, W] -> [B, C_out, ceil(H/s), ceil(W/s)]`."""

    def __init__(
        self,
        config: EfficientNetLiteConfig,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        activation: bool = True,
    ):
        super().__init__()
        self.conv = SamePaddingConv2d(in_channels, out_channels, kernel_size, stride=stride, groups=groups)
        self.norm = nn.BatchNorm2d(
            out_channels, eps=config.batch_norm_eps, momentum=config.batch_norm_momentum
        )
        self.activation = nn.ReLU6() if activation else nn.Identity()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.activation(self.norm(self.conv(hidden)))


class EfficientNetLiteBlock(nn.Module):
    """Mobile inverted bottleneck without squeeze-excite: `[B, C_in, H, W] -> [B, C_out, H/s, W/s]`.

    The 1x1 expansion exists only when `expand_ratio != 1`; the shortcut (with stochastic depth on the
    residual branch) only when `stride == 1` and `C_in == C_out`.
    """

    def __init__(
        self,
        config: EfficientNetLiteConfig,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        expand_ratio: int,
        drop_path_rate: float,
    ):
        super().__init__()
        expanded = in_channels * expand_ratio
        self.expand = (
            EfficientNetLiteConvNormAct(config, in_channels, expanded, 1)
            if expand_ratio != 1
            else nn.Identity()
        )
        self.depthwise = EfficientNetLiteConvNormAct(
            config, expanded, expanded, kernel_size, stride=stride, groups=expanded
        )
        self.project = EfficientNetLiteConvNormAct(config, expanded, out_channels, 1, activation=False)
        self.use_shortcut = stride == 1 and in_channels == out_channels
        self.drop_path_rate = drop_path_rate

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        output = self.project(self.depthwise(self.expand(hidden)))
        if self.use_shortcut:
            output = drop_path(output, self.drop_path_rate, self.training) + hidden
        return output


def build_blocks(config: EfficientNetLiteConfig) -> nn.ModuleList:
    """All MBConv blocks in order (16 for lite0): the first block of each stage takes the stage's
    stride and input width, its repeats use stride 1 and the stage's output width."""
    specs = []
    for stage in range(len(config.num_block_repeats)):
        in_channels = (
            config.stem_channels if stage == 0 else round_channels(config.in_channels[stage], config)
        )
        out_channels = round_channels(config.out_channels[stage], config)
        for repeat in range(stage_repeats(stage, config)):
            specs.append(
                (
                    in_channels if repeat == 0 else out_channels,
                    out_channels,
                    config.kernel_sizes[stage],
                    config.strides[stage] if repeat == 0 else 1,
                    config.expand_ratios[stage],
                )
            )
    return nn.ModuleList(
        EfficientNetLiteBlock(config, *spec, drop_path_rate=config.drop_connect_rate * index / len(specs))
        for index, spec in enumerate(specs)
    )


class EfficientNetLitePreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading for EfficientNet-Lite models."""

    config_class = EfficientNetLiteConfig
    base_model_prefix = "efficientnet_lite"
    main_input_name = "pixel_values"
    _no_split_modules = ["EfficientNetLiteBlock"]

    def _init_weights(self, module: nn.Module) -> None:
        """Convolutions: He-normal over fan-out (as the TensorFlow reference); classifier: normal with
        `config.initializer_range`; batch norms: identity transform and fresh running statistics."""
        if isinstance(module, nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, std=self.config.initializer_range)
            torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            torch.nn.init.ones_(module.weight)
            torch.nn.init.zeros_(module.bias)
            torch.nn.init.zeros_(module.running_mean)
            torch.nn.init.ones_(module.running_var)
            torch.nn.init.zeros_(module.num_batches_tracked)


class EfficientNetLiteModel(EfficientNetLitePreTrainedModel):
    """EfficientNet-Lite feature extractor: pixels `[B, 3, H, W]` to the head feature map as tokens."""

    def __init__(self, config: EfficientNetLiteConfig):
        super().__init__(config)
        self.stem = EfficientNetLiteConvNormAct(
            config, config.num_channels, config.stem_channels, 3, stride=2
        )
        self.blocks = build_blocks(config)
        last_channels = round_channels(config.out_channels[-1], config)
        self.head = EfficientNetLiteConvNormAct(config, last_channels, config.hidden_size, 1)
        self.post_init()

    def lower_features(self, pixel_values: torch.Tensor, num_blocks: int) -> torch.Tensor:
        """Stem and the first `num_blocks` blocks: pixels `[B, 3, H, W]` -> map `[B, C_i, H_i, W_i]`.

        With [`upper_features`] it splits `forward` in two, so the output of frozen lower blocks can be
        computed once and reused while the upper blocks train.
        """
        hidden = self.stem(pixel_values)
        for block in self.blocks[:num_blocks]:
            hidden = block(hidden)
        return hidden

    def upper_features(self, hidden: torch.Tensor, start_block: int) -> torch.Tensor:
        """Blocks `start_block..` and the head: map `[B, C_i, H_i, W_i]` -> tokens `[B, h*w, hidden_size]`
        (row-major, as `forward`'s `last_hidden_state`)."""
        for block in self.blocks[start_block:]:
            hidden = block(hidden)
        return self.head(hidden).flatten(2).transpose(1, 2)

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPoolingAndNoAttention | tuple:
        """
        Args:
            pixel_values: `[B, num_channels, H, W]` normalised images (any H, W; 224 for lite0).
            output_hidden_states: also return the stem output and every block output, each
                `[B, C_i, H_i, W_i]`.
            return_dict: return a `ModelOutput` (default `config.return_dict`) instead of a tuple.

        Returns:
            `BaseModelOutputWithPoolingAndNoAttention` with `last_hidden_state` `[B, h*w, hidden_size]`
            (head feature map flattened row-major: token `t` is row `t // w`, column `t % w`, with
            `h = ceil(H/32)`, `w = ceil(W/32)`), `pooler_output` `[B, hidden_size]` (its mean over the
            `h*w` tokens) and, if asked, `hidden_states` (1 + number of blocks NCHW maps).
        """
        if pixel_values.dim() != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"pixel_values must be [batch, {self.config.num_channels}, height, width], got shape "
                f"{tuple(pixel_values.shape)}; preprocess images with the model's image processor."
            )
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict

        hidden = self.stem(pixel_values)
        all_hidden_states = (hidden,) if output_hidden_states else None
        for block in self.blocks:
            hidden = block(hidden)
            if output_hidden_states:
                all_hidden_states += (hidden,)
        feature_map = self.head(hidden)
        tokens = feature_map.flatten(2).transpose(1, 2)
        output = BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=tokens,
            pooler_output=tokens.mean(dim=1),
            hidden_states=all_hidden_states,
        )
        return output if return_dict else output.to_tuple()


class EfficientNetLiteForImageClassification(EfficientNetLitePreTrainedModel):
    """EfficientNet-Lite with its classifier: pooled features `[B, hidden_size]` -> dropout -> Linear
    -> logits `[B, num_labels]`."""

    def __init__(self, config: EfficientNetLiteConfig):
        super().__init__(config)
        self.efficientnet_lite = EfficientNetLiteModel(config)
        self.dropout = nn.Dropout(config.dropout_rate)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> ImageClassifierOutputWithNoAttention | tuple:
        """
        Args:
            pixel_values: `[B, num_channels, H, W]` normalised images.
            labels: optional class ids `[B]` in `[0, num_labels)`; gives a cross-entropy `loss`.
            output_hidden_states, return_dict: as in [`EfficientNetLiteModel.forward`].

        Returns:
            `ImageClassifierOutputWithNoAttention` with `logits` `[B, num_labels]`, `loss` (scalar, when
            `labels` is given) and `hidden_states` (when asked).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        features = self.efficientnet_lite(
            pixel_values, output_hidden_states=output_hidden_states, return_dict=True
        )
        logits = self.classifier(self.dropout(features.pooler_output))
        loss = None
        if labels is not None:
            if labels.shape != logits.shape[:1] or labels.dtype.is_floating_point:
                raise ValueError(
                    f"labels must be integer class ids of shape [{logits.shape[0]}], got {labels.dtype} "
                    f"{tuple(labels.shape)}; pass one class index per image."
                )
            loss = F.cross_entropy(logits, labels)
        output = ImageClassifierOutputWithNoAttention(
            loss=loss, logits=logits, hidden_states=features.hidden_states
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "EfficientNetLiteForImageClassification",
    "EfficientNetLiteModel",
    "EfficientNetLitePreTrainedModel",
]
