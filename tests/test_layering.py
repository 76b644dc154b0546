"""The data flow runs one way: kernels know nothing of pandas, pydantic, files or the CLI."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[1] / "engine"
KERNEL_IMPORTS = {"numpy", "numba", "math", "__future__"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names.add("." * node.level + module)
    return names


@pytest.mark.parametrize("path", sorted((ENGINE / "nb").glob("*.py")), ids=lambda p: p.name)
def test_kernels_import_only_numpy_numba_and_the_layout(path):
    for name in _imports(path):
        if name.startswith("."):  # relative: the package's own kernels, or the compiled layout
            assert name in (".", ".config", ".book", ".rng", ".kernel", ".bs", "..compile.layout"), (path.name, name)
        else:
            assert name.split(".")[0] in KERNEL_IMPORTS, f"{path.name} imports {name}"


def test_the_scenario_layer_does_not_reach_into_later_layers():
    for path in (ENGINE / "scenario").glob("*.py"):
        for name in _imports(path):
            assert not name.startswith(("..compile", "..nb", "..simulate", "..result", "engine.")), (path.name, name)


def test_the_strategy_kernel_names_every_column_it_indexes():
    """engine/nb/hedge.py indexes no column with a bare integer: engine/compile/layout.py names them
    (Surface, Leg, Table, Hermite, Opening, Order, ...)."""
    from engine.compile import layout

    bare = re.findall(r"\w+\[[^]\n]*, \d+\]", (ENGINE / "nb" / "hedge.py").read_text())
    assert not bare, bare
    assert set(layout.SURFACE_FIELDS) <= set(layout.STEP_FIELDS)  # the surface is those Step rows side by side
