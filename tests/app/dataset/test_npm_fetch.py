"""fetch_tarball writes the cache file whole or not at all: a stand-in ``npm`` executable on PATH (a real
subprocess writing a real file, as ``npm pack`` does) gives the pinned bytes, other bytes, or fails."""

from __future__ import annotations

import hashlib
import os
import sys

import pytest

from modeling_ccr.app.dataset.npm_fetch import NpmPackage, fetch_tarball

PINNED = b"the pinned tarball bytes"
STAND_IN = """#!{python}
import os, sys
if os.environ["NPM_STAND_IN_EXIT"] != "0":
    print("npm ERR! network unreachable", file=sys.stderr)
    sys.exit(int(os.environ["NPM_STAND_IN_EXIT"]))
args = sys.argv[1:]
name, _, version = args[1].rpartition("@")
destination = args[args.index("--pack-destination") + 1]
with open(os.path.join(destination, f"{{name}}-{{version}}.tgz"), "wb") as handle:
    handle.write(os.environ["NPM_STAND_IN_BYTES"].encode())
"""
PACKAGE = NpmPackage("emoji-example", "1.0.0", hashlib.sha256(PINNED).hexdigest())


@pytest.fixture()
def stand_in_npm(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(STAND_IN.format(python=sys.executable))
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def answer(content: bytes = PINNED, exit_code: int = 0) -> None:
        monkeypatch.setenv("NPM_STAND_IN_BYTES", content.decode())
        monkeypatch.setenv("NPM_STAND_IN_EXIT", str(exit_code))

    return answer


def test_the_pinned_tarball_is_cached_whole(tmp_path, stand_in_npm):
    stand_in_npm(PINNED)
    target = fetch_tarball(PACKAGE, cache_dir=tmp_path / "cache")
    assert target == tmp_path / "cache" / "npm" / "emoji-example-1.0.0.tgz"
    assert target.read_bytes() == PINNED
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary file left


def test_other_bytes_leave_no_file(tmp_path, stand_in_npm):
    stand_in_npm(b"a tarball from another registry")
    with pytest.raises(ValueError, match=f"has SHA-256 .* not the pinned {PACKAGE.sha256}"):
        fetch_tarball(PACKAGE, cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache" / "npm").iterdir()) == []


def test_a_failing_npm_leaves_no_file(tmp_path, stand_in_npm):
    stand_in_npm(exit_code=1)
    with pytest.raises(RuntimeError, match=r"`npm pack emoji-example@1.0.0` failed \(exit 1\).*network unreachable"):
        fetch_tarball(PACKAGE, cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache" / "npm").iterdir()) == []


def test_a_cached_tarball_is_used_and_a_corrupted_one_fetched_again(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-npm-here"))
    cached = tmp_path / "cache" / "npm" / PACKAGE.tarball_name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(PINNED)
    assert fetch_tarball(PACKAGE, cache_dir=tmp_path / "cache") == cached
    cached.write_bytes(b"corrupted")
    with pytest.raises(RuntimeError, match="npm is not installed"):
        fetch_tarball(PACKAGE, cache_dir=tmp_path / "cache")
