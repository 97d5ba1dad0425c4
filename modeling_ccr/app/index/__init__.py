"""Gallery indexes: a CCR model's image embeddings in FAISS, for text -> image search of any image folder.

- :func:`build_index` (``gallery``): embed a :class:`GallerySource` (``sources``: an image folder or a
  benchmark split) into an index folder, resumably, atomically, sharded across processes;
  :class:`GalleryIndex` loads one.
- ``search``: text -> image search with optional fusion re-ranking; image -> captions per language.
- ``session``: loading an index with its model and checking user input; ``cli`` / ``search_cli`` are
  ``ccr index`` and ``ccr search``.

Importing the package is light (no torch, no FAISS), so ``ccr index --help`` and ``ccr search --help``
start at once: the names below load on first use (PEP 562).
"""

from __future__ import annotations

from ...lazy_exports import lazy_exports

# public name -> the module that defines it
_EXPORTS = {
    "INDEX_TYPES": ".constants",
    "BuildResult": ".gallery",
    "GalleryIndex": ".gallery",
    "build_index": ".gallery",
    "make_faiss_index": ".gallery",
    "model_fingerprint": ".gallery",
    "CaptionRanking": ".search",
    "ImageHit": ".search",
    "candidate_image_tokens": ".search",
    "encode_images": ".search",
    "encode_queries": ".search",
    "rank_captions": ".search",
    "search_text": ".search",
    "GallerySource": ".sources",
    "benchmark_source": ".sources",
    "folder_source": ".sources",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
