"""Duration sweeps: an option's ``tenor`` and ``roll_before_expiry`` swept like a strike.

* ``{values: [...]}`` / ``{range: [...]}`` of durations expand to canonical texts (``30d``), typed
  by the key, never guessed from the values (``30m`` is 30 minutes there, 30 million for a strike);
* each value becomes its own row, with that tenor in the kernel's inputs, the row's label
  (``p[tenor=12h]``) and the numbers of a strategy written with that one tenor;
* the sweep runner's table holds the texts (Parquet-safe) and its heatmaps order them by length;
* bad items are located user errors; the JSON Schema accepts what the loader accepts.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter, ValidationError

import engine
from engine import sweep as sw
from engine.cli import main
from engine.errors import ScenarioError
from engine.portfolio.hedge import evaluate, row_label, variants
from engine.results import _prep as prep
from engine.scenario.canonical import scenario_json_schema, to_plain
from engine.scenario.grid import expand_grid, sweep_dimensions
from engine.scenario.sweep import DurationSweep, SweepSpec, sweepable
from engine.scenario.types import Duration

YEAR_HOURS = 365.25 * 24
TENORS = ["1d", "6h", "12h"]  # file order; by length 6h < 12h < 1d, by spelling 12h < 1d < 6h


def _put(**extra) -> dict:
    return {"rule": "protective_put", "name": "p", "strike_pct_of_spot": "95%", "size_btc": 1, **extra}


def _scenario(tiny: dict, *strategies: dict, **extra):
    return engine.load_scenario(dict(tiny, strategies=list(strategies), portfolio={"spot_btc": 1}, **extra))


# --------------------------------------------------------------------------- the spec
def test_values_and_ranges_expand_to_canonical_texts():
    assert DurationSweep(values=["14d", "36h", "1d12h", "2w"]).expand() == ["14d", "1d12h", "1d12h", "14d"]
    assert DurationSweep(range=["7d", "35d", "7d"]).expand() == ["7d", "14d", "21d", "28d", "35d"]
    assert DurationSweep(range=["1d", "2d", "10h"]).expand() == ["1d", "1d10h", "1d20h"]  # stop off the grid
    assert DurationSweep(values=["30m"]).expand() == ["30m"]  # 30 minutes here...
    assert SweepSpec(values=["30m"]).expand() == [30e6]  # ...30 million in a number sweep


@pytest.mark.parametrize("spec, message", [
    ({"values": ["14d", "x"]}, "must be a duration with a unit"),
    ({"values": [14]}, "must be a duration with a unit"),
    ({"values": []}, "at least 1 item"),
    ({"range": ["35d", "7d", "7d"]}, "never reaches its stop"),
    ({"range": ["7d", "35d", "0s"]}, "never reaches its stop"),
    ({"range": ["0s", "1000d", "1s"]}, "more than 100,000 values"),
    ({"linspace": ["1d", "7d", 3]}, "linspace sweeps numbers"),
    ({"values": ["1d"], "range": ["1d", "2d", "1d"]}, "exactly one of values, range; got values, range"),
])
def test_bad_specs_are_refused(spec, message):
    with pytest.raises(ValidationError, match=message):
        DurationSweep.model_validate(spec)


def test_each_value_is_checked_against_the_keys_bounds():
    adapter = TypeAdapter(sweepable(Duration, gt=timedelta(0)))
    assert adapter.validate_python({"values": ["1d", "2d"]}).expand() == ["1d", "2d"]
    assert adapter.validate_python("1d") == timedelta(days=1)
    with pytest.raises(ValidationError, match="sweep value 0s: "):
        adapter.validate_python({"range": ["0s", "2d", "1d"]})


# --------------------------------------------------------------------------- rows, kernel inputs, labels
def test_a_tenor_sweep_is_one_row_per_tenor_with_that_tenor(tiny_scenario):
    scenario = _scenario(tiny_scenario, _put(tenor={"values": TENORS}), _put(name="fixed", tenor="12h"))
    assert sweep_dimensions(scenario) == [("strategies[p].tenor", TENORS)]
    assert expand_grid(scenario) == [{"strategies[p].tenor": t} for t in TENORS]
    r = engine.run(scenario, seed=7)
    rows, _ = variants(scenario, r.compiled)
    assert [(v.strategy, v.params) for v in rows[1:]] == [("p", {"tenor": t}) for t in TENORS] + [("fixed", {})]
    assert [v.legs[0][5] * YEAR_HOURS for v in rows[1:]] == pytest.approx([24, 6, 12, 12])  # leg tenor, years

    table = evaluate(r)
    assert list(table["param.tenor"].iloc[1:4]) == TENORS
    assert [row_label(row) for _, row in table.iterrows()] == ["unhedged", "p[tenor=1d]", "p[tenor=6h]",
                                                                "p[tenor=12h]", "fixed"]
    premium = dict(zip(table["param.tenor"].iloc[1:4], table["premium"].iloc[1:4]))
    assert premium["6h"] < premium["12h"] < premium["1d"]  # a longer put costs more
    swept, fixed = table.iloc[3], table.iloc[4]  # p at 12h and a put written with tenor: 12h
    for metric in ("pnl_mean", "es99", "premium", "max_dd_p95"):
        assert swept[metric] == fixed[metric], metric


def test_a_roll_sweep_sets_each_rows_roll(tiny_scenario):
    scenario = _scenario(tiny_scenario, _put(tenor="1d", roll_before_expiry={"range": ["4h", "12h", "4h"]}))
    r = engine.run(scenario, seed=7)
    rows, _ = variants(scenario, r.compiled)
    assert [v.params for v in rows[1:]] == [{"roll_before_expiry": t} for t in ("4h", "8h", "12h")]
    assert [v.legs[0][6] * YEAR_HOURS for v in rows[1:]] == pytest.approx([4, 8, 12])
    table = evaluate(r)
    assert table["pnl_mean"].iloc[1:].nunique() == 3


def test_a_roll_sweep_on_a_fixed_expiry_is_still_refused(tiny_scenario):
    scenario = _scenario(tiny_scenario, _put(expiry="2026-01-30T12:00:00Z",
                                             roll_before_expiry={"values": ["6h", "12h"]}))
    with pytest.raises(ValueError, match="roll_before_expiry needs a tenor"):
        evaluate(engine.run(scenario, seed=7))


def test_a_label_skips_a_tenor_the_row_does_not_have():
    import numpy as np
    import pandas as pd

    for gap in (np.nan, None, pd.NA):
        assert row_label({"strategy": "p", "param.tenor": gap, "param.strike_usd": 55e3}) == "p[strike_usd=55000]"
    assert row_label({"strategy": "p", "param.tenor": "1d12h"}) == "p[tenor=1d12h]"


def test_axes_order_durations_by_length():
    assert prep.ordered(["1d", "7d", "14d", "1d12h", "30m"]) == ["30m", "1d", "1d12h", "7d", "14d"]
    assert prep.ordered([60e3, 50e3, 55e3]) == [50e3, 55e3, 60e3]


# --------------------------------------------------------------------------- the sweep runner
@pytest.mark.slow
def test_the_sweep_table_holds_the_tenor_texts_and_its_heatmaps_order_them(tiny_scenario, tmp_path):
    scenario = _scenario(tiny_scenario, _put(tenor={"values": TENORS}, strike_pct_of_spot={"values": ["90%", "95%"]}),
                         n_paths=64)
    plan = sw.plan_sweep(scenario)
    # the strikes lead the rule's keys, so they are the first dimension; the tenors cycle inside
    assert [v["tenor"] for v in plan.variants[0]] == [t for _ in range(2) for t in TENORS]
    result = sw.run_sweep(scenario, out=tmp_path / "s", n_jobs=1, report=True)
    table = engine.load_run(tmp_path / "s").tables["sweep"]  # read back from Parquet
    assert list(table["param.tenor"].iloc[1:]) == [t for _ in range(2) for t in TENORS]
    assert list(table["param.tenor"]) == list(result.table["param.tenor"])
    x, y, _, rows, _ = prep.sweep_layout(table)
    assert (x, y) == ("param.strike_pct_of_spot", "param.tenor")
    g = prep.grid(rows, x, y, "premium")
    assert g.ys == ["6h", "12h", "1d"]
    assert (g.z[0] < g.z[1]).all() and (g.z[1] < g.z[2]).all()  # premium rises with the tenor
    page = (tmp_path / "s" / "report.html").read_text()
    assert 'id="chart-sweep-premium"' in page and '"12h"' in page


def test_strategy_keys_of_sweep_parameters_take_duration_lists(tiny_scenario):
    scenario = _scenario(tiny_scenario, _put(tenor="1d"),
                         sweep={"parameters": {"strategies[p].tenor": ["24h", "6h"]}})
    plan = sw.plan_sweep(scenario)
    assert plan.points == [{}] and plan.variants[0] == [{"tenor": "1d"}, {"tenor": "6h"}]


def test_grid_flag_reads_durations_for_a_duration_key(tiny_scenario):
    base = _scenario(tiny_scenario, _put(tenor="1d"))
    swept = sw.apply_grid(base, ["strategies[p].tenor=6h,12h,30m", "strategies[p].roll_before_expiry=1h:3h:1h"])
    assert sweep_dimensions(swept) == [("strategies[p].tenor", ["6h", "12h", "30m"]),
                                       ("strategies[p].roll_before_expiry", ["1h", "2h", "3h"])]
    assert sw.parse_grid("strategies[p].strike_usd=30m")[1] == {"values": [30e6]}  # numbers stay numbers
    for bad, message in (("strategies[p].tenor=6h,x", "must be a duration"),
                         ("strategies[p].tenor=linspace:1h:2h:3", "linspace sweeps numbers")):
        with pytest.raises(ScenarioError, match=message) as info:
            sw.apply_grid(base, [bad])
        problem = info.value.problems[0]
        assert problem.file is None and problem.source == "--grid"
        assert problem.message.startswith("--grid strategies[p].tenor: ")


# --------------------------------------------------------------------------- user errors, schema
@pytest.mark.parametrize("tenor, where, message", [
    ("{values: [14d, x]}", "strategies[0].tenor.values[1]", "must be a duration with a unit"),
    ("{values: [14, 30]}", "strategies[0].tenor.values[0]", "must be a duration with a unit"),
    ("{linspace: [1d, 7d, 3]}", "strategies[0].tenor", "linspace sweeps numbers"),
    ("{range: [7d, 1d, 1d]}", "strategies[0].tenor", "range [7d, 1d, 1d] never reaches its stop"),
])
def test_cascade_validate_locates_a_bad_tenor_sweep(tiny_scenario, write_yaml, capsys, tenor, where, message):
    text = json.dumps(dict(tiny_scenario, portfolio={"spot_btc": 1}), indent=1)[:-2]
    path = write_yaml("bad.yaml", text + ',\n "strategies": [\n  {"rule": "protective_put", "size_btc": 1, '
                                         f'"strike_usd": "80k",\n   "tenor": {tenor}}}]}}\n')
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr()
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if '"tenor"' in t)
    assert f"{path}:{line}:" in err.out + err.err and f"{where}: {message}" in err.out + err.err


def test_a_duration_in_a_number_sweep_is_not_guessed(tiny_scenario):
    with pytest.raises(ScenarioError, match=r"strategies\[0\]\.strike_usd\.values\[0\]: sweep values must be "
                                            "finite numbers"):
        _scenario(tiny_scenario, _put(tenor="1d", strike_usd={"values": ["14d"]}, strike_pct_of_spot=None))


def test_the_json_schema_accepts_duration_sweeps_and_refuses_bad_ones(tiny_scenario):
    validator = Draft202012Validator(scenario_json_schema())
    resolved = json.loads(json.dumps(to_plain(_scenario(
        tiny_scenario, _put(tenor={"values": TENORS}, roll_before_expiry={"range": ["1h", "3h", "1h"]}))), default=str))
    assert list(validator.iter_errors(resolved)) == []
    for bad in ({"values": ["14d", "x"]}, {"values": [14]}, {"linspace": ["1d", "7d", 3]}, {"step": "1d"}):
        data = copy.deepcopy(resolved)
        data["strategies"][0]["tenor"] = bad
        assert list(validator.iter_errors(data)), bad
