"""Helpers the hub tests import by name (a module of its own: `from conftest import` would resolve to
whichever test folder's conftest.py came first on the path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a `python -m modeling_ccr.app.cli` subprocess: this checkout first on the path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


# A fresh interpreter in which every import of this project's packages is refused (the installed
# package's start-up hook, already run by site, is taken out too), except, when $IMPORT_ONLY_FROM names
# a folder, the copies of the packages in that folder.
HIDE_PACKAGES = textwrap.dedent(
    """
    import importlib.machinery
    import os
    import sys
    PROJECT = ("modeling_ccr", "hub_cards", "evaluate_mrv")
    IMPORT_ONLY_FROM = os.environ.get("IMPORT_ONLY_FROM")
    sys.meta_path = [f for f in sys.meta_path if not type(f).__module__.startswith(PROJECT)]
    for name in [name for name in sys.modules if name.split(".")[0] in PROJECT]:
        del sys.modules[name]
    class HidePackages:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] not in PROJECT:
                return None
            if IMPORT_ONLY_FROM:
                spec = importlib.machinery.PathFinder.find_spec(name, path or [IMPORT_ONLY_FROM])
                if spec is not None and str(spec.origin).startswith(IMPORT_ONLY_FROM + os.sep):
                    return spec
            raise ImportError(name + " is hidden for this test")
    sys.meta_path.insert(0, HidePackages())
    sys.path = [p for p in sys.path if p not in ("", ".")]
    """
)


def run_hidden(script: str, *args: str, cwd: Path, import_only_from: Path | None = None,
               **extra_env: str) -> dict | list:
    """Run ``script`` (which starts with :data:`HIDE_PACKAGES`) in a fresh interpreter; its last stdout line is JSON.

    With ``import_only_from``, the project's packages are imported from that folder's copies and nowhere else.
    ``extra_env`` is added to the interpreter's environment.
    """
    env = cli_env(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_MODULES_CACHE=str(cwd / "modules"), **extra_env)
    env["PYTHONPATH"] = ""  # the checkout must not be importable either
    if import_only_from is not None:
        env["IMPORT_ONLY_FROM"] = str(Path(import_only_from).resolve())
    result = subprocess.run([sys.executable, "-c", script, *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
