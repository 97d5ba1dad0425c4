"""The layout rules of ARCHITECTURE.md, read from the sources with ``ast`` (nothing is imported).

- The library (``modeling_ccr`` outside ``modeling_ccr/app``, ``evaluate_mrv``, ``hub_cards``) never imports
  the application ``modeling_ccr.app``.
- The import graph of ``modeling_ccr``, ``evaluate_mrv`` and ``hub_cards`` has no cycle. Every ``import``
  statement counts, function-local ones included (a cycle that only closes at call time is still a cycle
  in the design). An edge goes to the module an import names (``from pkg import sub`` names ``pkg.sub``
  when that is a module, else ``pkg``); the parent packages Python initialises on the way are not edges.
  Imports by computed name (``importlib.import_module``) are not seen.
- Every path ARCHITECTURE.md names in backticks exists, and so does every repository path the packages'
  sources name in backticks (docstrings and messages pointing readers to a file).
- No test module changes ``sys.path``: the tests import their shared helpers as packages (``tests/`` is on
  the path as the folder of the suite's root ``conftest.py``: ``evaluation.eval_fixtures``,
  ``data.ccr_data_fixtures``); scripts a test runs in another interpreter may.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("modeling_ccr", "evaluate_mrv", "hub_cards")
APP = "modeling_ccr.app"


def module_name(path: Path) -> str:
    """``modeling_ccr/app/cli.py`` -> ``modeling_ccr.app.cli``; a package's ``__init__.py`` -> the package."""
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    """``{dotted name: file}`` of every module of the three packages."""
    return {module_name(path): path for package in PACKAGES for path in sorted((REPO / package).rglob("*.py"))}


def imported_modules(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules (of ``known``) that the file of module ``name`` imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
    return found & known


def import_graph() -> dict[str, set[str]]:
    """``{module: the project modules it imports}`` over the three packages."""
    modules = project_modules()
    known = set(modules)
    return {name: imported_modules(path, name, known) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None when it has none (depth-first search)."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" when fully explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def is_app(name: str) -> bool:
    return name == APP or name.startswith(APP + ".")


def test_the_graph_sees_relative_absolute_and_function_local_imports():
    graph = import_graph()
    assert "modeling_ccr.evaluation.pipeline" in graph["modeling_ccr.app.evaluate"]  # from ..evaluation.pipeline
    assert "modeling_ccr.app.cli" in graph["modeling_ccr.app.evaluate"]  # from .cli
    assert "evaluate_mrv.rank_variance" in graph["modeling_ccr.evaluation.report"]  # absolute
    assert "modeling_ccr.configuration_ccr" in graph["modeling_ccr.app.cli"]  # inside model_folder()
    assert "modeling_ccr.app.index.session" in graph["modeling_ccr.app.demo.cli"]  # inside run()
    assert "modeling_ccr.auto_registration" in graph["modeling_ccr"]  # a package's __init__


def test_the_library_never_imports_the_application():
    offenders = {
        name: sorted(filter(is_app, targets)) for name, targets in import_graph().items()
        if not is_app(name) and any(map(is_app, targets))
    }
    assert offenders == {}, f"library modules importing {APP}: {offenders}"


def test_the_import_graph_has_no_cycle():
    assert find_cycle(import_graph()) is None


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


PATH_LIKE = re.compile(r"^[\w.-]+(/[\w.-]+)*/?$")


def architecture_paths() -> list[str]:
    """Every backticked word of ARCHITECTURE.md that looks like a path: it has a ``/`` or a file suffix."""
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    words = re.findall(r"`([^`\s]+)`", text)
    return [w for w in words if PATH_LIKE.match(w) and ("/" in w or re.search(r"\.(py|md|toml|txt)$", w))]


def test_architecture_md_names_enough_paths():
    paths = architecture_paths()
    assert len(paths) >= 20 and "modeling_ccr/app/" in paths, paths


@pytest.mark.parametrize("path", architecture_paths())
def test_every_path_architecture_md_names_exists(path):
    assert (REPO / path).exists(), f"ARCHITECTURE.md names {path}, which is not in the tree"


TOP_FOLDERS = ("modeling_ccr", "evaluate_mrv", "hub_cards", "scripts", "spaces_demo", "tests")
REPOSITORY_PATH = re.compile(rf"`((?:{'|'.join(TOP_FOLDERS)})/[\w./-]*)`")


def source_paths() -> dict[str, str]:
    """``{path: a file naming it}`` of every repository path the three packages' sources name in backticks."""
    named = {}
    for file in project_modules().values():
        for path in REPOSITORY_PATH.findall(file.read_text(encoding="utf-8")):
            named.setdefault(path, str(file.relative_to(REPO)))
    return named


def test_every_path_the_sources_name_exists():
    named = source_paths()
    assert "evaluate_mrv/README.md" in named, named  # the search sees the paths it should
    missing = {path: file for path, file in named.items() if not (REPO / path).exists()}
    assert missing == {}, f"paths named in the sources that are not in the tree (path: where): {missing}"


def is_sys_path(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
            and node.value.id == "sys")


def changes_sys_path(node: ast.AST) -> bool:
    """Whether ``node`` calls a method of ``sys.path`` (insert, append, ...) or assigns to it."""
    if isinstance(node, ast.Call):
        return isinstance(node.func, ast.Attribute) and is_sys_path(node.func.value)
    if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return any(is_sys_path(target) for target in targets)
    return False


def test_no_test_changes_sys_path():
    assert changes_sys_path(ast.parse("sys.path.insert(0, 'x')").body[0].value)
    assert changes_sys_path(ast.parse("sys.path = []").body[0])
    assert not changes_sys_path(ast.parse("x = sys.path").body[0])
    offenders = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        offenders += [f"{path.relative_to(REPO)}:{node.lineno}" for node in ast.walk(tree)
                      if changes_sys_path(node)]
    assert offenders == [], f"test modules changing sys.path (import shared helpers as packages): {offenders}"
