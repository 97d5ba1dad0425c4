"""Datasets for cross-lingual cross-modal retrieval in one common schema.

``load_benchmark(name_or_path, split=None, languages=None, ...)`` loads the embedded ``cldr-emoji``
benchmark (shipped as parquet inside the package), the paper's benchmarks from local copies in their
published layouts (``xflickrco``, ``multi30k``, ``coco-multilingual``, ``wit``, ``cclm`` pre-training
JSON lines), a folder of one's own images in the Hugging Face ``imagefolder`` layout (see
``modeling_ccr.data.imagefolder``) or a folder of parquet files in the common schema. The README's section
"Datasets" describes the schema and, under "Pointing the loaders at a local copy of each benchmark", the
layout each loader reads; the embedded benchmark's card is ``modeling_ccr/data/cldr_emoji/DATASET_CARD.md``.
"""

from .assemble import LoadReport, SplitReport
from .load import BENCHMARK_NAMES, CLDR_EMOJI_DIR, load_benchmark, open_benchmark
from .schema import DEFAULT_LANGUAGES, common_features

__all__ = [
    "BENCHMARK_NAMES",
    "CLDR_EMOJI_DIR",
    "DEFAULT_LANGUAGES",
    "LoadReport",
    "SplitReport",
    "common_features",
    "load_benchmark",
    "open_benchmark",
]
