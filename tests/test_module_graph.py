"""lowtrace's modules import each other in one direction: no cycles, not even lazy ones.

A cycle hidden behind an import inside a function still ties the two modules together
(neither can change or be understood alone), so every import counts here except those
under ``if TYPE_CHECKING:``, which exist for annotations only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import lowtrace

PACKAGE = Path(lowtrace.__file__).parent

#: Cycles not yet taken apart, each a sorted tuple of its modules. Shrink it; never grow it.
KNOWN_CYCLES: set[tuple[str, ...]] = {
    # Trace's own to_json/to_html call the codec and the view, which read Trace's records:
    # to go once the records move below Trace (after the model-immutability work lands).
    ("lowtrace._cost", "lowtrace._model", "lowtrace._serde", "lowtrace._view.html"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The lowtrace modules ``path`` imports at run time (anywhere but TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for imported in names:
            target = imported
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != "lowtrace":  # the package itself: the public re-exports
                found.add(target)
    found.discard(module_name(path))
    return found


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm: the groups of modules that reach each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            groups.append(group)

    for node in graph:
        if node not in index:
            visit(node)
    return [group for group in groups if len(group) > 1]


def test_no_import_cycles_between_modules() -> None:
    paths = list(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    graph = {module_name(p): imports_of(p, modules) for p in paths}
    cycles = {tuple(sorted(group)) for group in strongly_connected(graph)}
    assert cycles <= KNOWN_CYCLES, f"new import cycles: {cycles - KNOWN_CYCLES}"
    assert cycles == KNOWN_CYCLES, f"gone (remove them from KNOWN_CYCLES): {KNOWN_CYCLES - cycles}"
