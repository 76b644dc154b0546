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
            if node.module:
                names.add("." * node.level + node.module)
            else:  # `from .. import _notice`: the modules it names (`.._notice`)
                names |= {"." * node.level + alias.name for alias in node.names}
    return names


@pytest.mark.parametrize("path", sorted((ENGINE / "nb").glob("*.py")), ids=lambda p: p.name)
def test_kernels_import_only_numpy_numba_and_the_layout(path):
    for name in _imports(path):
        if name.startswith("."):  # relative: the package's own kernels, or the compiled layout
            # and, for the settings module, the notice hook (engine/_notice.py: one variable, no
            # import) and the stamp of the kernels' sources (engine/_kernel_cache.py)
            allowed = (".config", ".book", ".rng", ".kernel", ".bs", "..compile.layout") + \
                ((".._notice", ".._kernel_cache") if path.name == "config.py" else ())
            assert name in allowed, (path.name, name)
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


def _module_graph(anywhere: bool = False) -> dict[str, set[str]]:
    """``engine`` module -> the ``engine`` modules it imports at its top level (when it is
    imported), or with ``anywhere`` also inside its functions (when they run)."""
    modules = {}
    for path in ENGINE.rglob("*.py"):
        parts = path.relative_to(ENGINE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        tree = ast.parse(path.read_text())
        for node in (ast.walk(tree) if anywhere else tree.body):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
                target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    edges.add(full if full in modules else target)
            elif isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names}
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


@pytest.mark.parametrize("anywhere", [False, True], ids=["at-import-time", "inside-functions-too"])
def test_no_import_cycle(anywhere):
    """No engine module imports one that imports it back, directly or not: not at its top level
    (import order never matters), and not inside its functions either (each layer can be read,
    tested and moved on its own; a lower layer never calls up into a higher one). The public
    verbs in ``engine/__init__.py`` sit on top: nothing inside the package imports ``engine``."""
    graph = _module_graph(anywhere)
    assert len(graph) > 50
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_cycle_check_sees_an_import_inside_a_function():
    """The second graph holds the imports made inside functions, which the first does not: the
    check would catch a lower layer calling up into a higher one at run time."""
    assert "engine.simulate" in _module_graph(anywhere=True)["engine.results.check"]  # inside measure_scenario
    assert "engine.simulate" not in _module_graph()["engine.results.check"]


def test_validate_and_show_do_not_import_numba():
    """Checking a file needs no kernel: ``cascade validate`` and ``cascade show`` start without
    numba (half a second of imports, and a compile notice that would be out of place)."""
    import subprocess
    import sys

    calm = ENGINE.parent / "scenarios" / "ci" / "ci-calm.yaml"
    code = ("import sys, contextlib, io; from engine.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main(['validate', {str(calm)!r}]) == 0 and main(['show', {str(calm)!r}]) == 0\n"
            "print(sorted(m for m in sys.modules if m == 'numba' or m.startswith('engine.nb')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ENGINE.parent, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.slow
def test_a_change_to_a_neighbour_recompiles_the_kernels_that_inline_it(tmp_path):
    """The strategy kernel inlines Black-Scholes from ``nb/bs.py``. Numba's own cache would keep the
    kernel compiled against the old file; :mod:`engine._kernel_cache` stamps every kernel with all
    the kernel sources, so an edit to ``bs.py`` alone reaches ``nb/hedge.py``'s cached functions, and
    the loops of ``engine/options/black_scholes.py`` outside ``nb/`` that call it."""
    import shutil
    import subprocess
    import sys

    shutil.copytree(ENGINE, tmp_path / "engine_cached", ignore=shutil.ignore_patterns("__pycache__"))
    code = ("import engine_cached.nb.hedge as h\n"
            "import engine_cached.options.black_scholes as b\n"
            "f = h._option_value_nb\n"
            "v = f(0, 60000.0, 55000.0, 0.1, 0.6, -0.1, 0.0, 0.0, 0.08, 0.05)\n"
            "w = b.price('put', 60000.0, 55000.0, 0.1, vol=0.6)\n"
            "hits = sum(f.stats.cache_hits.values()) + sum(b._greeks_flat_nb.stats.cache_hits.values())\n"
            "print(repr(v), repr(float(w)), hits)\n")

    def value() -> tuple[float, float, int]:
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                             env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})
        assert out.returncode == 0, out.stderr[-2000:]
        price, flat, hits = out.stdout.split()
        return float(price), float(flat), int(hits)

    price, flat, hits = value()
    assert hits == 0  # compiled, and written to the cache
    assert value() == (price, flat, 2)  # both loaded from the cache
    bs = tmp_path / "engine_cached" / "nb" / "bs.py"
    old = "        return f * norm_cdf_nb(d1) - k * norm_cdf_nb(d2)\n    return k * norm_cdf_nb(-d2) - f * norm_cdf_nb(-d1)\n"
    text = bs.read_text()
    assert old in text
    bs.write_text(text.replace(old, old.replace("f * norm_cdf_nb(-d1)\n", "f * norm_cdf_nb(-d1) + 1000.0\n")))
    changed, changed_flat, hits = value()
    assert hits == 0 and changed == pytest.approx(price + 1000.0) and changed_flat == pytest.approx(flat + 1000.0)
