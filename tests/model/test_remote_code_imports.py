"""The remote-code set travels with every saved model on its own: it imports only torch, numpy, PIL, the
standard library, transformers, and its own files by relative import."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "modeling_ccr"
REMOTE_CODE_FILES = ["configuration_ccr.py", "modeling_ccr.py", "model_checks.py", "processing_ccr.py",
                     "configuration_efficientnet_lite.py", "modeling_efficientnet_lite.py"]
ALLOWED_TOP_LEVEL = {"torch", "numpy", "PIL", "transformers", "__future__"}


def imports_of(source: str) -> list[tuple[int, str]]:
    """(relative level, dotted module) of every import statement."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
        elif isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
    return found


def disallowed(source: str) -> list[str]:
    bad = []
    for level, module in imports_of(source):
        if level:
            if level != 1 or f"{module}.py" not in REMOTE_CODE_FILES:
                bad.append("." * level + module)
        elif module.split(".")[0] not in ALLOWED_TOP_LEVEL | set(sys.stdlib_module_names):
            bad.append(module)
    return bad


def test_the_check_flags_what_it_should():
    source = ("from .losses import x\nfrom . import losses\nimport modeling_ccr.data\nimport faiss\n"
              "from .modeling_ccr import y\nimport os\nfrom transformers import AutoModel\n")
    assert disallowed(source) == [".losses", ".", "modeling_ccr.data", "faiss"]


@pytest.mark.parametrize("name", REMOTE_CODE_FILES)
def test_remote_code_file_imports_only_what_travels(name):
    assert disallowed((PACKAGE / name).read_text(encoding="utf-8")) == []
