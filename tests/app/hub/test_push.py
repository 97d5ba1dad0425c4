"""`ccr push` against a local stand-in of the Hub HTTP API (HF_ENDPOINT points at it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hub_helpers import cli_env
from hub_standin import HubStandIn

from modeling_ccr.app.testing import run_ccr_in_process


def _push(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modeling_ccr.app.cli", "push", str(folder), *args],
                          env=cli_env(**{"HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1", **env}),
                          capture_output=True, text=True, timeout=300)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_push_uploads_exactly_the_exported_folder(tiny_export, tmp_path):
    with HubStandIn() as hub:
        result = _push(tiny_export, "--repo", "test-org/ccr-tiny", "--private",
                       HF_ENDPOINT=hub.url, HF_TOKEN="hf_standin_token", HF_HOME=str(tmp_path / "home"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert hub.unexpected == []
    assert hub.created == [{"name": "ccr-tiny", "organization": "test-org", "visibility": "private", "type": "model"}]
    assert len(hub.commits) == 1
    commit = hub.commits[0]
    assert (commit["repo_type"], commit["repo_id"], commit["revision"]) == ("model", "test-org/ccr-tiny", "main")
    assert commit["authorization"] == "Bearer hf_standin_token"
    assert commit["files"] == _files(tiny_export)
    assert {"model.safetensors", "config.json", "README.md", "modeling_ccr.py"} <= set(commit["files"])
    assert commit["lfs_paths"] == ["model.safetensors"]  # the weights went through the LFS batch API
    readme = (tiny_export / "README.md").read_text(encoding="utf-8")
    assert hub.validated and all(check["content"] == readme for check in hub.validated)


def test_push_space_folder_sends_the_space_sdk(tmp_path):
    space = tmp_path / "space"
    space.mkdir()
    (space / "README.md").write_text("---\ntitle: t\nsdk: gradio\napp_file: app.py\n---\n# t\n")
    (space / "app.py").write_text("print('hello')\n")
    (space / "__pycache__").mkdir()
    (space / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    with HubStandIn() as hub:
        result = _push(space, "--repo", "test-org/mrv", "--repo-type", "space",
                       HF_ENDPOINT=hub.url, HF_TOKEN="hf_x", HF_HOME=str(tmp_path / "home"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert hub.created[0]["type"] == "space" and hub.created[0]["sdk"] == "gradio"
    assert set(hub.commits[0]["files"]) == {"README.md", "app.py"}


def test_dry_run_lists_files_and_sends_nothing(tiny_export, tmp_path):
    with HubStandIn() as hub:
        result = _push(tiny_export, "--repo", "test-org/ccr-tiny", "--dry-run",
                       HF_ENDPOINT=hub.url, HF_TOKEN="hf_x", HF_HOME=str(tmp_path / "home"))
    assert result.returncode == 0, result.stderr
    assert hub.created == [] and hub.commits == [] and hub.unexpected == []
    listed = {line.split()[-1]: int(line.split()[0].replace(",", "")) for line in result.stdout.splitlines()[:-1]}
    assert listed == {path: len(data) for path, data in _files(tiny_export).items()}
    assert "nothing sent" in result.stdout.splitlines()[-1]


def test_missing_token_is_one_clear_line(tiny_export, tmp_path):
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "home"), "HF_TOKEN": ""}
    result = _push(tiny_export, "--repo", "test-org/ccr-tiny", **env)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "no Hugging Face token" in result.stderr and "hf auth login" in result.stderr


def test_offline_mode_is_one_clear_line(tiny_export, tmp_path):
    result = _push(tiny_export, "--repo", "test-org/ccr-tiny", HF_HUB_OFFLINE="1", HF_TOKEN="hf_x")
    assert result.returncode == 2 and "HF_HUB_OFFLINE is set" in result.stderr


def test_push_refuses_a_folder_without_card(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    result = run_ccr_in_process("push", tmp_path, "--repo", "test-org/x", "--dry-run")  # refused before any upload
    assert result.returncode == 2 and "no README.md" in result.stderr


def test_push_refuses_a_card_written_for_another_repo(tiny_export, tmp_path):
    """The card of `tiny_export` loads test-org/ccr-tiny: pushing it to me/test is refused, dry run or not."""
    for dry_run in (["--dry-run"], []):
        with HubStandIn() as hub:
            result = _push(tiny_export, "--repo", "me/test", *dry_run,
                           HF_ENDPOINT=hub.url, HF_TOKEN="hf_x", HF_HOME=str(tmp_path / "home"))
        assert result.returncode == 2 and result.stdout == ""  # no file listed, nothing sent
        assert hub.created == [] and hub.commits == [] and hub.unexpected == []
        error = result.stderr.strip()
        assert error.count("\n") == 0 and error.startswith("ccr push: error: ")
        assert "test-org/ccr-tiny" in error and "not of me/test" in error
        assert "--repo-id me/test" in error and "--repo test-org/ccr-tiny" in error  # both ways out


def test_push_folder_checks_the_card_before_any_request(tiny_export):
    from modeling_ccr.app.hub.push import push_folder

    # no token and no Hub address are needed to be refused: the card is read first
    with pytest.raises(ValueError, match=r"is the card of test-org/ccr-tiny, not of other/name"):
        push_folder(tiny_export, "other/name", token="hf_x")
    with pytest.raises(ValueError, match=r"--repo must be a Hub id 'org/name'"):
        push_folder(tiny_export, "ccr-tiny", token="hf_x")
