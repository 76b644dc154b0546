"""The public verbs document themselves: a numpydoc docstring (Parameters, Returns, Raises,
Examples) on each, and each example runs as a doctest here, from the repository root."""

from __future__ import annotations

import doctest

import pytest
from conftest import ROOT

import engine

# every function of engine.__all__ (the types Scenario, CompiledScenario, SimulationResult, Problem
# and the errors are documented on their classes)
VERBS = ["load_scenario", "dump_scenario", "scenario_json_schema", "expand_grid", "compile_scenario",
         "list_scenarios", "run", "write_run", "load_run", "run_sweep", "find_breakpoint", "attribute"]


def test_every_public_function_is_a_documented_verb():
    functions = {name for name in engine.__all__ if callable(getattr(engine, name))
                 and not isinstance(getattr(engine, name), type)}
    assert functions == set(VERBS)


@pytest.mark.parametrize("name", VERBS)
def test_each_verb_has_a_numpydoc_docstring(name):
    doc = getattr(engine, name).__doc__ or ""
    for section in ("Parameters\n    ----------", "Returns\n    -------", "Raises\n    ------",
                    "Examples\n    --------"):
        assert section in doc, f"engine.{name}: no {section.split()[0]} section"


@pytest.mark.parametrize("name", VERBS)
def test_each_verbs_examples_run(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    fn = getattr(engine, name)
    tests = doctest.DocTestFinder().find(fn, f"engine.{name}", globs=dict(vars(__import__(fn.__module__, fromlist=["_"]))))
    assert tests and tests[0].examples, f"engine.{name} shows no example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"engine.{name}: {result.failed} of {result.attempted} examples failed"
