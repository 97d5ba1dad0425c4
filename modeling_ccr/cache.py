"""Where ccr-1tok keeps what it builds on first use (converted backbones, the default model, npm tarballs)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "CCR_CACHE"


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` if given, else ``$CCR_CACHE``, else ``$XDG_CACHE_HOME/ccr-1tok`` or ``~/.cache/ccr-1tok``."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ccr-1tok"
