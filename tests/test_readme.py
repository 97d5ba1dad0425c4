"""The README's Python examples run as written, on a tiny model saved where they load from."""

from __future__ import annotations

import re
from pathlib import Path

from modeling_ccr.testing import save_tiny_model

README = Path(__file__).resolve().parents[1] / "README.md"
MODEL_PATH = "runs/main/train/model"  # where the examples load the main job's model from


def python_blocks(section: str) -> list[str]:
    """The ```python blocks of the README section whose heading is ``section``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start : end if end != -1 else None], re.DOTALL)


def test_using_a_model_and_training_examples_run_in_order(tmp_path, monkeypatch):
    """The first example of "Using a model" gives the names the "Training" example goes on with, as a reader
    runs them."""
    save_tiny_model(tmp_path / MODEL_PATH)
    monkeypatch.chdir(tmp_path)
    blocks = [python_blocks("## Using a model")[0], python_blocks("## Training")[0]]  # not the paper-scale one
    assert MODEL_PATH in blocks[0] and "CCRForPreTraining" in blocks[-1]
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - the README's own code
    assert namespace["scores"].shape == (2, 4)  # 2 images x their 2 captions each, image-major
    assert namespace["output"].loss.ndim == 0 and bool(namespace["output"].loss.isfinite())

