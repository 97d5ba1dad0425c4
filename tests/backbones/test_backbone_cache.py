"""Publishing converted folders: atomic, never half-written, built once per cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeling_ccr.atomic_io import publish_folder
from modeling_ccr.backbones.cache import cache_root, ensure_folder


def write_two_files(folder: Path) -> None:
    (folder / "config.json").write_text("{}")
    (folder / "weights.bin").write_bytes(b"\0" * 16)


def test_publish_writes_the_whole_folder(tmp_path):
    output = publish_folder(tmp_path / "model", write_two_files)
    assert sorted(p.name for p in output.iterdir()) == ["config.json", "weights.bin"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging folder left behind


def test_a_failed_write_leaves_nothing(tmp_path):
    def fail_halfway(folder: Path) -> None:
        (folder / "config.json").write_text("{}")
        raise RuntimeError("conversion failed")

    with pytest.raises(RuntimeError, match="conversion failed"):
        publish_folder(tmp_path / "model", fail_halfway)
    assert list(tmp_path.iterdir()) == []


def test_publish_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "old.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="pass a new output folder or delete it"):
        publish_folder(tmp_path / "model", write_two_files)
    assert (tmp_path / "model" / "old.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    assert publish_folder(tmp_path / "empty", write_two_files) == tmp_path / "empty"


def test_ensure_builds_once(tmp_path):
    calls = []

    def build(folder: Path) -> None:
        calls.append(folder)
        publish_folder(folder, write_two_files)

    first = ensure_folder("thing-v1", build, tmp_path)
    second = ensure_folder("thing-v1", build, tmp_path)
    assert first == second == tmp_path / "thing-v1"
    assert calls == [first]


def test_ensure_uses_a_copy_published_meanwhile(tmp_path):
    def build_after_another_process(folder: Path) -> None:
        publish_folder(folder, write_two_files)  # the other process wins the race
        publish_folder(folder, write_two_files)  # this one then finds the folder taken

    assert ensure_folder("thing-v1", build_after_another_process, tmp_path) == tmp_path / "thing-v1"


def test_cache_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("CCR_CACHE", str(tmp_path / "env"))
    assert cache_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert cache_root() == tmp_path / "env"
    monkeypatch.delenv("CCR_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "ccr-1tok"
