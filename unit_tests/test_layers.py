"""The package's imports point one way: shell -> features -> http -> settings -> facts, with no cycle.

The layers are source_pendo/__init__.py's. Imports are read from the source (every `import` and `from`, at module
level or inside a function), so a lazy import cannot hide a cycle or an upward arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "source_pendo"
LAYERS = {  # the first part of a module's name below source_pendo -> its layer
    "run": 4,
    "entrypoint": 4,
    "source": 4,
    "check": 4,
    "activity": 3,
    "children": 3,
    "custom": 3,
    "deletions": 3,
    "entities": 3,
    "http": 2,
    "settings": 1,
    "pendo": 0,
    "clock": 0,
}
# features that read through another feature (each arrow named here, so a new one is a decision)
FEATURE_USES = {("custom", "activity"), ("children", "deletions")}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(p for p in parts if p != "__init__")
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules `name` imports (`from . import x` counts as importing module x)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] if node.level > 1 else list(package)
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.startswith("source_pendo"):
                target = node.module.removeprefix("source_pendo").lstrip(".")
            else:
                continue
            for alias in node.names:
                child = f"{target}.{alias.name}" if target else alias.name
                found.add(child if child in modules else target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("source_pendo."):
                    found.add(alias.name.removeprefix("source_pendo."))
    return {m for m in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _top(name: str) -> str:
    return name.split(".")[0]


def test_layers_every_module_belongs_to_a_layer():
    unknown = sorted(name for name in _modules() if name and _top(name) not in LAYERS)
    assert unknown == [], f"add these to a layer in source_pendo/__init__.py and LAYERS: {unknown}"


def _upward(graph: dict[str, set[str]]) -> list[str]:
    """Every import that points up a layer, or across features without a FEATURE_USES entry."""
    found = []
    for name, imported in graph.items():
        for target in imported:
            a, b = _top(name), _top(target)
            if not name or a == b:
                continue
            across = LAYERS[a] == LAYERS[b] == 3 and (a, b) not in FEATURE_USES
            if LAYERS[a] < LAYERS[b] or across:
                found.append(f"{name} -> {target}")
    return sorted(found)


def _packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph of the top-level packages and modules (activity, http, ...)."""
    out: dict[str, set[str]] = {}
    for name, imported in graph.items():
        if name:
            out.setdefault(_top(name), set()).update(_top(b) for b in imported if _top(b) != _top(name))
    return out


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_layers_imports_only_point_down():
    assert _upward(_graph()) == []


@pytest.mark.parametrize("level", ["module", "package"])
def test_layers_no_import_cycle(level):
    graph = _graph() if level == "module" else _packages(_graph())
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_layers_the_checks_catch_a_cycle_an_upward_import_and_an_unlisted_feature_arrow():
    assert _find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
    assert _upward({"settings.config": {"http.quick"}}) == ["settings.config -> http.quick"]
    assert _upward({"deletions.records": {"activity.cursor"}}) == ["deletions.records -> activity.cursor"]
    assert _upward({"custom.retriever": {"activity.pager"}, "source": {"activity.streams"}}) == []
