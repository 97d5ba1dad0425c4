"""The remote-code set travels with checkpoints on its own: it must never import the losses."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "modeling_ccr"


def imported_names(source: str) -> list[str]:
    """Every dotted name an import statement mentions: modules and imported members."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            names += [f"{node.module or ''}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def test_the_check_sees_every_import_form():
    source = (
        "from .losses import x\nfrom . import losses\nimport modeling_ccr.losses\nfrom .modeling import y"
    )
    flagged = [name for name in imported_names(source) if "losses" in name.split(".")]
    assert len(flagged) == 3


@pytest.mark.parametrize("name", ["configuration_ccr.py", "modeling_ccr.py", "processing_ccr.py"])
def test_remote_code_file_does_not_import_the_losses(name):
    names = imported_names((PACKAGE / name).read_text(encoding="utf-8"))
    assert [n for n in names if "losses" in n.split(".")] == []
