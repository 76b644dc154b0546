"""Risk outputs for a risk committee: Monte Carlo error of the risk figures, upside touch levels, limits.

* VaR/ES (95, 99) of every strategy row and dES99 get a bootstrap SE and a 95% interval, the
  probabilities a binomial SE and a Wilson interval: present, containing the estimate, shrinking
  like 1/sqrt(n), matching the sampling spread of independent samples, and a pure function of
  (scenario, seed) whatever the threads.
* A level above the start price is touched when a path's high reaches it (its low for the others):
  checked on a squeeze against a direct count from the per-path highs.
* ``limits:`` are checked after the run: ok / breached, ``--fail-on-breach`` exits 1 on a breach
  and 0 when every limit holds; an unknown metric exits 2 with a located message and no run folder.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

import engine
from engine.errors import ScenarioError
from engine.results import risk
from engine.results.regression import metric_values, scenario_sha256
from engine.results.store import metrics_rows
from engine.scenario.canonical import dump_scenario
from engine.scenario.loader import load_scenario

from conftest import ROOT

FEB = ROOT / "scenarios" / "ci" / "ci-feb-2026-small.yaml"  # a book and two put strategies


def _run(n_paths: int, n_jobs: int = 2, overrides=(), seed=None):
    return engine.run(load_scenario(FEB, overrides), n_paths=n_paths, seed=seed, n_jobs=n_jobs, keep_steps=True)


@pytest.fixture(scope="module")
def small():
    return _run(1000)


@pytest.fixture(scope="module")
def large():
    return _run(4000)


# ----------------------------------------------------------------------------- Monte Carlo error
def test_every_risk_figure_has_a_standard_error_and_an_interval_around_it(large):
    u = large.uncertainty
    table = large.strategies
    assert u["confidence"] == 0.95
    assert list(u["strategies"]) == ["unhedged", "put_80k", "put_spread_80k_70k"]
    for i, (_, row) in enumerate(table.iterrows()):
        errors = u["strategies"][row["strategy"]]
        assert set(errors) == set(risk.STRATEGY_METRICS) - ({"d_es99"} if i == 0 else set())
        for metric, e in errors.items():
            assert e["se"] > 0, (row["strategy"], metric)
            assert e["ci95_low"] < row[metric] < e["ci95_high"]
            assert (e["ci95_high"] - e["ci95_low"]) / 2 == pytest.approx(1.959964 * e["se"], rel=1e-6)
    n = large.n_paths
    assert set(u["market"]) == set(large.probabilities())
    for key, p in large.probabilities().items():
        e = u["market"][key]
        assert e["se"] == pytest.approx(math.sqrt(p * (1 - p) / n))
        assert 0.0 <= e["ci95_low"] <= p <= e["ci95_high"] <= 1.0
        assert e["ci95_high"] > e["ci95_low"]  # never a point, even at p = 0


def test_errors_shrink_like_one_over_sqrt_n(small, large):
    ratios = [small.uncertainty["strategies"][row][m]["se"] / large.uncertainty["strategies"][row][m]["se"]
              for row in small.uncertainty["strategies"] for m in ("var95", "es95")]
    assert 1.6 < math.exp(np.mean(np.log(ratios))) < 2.5, ratios  # 4x the paths: about half the error
    p_small, p_large = small.uncertainty["market"], large.uncertainty["market"]
    for key in ("prob_touch_73600", "prob_touch_70600", "prob_touch_66900"):
        width = [(e[key]["ci95_high"] - e[key]["ci95_low"]) for e in (p_small, p_large)]
        assert 1.6 < width[0] / width[1] < 2.5, (key, width)


def test_bootstrap_se_matches_the_spread_of_independent_samples():
    """On PnL drawn from a known law, the SE from one sample's resamples is the standard deviation
    of the figure over many independent samples (what a rerun with another seed would move)."""
    rng = np.random.default_rng(3)
    n, samples = 2000, 300
    draws = rng.standard_t(5, size=(samples + 1, n)) * 1e5  # fat tails, like a book's PnL
    spread = {m: [] for m in ("var95", "es95", "var99", "es99")}
    for x in draws[1:]:
        q5, q1 = np.quantile(x, [0.05, 0.01])
        spread["var95"].append(-q5), spread["es95"].append(-x[x <= q5].mean())
        spread["var99"].append(-q1), spread["es99"].append(-x[x <= q1].mean())
    x = draws[0]
    q5, q1 = np.quantile(x, [0.05, 0.01])
    table = pd.DataFrame([{"strategy": "book", "var95": -q5, "es95": -x[x <= q5].mean(), "var99": -q1,
                           "es99": -x[x <= q1].mean(), "d_es99": 0.0}])
    errors = risk.strategy_errors(table, x[None, :], seed=11)["book"]
    for metric, values in spread.items():
        assert errors[metric]["se"] == pytest.approx(np.std(values, ddof=1), rel=0.35), metric


def test_errors_are_a_pure_function_of_scenario_and_seed(small):
    again = _run(1000, n_jobs=1)
    assert again.uncertainty == small.uncertainty
    assert json.dumps(again.to_dict()) == json.dumps(small.to_dict())
    other = _run(1000, seed=small.seed + 1)
    assert other.uncertainty["strategies"] != small.uncertainty["strategies"]
    assert risk.bootstrap_seed(1) != risk.bootstrap_seed(2) and risk.bootstrap_seed(5) == risk.bootstrap_seed(5)


def test_wilson_interval_known_values():
    assert risk.wilson_interval(0.5, 100) == pytest.approx((0.4038315, 0.5961685), abs=1e-6)
    low, high = risk.wilson_interval(0.0, 10_000)
    assert low == 0.0 and high == pytest.approx(1.959964**2 / (10_000 + 1.959964**2))
    assert risk.wilson_interval(1.0, 50)[1] == 1.0


def test_errors_go_into_json_csv_and_text(large):
    d = large.to_dict()
    assert d["uncertainty"] == large.uncertainty and "limits" not in d
    rows = metrics_rows(d)
    es99 = rows[(rows.section == "strategies") & (rows.name == "put_80k") & (rows.statistic == "es99_se")]
    assert es99.value.item() == large.uncertainty["strategies"]["put_80k"]["es99"]["se"]
    touch = rows[(rows.section == "market") & (rows.name == "prob_touch_66900")]
    assert set(touch.statistic) == {"value", "se", "ci95_low", "ci95_high"}
    from engine.results.text import render_risk_errors, render_run

    text = render_risk_errors(large.strategies, large.uncertainty, large.n_paths)
    assert max(len(line) for line in text.splitlines()) <= 150
    half = (lambda e: (e["ci95_high"] - e["ci95_low"]) / 2)(large.uncertainty["strategies"]["unhedged"]["es99"])
    assert f"±{half / 1e3:.1f}k" in text
    assert "P(touch 66,900) down" in render_run(large)


# ----------------------------------------------------------------------------- upside levels
SQUEEZE = {
    "name": "squeeze", "seed": 3, "n_paths": 2000,
    "horizon": {"start": "2026-02-06T00:00:00Z", "duration": "2d", "step": "1h"},
    "market": {"spot_usd": "62k", "perpetuals": {"long": {"notional_usd": "20B"}, "short": {"notional_usd": "25B"}}},
    "shocks": [{"type": "price_jump", "start": "2026-02-06T06:00:00Z", "size": "6%", "spread": "4%"},
               {"type": "relief_rally", "start": "2026-02-06T06:00:00Z", "duration": "1d",
                "new_short_notional_usd": "2B", "momentum_buying_usd": "500M"}],
    "strategies": [{"rule": "protective_put", "name": "put_55k", "strike_usd": "55k", "hedge_ratio": "100%",
                    "tenor": "30d"}],
    "outputs": {"price_levels_usd": ["72k", "68k", "66k", "58k"], "report": False, "figures": False},
}


def test_upside_levels_count_the_paths_whose_high_reaches_them():
    result = engine.run(load_scenario(SQUEEZE), n_jobs=2, keep_steps=True)
    pp = result.per_path
    closes_high = result._raw["price"].max(axis=1)
    probabilities = result.touch_probabilities()
    assert result.touch_directions() == {"prob_touch_72000": "up", "prob_touch_68000": "up",
                                         "prob_touch_66000": "up", "prob_touch_58000": "down"}
    for level in (72_000, 68_000, 66_000):
        p = probabilities[f"prob_touch_{level}"]
        assert 0.0 < p < 1.0, (level, p)  # the low of every path is below an upside level: 100% before
        assert p == (pp["max_price"] >= level).mean()  # the direct count from the paths' highs
        assert p >= (closes_high >= level).mean()  # intra-step highs: at least the closes' count
        assert result.strategies[f"p_touch_{level}"].iloc[0] == p  # the hedge table says the same
    assert probabilities["prob_touch_72000"] < probabilities["prob_touch_68000"] < probabilities["prob_touch_66000"]
    assert probabilities["prob_touch_58000"] == (pp["min_price"] <= 58_000).mean()
    assert metric_values(result)["market.prob_touch_66000"] == probabilities["prob_touch_66000"]
    e = result.uncertainty["market"]["prob_touch_68000"]
    assert e["ci95_low"] < probabilities["prob_touch_68000"] < e["ci95_high"]


# ----------------------------------------------------------------------------- limits
def test_limits_ok_and_breached(large):
    values = metric_values(large)
    es99 = float(large.strategies.set_index("strategy").loc["put_80k", "es99"])
    assert values["strategies.put_80k.es99"] == es99
    scenario = load_scenario(FEB, ["limits=[{metric: strategies.put_80k.es99, max: %r}, "
                                   "{metric: strategies.put_80k.es99, min: %r}, "
                                   "{metric: market.min_price.p50, min: 1}, {metric: market.prob_touch_73600, max: 1%%}]"
                                   % (es99 + 1, es99)])
    rerun = engine.run(scenario, n_paths=large.n_paths, n_jobs=1, keep_steps=True)
    assert json.dumps(rerun.to_dict()["strategies"]) == json.dumps(large.to_dict()["strategies"])  # no number moves
    checked = rerun.limits
    assert [c["status"] for c in checked] == ["ok", "ok", "ok", "breached"]  # equal to the bound is within
    assert checked[0]["max"] == es99 + 1 and checked[0]["value"] == es99
    interval = large.uncertainty["strategies"]["put_80k"]["es99"]
    assert (checked[0]["ci95_low"], checked[0]["ci95_high"]) == (interval["ci95_low"], interval["ci95_high"])
    assert "ci95_low" not in checked[2]  # a market quantile: no interval computed
    assert checked[3]["value"] == large.probabilities()["prob_touch_73600"]


def test_an_unknown_or_undefined_metric_is_a_located_error(write_yaml, tmp_path):
    path = write_yaml("limited.yaml", f"""
        extends: {os.path.relpath(FEB, tmp_path)}
        name: limited
        limits:
          - {{metric: strategies.put_80k.es99, max: 150k}}
          - {{metric: strategies.put_80k.es9, max: 150k}}
          - {{metric: strategies.unhedged.effectiveness, min: 1}}
        """)
    result = engine.run(load_scenario(path), n_paths=300, n_jobs=2, keep_steps=True)
    with pytest.raises(ScenarioError) as info:
        result.to_dict()
    first, second = info.value.problems
    assert first.file == str(path) and first.line == 5 and first.key == "limits[1].metric"
    assert "no metric named 'strategies.put_80k.es9'" in first.message and "strategies.put_80k.es99" in first.hint
    assert second.line == 6 and "has no value in this run" in second.message


@pytest.mark.parametrize("limit, message", [
    ("{metric: strategies.put_80k.es99}", "give exactly one of max and min"),
    ("{metric: strategies.put_80k.es99, max: 1, min: 0}", "give exactly one of max and min"),
    ("{metric: es99, max: 1}", "expected a metric named as `cascade check --verbose` names them"),
    ("{metric: market.min_price.p42, min: 1}", "expected a metric named"),
    ("{metric: market.min_price.p50, min: lots}", "must be a number like 400k, 5% or 0.05"),
    ("{metric: market.min_price.p50, above: 1}", "unknown key 'above'"),
])
def test_limits_are_checked_when_the_scenario_loads(limit, message):
    with pytest.raises(ScenarioError) as info:
        load_scenario(FEB, [f"limits=[{limit}]"])
    assert message in str(info.value) and "limits[0]" in str(info.value)


def test_limits_change_no_hash_and_round_trip():
    plain = load_scenario(FEB)
    limited = load_scenario(FEB, ["limits=[{metric: market.prob_touch_60000, max: 5%}]"])
    assert "limits" not in yaml.safe_load(dump_scenario(plain))  # unchanged canonical text without limits
    assert limited.limits[0].max == 0.05
    assert load_scenario(yaml.safe_load(dump_scenario(limited))).limits == limited.limits
    assert scenario_sha256(limited) == scenario_sha256(plain)  # baselines do not go stale


# ----------------------------------------------------------------------------- the command
def _cascade(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


ES99_CAP = "strategies.put_80k.es99"


@pytest.mark.slow
def test_fail_on_breach_exits_1_on_a_breach_and_0_when_limits_hold(tmp_path):
    base = ["run", str(FEB), "--paths", "500", "--no-progress"]
    breach = _cascade(*base, "--out", str(tmp_path / "breach"), "--fail-on-breach", "--set", "outputs.report=true",
                      "--set", f"limits=[{{metric: {ES99_CAP}, max: 1k}}, {{metric: market.min_price.p05, min: 10k}}]")
    assert breach.returncode == 1, breach.stderr
    assert "Traceback" not in breach.stderr and "1 of 2 limits breached: strategies.put_80k.es99" in breach.stderr
    lines = breach.stdout.splitlines()
    assert any(line.split()[:2] == ["BREACHED", ES99_CAP] and line.split()[-2:] == ["max", "1k"] for line in lines)
    assert any(line.split()[:2] == ["ok", "market.min_price.p05"] for line in lines)
    assert any(line.startswith("tail risk") for line in lines)
    metrics = json.loads((tmp_path / "breach" / "metrics.json").read_text())  # the results are still written
    assert [lim["status"] for lim in metrics["limits"]] == ["breached", "ok"]
    report = (tmp_path / "breach" / "report.html").read_text()
    assert 'id="table-limits"' in report and "BREACHED" in report and 'class="pm">±' in report
    csv = pd.read_csv(tmp_path / "breach" / "metrics.csv")
    assert csv[(csv.section == "limits") & (csv.statistic == "max_breached")].value.tolist() == [1.0]

    holds = _cascade(*base, "--no-save", "--json", "--fail-on-breach", "--set", f"limits=[{{metric: {ES99_CAP}, max: 10B}}]")
    assert holds.returncode == 0, holds.stderr
    assert json.loads(holds.stdout)["limits"][0]["status"] == "ok"

    no_flag = _cascade(*base, "--no-save", "--set", f"limits=[{{metric: {ES99_CAP}, max: 1k}}]")
    assert no_flag.returncode == 0, no_flag.stderr  # a breach alone is a result, not a failure
    assert "BREACHED" in no_flag.stdout


@pytest.mark.slow
def test_unknown_metric_exits_2_located_and_leaves_no_run_folder(tmp_path, write_yaml):
    path = write_yaml("typo.yaml", f"""
        extends: {os.path.relpath(FEB, tmp_path)}
        name: typo
        limits:
          - {{metric: strategies.put_80k.es99x, max: 150k}}
        """)
    out = tmp_path / "runs" / "typo"
    proc = _cascade("run", str(path), "--paths", "300", "--no-progress", "--out", str(out), "--fail-on-breach")
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert f"{path}:4" in proc.stderr and "limits[0].metric" in proc.stderr
    assert "did you mean 'strategies.put_80k.es99'" in proc.stderr
    assert not out.exists()
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no partial folder either
