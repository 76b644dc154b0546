"""cascade-engine: stress scenarios for leveraged crypto markets.

The public API, loaded lazily so ``import engine`` stays fast (pydantic models and numba
kernels load on first use)::

    scenario = engine.load_scenario("scenarios/feb-2026-deleveraging.yaml", overrides=["n_paths=2000"])
    compiled = engine.compile_scenario(scenario)

A bad file or ``--set`` value raises :class:`ScenarioError` (a ``ValueError``) with every
:class:`Problem` located; a bad argument raises :class:`InvalidParameterError` (a
``ScenarioError`` and a ``TypeError``) naming the parameter: "The 'n_jobs' parameter of run must
be an int >= 1. Got 0 instead."
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from ._version import __version__
from .errors import InvalidParameterError, Problem, ScenarioError


__all__ = [
    "__version__",
    "Problem",
    "ScenarioError",
    "InvalidParameterError",
    "Scenario",
    "load_scenario",
    "dump_scenario",
    "scenario_json_schema",
    "expand_grid",
    "CompiledScenario",
    "compile_scenario",
    "list_scenarios",
    "run",
    "SimulationResult",
    "load_run",
    "write_run",
    "run_sweep",
    "find_breakpoint",
    "attribute",
]

_LAZY = {  # public name -> the module defining it under that name
    "Scenario": ".scenario.schema",
    "load_scenario": ".scenario.loader",
    "dump_scenario": ".scenario.canonical",
    "scenario_json_schema": ".scenario.canonical",
    "expand_grid": ".scenario.grid",
    "CompiledScenario": ".compile.compiled",
    "compile_scenario": ".compile.compiler",
    "list_scenarios": ".scenario.catalog",
    "run": ".simulate",
    "SimulationResult": ".result",
    "load_run": ".results.store",
    "write_run": ".results.store",
    "run_sweep": ".sweep",
    "find_breakpoint": ".analysis.breakpoint",
    "attribute": ".analysis.attribution",
}

if TYPE_CHECKING:  # pragma: no cover
    from .compile.compiled import CompiledScenario
    from .compile.compiler import compile_scenario
    from .scenario.canonical import dump_scenario, scenario_json_schema
    from .scenario.grid import expand_grid
    from .scenario.catalog import list_scenarios
    from .scenario.loader import load_scenario
    from .result import SimulationResult
    from .scenario.schema import Scenario
    from .results.store import load_run, write_run
    from .simulate import run
    from .sweep import run_sweep
    from .analysis.breakpoint import find_breakpoint
    from .analysis.attribution import attribute


def __getattr__(name: str):
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'engine' has no attribute {name!r}") from None
    # relative to this package: a copy imported under another name (bench/ab_kernel.py loads two
    # versions side by side) must serve its own modules, not the installed engine's
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
