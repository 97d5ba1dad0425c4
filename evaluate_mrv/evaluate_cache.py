"""Make ``evaluate.load("mrv")`` find the installed metric, offline and from any working directory.

For a bare name, ``evaluate.load`` first asks the Hub for ``evaluate-metric/mrv`` and, when that fails
(offline, or no such module), falls back to its module cache:
``HF_MODULES_CACHE/evaluate_modules/metrics/evaluate-metric--mrv/<64-hex hash>/mrv.py``, taking the hash
folder whose ``mrv.py`` is newest. :func:`register_in_evaluate_cache` writes the installed ``mrv.py`` and
``rank_variance.py`` there.

ccr-1tok installs ``ccr_evaluate_mrv.pth`` into site-packages, which calls
``evaluate_mrv.startup.install_import_hook`` at interpreter start-up: the first time the program
imports ``evaluate``, :func:`register_or_warn` runs right after ``evaluate`` has initialised, using
``evaluate.config.HF_MODULES_CACHE`` (so ``HF_HOME`` and ``HF_MODULES_CACHE`` are honoured). Programs
that never import ``evaluate`` touch no file. Without the ``.pth`` (``python -S``, or an install that
skipped it), run ``python -m evaluate_mrv.evaluate_cache`` once per ``HF_HOME`` or load the metric by
path.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

METRIC_NAME = "mrv"
# evaluate's folder for the canonical name "mrv" (Hub namespace evaluate-metric, "/" -> "--").
CACHE_FOLDER = "evaluate-metric--mrv"
# The metric script first, then the relative imports evaluate would copy beside it.
MODULE_FILES = ("mrv.py", "rank_variance.py", "citation.py")


def module_hash(sources: dict[str, bytes]) -> str:
    """64 hex digits identifying the module files' names and contents (evaluate's hash folder length)."""
    digest = hashlib.sha256()
    for name, content in sources.items():
        digest.update(f"{name}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


def register_in_evaluate_cache(modules_cache: str | os.PathLike | None = None) -> Path:
    """Install the metric into ``evaluate``'s module cache; returns the folder holding ``mrv.py``.

    ``modules_cache`` defaults to ``evaluate.config.HF_MODULES_CACHE``. Idempotent and safe against
    concurrent processes: the folder is built under a temporary name and renamed into place. If another
    version of the metric sits beside it with a newer ``mrv.py``, this one is touched so that
    ``evaluate`` (which takes the newest) loads the installed version.
    """
    if modules_cache is None:
        from evaluate import config

        modules_cache = config.HF_MODULES_CACHE
    here = Path(__file__).resolve().parent
    sources = {name: (here / name).read_bytes() for name in MODULE_FILES}
    dynamic_modules = Path(modules_cache) / "evaluate_modules"
    metric_folder = dynamic_modules / "metrics" / CACHE_FOLDER
    target = metric_folder / module_hash(sources)
    script = target / MODULE_FILES[0]
    if not script.is_file():
        metric_folder.mkdir(parents=True, exist_ok=True)
        for package in (dynamic_modules, dynamic_modules / "metrics", metric_folder):
            (package / "__init__.py").touch(exist_ok=True)
        # Not modeling_ccr.atomic_io.publish_folder: this runs inside `import evaluate` in every interpreter
        # of the environment (the start-up hook) and must stay light and import only the standard library;
        # importing modeling_ccr would load torch and transformers there, and would make the metric package
        # depend on the library that depends on it (modeling_ccr imports evaluate_mrv.rank_variance).
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=metric_folder))
        try:
            (staging / "__init__.py").touch()
            for name, content in sources.items():
                (staging / name).write_bytes(content)
            os.replace(staging, target)
        except OSError:
            if not script.is_file():  # not a concurrent process that got there first
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    _make_newest(metric_folder, script)
    return target


def _make_newest(metric_folder: Path, script: Path) -> None:
    """Make ``script`` newer than every other cached version's ``mrv.py`` (evaluate takes the newest)."""
    others = [
        entry / MODULE_FILES[0]
        for entry in metric_folder.iterdir()
        if entry != script.parent and len(entry.name) == 64 and (entry / MODULE_FILES[0]).is_file()
    ]
    newest_other = max((other.stat().st_mtime for other in others), default=None)
    if newest_other is not None and newest_other >= script.stat().st_mtime:
        stamp = max(time.time(), newest_other + 1.0)
        os.utime(script, (stamp, stamp))


class InstalledVersionNote(logging.Filter):
    """Drops ``evaluate``'s warning "Using the latest cached version of the module from FOLDER ... since it
    couldn't be found locally ..., or remotely on the Hugging Face Hub" when FOLDER is the installed metric's:
    for the installed metric that is the path ``evaluate.load("mrv")`` takes every time, not a stale fallback,
    so the warning only alarmed. Any other module's warning (another cached version) passes."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = str(folder)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Using the latest cached version of the module from ")
                    and self.folder in message)


def register_or_warn() -> None:
    """:func:`register_in_evaluate_cache`, turning any failure into a warning (it runs inside
    ``import evaluate``, which must not fail because of it); then quiets evaluate's cached-version warning
    for the installed metric (:class:`InstalledVersionNote`)."""
    try:
        folder = register_in_evaluate_cache()
        logging.getLogger("evaluate.loading").addFilter(InstalledVersionNote(folder))
    except Exception as err:  # noqa: BLE001
        warnings.warn(
            f"could not install the 'mrv' metric into evaluate's module cache ({err!r}), so "
            "evaluate.load('mrv') will not find it; make HF_HOME (or HF_MODULES_CACHE) writable, or load "
            "it by path: evaluate.load(os.path.dirname(evaluate_mrv.__file__))",
            RuntimeWarning,
            stacklevel=2,
        )


if __name__ == "__main__":
    print(f"evaluate.load({METRIC_NAME!r}) will load {register_in_evaluate_cache() / MODULE_FILES[0]}")
