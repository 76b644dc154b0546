"""Hedging strategies on simulated paths: the accounting, the metrics, the knobs, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import engine
from engine.cli import main
from engine.portfolio.hedge import evaluate
from engine.options import black_scholes as bs

EXPIRY = "2026-01-30T12:00:00Z"  # inside the tiny scenario's 2-day horizon (step 35)


def _run(tiny, strategies, portfolio=None, n_paths=256, **market):
    tiny = dict(tiny, strategies=strategies, n_paths=n_paths)
    if portfolio is not None:
        tiny["portfolio"] = portfolio
    tiny["market"] = dict(tiny["market"], **market)
    scenario = engine.load_scenario(tiny)
    return engine.run(scenario, seed=7), scenario


def _final(result):
    return result._raw["price"][:, -1].astype(float)


def test_unhedged_book_is_its_spot_times_the_move(tiny_scenario):
    r, _ = _run(tiny_scenario, [], {"spot_btc": 3, "cash_usd": "10k"})
    table = evaluate(r)
    spot0 = r.compiled.param("SPOT0")
    assert list(table["strategy"]) == ["unhedged"]
    assert table["pnl_mean"].iloc[0] == pytest.approx(np.mean(3 * (_final(r) - spot0)), rel=1e-12)
    assert table["premium"].iloc[0] == 0 and table["p_liquidated"].iloc[0] == 0
    # drawdowns of 3 BTC + 10k of cash, from the start value, path by path
    prices = np.concatenate([np.full((r.n_paths, 1), spot0), r._raw["price"].astype(float)], axis=1)
    value = 3 * prices + 10_000.0
    dd = (1 - value / np.maximum.accumulate(value, axis=1)).max(axis=1)
    assert table["max_dd_p50"].iloc[0] == pytest.approx(np.median(dd), rel=1e-12)
    assert table["max_dd_p95"].iloc[0] == pytest.approx(np.quantile(dd, 0.95), rel=1e-12)


def test_a_put_held_to_expiry_pays_its_intrinsic_value_less_what_it_cost(tiny_scenario):
    put = {"rule": "protective_put", "strike_usd": "85k", "size_btc": 2, "expiry": EXPIRY,
           "costs": {"bid_ask_spread": 0.1, "fee_rate": 0.001}}
    r, _ = _run(tiny_scenario, [put], {"spot_btc": 2})
    table = evaluate(r)
    spot0 = r.compiled.param("SPOT0")
    # the premium: Black-Scholes on the surface at the start, plus half the spread and the fee
    t = (np.datetime64("2026-01-30T12:00") - np.datetime64("2026-01-29T00:00")) / np.timedelta64(1, "D") / 365.25
    from engine.options.surface import VolSurface

    vol = VolSurface(atm=0.55, rr25=-0.03, term_slope=0.05).vol(85_000.0, spot0, t)
    mid = float(bs.price("put", spot0, 85_000.0, t, 0.0, 0.0, vol))
    premium = 2 * mid * 1.05 + 2 * min(0.001 * spot0, 0.125 * mid)  # the fee is capped at 12.5% of the price
    assert table["premium"].iloc[1] == pytest.approx(premium, rel=1e-9)
    # at expiry (the end of step 35) it pays max(K - S, 0) in cash: the difference to unhedged is fixed
    s_exp = r._raw["price"][:, 35].astype(float)
    expected = np.mean(2 * np.maximum(85_000.0 - s_exp, 0.0)) - premium
    assert table["pnl_mean"].iloc[1] - table["pnl_mean"].iloc[0] == pytest.approx(expected, rel=1e-9)


def test_costs_strikes_sizes_and_rolls_each_change_the_result(tiny_scenario):
    base = {"rule": "protective_put", "strike_pct_of_spot": 0.95, "hedge_ratio": 1.0, "tenor": "1d"}
    variants = {
        "base": base,
        "spread": dict(base, costs={"bid_ask_spread": 0.2}),
        "fee": dict(base, costs={"fee_rate": 0.0}),  # (the default fee meets the 12.5%-of-premium cap here)
        "strike": dict(base, strike_pct_of_spot=0.9),
        "ratio": dict(base, hedge_ratio=0.5),
        "roll": dict(base, roll_before_expiry="6h"),
        "absolute": dict({k: v for k, v in base.items() if k != "strike_pct_of_spot"}, strike_usd="84k"),
    }
    strategies = [dict(v, name=k) for k, v in variants.items()]
    r, _ = _run(tiny_scenario, strategies, {"spot_btc": 1})
    table = evaluate(r).set_index("strategy")
    for name in variants:
        if name != "base":
            assert table.loc[name, "pnl_mean"] != table.loc["base", "pnl_mean"], name
    assert table.loc["spread", "premium"] > table.loc["base", "premium"]
    assert table.loc["fee", "premium"] < table.loc["base", "premium"]
    assert table.loc["ratio", "premium"] < table.loc["base", "premium"]
    assert table.loc["roll", "premium"] > table.loc["base", "premium"]  # a second put bought before the first expires


def test_perp_hedge_offsets_the_move_and_can_be_liquidated(tiny_scenario):
    hedges = [{"rule": "perp_hedge", "name": "half", "hedge_ratio": 0.5, "leverage": 1, "costs": {"fee_rate": 0}},
              {"rule": "perp_hedge", "name": "fragile", "hedge_ratio": 1.0, "leverage": 100}]
    r, _ = _run(tiny_scenario, hedges, {"spot_btc": 4}, volatility={"annual": "150%"})
    table = evaluate(r).set_index("strategy")
    spot0 = r.compiled.param("SPOT0")
    move = _final(r) - spot0
    # each path's own funding rate per interval, paid at the funding times
    funding = r._raw["funding"].astype(float) * r.compiled.step("FUNDING_EVENTS")[None, :]
    assert np.ptp(r._raw["funding"]) > 0  # the rate moves with the book, path by path
    # half hedged at 1x is never liquidated here: PnL = 4*move - 2*move + funding received
    assert table.loc["half", "p_liquidated"] == 0
    received = np.mean(2.0 * (r._raw["price"].astype(float) * funding).sum(axis=1))
    assert table.loc["half", "pnl_mean"] == pytest.approx(np.mean(2 * move) + received, rel=1e-9)
    assert table.loc["fragile", "p_liquidated"] > 0.2  # a 100x short: any 1% rally ends it


def test_stop_loss_sells_at_its_level(tiny_scenario):
    stop = {"rule": "stop_loss", "stop_price_usd": "1M", "sell_fraction": 0.5, "costs": {"fee_rate": 0}}
    r, _ = _run(tiny_scenario, [stop], {"spot_btc": 2})
    table = evaluate(r)
    first = r._raw["price"][:, 0].astype(float)
    spot0 = r.compiled.param("SPOT0")
    # a stop above the price fires at the first step: half sold there, the rest rides
    expected = np.mean(1.0 * (first - spot0) + 1.0 * (_final(r) - spot0))
    assert table["pnl_mean"].iloc[1] == pytest.approx(expected, rel=1e-9)


def test_risk_metrics_are_quantiles_and_tail_means_of_the_pnl(tiny_scenario):
    r, _ = _run(tiny_scenario, [], {"spot_btc": 1}, n_paths=1000)
    row = evaluate(r).iloc[0]
    pnl = _final(r) - r.compiled.param("SPOT0")
    q5, q1 = np.quantile(pnl, [0.05, 0.01])
    assert row["var95"] == pytest.approx(-q5, rel=1e-9) and row["var99"] == pytest.approx(-q1, rel=1e-9)
    assert row["es95"] == pytest.approx(-pnl[pnl <= q5].mean(), rel=1e-9)
    assert row["es99"] == pytest.approx(-pnl[pnl <= q1].mean(), rel=1e-9)
    assert row["pnl_median"] == pytest.approx(np.median(pnl), rel=1e-9)
    lows = r.per_path["min_price"].to_numpy()
    level = r.scenario.outputs.price_levels_usd[-1]  # the default levels: 10/20/30% below the spot
    assert row[f"p_touch_{level:.0f}"] == (lows <= level).mean()


def test_sweeps_give_one_row_per_parameter_set_with_its_parameters(tiny_scenario):
    put = {"rule": "protective_put", "name": "p", "strike_usd": {"values": ["80k", "84k", "88k"]},
           "size_btc": 1, "expiry": EXPIRY}
    r, _ = _run(tiny_scenario, [put])
    table = evaluate(r)
    assert list(table["strategy"]) == ["unhedged", "p", "p", "p"]
    assert list(table["param.strike_usd"].iloc[1:]) == [80_000.0, 84_000.0, 88_000.0]
    assert table["premium"].iloc[1] < table["premium"].iloc[2] < table["premium"].iloc[3]
    assert (table["es99"] >= table["var99"] - 1e-9).all() and (table["es95"] >= table["var95"] - 1e-9).all()


def test_a_dynamic_hedge_of_a_constant_delta_is_the_static_hedge(tiny_scenario):
    """Spot only: the unhedged delta never moves, so the dynamic hedge never trades after the first
    step and its result is the static hedge's, to the cent."""
    rules = [{"rule": "perp_hedge", "name": "static", "hedge_ratio": 0.75, "leverage": 1},
             {"rule": "perp_hedge", "name": "dynamic", "mode": "dynamic", "delta_target": 0.25, "leverage": 1,
              "rebalance_band": 0.0}]
    r, _ = _run(tiny_scenario, rules, {"spot_btc": 4})
    t = evaluate(r).set_index("strategy")
    assert t.loc["dynamic", "pnl_mean"] == pytest.approx(t.loc["static", "pnl_mean"], rel=1e-12)


def test_a_dynamic_hedge_tracks_the_delta_of_options_held(tiny_scenario):
    """A book short puts: its delta grows as the price falls; the dynamic hedge follows it and cuts
    the tail, and a wider band trades less (pays fewer fees) but hedges worse."""
    book = {"spot_btc": 0, "cash_usd": "500k",
            "options": [{"kind": "put", "strike_usd": "80k", "expiry": "2026-02-27T08:00:00Z", "size_btc": -10}]}
    rules = [{"rule": "perp_hedge", "name": "tight", "mode": "dynamic", "delta_target": 0, "rebalance_band": 0.01,
              "leverage": 2},
             {"rule": "perp_hedge", "name": "wide", "mode": "dynamic", "delta_target": 0, "rebalance_band": 0.5,
              "leverage": 2}]
    r, _ = _run(tiny_scenario, rules, book, volatility={"annual": "120%"})
    t = evaluate(r).set_index("strategy")
    assert t.loc["tight", "es99"] < t.loc["unhedged", "es99"]
    assert t.loc["tight", "es99"] < t.loc["wide", "es99"]


def test_deleverage_cuts_the_book_perp_before_it_is_liquidated(tiny_scenario):
    book = {"spot_btc": 0, "cash_usd": "20k", "perp": {"size_btc": 2, "leverage": 10}}
    rules = [{"rule": "deleverage", "name": "cut", "target_leverage": 2, "drawdown_trigger": 0.03},
             {"rule": "deleverage", "name": "close", "target_leverage": 0, "drawdown_trigger": 0.03},
             {"rule": "deleverage", "name": "on_vol", "target_leverage": 1, "volatility_trigger": 0.3,
              "volatility_window": "6h", "cooldown": "6h"},
             {"rule": "deleverage", "name": "on_funding", "target_leverage": 1, "funding_trigger": 0.01},
             {"rule": "deleverage", "name": "never", "target_leverage": 1, "funding_trigger": -0.5}]
    r, _ = _run(tiny_scenario, rules, book, volatility={"annual": "120%"})
    t = evaluate(r)
    assert t.attrs["not_evaluated"] == []
    t = t.set_index("strategy")
    # funding at or below 1% per interval (always): cut at once; at or below -50% (never): no cut
    assert t.loc["on_funding", "pnl_mean"] != t.loc["unhedged", "pnl_mean"]
    assert t.loc["never", "pnl_mean"] == t.loc["unhedged", "pnl_mean"]
    assert t.loc["unhedged", "p_liquidated"] > 0.2  # a 10x long in a 120%-vol market
    assert t.loc["cut", "p_liquidated"] < t.loc["unhedged", "p_liquidated"]
    assert t.loc["close", "p_liquidated"] <= t.loc["cut", "p_liquidated"]
    assert t.loc["close", "es99"] < t.loc["unhedged", "es99"]
    assert t.loc["on_vol", "pnl_mean"] != t.loc["unhedged", "pnl_mean"]


def test_deleverage_needs_a_perp_to_cut(tiny_scenario):
    r, _ = _run(tiny_scenario, [{"rule": "deleverage", "target_leverage": 1, "drawdown_trigger": 0.1}])
    with pytest.raises(ValueError, match="holds none"):
        evaluate(r)


def test_strategies_need_the_price_paths(tiny_scenario):
    tiny = dict(tiny_scenario, strategies=[{"rule": "stop_loss", "drawdown": 0.1}])
    r = engine.run(engine.load_scenario(tiny), keep_steps=False)
    with pytest.raises(ValueError, match="keep_steps=True"):
        r.strategies


def test_cli_prints_the_hedge_table_and_json(tiny_scenario, write_yaml, capsys):
    tiny = dict(tiny_scenario, n_paths=128, strategies=[
        {"rule": "protective_put", "name": "put_85k", "strike_usd": "85k", "size_btc": 1, "expiry": EXPIRY},
        {"rule": "collar", "put_strike_usd": "85k", "call_strike_usd": "95k", "size_btc": 1, "tenor": "1d"}])
    path = write_yaml("hedged.yaml", tiny)
    assert main(["run", str(path), "--no-progress", "--no-save"]) == 0
    out = capsys.readouterr().out
    assert "hedges (PnL in USD" in out and "put_85k" in out and "collar" in out
    assert main(["run", str(path), "--json", "--no-save"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["strategies"]) == {"unhedged", "put_85k", "collar"}
    assert math.isfinite(doc["strategies"]["put_85k"]["es99"])


def test_cli_refuses_a_roll_on_a_fixed_expiry(tiny_scenario, write_yaml, capsys):
    tiny = dict(tiny_scenario, strategies=[
        {"rule": "protective_put", "name": "bad", "strike_usd": "85k", "size_btc": 1, "expiry": EXPIRY,
         "roll_before_expiry": "1h"}])
    assert main(["run", str(write_yaml("bad.yaml", tiny)), "--no-progress", "--no-save"]) == 2
    err = capsys.readouterr().err
    assert "strategies[bad]" in err and "tenor" in err and "Traceback" not in err


def _exportable(tiny):
    data = dict(tiny, n_paths=16, portfolio={"spot_btc": 2, "cash_usd": "500k"})
    perps = dict(data["market"]["perpetuals"], funding={"base_rate": 0, "imbalance_sensitivity": 0})
    data["market"] = dict(data["market"], perpetuals=perps)
    data["strategies"] = [
        {"rule": "protective_put", "name": "rolled_put", "strike_pct_of_spot": 0.95, "hedge_ratio": 1, "tenor": "12h",
         "roll_before_expiry": "3h", "costs": {"bid_ask_spread": 0.1, "fee_rate": 0.001}},
        {"rule": "put_spread", "long_strike_usd": "86k", "short_strike_usd": "80k", "size_btc": 2, "expiry": EXPIRY},
        {"rule": "collar", "put_strike_usd": "80k", "call_strike_usd": "92k", "size_btc": 2, "expiry": EXPIRY},
        {"rule": "perp_hedge", "name": "static", "hedge_ratio": 0.5, "leverage": 1},
        {"rule": "perp_hedge", "name": "dynamic", "mode": "dynamic", "delta_target": 0.2, "rebalance_band": 0.0,
         "leverage": 1},
        {"rule": "stop_loss", "drawdown": 0.01, "sell_fraction": 0.5}]
    return data


@pytest.mark.slow
def test_every_row_exports_to_a_vectorbt_portfolio_with_the_engines_value_and_drawdown(tiny_scenario):
    from engine.portfolio.hedge import to_vectorbt
    from engine.compile.layout import HedgeOut

    r = engine.run(engine.load_scenario(_exportable(tiny_scenario)), seed=3)
    table = evaluate(r)
    for row in range(len(table)):
        for path in (0, 7, 15):
            pf, out = to_vectorbt(r, row, path)
            assert pf.final_value() == pytest.approx(out[HedgeOut.FINAL_VALUE], rel=1e-9), (row, path)
            assert -pf.max_drawdown() == pytest.approx(out[HedgeOut.MAX_DRAWDOWN], rel=1e-9, abs=1e-12), (row, path)
    # and the kernel's outputs are the table's: the path's PnL feeds its row
    pf, out = to_vectorbt(r, 0, 0)
    assert pf.final_value() == pytest.approx(2 * float(r._raw["price"][0, -1]) + 500_000, rel=1e-12)


def test_vectorbt_export_refuses_what_it_cannot_book(tiny_scenario):
    from engine.portfolio.hedge import to_vectorbt

    data = _exportable(tiny_scenario)
    data["market"] = dict(tiny_scenario["market"])  # the default funding rate
    r = engine.run(engine.load_scenario(data), seed=3)
    with pytest.raises(ValueError, match="funding"):
        to_vectorbt(r, 4, 0)  # the static perp hedge
    to_vectorbt(r, 1, 0)  # options only: no funding involved
    with pytest.raises(ValueError, match="row must be"):
        to_vectorbt(r, 99, 0)


def test_contracts_marked_once_for_all_rows_or_row_by_row_give_the_same_bits(tiny_scenario, monkeypatch):
    """Fixed contracts are marked once per (path, step) for every row holding them; with no room
    for those marks (``MARKS_BUDGET_BYTES = 0``) every row is marked by the general kernel, on the
    path's own ATM vols: the same numbers, bit for bit."""
    import engine.portfolio.hedge as hedge

    rules = [{"rule": "put_spread", "long_strike_usd": "86k", "short_strike_usd": "78k", "size_btc": 3,
              "tenor": "30d"},
             {"rule": "collar", "put_strike_usd": "82k", "call_strike_usd": "95k", "size_btc": 3, "tenor": "30d"}]
    r, _ = _run(tiny_scenario, rules, {"spot_btc": 3, "cash_usd": "100k"}, volatility={"annual": "90%"})
    shared, shared_paths = hedge.evaluate_with_paths(r)
    monkeypatch.setattr(hedge, "MARKS_BUDGET_BYTES", 0)
    direct, direct_paths = hedge.evaluate_with_paths(r)
    for name in shared_paths:
        np.testing.assert_array_equal(shared_paths[name], direct_paths[name], err_msg=name)
    assert (shared_paths["payoff"][1:] != 0).any()


def _mixed(tiny, with_perp=True):
    """Every kind of row, on a book with a perp, an option held and funding (or on the default
    book, 1 BTC and no cash): rows of fixed contracts (a sweep, a collar settling mid-horizon, a
    stop, a static hedge that can be liquidated) and rows that need the general kernel (a roll, a
    strike set in % of spot, a dynamic hedge, a deleverage rule)."""
    book = {"spot_btc": 2, "cash_usd": "100k", "perp": {"size_btc": 1, "leverage": 10},
            "options": [{"kind": "put", "strike_usd": "80k", "expiry": "2026-02-27T08:00:00Z", "size_btc": -1}]}
    rules = [{"rule": "put_spread", "name": "grid", "long_strike_usd": {"values": ["86k", "84k"]},
              "short_strike_usd": {"values": ["80k", "78k"]}, "hedge_ratio": {"values": [1, 0.5]}, "tenor": "1d"},
             {"rule": "collar", "put_strike_usd": "82k", "call_strike_usd": "95k", "size_btc": 3, "expiry": EXPIRY},
             {"rule": "protective_put", "name": "rolled", "strike_pct_of_spot": 0.95, "hedge_ratio": 1, "tenor": "12h",
              "roll_before_expiry": "3h"},
             {"rule": "protective_put", "name": "pct", "strike_pct_of_spot": 0.97, "size_btc": 1, "tenor": "1d"},
             {"rule": "perp_hedge", "name": "static", "hedge_ratio": 0.5, "leverage": 20},
             {"rule": "stop_loss", "drawdown": 0.02, "sell_fraction": 0.5},
             {"rule": "deleverage", "target_leverage": 2, "drawdown_trigger": 0.03},
             {"rule": "perp_hedge", "name": "dynamic", "mode": "dynamic", "delta_target": 0.2, "rebalance_band": 0.05,
              "leverage": 2}]
    if not with_perp:
        book, rules = None, [rule for rule in rules if rule["rule"] != "deleverage"]
    return _run(tiny, rules, book, n_paths=300, volatility={"annual": "120%"})


@pytest.mark.parametrize("with_perp", [True, False], ids=["perp_and_option_held", "default_book"])
def test_the_fixed_contract_kernel_gives_the_general_kernels_numbers(tiny_scenario, monkeypatch, with_perp):
    """Rows holding only fixed contracts go through ``evaluate_fixed_nb``, which shares the path's
    marks between rows; forcing ``evaluate_nb`` for every row gives the same numbers, bit for bit."""
    from engine.portfolio import hedge
    from engine.nb import hedge as nbh

    r, _ = _mixed(tiny_scenario, with_perp)
    kernel, rows = nbh.evaluate_fixed_nb, []
    monkeypatch.setattr(nbh, "evaluate_fixed_nb", lambda **kw: (rows.append(len(kw["hedge_size"])), kernel(**kw)))
    fast, fast_paths = hedge.evaluate_with_paths(r)
    # all but the roll, the % strike, the dynamic hedge and deleverage
    assert rows == [len(fast) - (4 if with_perp else 3)]
    assert fast["p_liquidated"].max() > 0 and fast["p_liquidated"].min() < 1  # liquidations happen, not everywhere
    monkeypatch.setattr(hedge, "FIXED_CONTRACT_KERNEL", False)
    general, general_paths = hedge.evaluate_with_paths(r)
    assert len(rows) == 1
    for name in fast_paths:
        np.testing.assert_array_equal(fast_paths[name], general_paths[name], err_msg=name)
    for column in hedge.METRICS:
        assert fast[column].to_numpy() == pytest.approx(general[column].to_numpy(), rel=1e-12, nan_ok=True), column


def test_rows_evaluated_in_any_chunks_and_order_are_the_same(tiny_scenario, monkeypatch):
    """A sweep may evaluate its rows in chunks (each with the unhedged row first): every row comes
    out bit for bit as in one call, whatever the chunk, its order, and however the tables are
    split to fit ``MARKS_BUDGET_BYTES``."""
    from engine.portfolio import hedge

    r, scenario = _mixed(tiny_scenario)
    prices, lows, funding = r._raw["price"], r.per_path["min_price"].to_numpy(), r._raw["funding"]
    atm = r._raw["atm_iv"]
    whole, whole_paths = hedge._evaluate(prices, lows, r.compiled, scenario, funding, atm=atm)
    vs, _ = hedge.variants(scenario, r.compiled)
    order = np.random.default_rng(5).permutation(np.arange(1, len(vs)))
    one_contract = hedge._marks_bytes(r.compiled, 1)
    for budget, chunks in ((hedge.MARKS_BUDGET_BYTES, (order[:3], order[3:9], order[9:])),
                           (2 * one_contract, (order,)),  # many calls of two contracts' marks
                           (3 * one_contract, (order[::-1],))):
        monkeypatch.setattr(hedge, "MARKS_BUDGET_BYTES", budget)
        for chunk in chunks:
            rows = [0, *chunk]
            table, paths = hedge._evaluate(prices, lows, r.compiled, scenario, funding, vs=[vs[i] for i in rows],
                                           atm=atm)
            for name in paths:
                np.testing.assert_array_equal(paths[name], whole_paths[name][rows], err_msg=name)
            for column in hedge.METRICS:
                np.testing.assert_array_equal(table[column].to_numpy(), whole[column].to_numpy()[rows], err_msg=column)


# ----------------------------------------------------------------------------- real history
def test_backtest_on_a_regular_csv_matches_closed_forms(tiny_scenario, tmp_path, write_yaml):
    import pandas as pd

    from engine.history.backtest import backtest
    from engine.history.data import load_ohlcv

    times = pd.date_range("2024-01-01", periods=200, freq="D", tz="UTC")
    close = 40_000 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.03, 200)))
    csv = tmp_path / "prices.csv"
    pd.DataFrame({"Date": times.strftime("%Y-%m-%d"), "Open": close, "Close": close}).drop(index=[50]).to_csv(csv, index=False)
    data = load_ohlcv(csv)
    assert len(data) == 200 and data.attrs["filled"] == 1  # the dropped day, filled with the previous close
    tiny = dict(tiny_scenario, portfolio={"spot_btc": 2, "cash_usd": "50k"}, strategies=[
        {"rule": "protective_put", "name": "put", "strike_pct_of_spot": 0.9, "hedge_ratio": 1, "tenor": "30d",
         "roll_before_expiry": "2d"},
        {"rule": "stop_loss", "drawdown": 0.2}])
    scenario = engine.load_scenario(write_yaml("s.yaml", tiny))
    table, portfolio = backtest(csv, scenario)
    assert table["pnl_mean"].iloc[0] == pytest.approx(2 * (data.iloc[-1] - data.iloc[0]), rel=1e-12)
    assert table["premium"].iloc[1] > 0 and table.attrs["rows"] == 200
    for row in range(len(table)):  # vectorbt books the same history to the same final value
        pf = portfolio(row)
        assert pf.final_value() == pytest.approx(50_000 + 2 * data.iloc[0] + table["pnl_mean"].iloc[row], rel=1e-9)


@pytest.mark.slow
def test_backtest_cli_on_the_shared_daily_file(shared_data, write_yaml, tiny_scenario, capsys):
    tiny = dict(tiny_scenario, portfolio={"spot_btc": 1, "cash_usd": "100k"}, strategies=[
        {"rule": "protective_put", "name": "put_85pct_monthly", "strike_pct_of_spot": 0.85, "hedge_ratio": 1,
         "tenor": "30d", "roll_before_expiry": "1d"}])
    path = write_yaml("bt.yaml", tiny)
    data = shared_data / "btc_daily_binance_BTCUSDT_2019-03-08_2026-04-05.csv"
    assert main(["backtest", str(path), "--data", str(data), "--start", "2025-01-01", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["strategies"]) == {"unhedged", "put_85pct_monthly"} and doc["rows"] > 400
    assert doc["strategies"]["put_85pct_monthly"]["premium"] > 0
    assert main(["backtest", "--data", str(data), "--strategy", str(path), "--start", "2026-03-01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] > 20  # the spelling
    assert main(["backtest", "--data", str(data)]) == 2 and "give the scenario" in capsys.readouterr().err
    assert main(["backtest", str(path), "--data", str(data), "--vol-window", "soon"]) == 2
    assert "soon" in capsys.readouterr().err
    assert main(["backtest", str(path), "--data", str(path)]) == 2  # a YAML file is not price data
    assert "expected one of the columns" in capsys.readouterr().err
    assert main(["backtest", str(path), "--data", str(data), "--close-column", "last"]) == 2
    assert "expected column 'last' for the close" in capsys.readouterr().err
    assert main(["backtest", str(path), "--data", str(data), "--close-column", "open", "--start", "2026-01-01",
                 "--json"]) == 0  # any column can stand for the close
    assert json.loads(capsys.readouterr().out)["rows"] > 60
