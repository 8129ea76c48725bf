"""The package's rooms and the one way its imports go (ARCHITECTURE.md).

    web / CLI  ->  service  ->  store  <-  worker  ->  runner

Read from the source (no import is executed), so a wrong arrow fails here
before it makes a cycle at run time.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "flask_taches"

#: The rooms, and the rooms each may not import (directly or not).
FORBIDDEN = {
    "store": {"service", "web", "cli", "worker", "runner", "extension"},
    "lifecycle": {"store", "service", "web", "cli", "worker", "runner", "extension", "state"},
    "scheduling": {"store", "service", "web", "cli", "worker", "runner", "extension", "state"},
    "service": {"web", "cli", "worker", "runner"},
    "runner": {"worker", "service", "web", "cli", "extension"},
    "worker": {"service", "web", "cli", "extension"},
    "web": {"store", "worker", "runner", "cli"},
    "cli": {"web", "store"},
}
#: The one module that reads ``app.extensions`` for flask-taches' own keys.
STATE_ACCESSOR = "state"
OWN_KEYS = re.compile(r"""extensions(\[|\.get\()\s*["']taches""")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    return module.split(".")[0]


def runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements that run: those under ``if TYPE_CHECKING:`` do not."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in runtime_imports(child))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from runtime_imports(node)


def imported(path: Path, modules: set[str]) -> Iterator[str]:
    """The package's own modules that ``path`` imports (relative or absolute)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (
                a.name.removeprefix("flask_taches.")
                for a in node.names
                if a.name.startswith("flask_taches.")
            )
            continue
        if node.level:
            base = package.split(".") if package else []
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            target = ".".join([*base, *([node.module] if node.module else [])])
        elif node.module and node.module.startswith("flask_taches"):
            target = node.module.removeprefix("flask_taches").lstrip(".")
        else:
            continue
        for alias in node.names:  # "from . import runner" names a module
            name = f"{target}.{alias.name}" if target else alias.name
            yield name if name in modules else target


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {
        name: {t for t in imported(path, modules) if t in modules and t != name}
        for name, path in paths.items()
    }


@pytest.mark.parametrize("source", sorted(FORBIDDEN))
def test_a_room_never_imports_a_room_above_it(source: str) -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        if room(module) == source
        for target in targets
        if room(target) in FORBIDDEN[source]
    ]
    assert wrong == []


def test_the_imports_have_no_cycle() -> None:
    edges = graph()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        for target in sorted(edges.get(node, ())):
            # A package imports its own modules to re-export them: not a cycle.
            if not target.startswith(node + "."):
                visit(target, [*path, node])
        done.add(node)

    for node in sorted(edges):
        visit(node, [])


def test_only_the_state_module_reads_the_extensions_own_keys() -> None:
    readers = [
        module_name(path)
        for path in PACKAGE.rglob("*.py")
        if module_name(path) != STATE_ACCESSOR and OWN_KEYS.search(path.read_text(encoding="utf-8"))
    ]
    assert readers == []


def test_no_module_is_over_400_lines() -> None:
    long = {
        module_name(p): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}
