"""The shape of the code the issue 14 review asked for, checked on the source itself: the
decision core has no Dagster import, production never imports the test oracle, and the import
graph of the project's packages has no circle (imports for type checking only excepted)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = ("reasoning_plane", "data_plane", "resources", "assets", "sensors", "stack_defs")
PACKAGES = (*PRODUCTION, "plane_cli")
CORE = ("model", "policy", "rules", "cost", "index", "placement", "batch", "hysteresis", "explain")


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, here: str) -> set[str]:
    """Modules imported anywhere in ``tree`` (functions included), except under TYPE_CHECKING."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:
                base = ".".join([*here.split(".")[: -node.level], node.module])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph() -> dict[str, set[str]]:
    sources = {_module(p): p for package in PACKAGES for p in (REPO / package).rglob("*.py")}
    graph = {}
    for name, path in sources.items():
        imported = _imports(ast.parse(path.read_text()), name)
        graph[name] = {m for m in imported if m in sources and m != name}
    return graph


def test_production_never_imports_the_tests() -> None:
    for package in (*PRODUCTION, "plane_cli"):
        for path in (REPO / package).rglob("*.py"):
            imported = _imports(ast.parse(path.read_text()), _module(path))
            assert not any(m == "tests" or m.startswith("tests.") for m in imported), path


def test_the_decision_core_has_no_dagster_import() -> None:
    for name in CORE:
        path = REPO / "reasoning_plane" / f"{name}.py"
        imported = _imports(ast.parse(path.read_text()), f"reasoning_plane.{name}")
        assert not any(m.split(".")[0] in ("dagster", "dagster_k8s") for m in imported), name


def test_the_import_graph_has_no_circle() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circle = [*path[path.index(nxt) :], nxt]
                raise AssertionError("import circle: " + " -> ".join(circle))
            if nxt not in state:
                walk(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)
