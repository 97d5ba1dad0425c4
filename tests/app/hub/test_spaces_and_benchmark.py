"""The MRV metric Space folder and the benchmark's dataset folder: they load as the Hub would serve them."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import datasets
from hub_helpers import HIDE_PACKAGES, cli_env, run_hidden
from hub_standin import HubStandIn
from huggingface_hub import DatasetCard, SpaceCard

from modeling_ccr.app.hub.companions import SPACE_FILES
from modeling_ccr.app.testing import run_ccr_in_process

EVALUATE_SCRIPT = HIDE_PACKAGES + textwrap.dedent(
    """
    import json
    import evaluate
    metric = evaluate.load(sys.argv[1])
    print(json.dumps(metric.compute(ranks=[[0, 2, 0, 6], [1, 1, 1, 1]])))
    """
)


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    """``ccr ARGS``: in this process, or in a subprocess when ``env`` sets variables that the libraries read
    at import (the Hub endpoint of a push)."""
    if not env:
        return run_ccr_in_process(*args)
    return subprocess.run([sys.executable, "-m", "modeling_ccr.app.cli", *args], env=cli_env(**env),
                          capture_output=True, text=True, timeout=300)


def test_metric_space_folder_is_a_loadable_metric(tmp_path):
    space = tmp_path / "mrv"  # evaluate loads a folder through <folder name>.py
    result = _cli("export-companion", "mrv-space", "--output", str(space), "--model", "test-org/ccr-tiny")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in space.iterdir()) == sorted([*SPACE_FILES, "README.md"])
    card = SpaceCard.load(space / "README.md")
    assert card.data.sdk == "gradio" and "https://huggingface.co/test-org/ccr-tiny" in card.text
    got = run_hidden(EVALUATE_SCRIPT, str(space), cwd=tmp_path)
    assert math.isclose(got["mrv"], (math.sqrt(6) + 0.0) / 2, rel_tol=1e-9)  # worked example + a constant row
    again = _cli("export-companion", "mrv-space", "--output", str(space))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_benchmark_folder_loads_with_datasets_and_pushes(tmp_path):
    folder = tmp_path / "cldr-emoji"
    result = _cli("export-companion", "benchmark", "--output", str(folder), "--model", "test-org/ccr-tiny")
    assert result.returncode == 0, result.stderr
    loaded = datasets.load_dataset(str(folder))
    assert {name: len(split) for name, split in loaded.items()} == {"train": 1085, "validation": 200, "test": 300}
    assert loaded["test"][0]["captions"]["ja"]
    card = DatasetCard.load(folder / "README.md")
    assert (folder / card.data.license_link).is_file()
    with HubStandIn() as hub:
        pushed = _cli("push", str(folder), "--repo", "test-org/cldr-emoji", "--repo-type", "dataset",
                      HF_ENDPOINT=hub.url, HF_TOKEN="hf_x", HF_HUB_OFFLINE="0", HF_HUB_DISABLE_XET="1",
                      HF_HOME=str(tmp_path / "home"))
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    assert hub.created[0]["type"] == "dataset"
    assert hub.commits[0]["files"] == {p.name: p.read_bytes() for p in folder.iterdir()}
    assert hub.commits[0]["lfs_paths"] == ["test.parquet", "train.parquet", "validation.parquet"]
