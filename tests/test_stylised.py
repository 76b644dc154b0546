"""Stylised facts (:mod:`engine.calibration.stylised`) on series whose answers are known.

* i.i.d. Gaussian returns: skewness and excess kurtosis near 0, 0.27% of 3-sigma steps, no
  autocorrelation of r, |r| or r^2 beyond 3/sqrt(n), and the Hill index at 5% near its Gaussian
  limit 4.72 (:func:`hill_limit` checked against a simulation and its quadrature value).
* Pareto tails of index 3: the Hill index is 3 within its standard error alpha/sqrt(k); Student-t
  with 3 degrees of freedom: 3 within the estimator's small-fraction bias and 3 standard errors,
  and on its finite-fraction limit within 3 standard errors.
* GARCH(1,1): r^2 autocorrelation at lag 1 near the closed form and far above the i.i.d. band.
* Drawdowns of hand-made paths, and of simulated paths as the kernel records them.
* :func:`compare` and ``cascade stylised`` on a small simulation, on synthetic and on the real hourly
  closes in ``../shared/data`` (skipped when absent).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import engine
from engine.calibration.stylised import (
    HOURS_PER_YEAR,
    STATISTICS,
    compare,
    hill,
    hill_limit,
    max_drawdown,
    per_sample,
    render_comparison,
    select_period,
    simulated_log_returns,
    stylised_facts,
)
from engine.cli import main

HOURLY = "btc_hourly_binance_BTCUSDT_2025-03-05_2026-04-05.csv"


def garch(n: int, omega: float, alpha: float, beta: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n + 500)
    r = np.empty_like(z)
    var = omega / (1 - alpha - beta)
    for t in range(len(z)):
        r[t] = math.sqrt(var) * z[t]
        var = omega + alpha * r[t] ** 2 + beta * var
    return r[500:]  # burn-in


def hourly_closes(log_returns: np.ndarray, start: str = "2025-01-01") -> pd.Series:
    index = pd.date_range(start, periods=len(log_returns) + 1, freq="1h", tz="UTC")
    return pd.Series(50_000 * np.exp(np.concatenate([[0.0], np.cumsum(log_returns)])), index=index, name="close")


# ----------------------------------------------------------------------------- known answers
def test_gaussian_returns():
    rng = np.random.default_rng(1)
    sigma = 0.005
    x = sigma * rng.standard_normal((50, 4000))
    n = x.size
    f = stylised_facts(x, 1.0)
    assert list(f.index) == list(STATISTICS)
    assert f.loc["annual_vol", "pooled"] == pytest.approx(sigma * math.sqrt(HOURS_PER_YEAR), rel=3 / math.sqrt(2 * n))
    assert abs(f.loc["skewness", "pooled"]) < 4 * math.sqrt(6 / n)
    assert abs(f.loc["excess_kurtosis", "pooled"]) < 4 * math.sqrt(24 / n)
    assert f.loc["share_3sigma", "pooled"] == pytest.approx(0.0027, abs=4 * math.sqrt(0.0027 / n))
    limit = hill_limit(stats.norm, 0.05)
    assert limit == pytest.approx(4.7175, abs=1e-3)  # 1 / E[log(X/u) | X > u], u = 1.645
    for side in ("hill_left", "hill_right"):
        assert abs(f.loc[side, "pooled"] - limit) < 3 * f.loc[side, "se"]
        assert f.loc[side, "pooled"] > 4.2  # far above the real market's ~2.5
    for stat in f.index:
        if stat.startswith("acf"):
            lag = int(stat.rsplit("lag", 1)[1])
            assert abs(f.loc[stat, "pooled"]) < 3 / math.sqrt(n) + lag / 4000, stat  # i.i.d. band + the -1/n bias
            assert f.loc[stat, "se"] == pytest.approx(1 / math.sqrt(50 * (4000 - lag)))


def test_hill_on_a_pareto_tail_is_unbiased():
    rng = np.random.default_rng(2)
    x = rng.pareto(3.0, 200_000) + 1.0  # P(X > x) = x^-3 exactly
    signs = rng.choice([-1.0, 1.0], x.size)
    f = stylised_facts(signs * x, 1.0, tail_fraction=0.02)
    for side in ("hill_left", "hill_right"):
        assert abs(f.loc[side, "pooled"] - 3.0) < 3 * f.loc[side, "se"]
        # k = 2% of all 200,000 values (about 4% of each side's), se = alpha / sqrt(k)
        assert f.loc[side, "se"] == pytest.approx(f.loc[side, "pooled"] / math.sqrt(4000), rel=1e-9)


def test_hill_on_student_t_3():
    rng = np.random.default_rng(3)
    x = rng.standard_t(3, 400_000)
    alpha, k = hill(x, 0.005)
    se = alpha / math.sqrt(k)
    assert k == 2000
    limit = hill_limit(stats.t(3), 0.005)  # 2.88: the estimator's own target at this fraction
    assert abs(alpha - limit) < 3 * se
    assert abs(alpha - 3.0) < 3 * se + (3.0 - limit)  # 3 within 3 SE once the known bias is allowed
    assert hill_limit(stats.t(3), 0.05) == pytest.approx(2.4526, abs=1e-3)  # the bias at the default 5%
    assert math.isnan(hill(-np.abs(x), 0.01)[0])  # no positive tail values: NaN


def test_garch_returns_cluster_and_iid_do_not():
    omega, alpha, beta = 1e-6, 0.10, 0.85
    r = garch(20_000, omega, alpha, beta, seed=4)
    f = stylised_facts(r, 1.0)
    rho1 = alpha * (1 - alpha * beta - beta**2) / (1 - 2 * alpha * beta - beta**2)  # 0.179, Bollerslev (1988)
    assert 0.10 < f.loc["acf_sq_lag1", "pooled"] < 0.30 and f.loc["acf_sq_lag1", "pooled"] == pytest.approx(rho1, abs=0.08)
    assert f.loc["acf_sq_lag1", "pooled"] > 10 * f.loc["acf_sq_lag1", "se"]
    assert f.loc["acf_abs_lag1", "pooled"] > 10 * f.loc["acf_abs_lag1", "se"]
    assert f.loc["acf_abs_lag24", "pooled"] > 3 * f.loc["acf_abs_lag24", "se"]  # persistence 0.95: still there
    assert abs(f.loc["acf_r_lag1", "pooled"]) < 3 / math.sqrt(len(r))
    assert f.loc["excess_kurtosis", "pooled"] > 0.5  # clustering fattens the unconditional tails
    shuffled = np.random.default_rng(5).permutation(r)  # same values, no clustering
    g = stylised_facts(shuffled, 1.0)
    for stat in ("acf_sq_lag1", "acf_abs_lag1", "acf_abs_lag6", "acf_abs_lag24"):
        assert abs(g.loc[stat, "pooled"]) < 3 / math.sqrt(len(r)), stat
    assert g.loc["excess_kurtosis", "pooled"] == pytest.approx(f.loc["excess_kurtosis", "pooled"])


def test_drawdown_of_known_paths():
    def drawdown(prices):
        return max_drawdown(np.diff(np.log(prices)))[0]

    assert drawdown([100, 120, 90, 110, 80, 130]) == pytest.approx(1 - 80 / 120)
    assert drawdown([100, 50, 200, 150]) == pytest.approx(0.5)  # the start is a peak
    assert drawdown([100, 101, 102, 103]) == pytest.approx(0.0, abs=1e-12)
    assert drawdown([100, 100, 100, 40]) == pytest.approx(0.6)


def test_windows_are_samples_of_the_window_length():
    r = np.random.default_rng(6).standard_normal(500) * 0.01
    f = stylised_facts(r, 1.0, window=100, stride=7)
    windows = np.stack([r[i:i + 100] for i in range(0, 401, 7)])
    g = stylised_facts(windows, 1.0)
    assert f.attrs["n_samples"] == len(windows) == 58 and f.attrs["tail_k"] == 5
    pd.testing.assert_frame_equal(f[["p5", "p50", "p95"]], g[["p5", "p50", "p95"]])
    whole = stylised_facts(r, 1.0)  # pooled: the whole series, whatever the windows
    assert f.loc["annual_vol", "pooled"] == whole.loc["annual_vol", "pooled"]
    assert whole.loc["annual_vol", "p50"] == pytest.approx(whole.loc["annual_vol", "pooled"])
    assert math.isnan(f.loc["max_drawdown", "pooled"])


def test_pooled_autocorrelation_never_crosses_a_path_end():
    a = np.tile([1.0, -1.0], 50) * 0.01  # alternating: lag-1 autocorrelation -1
    x = np.stack([a, -a])  # joined end to end, the seam would be a +1 pair
    assert stylised_facts(x, 1.0).loc["acf_r_lag1", "pooled"] == pytest.approx(-99 / 100)


@pytest.mark.parametrize("call, message", [
    (lambda: stylised_facts(np.zeros(2)), "at least 3 steps"),
    (lambda: stylised_facts(np.array([0.1, np.nan, 0.2, 0.0])), "NaN"),
    (lambda: stylised_facts(np.ones((3, 30)) * 0.01, tail_fraction=0.05), "at least 2"),
    (lambda: stylised_facts(np.ones(100), window=200), "window of 200"),
    (lambda: stylised_facts(np.ones((2, 100)), window=50), "1-D series"),
    (lambda: stylised_facts(np.ones(100), tail_fraction=0.7), "tail_fraction"),
    (lambda: stylised_facts(np.ones(100), step_hours=0), "step_hours"),
])
def test_refuses_what_it_cannot_measure(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_select_period():
    close = hourly_closes(np.zeros(72))  # 2025-01-01 00:00 .. 2025-01-04 00:00
    assert len(select_period(close, "2025-01-02", "2025-01-02")) == 24  # a day alone: the whole day
    assert len(select_period(close, "2025-01-02T06:00", "2025-01-02T08:00")) == 3
    assert select_period(close, start="2025-01-03").index[0] == pd.Timestamp("2025-01-03", tz="UTC")
    with pytest.raises(ValueError, match="expected a day or time"):
        select_period(close, "yesterday")
    with pytest.raises(ValueError, match="at least 3"):
        select_period(close, "2030-01-01")


# ----------------------------------------------------------------------------- model vs data
@pytest.fixture(scope="module")
def tiny_run():
    from conftest import TINY_SCENARIO

    return engine.run(engine.load_scenario(TINY_SCENARIO), n_paths=128, seed=11, keep_steps=True)


def test_simulated_returns_rebuild_the_kernels_drawdowns(tiny_run):
    r = simulated_log_returns(tiny_run)
    assert r.shape == (128, tiny_run.n_steps)
    price = tiny_run.compiled.param("SPOT0") * np.exp(np.cumsum(r, axis=1))
    np.testing.assert_allclose(price, tiny_run._raw["price"], rtol=1e-6)
    ours = per_sample(r)["max_drawdown"].to_numpy()
    np.testing.assert_allclose(ours, tiny_run.per_path["max_drawdown"].to_numpy(), atol=1e-5)  # float32 prices


def test_compare_on_synthetic_closes(tiny_run):
    returns = np.random.default_rng(7).standard_normal(1000) * 0.004
    table = compare(tiny_run, hourly_closes(returns))
    assert list(table.index) == list(STATISTICS)
    assert list(table.columns) == ["real", "real_p5", "real_p50", "real_p95", "model_p5", "model_p50",
                                   "model_p95", "model_pooled", "normal", "real_rank", "in_range"]
    a = table.attrs
    assert a["window"] == tiny_run.n_steps == 48 and a["real_windows"] == 1000 - 48 + 1 and a["tail_k"] == 2
    assert table["in_range"].dtype == bool
    assert ((table["real_rank"] >= 0) & (table["real_rank"] <= 1)).all()
    expected = (table["model_p5"] <= table["real_p50"]) & (table["real_p50"] <= table["model_p95"])
    assert (table["in_range"] == expected).all()
    assert table.loc["annual_vol", "real"] == pytest.approx(0.004 * math.sqrt(HOURS_PER_YEAR), rel=0.1)
    text = render_comparison(table, "synthetic")
    assert "annual_vol" in text and "missed:" in text and "synthetic" in text


def test_compare_refuses_mismatched_data(tiny_run):
    daily = pd.Series(np.full(100, 50_000.0), index=pd.date_range("2025-01-01", periods=100, freq="1D", tz="UTC"))
    with pytest.raises(ValueError, match="does not divide"):
        compare(tiny_run, daily)
    with pytest.raises(ValueError, match="fewer than one window"):
        compare(tiny_run, hourly_closes(np.zeros(20)))
    # data finer than the model's step is thinned to it: 30-minute closes -> hourly returns
    half_hourly = pd.Series(50_000 * np.exp(np.cumsum(np.full(400, 1e-4))),
                            index=pd.date_range("2025-01-01", periods=400, freq="30min", tz="UTC"))
    assert compare(tiny_run, half_hourly).attrs["real_returns"] == 199


def test_compare_on_the_real_hourly_data(shared_data):
    from conftest import SCENARIOS

    from engine.history.data import load_ohlcv

    close = select_period(load_ohlcv(shared_data / HOURLY), "2025-11-01", "2026-01-28")
    run = engine.run(SCENARIOS / "calm-baseline.yaml", n_paths=256, keep_steps=True)
    table = compare(run, close)
    assert table.attrs["real_windows"] == len(close) - 1 - 336 + 1
    # facts of the real market that hold whatever the model: fat tails, clustering, no lag-1 correlation
    assert table.loc["excess_kurtosis", "real"] > 3
    assert table.loc["hill_left", "real"] < 3.5 and table.loc["hill_right", "real"] < 3.5  # Gaussian: 4.72
    assert table.loc["acf_abs_lag1", "real"] > 0.15 and table.loc["acf_sq_lag1", "real"] > 0.1
    assert abs(table.loc["acf_r_lag1", "real"]) < 0.06
    assert table.loc["share_3sigma", "real"] > 2 * 0.0027


# ----------------------------------------------------------------------------- the command
def _cli(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def tiny_files(tmp_path, write_yaml, tiny_scenario):
    scenario = write_yaml("tiny.yaml", tiny_scenario)
    returns = np.random.default_rng(8).standard_normal(600) * 0.004
    closes = hourly_closes(returns)
    data = tmp_path / "closes.csv"
    pd.DataFrame({"timestamp": closes.index.strftime("%Y-%m-%d %H:%M:%S"), "close": closes.to_numpy()}).to_csv(
        data, index=False)
    return scenario, data


def test_cascade_facts_prints_the_table(tiny_files, capsys):
    scenario, data = tiny_files
    code, out, err = _cli(capsys, "stylised", str(scenario), "--data", str(data), "--paths", "64", "--jobs", "1")
    assert code == 0, err
    for stat in STATISTICS:
        assert stat in out
    assert "553 windows of 48 steps (2 days)" in out and "tiny, 64 paths" in out
    code, out, err = _cli(capsys, "stylised", str(scenario), "--data", str(data), "--paths", "64", "--json",
                          "--start", "2025-01-02", "--tail-fraction", "10%")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc["statistics"]) == set(STATISTICS) and doc["tail_fraction"] == 0.1
    assert doc["statistics"]["max_drawdown"]["real"] is None  # NaN is null in JSON
    assert doc["real_windows"] == 600 - 24 - 48 + 1


@pytest.mark.parametrize("extra, message", [
    (["--data", "missing.csv"], "no such file"),
    (["--tail-fraction", "lots"], "--tail-fraction"),
    (["--tail-fraction", "60%"], "between 0 and 50%"),
    (["--start", "2025-01-25"], "fewer than one window"),
    (["--end", "someday"], "expected a day or time"),
])
def test_cascade_facts_user_errors_exit_2(tiny_files, capsys, extra, message):
    scenario, data = tiny_files
    args = ["stylised", str(scenario), "--data", str(data), "--paths", "16", *extra]
    code, out, err = _cli(capsys, *args)
    assert code == 2 and message in err and "Traceback" not in err


def test_cascade_facts_on_the_real_data(shared_data, capsys):
    from conftest import ROOT

    code, out, err = _cli(capsys, "stylised", str(ROOT / "scenarios" / "calm-baseline.yaml"), "--data",
                          str(shared_data / HOURLY), "--paths", "128", "--start", "2025-11-01", "--end", "2026-01-28")
    assert code == 0, err
    assert "2025-11-01 00:00 .. 2026-01-28 23:00 UTC, 2,135 returns of 1 h; 1,800 windows" in out
