"""Where ccr-1tok keeps what it builds on first use (converted backbones, the default model)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$CCR_CACHE`` if set, else ``$XDG_CACHE_HOME/ccr-1tok`` or ``~/.cache/ccr-1tok``."""
    if os.environ.get("CCR_CACHE"):
        return Path(os.environ["CCR_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ccr-1tok"
