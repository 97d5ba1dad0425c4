"""The demo Space folder of `ccr export-companion demo-space`: it holds what app.py imports, and pushes as it is."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from hub_helpers import HIDE_PACKAGES, REPO_ROOT, cli_env, run_hidden
from hub_standin import HubStandIn
from huggingface_hub import SpaceCard

from modeling_ccr.app.testing import run_ccr_in_process

# Imports the Space's app.py as the Space does (module-level code: load the model, build the gallery index
# and the Blocks; no server), then reports where every imported module of the project came from.
IMPORT_APP_SCRIPT = HIDE_PACKAGES + textwrap.dedent(
    """
    import json
    sys.path.insert(0, os.getcwd())
    import app
    files = sorted({module.__file__ for name, module in sys.modules.items()
                    if name.split(".")[0] in PROJECT and getattr(module, "__file__", None)})
    print(json.dumps({"files": files, "images": len(app.INDEX), "source": app.INDEX.manifest["source"],
                      "demo": type(app.demo).__name__}))
    """
)


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    """``ccr ARGS``: in this process, or in a subprocess when ``env`` sets variables that the libraries read
    at import (the Hub endpoint of a push)."""
    if not env:
        return run_ccr_in_process(*args)
    return subprocess.run([sys.executable, "-m", "modeling_ccr.app.cli", *args], env=cli_env(**env),
                          capture_output=True, text=True, timeout=300)


def _export(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return _cli("export-companion", "demo-space", "--output", str(folder), "--model", "test-org/ccr-tiny",
                "--metric-space", "test-org/mrv", "--dataset-repo", "test-org/cldr-emoji", *args)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _expected_sources() -> list[str]:
    """The tracked files the Space needs besides its card: the app, its requirements, the two packages'
    Python files and the embedded benchmark (read from git, not from the exporter)."""
    tracked = subprocess.run(["git", "ls-files", "modeling_ccr", "evaluate_mrv", "spaces_demo"], cwd=REPO_ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    return sorted(path.removeprefix("spaces_demo/") for path in tracked
                  if path in ("spaces_demo/app.py", "spaces_demo/requirements.txt")
                  or (path.endswith(".py") and not path.startswith("spaces_demo/"))
                  or path.startswith("modeling_ccr/data/cldr_emoji/"))


def test_demo_space_folder_holds_the_app_its_sources_and_card(tmp_path):
    folder = tmp_path / "demo"
    result = _export(folder)
    assert result.returncode == 0, result.stderr
    assert "ccr push" in result.stdout and "--repo-type space" in result.stdout
    files = _files(folder)
    assert sorted(files) == sorted([*_expected_sources(), "README.md"])
    for path in _expected_sources():
        source = REPO_ROOT / ("spaces_demo/" + path if path in ("app.py", "requirements.txt") else path)
        assert files[path] == source.read_bytes(), path
    card = SpaceCard.load(folder / "README.md")
    assert card.data.models == ["test-org/ccr-tiny"] and card.data.app_file == "app.py"
    assert "https://huggingface.co/spaces/test-org/mrv" in card.text
    again = _export(folder)
    assert again.returncode == 2 and "already exists" in again.stderr and "--overwrite" in again.stderr
    assert _files(folder) == files  # the refused export left the folder as it was


def test_overwrite_writes_into_an_earlier_demo_export_only(tmp_path):
    folder = tmp_path / "demo"
    assert _export(folder).returncode == 0
    exported = _files(folder)
    (folder / "app.py").write_text("edited\n")
    (folder / "notes.txt").write_text("mine\n")
    result = _export(folder, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert _files(folder) == {**exported, "notes.txt": b"mine\n"}  # app.py restored, the other file kept
    metric = tmp_path / "mrv"
    assert _cli("export-companion", "mrv-space", "--output", str(metric)).returncode == 0
    before = _files(metric)
    refused = _export(metric, "--overwrite")
    assert refused.returncode == 2 and "is not an earlier export of this companion" in refused.stderr
    assert _files(metric) == before


def test_demo_space_takes_one_model(tmp_path):
    result = _export(tmp_path / "demo", "--model", "test-org/other")
    assert result.returncode == 2 and "demo-space serves one model" in result.stderr
    assert not (tmp_path / "demo").exists()


def test_app_imports_from_the_copied_sources(tiny_model_dir, tmp_path):
    folder = tmp_path / "demo"
    assert _export(folder).returncode == 0
    got = run_hidden(IMPORT_APP_SCRIPT, cwd=folder, import_only_from=folder, CCR_MODEL=str(tiny_model_dir),
                     CCR_CACHE=str(tmp_path / "cache"), HF_HOME=str(tmp_path / "home"), HF_DATASETS_OFFLINE="1",
                     GRADIO_ANALYTICS_ENABLED="False", PYTHONDONTWRITEBYTECODE="1")
    root = str(folder.resolve()) + "/"
    assert got["files"] and all(path.startswith(root) for path in got["files"]), got["files"]
    assert (root + "modeling_ccr/app/demo/app.py" in got["files"]
            and root + "evaluate_mrv/rank_variance.py" in got["files"])
    # the default gallery: the copied benchmark's test split
    assert got["source"]["kind"] == "benchmark" and got["source"]["split"] == "test" and got["images"] == 300
    assert got["demo"] == "Blocks"


def test_push_sends_exactly_the_exported_demo_space(tmp_path):
    folder = tmp_path / "demo"
    assert _export(folder).returncode == 0
    with HubStandIn() as hub:
        pushed = _cli("push", str(folder), "--repo", "org/demo", "--repo-type", "space",
                      HF_ENDPOINT=hub.url, HF_TOKEN="hf_x", HF_HUB_OFFLINE="0", HF_HUB_DISABLE_XET="1",
                      HF_HOME=str(tmp_path / "home"))
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    assert hub.unexpected == []
    assert hub.created[0]["type"] == "space" and hub.created[0]["sdk"] == "gradio"
    commit = hub.commits[0]
    assert (commit["repo_type"], commit["repo_id"]) == ("space", "org/demo")
    assert commit["files"] == _files(folder)
    assert commit["lfs_paths"] == [f"modeling_ccr/data/cldr_emoji/{split}.parquet"
                                   for split in ("test", "train", "validation")]
