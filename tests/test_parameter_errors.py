"""One error shape for a bad argument to any public verb: ``engine.InvalidParameterError``.

* each verb checks its own arguments (types and ranges) before any file is read or any path
  simulated, and raises an InvalidParameterError that is also a ``ScenarioError``, a
  ``ValueError`` and a ``TypeError``, whose problem names the parameter (``source="n_jobs="``,
  no file), what it must be (``expected``) and what it got (``found``), in the message shape
  "The 'n_jobs' parameter of run must be an int >= 1. Got 0 instead.";
* ``--set`` overrides are no pseudo-files: their problems have ``file=None`` and the override as
  ``source`` (``--set n_paths=0``), however they are found (parsing, validation, ``use:``);
* the command line shows a parameter's problem under its flag and exits 2.
"""

from __future__ import annotations

import json
import pickle
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import engine
from engine.cli import main

from conftest import ROOT
from test_api_docs import VERBS

CALM = ROOT / "scenarios" / "ci" / "ci-calm.yaml"
FAILURE = ROOT / "scenarios" / "ci" / "ci-exchange-failure.yaml"
SWEEP = ROOT / "scenarios" / "put-protection-sweep.yaml"
KEY, METRIC = "shocks[trigger].size", "market.min_price.p50"


class _Inputs:
    """Valid inputs, built on first use (a simulation only for the write_run cases)."""

    def __init__(self, tmp):
        self.tmp = tmp

    @cached_property
    def calm(self):
        return engine.load_scenario(CALM, ["n_paths=64"])

    @cached_property
    def sweep(self):
        return engine.load_scenario(SWEEP, ["n_paths=64"])

    @cached_property
    def compiled(self):
        return engine.compile_scenario(self.calm)

    @cached_property
    def result(self):
        return engine.run(self.calm, keep_steps=False)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return _Inputs(tmp_path_factory.mktemp("parameters"))


def _bp(x, **kw):
    """find_breakpoint with valid arguments, but for those in ``kw``."""
    args = {"scenario_or_path": FAILURE, "shock_key": KEY, "metric": METRIC, "threshold": "100k",
            "n_paths": 256, "max_evals": 3, "overrides": ["horizon.duration=6h"], **kw}
    return engine.find_breakpoint(args.pop("scenario_or_path"), args.pop("shock_key"), args.pop("metric"),
                                  args.pop("threshold"), **args)


def _sw(x, **kw):
    return engine.run_sweep(kw.pop("scenario", x.sweep), **{"root": x.tmp, "report": False, **kw})


def _wr(x, **kw):
    return engine.write_run(kw.pop("result", x.result), kw.pop("out", x.tmp / "run"),
                            **{"report": False, "figures": False, **kw})


def _run(x, **kw):
    return engine.run(x.calm, **kw)


def _compile(x, **kw):
    return engine.compile_scenario(x.calm, **kw)


def _attribute(x, **kw):
    return engine.attribute(CALM, **kw)


def _cases(verb, call, *bad) -> list[tuple]:
    """``verb``'s cases: each ``(parameter, value)`` passed alone to ``call(inputs, parameter=value)``,
    every other argument valid; the problem must report ``value`` as found."""
    return [(verb, name, value, lambda x, kw={name: value}: call(x, **kw)) for name, value in bad]


# (verb, parameter, the bad value the problem must report as found, the call)
CASES = [
    ("load_scenario", "source", 5, lambda x: engine.load_scenario(5)),
    ("load_scenario", "source", None, lambda x: engine.load_scenario(None)),
    ("load_scenario", "source", "", lambda x: engine.load_scenario("")),
    ("load_scenario", "overrides", "n_paths=5", lambda x: engine.load_scenario(CALM, "n_paths=5")),
    ("load_scenario", "overrides", [5], lambda x: engine.load_scenario(CALM, [5])),
    ("load_scenario", "overrides", 5, lambda x: engine.load_scenario(CALM, 5)),
    ("load_scenario", "check", "yes", lambda x: engine.load_scenario(CALM, check="yes")),
    ("load_scenario", "book", 5, lambda x: engine.load_scenario(CALM, book=5)),

    ("run", "scenario", 5, lambda x: engine.run(5)),
    *_cases("run", _run, ("n_paths", 0), ("n_paths", 2.5), ("n_paths", "64"), ("n_paths", True), ("seed", -1),
            ("seed", 1.5), ("seed", 2**63), ("n_jobs", 0), ("n_jobs", "2"), ("chunk_paths", 0), ("keep_steps", "no"),
            ("progress", 2)),
    ("run", "overrides", "n_paths=64", lambda x: engine.run(CALM, overrides="n_paths=64")),
    ("run", "overrides", [1], lambda x: engine.run(CALM, overrides=[1])),
    ("run", "seed", 1, lambda x: engine.run(x.compiled, seed=1)),  # a compiled scenario's arrays are fixed
    ("run", "overrides", ["n_paths=8"], lambda x: engine.run(x.compiled, overrides=["n_paths=8"])),

    ("compile_scenario", "scenario", 5, lambda x: engine.compile_scenario(5)),
    *_cases("compile_scenario", _compile, ("n_paths", 0), ("n_paths", "x"), ("seed", -1)),

    ("dump_scenario", "scenario", str(CALM), lambda x: engine.dump_scenario(str(CALM))),
    ("scenario_json_schema", "draft", "4", lambda x: engine.scenario_json_schema(draft="4")),

    ("expand_grid", "scenario", 5, lambda x: engine.expand_grid(5)),
    ("expand_grid", "scenario", {}, lambda x: engine.expand_grid({})),
    ("expand_grid", "scenario", str(SWEEP), lambda x: engine.expand_grid(str(SWEEP))),

    ("list_scenarios", "directory", 5, lambda x: engine.list_scenarios(5)),
    ("list_scenarios", "directory", str(ROOT / "no-such-folder"),
     lambda x: engine.list_scenarios(str(ROOT / "no-such-folder"))),
    ("list_scenarios", "directory", CALM, lambda x: engine.list_scenarios(CALM)),

    ("load_run", "path", 5, lambda x: engine.load_run(5)),
    ("load_run", "path", None, lambda x: engine.load_run(None)),
    ("load_run", "verify", "yes", lambda x: engine.load_run(x.tmp, verify="yes")),

    *_cases("write_run", _wr, ("result", 5), ("out", 5), ("source", 5), ("overrides", "x=1"),
            ("command", "cascade run"), ("tables", 5), ("report", "yes"), ("merge", None), ("extra_manifest", 5)),
    ("write_run", "root", 5, lambda x: _wr(x, out=None, root=5)),
    ("write_run", "tables", "per_path", lambda x: _wr(x, tables={"per_path": pd.DataFrame({"a": [1]})})),
    ("write_run", "tables", "not-a-name", lambda x: _wr(x, tables={"not-a-name": pd.DataFrame({"a": [1]})})),

    *_cases("run_sweep", _sw, ("scenario", str(SWEEP)), ("n_paths", 0), ("seed", -1), ("out", 5), ("root", 5),
            ("n_jobs", 0), ("backend", "nope"), ("chunk_size", -1), ("chunk_size", "x"), ("scheduler", 5),
            ("dask_local", 0), ("on_error", "ignore"), ("threads", 0), ("progress", "yes"), ("report", "yes")),

    *_cases("find_breakpoint", _bp, ("scenario_or_path", 5), ("shock_key", 5), ("shock_key", "shocks[nope].size"),
            ("shock_key", "shocks[trigger].start"), ("metric", 5), ("threshold", "abc"), ("threshold", None),
            ("direction", "up"), ("scale_mode", "x"), ("max_scale", 0.5), ("max_scale", "x"), ("n_se", 0),
            ("n_se", "x"), ("max_evals", 2), ("max_evals", "5"), ("n_paths", 0), ("seed", -1), ("n_jobs", 0),
            ("overrides", "horizon.duration=6h"), ("progress", 5)),
    ("find_breakpoint", "lo", None, lambda x: _bp(x, scale_mode="value")),
    ("find_breakpoint", "hi", 0.5, lambda x: _bp(x, lo=0.5, hi=0.5)),
    ("find_breakpoint", "tol", 2.0, lambda x: _bp(x, tol=2)),

    ("attribute", "scenario", 5, lambda x: engine.attribute(5)),
    *_cases("attribute", _attribute, ("n_paths", 0), ("seed", -1), ("n_jobs", 0), ("overrides", "n_paths=64"),
            ("progress", 5), ("keep_result", "yes")),
]


def _id(case) -> str:
    verb, name, found, _ = case
    return f"{verb}-{name}={found!r}"[:60]


def test_every_public_verb_is_covered():
    assert {case[0] for case in CASES} == set(VERBS)  # test_api_docs checks VERBS against engine.__all__
    assert "InvalidParameterError" in engine.__all__ and engine.InvalidParameterError is engine.errors.InvalidParameterError


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_a_bad_argument_raises_invalid_parameter_error_naming_it(case, inputs):
    verb, name, found, call = case
    with pytest.raises(engine.InvalidParameterError) as info:
        call(inputs)
    error = info.value
    # existing `except ValueError` / `except TypeError` / `except ScenarioError` keep catching it
    assert isinstance(error, ValueError) and isinstance(error, TypeError) and isinstance(error, engine.ScenarioError)
    assert error.function == verb and error.parameter == name
    (problem,) = error.problems
    assert problem.file is None and problem.line is None and problem.source == f"{name}="
    assert problem.expected and problem.has_found
    if not isinstance(found, (list, dict)):
        assert problem.found == found and type(problem.found) is type(found)
    else:
        assert problem.found == found
    message = str(error)
    assert message.startswith(f"The {name!r} parameter of {verb} must ") and "\n" not in message
    shown = repr(str(found) if isinstance(found, Path) else found)  # a path as its text
    assert f"Got {shown}"[:40] in message
    assert problem.to_dict()["source"] == f"{name}=" and problem.to_dict()["file"] is None


def test_the_message_has_scikit_learns_shape():
    with pytest.raises(engine.InvalidParameterError) as info:
        engine.run(CALM, n_jobs=0)
    assert str(info.value) == "The 'n_jobs' parameter of run must be an int >= 1. Got 0 instead."
    (problem,) = info.value.problems
    assert (problem.source, problem.expected, problem.found) == ("n_jobs=", "an int >= 1", 0)
    assert str(problem) == "n_jobs=: must be an int >= 1, got 0"


def test_one_override_string_is_refused_with_a_hint_not_read_character_by_character():
    """A str is iterable: ``overrides="n_paths=5"`` used to become nine overrides 'n', '_', ... ."""
    with pytest.raises(TypeError) as info:  # a caller's `except TypeError` catches it too
        engine.load_scenario(CALM, overrides="n_paths=5")
    assert isinstance(info.value, engine.InvalidParameterError) and len(info.value.problems) == 1
    assert info.value.problems[0].hint == "one is a list of one: ['n_paths=5']"


def test_good_arguments_of_other_int_and_path_types_pass():
    """numpy ints count as ints, a Path as a path: the checks refuse types, not spellings."""
    scenario = engine.load_scenario(str(CALM), ("n_paths=64",), check=np.bool_(True))
    compiled = engine.compile_scenario(scenario, n_paths=np.int64(32), seed=np.uint32(3))
    assert (compiled.n_paths, compiled.rng.seed) == (32, 3)
    assert engine.expand_grid(scenario) == [{}]
    assert engine.list_scenarios(CALM.parent)


def test_it_survives_pickling_whole():
    """A sweep's worker raises it back to the parent through pickle: problems and function intact."""
    with pytest.raises(engine.InvalidParameterError) as info:
        engine.run(CALM, seed=-1)
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is engine.InvalidParameterError and str(again) == str(info.value)
    assert again.problems == info.value.problems and again.function == "run"


# ----------------------------------------------------------------------------- --set: a source, no file
@pytest.mark.parametrize("override, key, fragment", [
    ("n_paths=0", "n_paths", "greater than or equal to 1"),                    # validation, via the origins
    ("n_paths", "", "expects key.path=value, got 'n_paths'"),                  # no '='
    ("market..spot_usd=1", "", "cannot read key path"),                        # the key path
    ("shocks[nope].size=1%", "", "has no item 'nope'"),                        # the key's item
    ("market.spot_usd=[1, 2", "market.spot_usd", "YAML syntax error"),         # the value's YAML
    ("market.macro.new_section.x=1", "market.macro.new_section", "unknown key 'new_section'"),  # a section it made
    ("strategies=[{use: no-such-strategy-file.yaml}]", "strategies[0].use", "file not found"),  # a use: it wrote
])
def test_set_problems_name_the_override_as_source_and_no_file(override, key, fragment):
    with pytest.raises(engine.ScenarioError) as info:
        engine.load_scenario(CALM, [override])
    assert not isinstance(info.value, engine.InvalidParameterError)  # the value is wrong, not the argument's type
    (problem,) = info.value.problems
    assert problem.file is None and problem.source == f"--set {override}" and problem.line is None
    assert problem.key == key and fragment in str(problem)
    assert str(problem).startswith(f"--set {override}: ")
    assert problem.to_dict()["file"] is None and problem.to_dict()["source"] == f"--set {override}"


def test_the_cli_prints_the_set_problem_and_its_json_has_no_file(capsys):
    assert main(["validate", str(CALM), "--set", "n_paths=0"]) == 2
    assert "--set n_paths=0: n_paths: Input should be greater than or equal to 1, got 0" in capsys.readouterr().err
    assert main(["validate", "--json", str(CALM), "--set", "n_paths=0"]) == 2
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["file"] is None and problem["source"] == "--set n_paths=0" and problem["key"] == "n_paths"


# ----------------------------------------------------------------------------- the command line
def test_the_cli_shows_a_parameter_under_its_flag_and_exits_2(capsys, tmp_path):
    """``list_scenarios(directory=...)`` is ``cascade list --dir``: the problem is printed under the
    flag, in the command line's own shape, without a traceback."""
    missing = tmp_path / "missing"
    assert main(["list", "--dir", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == f"--dir: must be an existing folder, got {str(missing)!r}\n"
    assert main(["list", "--dir", str(CALM)]) == 2
    assert capsys.readouterr().err.startswith("--dir: must be an existing folder, got ")
