"""Fetching pinned npm package tarballs (``npm pack``) into a local cache, checked by SHA-256."""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ...atomic_io import atomic_write
from ...cache import cache_root

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NpmPackage:
    """An npm package pinned to one version and the SHA-256 of its registry tarball."""

    name: str
    version: str
    sha256: str

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def tarball_name(self) -> str:
        return f"{self.name}-{self.version}.tgz"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_tarball(package: NpmPackage, cache_dir: Path | None = None) -> Path:
    """The path of ``package``'s tarball in ``<cache_dir>/npm``, running ``npm pack`` when it is not cached.

    Raises RuntimeError when npm is missing or fails, ValueError when the tarball's SHA-256 differs from
    the pinned one.
    """
    folder = (cache_dir or cache_root()) / "npm"
    target = folder / package.tarball_name
    if target.is_file():
        if sha256_of(target) == package.sha256:
            return target
        logger.warning("cached %s does not match its pinned SHA-256; fetching it again", target)
        target.unlink()
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            f"npm is not installed, and {target} is not cached. Install Node.js (which brings npm), or put "
            f"the tarball of {package.spec} (SHA-256 {package.sha256}) at that path."
        )
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(target, partial(_pack, npm, package))
    return target


def _pack(npm: str, package: NpmPackage, destination: Path) -> None:
    """Write ``package``'s tarball (``npm pack``) to ``destination``; ValueError when its SHA-256 is not the
    pinned one."""
    with tempfile.TemporaryDirectory() as scratch:
        completed = subprocess.run(
            [npm, "pack", package.spec, "--pack-destination", scratch, "--silent"],
            cwd=scratch,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        fetched = Path(scratch) / package.tarball_name
        if completed.returncode != 0 or not fetched.is_file():
            raise RuntimeError(
                f"`npm pack {package.spec}` failed (exit {completed.returncode}): "
                f"{(completed.stderr or completed.stdout).strip()[-800:]}\n"
                "Check that the npm registry is reachable (`npm ping`)."
            )
        shutil.copyfile(fetched, destination)
    digest = sha256_of(destination)
    if digest != package.sha256:
        raise ValueError(
            f"{package.spec} from the registry has SHA-256 {digest}, not the pinned {package.sha256}; "
            "the build would not reproduce the shipped files. Check the registry configuration."
        )
