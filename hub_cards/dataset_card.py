"""The Hub card of the embedded ``cldr-emoji`` benchmark: its built DATASET_CARD.md plus links.

The builder (``ccr data build``) writes the card from what it built (splits, checksums, licences); this
module keeps its metadata and body and adds where the model and the metric live on the Hub.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import DatasetCard, DatasetCardData

from .model_card import TEMPLATES

EMBEDDED_BENCHMARK = Path(__file__).resolve().parent.parent / "modeling_ccr" / "data" / "cldr_emoji"


def benchmark_card(model_repos: list[str], metric_space: str,
                   benchmark_dir: str | Path = EMBEDDED_BENCHMARK) -> DatasetCard:
    """The dataset card of the benchmark in ``benchmark_dir`` (default: the embedded one) with links to
    ``model_repos`` (Hub ids of models evaluated on it) and the MRV ``metric_space``."""
    source = Path(benchmark_dir) / "DATASET_CARD.md"
    if not source.is_file():
        raise ValueError(f"{source} does not exist: pass the folder `ccr data build --output` wrote")
    built = DatasetCard.load(source)
    card_data = DatasetCardData(**built.data.to_dict())
    return DatasetCard.from_template(
        card_data,
        template_path=str(TEMPLATES / "dataset_card.md.j2"),
        body=built.text.strip(),
        model_repos=model_repos,
        metric_space=metric_space,
    )
