"""The card of the MRV metric Space: the metric's own README (already a Space card) plus links.

``evaluate_mrv/README.md`` is the metric card; its YAML front matter is the Space configuration
(``sdk: gradio``, ``app_file``). This module checks that configuration and adds links to the models and
the benchmark, so the Space, the model and the dataset cards point at each other.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import SpaceCard, SpaceCardData

from .model_card import TEMPLATES

METRIC_FOLDER = Path(__file__).resolve().parent.parent / "evaluate_mrv"
SPACE_FIELDS = ("title", "sdk", "sdk_version", "app_file")


def metric_space_card(model_repos: list[str], dataset_repo: str | None, metric_folder: str | Path = METRIC_FOLDER) -> SpaceCard:
    """The Space card of the metric in ``metric_folder`` with links to ``model_repos`` and ``dataset_repo``.

    Raises ValueError if the README's front matter lacks a Space field or names an app file that is not there.
    """
    folder = Path(metric_folder)
    card = SpaceCard.load(folder / "README.md")
    data = card.data.to_dict()
    missing = [field for field in SPACE_FIELDS if not data.get(field)]
    if missing:
        raise ValueError(f"{folder / 'README.md'} lacks the Space field(s) {', '.join(missing)} in its front matter")
    if not (folder / data["app_file"]).is_file():
        raise ValueError(f"the Space card names app_file {data['app_file']!r}, which is not in {folder}")
    return SpaceCard.from_template(
        SpaceCardData(**data),
        template_path=str(TEMPLATES / "metric_space_card.md.j2"),
        body=card.text.strip(),
        model_repos=model_repos,
        dataset_repo=dataset_repo,
    )
