"""The choices and defaults of a gallery index that ``ccr index`` shows in its options, defined here without
heavy imports (``ccr index --help`` loads neither torch nor FAISS); :mod:`.gallery` imports them."""

INDEX_TYPES = ("flat", "ivf", "hnsw")
DEFAULT_CHUNK_IMAGES = 256
