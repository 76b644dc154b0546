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


def test_the_package_imports_only_itself_relatively():
    """``engine`` never names itself: a copy imported under another name (``bench/ab_kernel.py``
    loads two versions side by side) must run its own modules. An absolute ``engine.`` import
    once made that bench time the installed kernel against itself."""
    offenders = []
    for path in sorted(ENGINE.rglob("*.py")):
        for name in _imports(path):
            if name == "engine" or name.startswith("engine."):
                offenders.append(f"{path.relative_to(ENGINE.parent)}: {name}")
        for literal in re.findall(r"import_module\(\s*[\"'](engine[.\w]*)[\"']", path.read_text()):
            offenders.append(f"{path.relative_to(ENGINE.parent)}: import_module({literal!r})")
        if path.name == "__init__.py" and path.parent == ENGINE:
            lazy = re.findall(r"\(\s*\"(engine\.[\w.]+)\"", path.read_text())
            offenders += [f"engine/__init__.py lazy export: {m}" for m in lazy]
    assert not offenders, offenders


def test_a_renamed_copy_of_the_package_serves_its_own_modules(tmp_path, monkeypatch):
    import importlib
    import shutil
    import sys

    shutil.copytree(ENGINE, tmp_path / "engine_copy", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        copy = importlib.import_module("engine_copy")
        assert copy.run.__module__ == "engine_copy.simulate"
        assert copy.load_scenario.__module__ == "engine_copy.scenario.loader"
    finally:
        for name in [n for n in sys.modules if n == "engine_copy" or n.startswith("engine_copy.")]:
            del sys.modules[name]
