"""The hedge metrics' one definition (``engine.portfolio.metrics``).

* The direct evaluator gives, bit for bit, the figures written out with numpy (VaR and ES as
  minus a percentile / tail mean, the differences with the unhedged row, effectiveness NaN where
  no premium is paid), ties and rows identical to the unhedged one included.
* Each formula gives the same on one row's floats as on the rows' arrays: the bootstrap applies
  them to arrays of resampled values (``engine.results.regression``: its SEs are tested there).
"""

from __future__ import annotations

import numpy as np

from engine.portfolio import metrics as hm


def _rows(rng, n_rows=5, n=997):
    rows = []
    for i in range(n_rows):
        pnl = np.round(rng.standard_t(3, n) * 1e4)  # ties
        if i == 2:
            pnl = rows[0]["pnl"].copy()  # the unhedged tail: d_es99 and effectiveness 0
        premium = (0.0, 120.0, 80.0, -30.0, 55.5)[i % 5]
        rows.append({"pnl": pnl, "max_drawdown": rng.uniform(0, 0.5, n), "liquidated": (rng.random(n) < 0.1) * 1.0,
                     "premium": np.full(n, premium), "payoff": rng.uniform(0, 200, n)})
    return rows


def _written_out(rows) -> dict:
    out = {m: [] for m in hm.METRICS}
    tail = lambda x, q: x[x <= np.quantile(x, q)].mean()  # noqa: E731
    for a in rows:
        pnl = a["pnl"]
        values = {"pnl_mean": pnl.mean(), "pnl_median": np.median(pnl), "var95": -np.quantile(pnl, 0.05),
                  "es95": -tail(pnl, 0.05), "var99": -np.quantile(pnl, 0.01), "es99": -tail(pnl, 0.01),
                  "max_dd_p50": np.median(a["max_drawdown"]), "max_dd_p95": np.quantile(a["max_drawdown"], 0.95),
                  "p_liquidated": a["liquidated"].mean(), "premium": a["premium"].mean(), "fair_value": a["payoff"].mean()}
        values["premium_over_fair"] = values["premium"] / values["fair_value"] if values["premium"] > 0 else np.nan
        for m, v in values.items():
            out[m].append(v)
    es99, premium = np.array(out["es99"]), np.array(out["premium"])
    out["d_pnl_mean"] = np.array(out["pnl_mean"]) - out["pnl_mean"][0]
    out["d_es99"] = es99 - es99[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["effectiveness"] = np.where(premium > 0, -out["d_es99"] / premium, np.nan)
    return {m: np.asarray(v, dtype=float) for m, v in out.items()}


def test_the_direct_evaluator_gives_the_written_out_figures_bit_for_bit():
    rows = _rows(np.random.default_rng(1))
    got = hm.metrics([hm.row_statistics(a) for a in rows])
    expected = _written_out(rows)
    assert list(got) == list(hm.METRICS)
    for m in hm.METRICS:
        assert got[m].view(np.int64).tolist() == expected[m].view(np.int64).tolist(), m
    assert np.isnan(got["effectiveness"][[0, 3]]).all()  # no premium, a credit
    assert got["effectiveness"][2] == 0.0 and got["d_es99"][2] == 0.0


def test_each_formula_is_the_same_on_floats_and_on_arrays():
    statistics = [hm.row_statistics(a) for a in _rows(np.random.default_rng(2))]
    arrays = hm.metrics(statistics)
    for i, row in enumerate(statistics):
        for m, formula in hm.FORMULAS.items():
            value = np.asarray(formula(row, statistics[0]), dtype=float)
            assert value.view(np.int64) == arrays[m][i:i + 1].view(np.int64)[0], (m, i)


def test_each_metric_reads_the_statistics_its_formula_names():
    """The error bars of a run resample only what VaR, ES and d_es99 read: the PnL's tails."""
    from engine.portfolio.metrics import statistics_of
    from engine.results.risk import STRATEGY_METRICS

    assert statistics_of(STRATEGY_METRICS) == ["pnl_q05", "pnl_tail05", "pnl_q01", "pnl_tail01"]
    assert statistics_of(["effectiveness"]) == ["pnl_tail01", "premium"]
    assert statistics_of(["fair_value"]) == ["fair_value"]
