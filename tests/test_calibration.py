"""Calibration (issue 7): targets, the fit, the parameter file, the report and ``cascade calibrate``.

* the pieces: the parameter box, order-statistic Monte Carlo errors, the real path's layout, the
  parameter file a scenario extends;
* validation on the real data (skipped without ``../shared/data``): the shipped, calibrated
  flagship puts every February target inside its 5-95% range and the realised hourly path inside
  its fan for at least 90% of hours; the October 2025 table (fitted jointly) is produced (its
  figures are reported, not asserted: they are what they are);
* identifiability: the check itself on a synthetic ridge (the recovery of known parameters is in
  tests/test_calibration_recovery.py);
* the CLI: exit codes, clear errors, no partial output, every knob changing the output; the report
  drawn in a real headless Chromium.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.calibration import fit as cf
from engine.calibration import targets as ct
from engine.cli import main
from engine.scenario.canonical import to_plain
from engine.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "scenarios" / "feb-2026-deleveraging.yaml"
PARAMETER_FILE = ROOT / "scenarios" / "calibration" / "feb-2026.yaml"


# --------------------------------------------------------------------------- the pieces
@pytest.mark.parametrize("name", list(cf.PARAMETERS))
def test_parameter_box_maps_both_ways(name):
    p = cf.PARAMETERS[name]
    for u in (0.0, 0.3, 1.0):
        assert p.to_unit(p.from_unit(u)) == pytest.approx(u, abs=1e-12)
    assert p.from_unit(-1) == pytest.approx(p.low) and p.from_unit(2) == pytest.approx(p.high)  # clipped


@pytest.mark.parametrize("name", list(cf.PARAMETERS))
def test_every_parameter_key_exists_and_changes_the_scenario(name):
    """A parameter whose key the loader ignored would be fitted to nothing."""
    plain = to_plain(load_scenario(FLAGSHIP))
    p = cf.PARAMETERS[name]
    value = p.from_unit(0.37)
    changed = load_scenario(cf.with_parameters(plain, {name: value}))
    assert p.decode(cf._get(to_plain(changed), p.key)) == pytest.approx(value)
    assert to_plain(changed) != plain


def test_order_statistic_se_matches_the_asymptotic_error_of_a_median():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(20_000)
    assert ct.order_statistic_se(x, 50) == pytest.approx(1.2533 / math.sqrt(x.size), rel=0.15)
    assert ct.order_statistic_se(x, 95) > ct.order_statistic_se(x, 50)  # the tails are noisier


def test_real_window_labels_closes_by_their_close_time(hourly):
    from engine.history.data import load_ohlcv

    real = ct.real_window(load_ohlcv(hourly), "2026-01-29", "2026-02-12")
    assert real.index[0] == pd.Timestamp("2026-01-29", tz="UTC") and real.iloc[0] == pytest.approx(89_300.0)
    assert real.index[-1] == pd.Timestamp("2026-02-12", tz="UTC") and len(real) == 14 * 24 + 1
    with pytest.raises(ValueError, match="calibration window"):
        ct.real_window(load_ohlcv(hourly), "2026-03-30", "2026-04-30")


def test_the_february_targets_come_from_the_facts_file(hourly, facts):
    from engine.history.data import load_ohlcv
    from engine.history.data import load_facts

    data = load_facts(facts)
    targets = {t.name: t for t in ct.feb_2026_targets(data, load_ohlcv(hourly))}
    assert targets["price_5feb_close"].observed == 62_600 and targets["price_5feb_open"].observed == 73_100
    assert targets["long_liquidations_5feb_replay"].observed == 1.0e9
    assert targets["open_interest_change_replay"].observed == pytest.approx(49 / 61 - 1)
    assert targets["low_6feb"].observed == pytest.approx(63_509.24, abs=1)  # the lowest hourly close
    del data["derivatives"]["liquidations_usd"]
    with pytest.raises(ValueError, match="liquidations_usd"):
        ct.feb_2026_targets(data, load_ohlcv(hourly))


def test_the_parameter_file_is_what_the_flagship_is_made_of():
    """The shipped scenarios extend the calibration: its values are the flagship's, and the Oct-2025
    scenario takes the mechanics but keeps its own volatility and leverage."""
    import yaml

    params = yaml.safe_load(PARAMETER_FILE.read_text(encoding="utf-8"))
    flagship = to_plain(load_scenario(FLAGSHIP))
    october = to_plain(load_scenario(ROOT / "scenarios" / "history" / "oct-2025-exchange-failure.yaml"))
    for name in cf.PARAMETERS:  # fitted only when named: not in the file, the scenario default (0)
        if name not in cf.DEFAULT_PARAMETERS:
            with pytest.raises(KeyError):
                cf._get(params, cf.PARAMETERS[name].key)
            assert cf._get(flagship, cf.PARAMETERS[name].key) == 0
    for name in cf.DEFAULT_PARAMETERS:
        p = cf.PARAMETERS[name]
        value = p.decode(cf._get(params, p.key))
        assert p.decode(cf._get(flagship, p.key)) == pytest.approx(value), name
        if name in ("impact", "permanent", "deleveraging", "momentum", "momentum_threshold", "momentum_lookback",
                    "momentum_holding", "momentum_capital", "etf_reflexivity"):
            assert p.decode(cf._get(october, p.key)) == pytest.approx(value), name
    assert october["market"]["volatility"]["annual"] == pytest.approx(0.30)
    assert october["market"]["perpetuals"]["long"]["leverage"]["median"] == pytest.approx(10)


def test_a_written_parameter_file_reloads_into_a_scenario(tmp_path):
    """parameter_yaml writes the long leverage as a whole mapping, so extending it works even though
    a lone ``median`` would not merge into the scenario's lognormal."""
    scenario = load_scenario(FLAGSHIP)
    plain = to_plain(scenario)
    best = {"volatility": 0.61, "long_leverage": 2.2, "long_dispersion": 0.3, "momentum": 3.0, "momentum_holding": 7.25}
    cal = cf.Calibration(names=list(best), start={}, best=best, objective=0.0, start_objective=1.0,
                         table=pd.DataFrame(), coverage=None, fan=None, history=pd.DataFrame(), n_paths=1, seed=1,
                         seconds=0.0)
    (tmp_path / "params.yaml").write_text(cf.parameter_yaml(cal, plain, header=["test"]), encoding="utf-8")
    child = dict(plain)
    child["extends"] = "params.yaml"
    del child["market"]["volatility"]["annual"]
    del child["market"]["perpetuals"]["long"]["leverage"]
    del child["market"]["behaviour"]["momentum"]
    import yaml

    (tmp_path / "child.yaml").write_text(yaml.safe_dump(child, sort_keys=False), encoding="utf-8")
    again = to_plain(load_scenario(tmp_path / "child.yaml"))
    for name, value in best.items():
        assert cf.PARAMETERS[name].decode(cf._get(again, cf.PARAMETERS[name].key)) == pytest.approx(value, rel=1e-3)
    assert again["market"]["perpetuals"]["long"]["leverage"]["max"] == 100.0  # the rest of the mapping kept


# --------------------------------------------------------------------------- validation on real data
@pytest.fixture(scope="module")
def validation(hourly, facts, shared_data):
    from engine.calibration.run import run_calibration

    reference = shared_data / "reference" / "stress_event_reference_numbers.csv"
    history = ROOT / "scenarios" / "history"
    return run_calibration(FLAGSHIP, data=hourly, facts=facts, reference=reference,
                           oos_scenarios=[history / "black-thursday-2020.yaml"],
                           episodes=[history / "oct-2025-exchange-failure.yaml"], fit=False,
                           report_paths=4000, n_jobs=2)


# What the joint fit (February and the calm year) leaves outside, each by no more than this
# (README, 'Calibration'); every other target is inside. The simulated 5 Feb long liquidations: the
# replayed book liquidates 1.0B along the real path, but few simulated paths fall that far that day.
# Runaway paths: a few in ten thousand still run away (momentum traders' flow, docs/model.md 7).
KNOWN_MISSES = {
    # how far the observed value may sit above the model's 95% quantile: 1B observed against a 95%
    # quantile of 546M before the calm year's 14-day moves became a target, 392M after, 330M since
    # October joined the fit (model v9; 4,000 paths)
    "long_liquidations_5feb": 0.7e9,
    # how far below the model's 5% quantile the 5 Feb close may sit (relative): since the momentum
    # traders close as a move fades (model v7), the flagship falls a little less, and less again
    # since the refit that fitted their lookback for a calmer calm market (model v8): 62,600
    # observed against a 5% quantile of 63,530 at that refit (2,000 paths), 63,560 at the joint
    # fit with October (model v9)
    "price_5feb_close": 0.02,
    "collapsed_paths": 0.001,  # share of paths below a quarter of spot
    "calm_collapsed_paths": 0.001,
}


@pytest.mark.slow
def test_the_calibrated_flagship_puts_every_february_fact_inside_its_range(validation):
    t = validation.table
    outside = t[~t.inside_5_95 & ~t.index.isin(list(KNOWN_MISSES))]
    assert outside.empty, outside[["observed", "model_p05", "model_p50", "model_p95"]].to_string()
    liq = t.loc["long_liquidations_5feb"]
    assert liq.observed - liq.model_p95 < KNOWN_MISSES["long_liquidations_5feb"]
    close = t.loc["price_5feb_close"]
    assert close.observed > close.model_p05 * (1 - KNOWN_MISSES["price_5feb_close"])
    for name in ("collapsed_paths", "calm_collapsed_paths"):
        assert t.loc[name, "model_p50"] <= KNOWN_MISSES[name]
    # the replayed book: about 1B of long liquidations on 5 Feb, open interest down about 20-25%
    assert 0.6e9 < t.loc["long_liquidations_5feb_replay", "model_p50"] < 1.65e9
    assert abs(t.loc["open_interest_change_replay", "model_p50"] - (49 / 61 - 1)) < 0.07
    assert {"price_5feb_open", "price_5feb_close", "low_6feb", "high_6feb", "long_liquidations_5feb",
            "open_interest_change_29jan_5feb", "realised_vol", "return_autocorrelation"} <= set(t.index)
    # the calm year's targets are in the same table
    assert {"calm_annual_vol", "calm_acf_abs_lag1", "calm_acf_r_lag1", "calm_drift"} <= set(t.index)


def test_the_realised_path_is_inside_the_fan_for_at_least_90_percent_of_hours(validation):
    assert validation.coverage >= 0.90
    assert len(validation.fan) == 14 * 24 and validation.passed()["fan_coverage"]


def test_stylised_facts_and_the_out_of_sample_table_are_in_the_report(validation):
    assert {"annual_vol", "excess_kurtosis", "acf_abs_lag1", "max_drawdown"} <= set(validation.stylised.index)
    from engine.calibration.oos import OCT_WEIGHTS

    assert set(validation.oos) == {"oct-2025-exchange-failure", "black-thursday-2020"}
    assert validation.info["fitted_episodes"] == ["oct-2025-exchange-failure"]
    october = validation.oos["oct-2025-exchange-failure"]
    assert list(october.index) == ["liquidations_24h", "long_share", "failure_window_share", "wick_low",
                                   "close_after_wick", "open_interest_change_24h"]
    assert october["weight"].to_dict() == OCT_WEIGHTS  # fitted jointly
    assert october.loc["liquidations_24h", "observed"] == 19e9 and october.loc["wick_low", "observed"] == 106_560
    # the wick's hour closed at Binance's 21:00 candle close; 6.93B of the 19B came in the 40 minutes
    assert october.loc["close_after_wick", "observed"] == 113_451.86
    assert october.loc["failure_window_share", "observed"] == pytest.approx(6.93 / 19)
    assert np.isfinite(october["model_p50"]).all()
    march = validation.oos["black-thursday-2020"]
    assert list(march.index) == ["long_liquidations_24h", "low_12mar", "close_12mar", "low_13mar", "close_13mar",
                                 "open_interest_change_48h"]
    assert march.loc["low_12mar", "observed"] == 4410 and march.loc["close_13mar", "observed"] == 5578.60
    assert (march["weight"] == 0).all() and np.isfinite(march["model_p50"]).all()


def test_the_calm_baseline_is_calm(hourly):
    """The flagship's market with its shocks removed against the real hourly year (every 14-day
    window): as volatile as a median window (within 25%), clustered (|r| autocorrelated at lag 1 by
    0.08 or more), no trend in the returns (|lag-1 autocorrelation| <= 0.03) and no drift (median
    terminal price within 3% of spot)."""
    import engine
    from engine.history.data import load_ohlcv
    from engine.calibration.stylised import compare

    result = engine.run(ROOT / "scenarios" / "calm-baseline.yaml", n_paths=2000, n_jobs=2)
    table = compare(result, load_ohlcv(hourly))
    vol = table.loc["annual_vol"]
    assert abs(vol.model_p50 / vol.real_p50 - 1) <= 0.25, table.to_string()
    assert table.loc["acf_abs_lag1", "model_p50"] >= 0.08, table.to_string()
    # +0.024 at the refit with the momentum lookback fitted (+0.033 before it: their 6-hour window
    # trended the calm market)
    assert abs(table.loc["acf_r_lag1", "model_p50"]) <= 0.03, table.to_string()
    terminal = result.per_path["terminal_price"].median()
    assert abs(terminal / result.compiled.param("SPOT0") - 1) <= 0.03, terminal


# --------------------------------------------------------------------------- the CLI
def _cli(capsys, *args):
    code = main(["calibrate", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_cli_evaluates_writes_the_report_and_it_draws_in_chromium(capsys, tmp_path, hourly, facts, chromium):
    from engine.results.browser import render_page

    out = tmp_path / "cal"
    code, stdout, err = _cli(capsys, FLAGSHIP, "--no-fit", "--data", hourly, "--facts", facts, "--report-paths", 600,
                             "--jobs", 2, "--out", out)
    assert code == 0, err
    assert "price_5feb_close" in stdout and "inside the 5-95% fan" in stdout and "out of sample" in stdout
    assert {p.name for p in out.iterdir()} == {"calibration.html", "targets.csv", "fan.csv", "stylised.csv",
                                                 "out_of_sample.csv", "summary.json"}
    assert len(pd.read_csv(out / "targets.csv")) == 19  # 12 of February (with the collapse count), 7 of the calm year
    check = render_page(out / "calibration.html")
    assert check.errors == () and check.charts == 1 and check.charts_drawn == 1, check.undrawn_reasons


@pytest.mark.slow
def test_cli_fits_and_writes_a_parameter_file_the_scenarios_can_extend(capsys, tmp_path, hourly, facts):
    params = tmp_path / "params" / "fit.yaml"
    code, stdout, err = _cli(capsys, FLAGSHIP, "--data", hourly, "--facts", facts, "--params", "volatility,momentum",
                             "--paths", 300, "--report-paths", 300, "--design", 4, "--max-evals", 8, "--oos", "", "--episode", "",
                             "--out", tmp_path / "cal", "--write-params", params, "--json")
    assert code == 0, err
    obj = json.loads(stdout)
    # the start, 4 design points, then Nelder-Mead until 8 (a point met twice is not run twice)
    assert obj["fitted"] and 5 < obj["evaluations"] <= 8 and set(obj["parameters"]) == {"volatility", "momentum"}
    history = pd.read_csv(tmp_path / "cal" / "history.csv")
    assert len(history) == obj["evaluations"] and list(history["phase"][:6]) == ["start"] + ["design"] * 4 + ["refine"]
    import yaml

    written = yaml.safe_load(params.read_text(encoding="utf-8"))
    assert written["market"]["volatility"]["annual"] == pytest.approx(obj["parameters"]["volatility"], rel=1e-3)
    assert "extends" not in written and params.read_text().startswith("# Calibrated market parameters")
    # the identifiability check at the result: both parameters, in the JSON and the report folder
    ident = obj["identifiability"]
    assert {row["parameter"] for row in ident["parameters"]} == {"volatility", "momentum"}
    assert len(ident["directions"]) == 2 and ident["findings"]
    spans = pd.read_csv(tmp_path / "cal" / "identifiability.csv", index_col="parameter")
    assert (spans["profile_span"] >= spans["alone_span"] - 1e-12).all()  # re-fitting the others only widens


def test_identifiability_names_a_ridge_and_what_is_identified():
    """A synthetic Jacobian: the residuals see volatility and permanent only through their
    difference in unit coordinates (moving both up together changes nothing), and the holding
    time on its own. The ridge is named with both parameters rising; the holding time is identified;
    volatility alone is narrow, re-fitted unbounded."""
    from engine.calibration.identify import identifiability, jacobian

    names = ["volatility", "permanent", "holding"]
    A = np.array([[1.0, -1.0, 0.0], [2.0, -2.0, 0.0], [0.0, 0.0, 3.0], [0.0, 0.0, 1.0]])
    u0 = np.array([0.5, 0.4, 0.6])
    J = jacobian(lambda u: A @ u, u0)
    np.testing.assert_allclose(J, A, atol=1e-12)  # exact on a linear map
    ident = identifiability(J, names, u0, objective=1.0)
    p = ident.parameters
    assert not p.loc["volatility", "identified"] and not p.loc["permanent", "identified"]
    assert p.loc["holding", "identified"]
    assert p.loc["volatility", "alone_span"] < 0.2 and not np.isfinite(p.loc["volatility", "profile_span"])
    ridge = [f for f in ident.findings if f.startswith("Ridge")]
    assert len(ridge) == 1 and "volatility +10%" in ridge[0] and "permanent +" in ridge[0]
    assert any(f.startswith("Identified") and "holding" in f for f in ident.findings)
    assert ident.directions.iloc[0]["ridge"] and not ident.directions.iloc[-1]["ridge"]
    # the SVD of J gives J^T J's curvatures and the profile spans, weakest first
    rng = np.random.default_rng(1)
    J = rng.normal(size=(12, 3))
    well = identifiability(J, names, u0, objective=1.0)
    lam, vec = np.linalg.eigh(J.T @ J)
    np.testing.assert_allclose(well.directions["curvature"].to_numpy(), lam, rtol=1e-10)
    np.testing.assert_allclose(well.parameters["profile_span"].to_numpy(),
                               [math.sqrt(0.1 * np.sum(vec[i] ** 2 / lam)) for i in range(3)], rtol=1e-10)
    # fewer targets than parameters: the directions they do not see are flat, nothing identified
    few = identifiability(J[:2], names, u0, objective=1.0)
    assert not np.isfinite(few.directions["span"].iloc[0]) and not few.parameters["identified"].any()


_KNOB_BASE = {"--seed": "1", "--paths": "200", "--design": "2", "--max-evals": "5", "--params": "volatility"}
_KNOB_FITS: dict = {}  # the base fit is the same for every knob: run once per session


@pytest.mark.slow
@pytest.mark.parametrize("knob, a, b", [
    ("--seed", "1", "2"), ("--paths", "200", "300"), ("--design", "2", "4"), ("--max-evals", "5", "7"),
    ("--params", "volatility", "impact"),
])
def test_every_fit_knob_changes_the_fit(capsys, tmp_path, hourly, facts, knob, a, b):
    def fit(value):
        args = {**_KNOB_BASE, knob: value}
        key = tuple(sorted(args.items()))
        if key not in _KNOB_FITS:
            code, stdout, err = _cli(capsys, FLAGSHIP, "--data", hourly, "--facts", facts, "--report-paths", 200,
                                     "--oos", "", "--episode", "", "--out", tmp_path / f"c{value}", "--json",
                                     *[x for kv in args.items() for x in kv])
            assert code == 0, err
            _KNOB_FITS[key] = pd.read_csv(tmp_path / f"c{value}" / "history.csv")
        return _KNOB_FITS[key]

    assert _KNOB_BASE[knob] == a  # each knob's first value is the base: the base fit is shared
    one, two = fit(a), fit(b)
    assert not (one.shape == two.shape and np.allclose(one.select_dtypes("number").to_numpy(dtype=float),
                                                      two.select_dtypes("number").to_numpy(dtype=float),
                                                      equal_nan=True)), f"{knob} changed nothing"


@pytest.mark.slow
def test_no_calm_leaves_the_calm_year_out_of_the_fit(capsys, tmp_path, hourly, facts):
    tables = {}
    for flag in ((), ("--no-calm",)):
        code, stdout, err = _cli(capsys, FLAGSHIP, "--no-fit", "--data", hourly, "--facts", facts, "--report-paths", 300,
                                 "--oos", "", "--episode", "", "--out", tmp_path / f"n{len(flag)}", "--json", *flag)
        assert code == 0, err
        tables[flag] = json.loads(stdout)["targets"]
    calm = {name for name in tables[()] if name.startswith("calm_")}
    assert calm == {"calm_annual_vol", "calm_acf_abs_lag1", "calm_acf_r_lag1", "calm_max_drawdown",
                    "calm_abs_return", "calm_collapsed_paths", "calm_drift"}
    assert not any(name.startswith("calm_") for name in tables[("--no-calm",)])


def test_calm_targets_leave_the_crashes_out(hourly):
    """The calm year's windows skip those touching a crash; its medians are a calm market's."""
    from engine.history.data import load_ohlcv

    closes = load_ohlcv(hourly)
    every = {t.name: t for t in ct.calm_targets(closes, 336, exclude=())}
    calm = {t.name: t for t in ct.calm_targets(closes, 336)}
    n_every = int(every["calm_annual_vol"].source.split()[2])
    n_calm = int(calm["calm_annual_vol"].source.split()[2])
    # 29 Jan - 12 Feb and 10-11 Oct: each removes the windows overlapping it, about (14 + 14) and (14 + 2) days
    assert 0.8 * (28 + 16) < n_every - n_calm < 1.2 * (28 + 16) + 2
    assert calm["calm_annual_vol"].observed < every["calm_annual_vol"].observed
    assert 0.30 < calm["calm_annual_vol"].observed < 0.45
    assert calm["calm_acf_abs_lag1"].observed > 0.1 and abs(calm["calm_acf_r_lag1"].observed) < 0.03
    assert calm["calm_drift"].observed == 0 and all(t.on == "calm" for t in calm.values())


@pytest.mark.slow
def test_a_point_the_schema_refuses_is_recorded_and_skipped(capsys, tmp_path, hourly, facts):
    """The momentum traders' leverage median must exceed its distribution's min (20 here): design
    points below it are refused by the schema, scored as the worst objective with the reason in
    the history, and the fit goes on to a valid point."""
    code, stdout, err = _cli(capsys, FLAGSHIP, "--data", hourly, "--facts", facts, "--report-paths", 200, "--oos", "", "--episode", "",
                             "--out", tmp_path / "c", "--json", "--paths", 200, "--design", 4, "--max-evals", 6,
                             "--params", "momentum_leverage", "--no-calm",
                             "--set", "market.behaviour.momentum.leverage.min=20",
                             "--set", "market.behaviour.momentum.leverage.median=30")
    assert code == 0, err
    history = pd.read_csv(tmp_path / "c" / "history.csv")
    refused = history[history["invalid"].notna()]
    assert len(refused) >= 1 and (refused["momentum_leverage"] <= 20).all() and (refused["objective"] == 1e12).all()
    assert "min < median < max" in refused["invalid"].iloc[0]
    assert json.loads(stdout)["parameters"]["momentum_leverage"] > 20


@pytest.mark.slow
def test_the_joint_fit_reads_october_and_episode_none_leaves_it_out(capsys, tmp_path, hourly, facts):
    """By default the fit's objective holds October's targets (weighted, under the prefix
    ``oct-2025-exchange-failure:``) and its report marks the episode as fitted; ``--episode ''``
    fits February and the calm year alone, with October gone from the objective and the report."""
    runs = {}
    for label, extra in (("joint", []), ("alone", ["--episode", ""])):
        code, stdout, err = _cli(capsys, FLAGSHIP, "--data", hourly, "--facts", facts, "--params", "impact",
                                 "--paths", 200, "--report-paths", 200, "--design", 2, "--max-evals", 3,
                                 "--no-identifiability", "--oos", "", "--out", tmp_path / label, "--json", *extra)
        assert code == 0, err
        runs[label] = json.loads(stdout)
    history = pd.read_csv(tmp_path / "joint" / "history.csv")
    assert "z_oct-2025-exchange-failure:wick_low" in history.columns
    assert runs["joint"]["fitted_episodes"] == ["oct-2025-exchange-failure"]
    assert set(runs["joint"]["out_of_sample"]) == {"oct-2025-exchange-failure"}
    assert runs["joint"]["out_of_sample"]["oct-2025-exchange-failure"]["wick_low"]["weight"] == 1.0
    assert runs["alone"]["fitted_episodes"] == [] and runs["alone"]["out_of_sample"] is None
    assert not any(c.startswith("z_oct") for c in pd.read_csv(tmp_path / "alone" / "history.csv").columns)
    # October's targets change the objective the same parameters score
    assert runs["joint"]["start_objective"] != runs["alone"]["start_objective"]


@pytest.mark.slow
def test_the_liquidation_feedback_is_fitted_only_when_named(capsys, tmp_path, hourly, facts):
    """Every parameter but the liquidation feedback is in the default set; named, it is fitted
    from the shipped 0 (its box starts there) and written to the parameter file."""
    assert set(cf.PARAMETERS) - set(cf.DEFAULT_PARAMETERS) == {"liquidation_feedback"}
    params = tmp_path / "fit.yaml"
    code, stdout, err = _cli(capsys, FLAGSHIP, "--data", hourly, "--facts", facts, "--params",
                             "volatility,liquidation_feedback", "--paths", 200, "--report-paths", 200, "--design", 4,
                             "--max-evals", 6, "--no-identifiability", "--oos", "", "--episode", "",
                             "--out", tmp_path / "cal", "--write-params", params, "--json")
    assert code == 0, err
    obj = json.loads(stdout)
    assert set(obj["parameters"]) == {"volatility", "liquidation_feedback"}
    assert "liquidation_feedback:" in params.read_text(encoding="utf-8")


@pytest.mark.slow
def test_report_paths_changes_the_report(capsys, tmp_path, hourly, facts):
    sizes = []
    for n in (300, 500):
        code, stdout, err = _cli(capsys, FLAGSHIP, "--no-fit", "--data", hourly, "--facts", facts, "--report-paths", n,
                                 "--oos", "", "--episode", "", "--out", tmp_path / f"r{n}", "--json")
        assert code == 0, err
        sizes.append(json.loads(stdout)["targets"]["price_5feb_close"]["model_p50"])
    assert sizes[0] != sizes[1]


@pytest.mark.parametrize("args, message", [
    (["--params", "volatility,bogus"], "unknown parameter(s) bogus; expected some of volatility"),
    (["--data", "missing.csv"], "--data missing.csv: no such file"),
    (["--facts", "missing.yaml"], "--facts missing.yaml: no such file"),
    (["--no-fit", "--params", "volatility"], "--no-fit fits nothing"),
    (["--oos", "missing.yaml"], "--oos missing.yaml: no such file"),
    (["--oos", str(ROOT / "scenarios" / "calm-baseline.yaml")], "no reference numbers for scenario 'calm-baseline'"),
    (["--set", "market.volatility.annual=-1"], "market.volatility.annual"),
    (["--episode", "missing.yaml"], "--episode missing.yaml: no such file"),
    (["--episode", str(ROOT / "scenarios" / "history" / "black-thursday-2020.yaml")],
     "scenario 'black-thursday-2020' has no fit targets; expected one of oct-2025-exchange-failure"),
    (["--oos", str(ROOT / "scenarios" / "history" / "oct-2025-exchange-failure.yaml")],
     "it is fitted (--episode); an episode is either fitted or out of sample"),
])
def test_cli_user_errors_exit_2_without_output(capsys, tmp_path, hourly, facts, args, message):
    out = tmp_path / "cal"
    base = [x for flag, value in (("--data", hourly), ("--facts", facts)) if flag not in args for x in (flag, value)]
    code, stdout, err = _cli(capsys, FLAGSHIP, *base, "--report-paths", 100, "--out", out, *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".cal*"))


def test_a_bad_data_file_is_named_with_its_line(capsys, tmp_path, facts):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,close\n2026-01-29 00:00:00,89300\n2026-01-29 01:00:00,oops\n", encoding="utf-8")
    code, stdout, err = _cli(capsys, FLAGSHIP, "--data", bad, "--facts", facts, "--out", tmp_path / "cal")
    assert code == 2 and f"{bad}:3" in err and not (tmp_path / "cal").exists()


@pytest.mark.slow
def test_calibrate_shows_a_progress_bar_on_a_terminal(tmp_path, hourly, facts):
    """On a terminal `cascade calibrate` draws a tqdm bar over its evaluations (the fit's and the
    identifiability check's) with the best objective so far; with --json it draws none. Run under
    a pseudo-terminal, as a user would see it."""
    from ptyrun import run_in_pty

    def under_pty(*extra) -> tuple[int, str]:
        return run_in_pty(["calibrate", FLAGSHIP, "--data", hourly, "--facts", facts, "--params", "volatility",
                           "--paths", "100", "--report-paths", "100", "--design", "2", "--max-evals", "3", "--oos", "",
                           "--episode", "", "--no-calm", "--out", tmp_path / f"cal{len(extra)}", *extra])

    code, out = under_pty()
    assert code == 0, out
    assert "eval" in out and "best objective" in out and "identifiability" in out, out[-2000:]
    code, out = under_pty("--json")
    assert code == 0 and "best objective" not in out and json.loads(out.strip().splitlines()[-1])["fitted"]


def test_a_bad_out_of_sample_episode_fails_before_the_fit(tmp_path, hourly, facts, shared_data):
    """The episodes are read before any evaluation: a scenario without reference numbers fails at
    once, not after minutes of fitting (one refit was lost that way to a moved file)."""
    from engine.calibration.run import run_calibration

    evaluations = []
    with pytest.raises(ValueError, match="no reference numbers for scenario 'calm-baseline'"):
        run_calibration(FLAGSHIP, data=hourly, facts=facts,
                        reference=shared_data / "reference" / "stress_event_reference_numbers.csv",
                        oos_scenarios=[ROOT / "scenarios" / "calm-baseline.yaml"], names=["volatility"],
                        n_paths=50, report_paths=50, max_evals=2, design_points=1, out=tmp_path / "cal",
                        progress=evaluations.append)
    assert evaluations == [] and not (tmp_path / "cal").exists()


@pytest.mark.slow
def test_the_identifiability_check_runs_at_the_shipped_parameters_without_a_fit(capsys, tmp_path, hourly, facts):
    """`--no-fit --identifiability` measures the check at the scenario's own values: every
    parameter, the same table and files as after a fit, nothing fitted; without the flag a
    --no-fit run has none."""
    out = tmp_path / "cal"
    code, stdout, err = _cli(capsys, FLAGSHIP, "--no-fit", "--identifiability", "--data", hourly, "--facts", facts,
                             "--paths", 100, "--report-paths", 100, "--oos", "", "--episode", "", "--no-calm", "--out", out, "--json")
    assert code == 0, err
    obj = json.loads(stdout)
    assert not obj["fitted"] and obj["evaluations"] == 0
    ident = obj["identifiability"]
    assert {row["parameter"] for row in ident["parameters"]} == set(cf.DEFAULT_PARAMETERS) and ident["findings"]
    spans = pd.read_csv(out / "identifiability.csv", index_col="parameter")
    assert spans.loc["volatility", "fitted"] == pytest.approx(
        cf.PARAMETERS["volatility"].decode(cf._get(to_plain(load_scenario(FLAGSHIP)), "market.volatility.annual")))


@pytest.mark.parametrize("field, value, says", [
    ("log", "false", "log: expected true or false, got 'false'"),
    ("default", 1, "default: expected true or false, got 1"),
    ("unit", "w", "unit: expected one of ['d', 'h'] or none, got 'w'"),
    ("box", [True, 2.0], "box: expected [low, high], finite numbers"),
    ("box", [0.0, float("inf")], "box: expected [low, high], finite numbers"),
    ("key", 3, "key: expected a scenario key path, got 3"),
])
def test_a_malformed_parameter_table_is_refused_naming_the_entry_and_field(tmp_path, field, value, says):
    """The parameter table is read from disk: a string "false" is not false, an unknown unit is not
    left to fail as a KeyError in the middle of a fit."""
    import yaml

    from engine.calibration.parameters import PARAMETERS_FILE, read_parameters

    table = yaml.safe_load(PARAMETERS_FILE.read_text(encoding="utf-8"))
    table["volatility"][field] = value
    path = tmp_path / "parameters.yaml"
    path.write_text(yaml.safe_dump(table, sort_keys=False))
    with pytest.raises(ValueError) as info:
        read_parameters(path)
    assert f"{path}: volatility: {says}" in str(info.value)
    assert read_parameters().keys() == table.keys()  # the shipped table reads, every entry
