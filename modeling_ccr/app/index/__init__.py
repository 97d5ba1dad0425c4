"""Gallery indexes: a CCR model's image embeddings in FAISS, for text -> image search of any image folder.

- :func:`build_index` (``gallery``): embed a :class:`GallerySource` (``sources``: an image folder or a
  benchmark split) into an index folder, resumably, atomically, sharded across processes;
  :class:`GalleryIndex` loads one.
- ``search``: text -> image search with optional fusion re-ranking; image -> captions per language.
- ``session``: loading an index with its model and checking user input; ``cli`` / ``search_cli`` are
  ``ccr index`` and ``ccr search``.
"""

from .gallery import INDEX_TYPES, BuildResult, GalleryIndex, build_index, make_faiss_index, model_fingerprint
from .search import CaptionRanking, ImageHit, encode_images, encode_queries, rank_captions, search_text
from .sources import GallerySource, benchmark_source, folder_source

__all__ = [
    "INDEX_TYPES",
    "BuildResult",
    "CaptionRanking",
    "GalleryIndex",
    "GallerySource",
    "ImageHit",
    "benchmark_source",
    "build_index",
    "encode_images",
    "encode_queries",
    "folder_source",
    "make_faiss_index",
    "model_fingerprint",
    "rank_captions",
    "search_text",
]
