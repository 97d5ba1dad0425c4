"""The contrastive styles of the CCR objective, chosen once by name.

A style says what the contrastive loss trains on and which captions the fusion objectives (ITM, MLM) read:

- ``one-to-k`` (the paper): the 1-to-K loss over all K captions of each image; ITM and MLM use one caption
  per image drawn among its K languages (``itm_positive_language``);
- ``cross-modal`` (UC2 / CCLM baseline): 1-to-1 InfoNCE on one caption per image in a language drawn each
  step; ITM and MLM use that caption;
- ``cross-lingual`` (baseline): image-English plus English-other InfoNCE; ITM and MLM use the English caption.

:class:`~modeling_ccr.training.objective.CCRObjective` builds the style it is given by name
(:func:`style_class`) and asks it every step; ``ccr train`` reads ``needs_english`` and ``min_batch_images``.
A new style is one subclass of :class:`ContrastiveStyle` and one line, ``@register_style``; e.g. 1-to-1
InfoNCE on the English captions alone::

    @register_style
    class EnglishOnlyStyle(CrossModalStyle):
        name = "english-only"
        needs_english = True

        def caption_languages(self, n_images, k, device):
            return torch.full((n_images,), self.options.english_index, dtype=torch.long, device=device)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..losses import (
    CrossLingualContrastiveLoss,
    CrossModalContrastiveLoss,
    GatheredContrastiveLoss,
    ItmTriplets,
    OneToKContrastiveLoss,
    sample_caption_languages,
    sample_itm_triplets,
)


@dataclass(frozen=True)
class StyleOptions:
    """The objective's settings a style may read; each style reads its own.

    Args:
        generator: the objective's per-process generator; a style's draws share it with ITM and MLM, so a
            seeded run draws the same languages, negatives and masks.
        gather_with_grad: the gradient of the cross-process gather, see
            :class:`~modeling_ccr.losses.GatheredContrastiveLoss`.
        weighting: the 1-to-K weighting, ``"released"`` or ``"symmetric"`` (``one-to-k``).
        english_index: position of English among the K languages (``cross-lingual``).
        itm_positive_language: how ``one-to-k`` picks each image's ITM / MLM caption among its K, see
            :func:`~modeling_ccr.losses.sample_itm_triplets`.
    """

    generator: torch.Generator
    gather_with_grad: bool | str = True
    weighting: str = "released"
    english_index: int = 0
    itm_positive_language: str = "released"


class ContrastiveStyle:
    """A contrastive style; this base class is a baseline's 1-to-1 fusion training.

    Subclasses set ``name`` and define :meth:`build_loss` and :meth:`caption_languages`; a style whose loss
    takes the step's languages overrides :meth:`contrastive_loss`, one whose ITM and MLM draw among all K
    captions overrides :meth:`itm_triplets` and :meth:`get_config_dict`.

    Class attributes:
        name: the registry name (``ccr train --loss_style``).
        needs_english: the training languages must include ``"en"`` (``options.english_index`` is its place).
        min_batch_images: the fewest images per process and step the loss takes (in-batch negatives).
    """

    name: ClassVar[str]
    needs_english: ClassVar[bool] = False
    min_batch_images: ClassVar[int] = 2

    def __init__(self, options: StyleOptions):
        self.options = options
        self.loss = self.build_loss(options)

    def build_loss(self, options: StyleOptions) -> GatheredContrastiveLoss:
        """The contrastive loss module of this style, built once."""
        raise NotImplementedError(f"{type(self).__name__} must define build_loss")

    def caption_languages(self, n_images: int, k: int, device: torch.device) -> torch.Tensor | None:
        """Long ``[N]``: the language index of the caption each image trains on this step (1-to-1, for the
        contrastive loss, ITM and MLM); None: all K captions take part (ITM and MLM pick one per image).
        Called once per step, before any other draw of the step."""
        raise NotImplementedError(f"{type(self).__name__} must define caption_languages")

    def contrastive_loss(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor,
                         temperature: torch.Tensor, languages: torch.Tensor | None) -> torch.Tensor:
        """image_embeds ``[N, D]``, image-major text_embeds ``[N*K, D]``, the 0-dim temperature and this
        step's ``caption_languages`` -> the 0-dim loss."""
        return self.loss(image_embeds, text_embeds, temperature)

    def itm_triplets(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, temperature: torch.Tensor,
                     languages: torch.Tensor | None, **negatives: Any) -> ItmTriplets:
        """The ITM triplets (long ``[N]`` each) of images ``[N, D]`` and image-major texts ``[N*K, D]``, whose
        text indices are rows of the ``[N*K]`` batch: here drawn 1-to-1 among each image's caption
        ``languages`` ``[N]``, so ITM and MLM read only the caption the style trains on. ``negatives``: the
        negative draw's options of :func:`~modeling_ccr.losses.sample_itm_triplets` (``negative_temperature``,
        ``random_share``)."""
        k = text_embeds.shape[0] // image_embeds.shape[0]
        rows = torch.arange(image_embeds.shape[0], device=languages.device) * k + languages
        one_to_one = sample_itm_triplets(image_embeds, text_embeds[rows], temperature,
                                         generator=self.options.generator, **negatives)
        return one_to_one._replace(positive_text=rows[one_to_one.positive_text],
                                   negative_text=rows[one_to_one.negative_text])

    def get_config_dict(self) -> dict[str, Any]:
        """The style's entries of the objective's config: the 1-to-K settings (None here), which captions the
        fusion encoder reads and the contrastive loss's settings."""
        return {"weighting": None, "itm_positive_language": None,
                "fusion_captions": "the style's own, 1-to-1", "contrastive": self.loss.get_config_dict()}


CONTRASTIVE_STYLES: dict[str, type[ContrastiveStyle]] = {}


def register_style(style: type[ContrastiveStyle]) -> type[ContrastiveStyle]:
    """Class decorator: makes ``style`` available under ``style.name`` (a name already taken is refused)."""
    if style.name in CONTRASTIVE_STYLES:
        raise ValueError(f"a contrastive style named {style.name!r} is already registered: choose another")
    CONTRASTIVE_STYLES[style.name] = style
    return style


def style_class(name: str) -> type[ContrastiveStyle]:
    """The style registered as ``name``; an unknown name raises a ValueError that lists the styles."""
    if name not in CONTRASTIVE_STYLES:
        raise ValueError(f"unknown loss style {name!r}: use one of {', '.join(CONTRASTIVE_STYLES)}")
    return CONTRASTIVE_STYLES[name]


@register_style
class OneToKStyle(ContrastiveStyle):
    """The paper's 1-to-K loss; ITM and MLM use one caption per image drawn among its K languages."""

    name = "one-to-k"
    min_batch_images = 1  # the 1-to-K loss is defined on one image (ITM still asks for two)

    def build_loss(self, options: StyleOptions) -> GatheredContrastiveLoss:
        return OneToKContrastiveLoss(weighting=options.weighting, gather_with_grad=options.gather_with_grad)

    def caption_languages(self, n_images: int, k: int, device: torch.device) -> None:
        return None

    def itm_triplets(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, temperature: torch.Tensor,
                     languages: torch.Tensor | None, **negatives: Any) -> ItmTriplets:
        """Triplets (long ``[N]`` each) over images ``[N, D]`` and all their image-major texts ``[N*K, D]``,
        each image's positive caption drawn by ``itm_positive_language``."""
        return sample_itm_triplets(image_embeds, text_embeds, temperature, generator=self.options.generator,
                                   positive_language=self.options.itm_positive_language, **negatives)

    def get_config_dict(self) -> dict[str, Any]:
        options = self.options
        return {"weighting": options.weighting, "itm_positive_language": options.itm_positive_language,
                "fusion_captions": "one of K per image", "contrastive": self.loss.get_config_dict()}


@register_style
class CrossModalStyle(ContrastiveStyle):
    """Baseline: 1-to-1 InfoNCE on one caption per image, its language drawn uniformly each step."""

    name = "cross-modal"

    def build_loss(self, options: StyleOptions) -> GatheredContrastiveLoss:
        return CrossModalContrastiveLoss(generator=options.generator,
                                         gather_with_grad=options.gather_with_grad)

    def caption_languages(self, n_images: int, k: int, device: torch.device) -> torch.Tensor:
        return sample_caption_languages(n_images, k, self.options.generator).to(device)

    def contrastive_loss(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor,
                         temperature: torch.Tensor, languages: torch.Tensor) -> torch.Tensor:
        """The InfoNCE of images ``[N, D]`` and their captions ``languages`` ``[N]`` among the texts
        ``[N*K, D]``."""
        return self.loss(image_embeds, text_embeds, temperature, languages=languages)


@register_style
class CrossLingualStyle(ContrastiveStyle):
    """Baseline: image-English plus English-other InfoNCE; ITM and MLM use the English caption."""

    name = "cross-lingual"
    needs_english = True

    def build_loss(self, options: StyleOptions) -> GatheredContrastiveLoss:
        return CrossLingualContrastiveLoss(english_index=options.english_index,
                                           gather_with_grad=options.gather_with_grad)

    def caption_languages(self, n_images: int, k: int, device: torch.device) -> torch.Tensor:
        return torch.full((n_images,), self.options.english_index, dtype=torch.long, device=device)


# The built-in styles, for ccr train's choices (a style registered later is known to style_class).
LOSS_STYLES = tuple(CONTRASTIVE_STYLES)
