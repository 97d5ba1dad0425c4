"""The cards of the two Spaces: the MRV metric Space and the demo Space, each with links to the others.

``evaluate_mrv/README.md`` is the metric card and ``spaces_demo/README.md`` the demo's; their YAML front
matter is the Space configuration (``sdk: gradio``, ``app_file``). This module checks that configuration
and adds links to the model, the benchmark and the other Space, so the cards point at each other.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from huggingface_hub import SpaceCard, SpaceCardData

from .model_card import TEMPLATES

METRIC_FOLDER = Path(__file__).resolve().parent.parent / "evaluate_mrv"
DEMO_FOLDER = Path(__file__).resolve().parent.parent / "spaces_demo"
SPACE_FIELDS = ("title", "sdk", "sdk_version", "app_file")
GRADIO_PIN = re.compile(r"^\s*gradio\s*==\s*(\S+)", re.MULTILINE)


def _space_source(folder: Path) -> tuple[SpaceCard, dict]:
    """The Space card in ``folder`` and its front matter, checked: every Space field is set and the app file exists."""
    readme = folder / "README.md"
    if not readme.is_file():
        raise ValueError(f"{readme} does not exist: "
                         f"run from a clone of the ccr-1tok repository, which holds {folder.name}/")
    card = SpaceCard.load(readme)
    data = card.data.to_dict()
    missing = [field for field in SPACE_FIELDS if not data.get(field)]
    if missing:
        raise ValueError(f"{readme} lacks the Space field(s) {', '.join(missing)} in its front matter")
    if not (folder / data["app_file"]).is_file():
        raise ValueError(f"the Space card names app_file {data['app_file']!r}, which is not in {folder}")
    return card, data


def _render(data: dict, template: str, source: SpaceCard, **links: object) -> SpaceCard:
    """The card of ``template`` with the Space YAML ``data``, ``source``'s text as its body and the ``links``."""
    return SpaceCard.from_template(SpaceCardData(**data), template_path=str(TEMPLATES / template),
                                   body=source.text.strip(), **links)


def metric_space_card(model_repos: list[str], dataset_repo: str | None, metric_folder: str | Path = METRIC_FOLDER,
                      demo_space: str | None = None) -> SpaceCard:
    """The Space card of the metric in ``metric_folder`` with links to ``model_repos``, ``dataset_repo`` and
    (when given) the ``demo_space``.

    Raises ValueError if the README's front matter lacks a Space field or names an app file that is not there.
    """
    card, data = _space_source(Path(metric_folder))
    return _render(data, "metric_space_card.md.j2", card, model_repos=model_repos, dataset_repo=dataset_repo,
                   demo_space=demo_space)


def installed_gradio_version() -> str:
    """The version of the installed gradio (the demo Space's ``sdk_version``); ValueError if it is not installed."""
    try:
        return metadata.version("gradio")
    except metadata.PackageNotFoundError as error:
        raise ValueError("gradio is not installed, so the demo Space's sdk_version is unknown: "
                         "pip install 'ccr-1tok[demo]'") from error


def demo_space_card(model_repo: str, metric_space: str, dataset_repo: str,
                    demo_folder: str | Path = DEMO_FOLDER) -> SpaceCard:
    """The Space card of the demo in ``demo_folder`` (default ``spaces_demo/``) with links to the model, the
    MRV metric Space and the benchmark.

    The YAML keeps the folder's own fields (title, app_file, python_version, license, tags, ...) and sets
    ``sdk: gradio``, ``sdk_version`` to the installed gradio's version, ``models: [model_repo]`` and
    ``datasets: [dataset_repo]``. Raises ValueError if the folder's card lacks a Space field, names a
    missing app file, or its requirements.txt pins another gradio than the installed one.
    """
    folder = Path(demo_folder)
    card, data = _space_source(folder)
    gradio_version = installed_gradio_version()
    requirements = folder / "requirements.txt"
    pin = GRADIO_PIN.search(requirements.read_text(encoding="utf-8")) if requirements.is_file() else None
    if pin and pin[1] != gradio_version:
        raise ValueError(f"{requirements} pins gradio=={pin[1]} but the installed gradio is {gradio_version}: "
                         f"install gradio=={pin[1]} or change the pin, so the Space runs the tested version")
    data.update(sdk="gradio", sdk_version=gradio_version, models=[model_repo], datasets=[dataset_repo])
    return _render(data, "demo_space_card.md.j2", card, model_repo=model_repo, metric_space=metric_space,
                   dataset_repo=dataset_repo)
