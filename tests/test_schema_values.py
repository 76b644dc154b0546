"""Value rules of the schema that are easy to get wrong: counts, flags, Gaussian tails, ranges."""

from __future__ import annotations

import copy

import pytest

import engine
from engine.errors import Problem, ScenarioError
from engine.scenario.sweep import SweepSpec


def _with(tiny: dict, path: tuple, value) -> dict:
    data = copy.deepcopy(tiny)
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return data


@pytest.mark.parametrize("value, expected", [(2000, 2000), (1e4, 10_000), ("10k", 10_000), ("2_500", 2500)])
def test_counts_take_friendly_whole_numbers(tiny_scenario, value, expected):
    assert engine.load_scenario(_with(tiny_scenario, ("n_paths",), value)).n_paths == expected


@pytest.mark.parametrize("value", [True, 2.5, "many", "1.5", float("nan")])
def test_counts_refuse_what_is_not_a_whole_number(tiny_scenario, value):
    with pytest.raises(ScenarioError, match="n_paths: must be a whole number"):
        engine.load_scenario(_with(tiny_scenario, ("n_paths",), value))


@pytest.mark.parametrize("value", ["yes", 1, "true"])
def test_flags_are_true_or_false_only(tiny_scenario, value):
    with pytest.raises(ScenarioError, match="outputs.report"):
        engine.load_scenario(_with(tiny_scenario, ("outputs", "report"), value))


def test_gaussian_tails_can_be_chosen_in_a_child_file(tiny_scenario, write_yaml):
    write_yaml("parent.yaml", tiny_scenario)
    child = write_yaml("child.yaml", "extends: parent.yaml\nmarket: {volatility: {tail_dof: gaussian}}\n")
    assert engine.load_scenario(child).market.volatility.tail_dof is None
    reset = write_yaml("reset.yaml", "extends: parent.yaml\nmarket: {volatility: {tail_dof: null}}\n")
    assert engine.load_scenario(reset).market.volatility.tail_dof == 4.0  # null = back to the default


def test_range_ends_exactly_on_its_stop():
    assert SweepSpec(range=["10%", "100%", "30%"]).expand() == [0.1, 0.4, 0.7, 1.0]
    assert SweepSpec(range=[0.1, 0.3, 0.1]).expand() == [0.1, 0.2, 0.3]


def test_generated_etf_run_must_fit_in_the_horizon(tiny_scenario):
    # horizon: 29 Jan 2026 (Thursday) + 2 days; a 3-day run needs Thu, Fri and Mon 2 Feb
    data = _with(tiny_scenario, ("shocks",), [{"type": "etf_flows", "start": "2026-01-29",
                                               "generated": {"days": 3, "total_usd": "-1B"}}])
    with pytest.raises(ScenarioError, match=r"shocks\[0\].generated.days: the run's 3 trading days") as info:
        engine.load_scenario(data)
    assert "2026-02-02" in str(info.value)
    data["shocks"][0]["generated"]["days"] = 2
    engine.load_scenario(data)


def test_problem_does_not_repeat_the_value_it_already_quotes():
    problem = Problem("unknown amount suffix 'X' in '88.5X'", "f.yaml", 3, 1, ("market", "spot_usd"),
                      found="88.5X", has_found=True)
    assert str(problem).count("88.5X") == 1


def test_a_parents_own_null_keeps_its_meaning(tiny_scenario, write_yaml):
    """In the base file, tail_dof: null means Gaussian; extending it must not turn that into the default."""
    parent = _with(tiny_scenario, ("market", "volatility"), {"tail_dof": None})
    write_yaml("parent.yaml", parent)
    child = write_yaml("child.yaml", "extends: parent.yaml\nname: child\n")
    assert engine.load_scenario(child).market.volatility.tail_dof is None
