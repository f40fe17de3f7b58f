"""The plugin's modules import each other without cycles: ``build`` (compile and load the C++
operators) and ``torch_ops`` (the layers) used to import each other inside functions."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import mlx_custom_ops
import pytest

PACKAGE = Path(mlx_custom_ops.__file__).parent


def imports_within_package(path: Path) -> set[str]:
    """The package's modules that ``path`` imports anywhere (top level or inside a function)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:  # from . import a, b
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlx_custom_ops."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("mlx_custom_ops."))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {name: imports_within_package(path) & set(modules) for name, path in modules.items()}


def cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A path start -> ... -> start in ``graph``, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, ()):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert cycle_through({"build": {"torch_ops"}, "torch_ops": {"build"}}, "build") == ["build", "torch_ops", "build"]


def test_no_module_of_the_plugin_is_in_an_import_cycle():
    graph = import_graph()
    assert "torch_ops" not in graph["build"]
    cycles = {name: cycle for name in graph if (cycle := cycle_through(graph, name))}
    assert cycles == {}


@pytest.mark.parametrize("module", ["build", "torch_ops", "torch_library"])
def test_module_imports_alone_in_a_fresh_interpreter(module):
    proc = subprocess.run(
        [sys.executable, "-c", f"import mlx_custom_ops.{module}"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
