"""The ccr-1tok Space: cross-lingual image search with a CCR model, in three tabs.

Settings (environment variables): CCR_MODEL, a model folder or Hub model id (default: the trained default
model, trained on first start); CCR_GALLERY, an index folder (``ccr index``) or a folder of images
(default: the embedded 10-language emoji benchmark's test split). Run locally with ``python app.py`` from
this folder, or ``ccr demo`` from anywhere.
"""

import os
import sys
from pathlib import Path

try:
    import modeling_ccr  # noqa: F401  (installed, or copied beside this file when the Space is published)
except ImportError:  # run from a clone of the repository
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modeling_ccr.allocator import tune_allocator

tune_allocator()  # before the model and the gallery load (modeling_ccr.allocator says why)

from modeling_ccr.app.demo.app import build_demo, launch_demo  # noqa: E402
from modeling_ccr.app.demo.cli import ensure_gallery, ensure_trained_default  # noqa: E402
from modeling_ccr.app.index.session import load_model  # noqa: E402


def model_folder(setting):
    """A local model folder for CCR_MODEL: the folder itself, a downloaded Hub model, or the trained default."""
    if not setting:
        return ensure_trained_default()
    if Path(setting).is_dir():
        return setting
    from huggingface_hub import snapshot_download

    return snapshot_download(setting)


MODEL_DIR = model_folder(os.environ.get("CCR_MODEL"))
MODEL, PROCESSOR = load_model(MODEL_DIR)
INDEX = ensure_gallery(MODEL, PROCESSOR, MODEL_DIR, os.environ.get("CCR_GALLERY"))
demo = build_demo(INDEX, MODEL, PROCESSOR)

if __name__ == "__main__":
    launch_demo(demo, host=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
