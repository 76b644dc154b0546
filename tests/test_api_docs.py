"""The public verbs document themselves: a numpydoc docstring (Parameters, Returns, Raises,
Examples) on each, and each example runs as a doctest here, from the repository root."""

from __future__ import annotations

import doctest

import pytest
from conftest import ROOT

import engine

VERBS = ["load_scenario", "run", "load_run", "run_sweep", "find_breakpoint", "attribute"]


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
