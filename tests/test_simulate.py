"""``engine.run`` and :class:`engine.SimulationResult`: the interface, determinism, liquidation prices.

* the interface: what ``run`` accepts, the per-path table, the fans, the timeline, ``summary()``,
  ``probabilities()``, ``to_dict()`` (the ``cascade run --json`` object), ``sample_paths``,
  ``keep_steps=False``;
* determinism: a run is a pure function of (scenario, seed), bit for bit, whatever the number of
  threads or the chunking, and a path's numbers do not depend on how many paths are run;
* liquidation prices: the exchange worked examples (``../shared/data/reference``) reproduced by
  :func:`engine.portfolio.margin.liquidation_price`, and the kernel liquidating a single position exactly
  when the price crosses the mark-price liquidation price it gives.
"""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pandas as pd
import pytest

import engine
from engine.portfolio.margin import bankruptcy_price, liquidation_price
from engine.compile.layout import FLOW_FIELDS, SUMMARY_FIELDS
from engine.result import SUMMARY_METRICS

from sim_fixtures import START, market, quiet, run, with_shocks

N_PATHS = 256
SEED = 3


@pytest.fixture(scope="module")
def result():
    return run(market(), n_paths=N_PATHS, seed=SEED)


@pytest.fixture(scope="module")
def big_run():
    """1024 paths (four RNG blocks) with every behaviour and a few shocks, for the determinism tests."""
    data = with_shocks(
        market(),
        {"type": "etf_flows", "start": START, "daily_flows_usd": {"2026-02-02": "-1B"}},
        {"type": "margin_hike", "start": "+10h", "initial_margin_rate": "5%"},
        {"type": "price_jump", "start": "+20h", "size": "-4%", "spread": "2%"},
    )
    return data, run(data, n_paths=1024, seed=SEED, n_jobs=1)


# ----------------------------------------------------------------------------- what run accepts
def test_run_accepts_a_scenario_object_a_path_and_a_string(write_yaml):
    data = market()
    path = write_yaml("small.yaml", data)
    by_object = engine.run(engine.load_scenario(data), n_paths=64, seed=1)
    by_path = engine.run(path, n_paths=64, seed=1)
    by_string = engine.run(str(path), n_paths=64, seed=1, n_jobs=2)
    assert isinstance(by_object, engine.SimulationResult)
    assert by_object.per_path.equals(by_path.per_path)
    assert by_object.per_path.equals(by_string.per_path)
    assert by_object.scenario is not None and by_object.name == "sim-small"
    # a path takes --set style overrides too
    overridden = engine.run(path, overrides=["n_paths=48", "seed=9", "market.spot_usd=70k"])
    assert (overridden.n_paths, overridden.seed) == (48, 9)
    assert overridden.compiled.param("SPOT0") == 70e3


def test_run_defaults_to_the_scenario_paths_and_seed():
    data = market()
    data["n_paths"], data["seed"] = 40, 123
    r = run(data)
    assert (r.n_paths, r.seed) == (40, 123)
    assert len(r.per_path) == 40
    assert r.per_path.equals(run(market(), n_paths=40, seed=123).per_path)


def test_run_accepts_a_compiled_scenario_but_not_paths_or_seed_with_it():
    compiled = engine.compile_scenario(engine.load_scenario(market()), n_paths=32, seed=SEED)
    r = engine.run(compiled)
    assert r.per_path.equals(run(market(), n_paths=32, seed=SEED).per_path)
    with pytest.raises(ValueError, match="compile_scenario"):
        engine.run(compiled, n_paths=16)


def test_run_refuses_bad_counts():
    with pytest.raises(engine.ScenarioError, match="n_paths"):
        run(market(), n_paths=0)
    with pytest.raises(ValueError, match="n_jobs"):
        run(market(), n_paths=8, n_jobs=0)


# ----------------------------------------------------------------------------- shape of the result
def test_counts_and_timeline(result):
    assert result.n_paths == N_PATHS
    assert result.n_steps == 48  # 2 days of hourly steps
    assert result.seed == SEED
    tl = result.timeline
    assert isinstance(tl, pd.DatetimeIndex)
    assert tl.tz is not None and str(tl.tz) == "UTC"
    expected = pd.date_range(pd.Timestamp(START), periods=48, freq="1h", tz="UTC")
    assert tl.equals(expected)
    assert len(tl) == result.n_steps


def test_timeline_of_a_minute_step_horizon():
    data = quiet({"horizon": {"start": START, "duration": "90m", "step": "1m"}})
    r = run(data, n_paths=4)
    assert r.n_steps == 90
    assert r.timeline.equals(pd.date_range(pd.Timestamp(START), periods=90, freq="1min", tz="UTC"))


def test_per_path_columns_and_types(result):
    pp = result.per_path
    assert list(pp.columns[: len(SUMMARY_FIELDS)]) == list(SUMMARY_FIELDS)
    assert set(pp.columns) == set(SUMMARY_FIELDS) | {"trough_time", "open_interest_change"}
    assert len(pp) == N_PATHS
    assert pp.index.equals(pd.RangeIndex(N_PATHS)) and pp.index.name == "path"
    for column in ("trough_step", "max_cascade_rounds", "paused_steps"):
        assert pp[column].dtype == np.int64
    assert isinstance(pp["trough_time"].dtype, pd.DatetimeTZDtype) and str(pp["trough_time"].dt.tz) == "UTC"
    assert (pp["trough_time"].to_numpy() == result.timeline[pp["trough_step"].to_numpy()].to_numpy()).all()
    start = pp["open_interest_start_usd"]
    np.testing.assert_allclose(pp["open_interest_change"], pp["open_interest_end_usd"] / start - 1, rtol=1e-12)
    # the shape of a path summary
    assert (pp["min_price"] <= pp["terminal_price"]).all() and (pp["terminal_price"] <= pp["max_price"]).all()
    assert ((pp["max_drawdown"] >= 0) & (pp["max_drawdown"] < 1)).all()
    assert pp["trough_step"].between(0, result.n_steps - 1).all()
    assert (pp["peak_step_liquidations_usd"]
            <= pp["long_liquidations_usd"] + pp["short_liquidations_usd"] + 1e-6).all()
    np.testing.assert_allclose(pp["open_interest_start_usd"], 30e9, rtol=1e-9)  # 20B long + 10B short


def test_fan_columns_index_and_ordering(result):
    fan = result.fan
    assert fan.columns.names == ["metric", "quantile"]
    metrics = set(fan.columns.get_level_values("metric"))
    assert {"price", "open_interest_usd", "liquidations_usd", "depth_usd_per_pct"} <= metrics
    labels = ["p5", "p25", "p50", "p75", "p95"]  # outputs.quantiles by default
    for metric in metrics:
        assert list(fan[metric].columns) == labels
        values = fan[metric].to_numpy()
        assert np.isfinite(values).all()
        assert (np.diff(values, axis=1) >= 0).all(), f"{metric}: quantiles out of order"
    assert fan.index.equals(result.timeline)
    assert len(fan) == result.n_steps
    assert (fan["price"].to_numpy() > 0).all()
    assert (fan["open_interest_usd"].to_numpy() >= 0).all()
    assert (fan["depth_usd_per_pct"].to_numpy() == 14e6).all()  # no depth shock


def test_fan_follows_the_scenario_quantiles():
    data = market({"outputs.quantiles": [10, 50, 90]})
    fan = run(data, n_paths=32).fan
    assert list(fan["price"].columns) == ["p10", "p50", "p90"]


def test_fan_depth_follows_the_depth_shocks():
    data = with_shocks(market(), {"type": "exchange_failure", "start": "+10h", "duration": "5h",
                                  "depth_fraction": "10%"})
    depth = run(data, n_paths=8).fan["depth_usd_per_pct"]["p50"].to_numpy()
    assert depth[0] == 14e6 and depth[-1] == 14e6
    np.testing.assert_allclose(depth[10:15], 1.4e6)


def test_flows_table(result):
    flows = result.flows
    assert list(flows.columns) == list(FLOW_FIELDS)
    assert flows.index.equals(result.timeline)
    assert np.isfinite(flows.to_numpy()).all()
    assert (flows["long_liquidations"] <= 0).all() and (flows["short_liquidations"] >= 0).all()


def test_summary_rows_columns_and_values(result):
    summary = result.summary()
    assert list(summary.index) == list(SUMMARY_METRICS)
    assert summary.index.name == "metric"
    assert list(summary.columns) == ["p05", "p50", "p95", "mean"]
    assert (summary["p05"] <= summary["p50"]).all() and (summary["p50"] <= summary["p95"]).all()
    pp = result.per_path
    for metric in SUMMARY_METRICS:
        values = pp[metric].to_numpy(dtype=float)
        np.testing.assert_allclose(summary.loc[metric, ["p05", "p50", "p95"]].to_numpy(dtype=float),
                                   np.percentile(values, [5, 50, 95]), rtol=1e-12)
        assert summary.loc[metric, "mean"] == pytest.approx(values.mean(), rel=1e-12)


def test_probabilities(result):
    probs = result.probabilities()
    levels = [78e3, 75e3, 70e3, 60e3]
    touch = [f"prob_touch_{level:g}" for level in levels]
    assert list(probs) == touch + ["prob_adl", "prob_bad_debt"]
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in probs.values())
    ordered = sorted(zip(levels, (probs[k] for k in touch)))  # ascending levels
    assert all(a[1] <= b[1] for a, b in zip(ordered, ordered[1:])), "touching a lower level must be rarer"
    low = result.per_path["min_price"].to_numpy()
    for level, key in zip(levels, touch):
        assert probs[key] == pytest.approx((low <= level).mean())
    assert probs["prob_touch_78000"] > 0  # 2.5% below spot over two days: some paths touch
    assert probs == {**result.touch_probabilities(), "prob_adl": probs["prob_adl"],
                     "prob_bad_debt": probs["prob_bad_debt"]}


def test_to_dict_structure(result):
    d = result.to_dict()
    assert list(d) == ["scenario", "n_paths", "n_steps", "seed", "market", "touch_directions", "uncertainty"]
    assert d["scenario"] == "sim-small"
    assert (d["n_paths"], d["n_steps"], d["seed"]) == (N_PATHS, 48, SEED)
    market_ = d["market"]
    probs = result.probabilities()
    assert set(market_) == set(SUMMARY_METRICS) | set(probs)
    for metric in SUMMARY_METRICS:
        assert set(market_[metric]) == {"p05", "p50", "p95"}
        assert all(type(v) is float for v in market_[metric].values())
        assert market_[metric]["p05"] <= market_[metric]["p50"] <= market_[metric]["p95"]
    for key, value in probs.items():
        assert type(market_[key]) is float and market_[key] == value
    assert json.loads(json.dumps(d)) == d  # plain JSON types only


def test_sample_paths(result):
    sp = result.sample_paths
    assert sp.shape == (result.n_steps, 8)
    assert sp.index.equals(result.timeline)
    assert list(sp.columns) == list(range(8)) and sp.columns.name == "path"
    assert sp.dtypes.eq(np.float64).all()
    pp = result.per_path.iloc[:8]
    # price records are float32: compare to the per-path summaries at that precision
    np.testing.assert_allclose(sp.iloc[-1].to_numpy(), pp["terminal_price"].to_numpy(), rtol=1e-6)
    # min_price counts the start (spot) and the lows inside the steps (the Brownian bridge between
    # two closes): at or below the lowest recorded close, by a fraction of one hourly move
    low = sp.min().to_numpy()
    assert (low >= pp["min_price"].to_numpy() * (1 - 1e-6)).all()
    fell = pp["min_price"].to_numpy() < 80e3
    assert fell.any()
    assert (low[fell] <= pp["min_price"].to_numpy()[fell] * 1.05).all()
    assert (sp.max().to_numpy() <= pp["max_price"].to_numpy() * (1 + 1e-6)).all()
    fewer = run(market({"outputs.sample_paths": 50}), n_paths=20)
    assert fewer.sample_paths.shape == (48, 20)  # never more than the paths run


def test_keep_steps_false_gives_the_same_per_path_and_no_fan(result):
    lean = run(market(), n_paths=N_PATHS, seed=SEED, keep_steps=False)
    assert lean.per_path.equals(result.per_path)
    assert lean.flows.equals(result.flows)
    assert lean.summary().equals(result.summary())
    assert lean.to_dict() == result.to_dict()
    with pytest.raises(ValueError, match="keep_steps"):
        lean.fan
    with pytest.raises(ValueError, match="keep_steps"):
        lean.sample_paths


def test_repr_names_the_run(result):
    assert repr(result) == f"<SimulationResult sim-small: {N_PATHS} paths x 48 steps>"


# ----------------------------------------------------------------------------- determinism
def test_same_seed_same_numbers(big_run):
    data, first = big_run
    again = run(data, n_paths=1024, seed=SEED, n_jobs=1)
    assert again.per_path.equals(first.per_path)
    assert again.flows.equals(first.flows)
    assert again.fan.equals(first.fan)


@pytest.mark.parametrize("n_jobs", [2])
def test_bit_identical_whatever_the_threads(big_run, n_jobs):
    data, one = big_run
    many = run(data, n_paths=1024, seed=SEED, n_jobs=n_jobs)
    assert many.per_path.equals(one.per_path)
    assert many.flows.equals(one.flows)
    assert np.array_equal(many.flows.to_numpy(), one.flows.to_numpy())
    assert many.fan.equals(one.fan)
    assert many.sample_paths.equals(one.sample_paths)


@pytest.mark.parametrize("chunk_paths", [256, 512, 300])
def test_bit_identical_whatever_the_chunks(big_run, chunk_paths):
    data, default = big_run
    chunked = run(data, n_paths=1024, seed=SEED, n_jobs=2, chunk_paths=chunk_paths)
    assert chunked.per_path.equals(default.per_path)
    assert np.array_equal(chunked.flows.to_numpy(), default.flows.to_numpy())
    assert chunked.fan.equals(default.fan)


def test_a_path_does_not_depend_on_how_many_paths_run(big_run):
    data, big = big_run
    small = run(data, n_paths=256, seed=SEED)
    assert small.per_path.equals(big.per_path.iloc[:256])
    odd = run(data, n_paths=300, seed=SEED, n_jobs=2)  # a partial last block
    assert odd.per_path.equals(big.per_path.iloc[:300])
    assert small.sample_paths.equals(big.sample_paths)


def test_different_seeds_differ(big_run):
    data, first = big_run
    other = run(data, n_paths=1024, seed=SEED + 1)
    a, b = first.per_path, other.per_path
    assert not a.equals(b)
    assert not np.array_equal(a["terminal_price"].to_numpy(), b["terminal_price"].to_numpy())
    assert (a["terminal_price"] != b["terminal_price"]).mean() > 0.99
    assert not np.array_equal(first.flows.to_numpy(), other.flows.to_numpy())
    # ... but they describe the same market: medians agree to a few percent
    assert np.median(a["terminal_price"]) == pytest.approx(np.median(b["terminal_price"]), rel=0.02)


# ----------------------------------------------------------------------------- liquidation prices
def _number(text: str) -> float:
    """The first number in a CSV cell such as ``'0.004 (implied; tier-1)'`` or ``'500 USDT'``."""
    match = re.search(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
    assert match, f"no number in {text!r}"
    return float(match.group())


def _worked_examples(shared_data) -> list[dict]:
    path = shared_data / "reference" / "liquidation_price_worked_examples.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_worked_example_row_1_bybit_entry_convention(shared_data):
    row = _worked_examples(shared_data)[0]
    assert row["example_id"] == "bybit_usdt_isolated_long" and row["side"] == "long"
    entry, leverage, mmr = _number(row["entry_price"]), _number(row["leverage"]), _number(row["mmr"])
    published = _number(row["published_liquidation_price"])
    assert (entry, leverage, mmr, published) == (20000, 50, 0.005, 19700)
    got = liquidation_price(entry, leverage, mmr, "long", convention="entry")
    assert got == pytest.approx(published, rel=1e-6)
    # the page's own derivation: LP = EP - (IM - MM)/size with IM = 400, MM = 100 USDT on 1 BTC
    size = _number(row["position_size"])
    im, mm = entry * size / leverage, entry * size * mmr
    assert got == pytest.approx(entry - (im - mm) / size, rel=1e-12)


def test_worked_example_row_3_binance_mark_convention(shared_data):
    row = _worked_examples(shared_data)[2]
    assert row["example_id"] == "binance_usdm_cross_long_1" and row["side"] == "long"
    entry = _number(row["entry_price"])
    notional = _number(row["position_size"])  # "1000 USDT notional (0.02 BTC)"
    wallet = _number(row["wallet_or_account_balance"])  # "500 USDT": the margin of a single cross position
    mmr = _number(row["mmr"])
    published = _number(row["published_liquidation_price"])
    assert (entry, notional, wallet, mmr, published) == (50000, 1000, 500, 0.004, 25100.40)
    leverage = notional / wallet  # the wallet is the position's margin: effective leverage 2
    got = liquidation_price(entry, leverage, mmr, "long", convention="mark")
    assert got == pytest.approx(published, rel=1e-6)
    # Binance's formula LP = (WB + cum - side*pos*EP) / (pos*MMR - side*pos), one-way long, cum = 0
    pos = notional / entry
    assert got == pytest.approx((wallet - pos * entry) / (pos * mmr - pos), rel=1e-12)


def test_liquidation_price_conventions_and_symmetry():
    e, lev, m = 90_000.0, 10.0, 0.005
    assert bankruptcy_price(e, lev, "long") == pytest.approx(81_000)
    assert bankruptcy_price(e, lev, "short") == pytest.approx(99_000)
    assert liquidation_price(e, lev, m, "long") == pytest.approx(81_000 / 0.995)
    assert liquidation_price(e, lev, m, "short") == pytest.approx(99_000 / 1.005)
    assert liquidation_price(e, lev, m, "long", "entry") == pytest.approx(e * (1 - 0.1 + m))
    assert liquidation_price(e, lev, m, "short", "entry") == pytest.approx(e * (1 + 0.1 - m))
    for side in ("long", "short"):  # the two conventions differ by m*(E - P_liq): under 0.01% here
        mark = liquidation_price(e, lev, m, side)
        entry_ = liquidation_price(e, lev, m, side, "entry")
        assert abs(entry_ - mark) == pytest.approx(m * abs(e - mark), rel=1e-9)
        assert abs(entry_ - mark) / mark < 1e-3
    with pytest.raises(ValueError, match="leverage"):
        bankruptcy_price(e, 0.5, "long")


# --- the kernel liquidates a single position where liquidation_price(..., "mark") says
SPOT = 100_000.0
MMR = 0.005


def _single(side: str, leverage: float, shocks: list[dict]) -> dict:
    """One position (entry = spot, one leverage, 1M USD) on ``side``, nothing on the other side,
    in a still market.

    Volatility is 1e-6 a year, no jumps, no macro factor, no behavioural flows, no funding (so
    bankruptcy prices never move), and the position is so small against the daily volume that its
    liquidation does not move the price: the price path is the scheduled jumps.
    """
    data = quiet({
        "horizon": {"start": START, "duration": "12h", "step": "1h"},
        "market.spot_usd": SPOT,
        "market.volatility": {"annual": "0.0001%", "tail_dof": None, "jumps": {"intensity_per_day": 0}},
        "market.macro": {"annual_vol": 0, "btc_beta": 0},
        "market.impact": {"model": "sqrt", "daily_volume_usd": "1T", "permanent_fraction": 0},
        f"market.perpetuals.{side}": {
            "notional_usd": "1M",
            "leverage": {"distribution": "table", "weights": {leverage: 1.0}},
            "entry_price": {"distribution": "table", "weights": {SPOT: 1.0}},
        },
        f"market.perpetuals.{'short' if side == 'long' else 'long'}": {"notional_usd": 0},
        "market.perpetuals.maintenance_margin_rate": MMR,
        "market.perpetuals.book_cells": 4001,
        "market.perpetuals.grid_span": 2,
        "market.perpetuals.funding": {"base_rate": 0, "imbalance_sensitivity": 0},
    })
    return with_shocks(data, *shocks)


def _leverage_on_a_grid_node(side: str, near: float) -> tuple[float, int]:
    """A leverage near ``near`` whose bankruptcy price ``E*(1 -/+ 1/L)`` is exactly a node of the
    book's grid, so that the whole position sits in one cell (no interpolation onto a neighbour)."""
    grid = engine.compile_scenario(engine.load_scenario(_single(side, near, []))).book_bankruptcy_usd
    sign = -1.0 if side == "long" else 1.0
    k = int(np.argmin(np.abs(grid - SPOT * (1 + sign / near))))
    lev = 1.0 / abs(grid[k] / SPOT - 1.0)
    for _ in range(64):  # walk a few ulps until the round trip is exact
        pb = bankruptcy_price(SPOT, lev, side)
        if pb == grid[k]:
            break
        lev = np.nextafter(lev, np.inf if (pb < grid[k]) == (side == "long") else -np.inf)
    assert bankruptcy_price(SPOT, lev, side) == grid[k]
    return float(lev), k


def _run_single(side: str, lev: float, k: int, path: list[float]):
    """Run the single position along ``path``: the price each step from step 1 on (step 0 stays at spot)."""
    path = path + [path[-1]] * (11 - len(path))  # 12 steps: step 0 at spot, then the path
    shocks, level = [], SPOT
    for step, target in enumerate(path, start=1):
        if target != level:
            shocks.append({"type": "price_jump", "start": f"+{step}h", "size": math.log(target / level)})
            level = target
    compiled = engine.compile_scenario(engine.load_scenario(_single(side, lev, shocks)), n_paths=4, seed=1)
    cells = (compiled.book_long_btc if side == "long" else compiled.book_short_btc).sum(axis=0)
    assert cells[k] == pytest.approx(10.0)  # 1M USD at 100k: 10 BTC, all in the node's cell
    assert cells.sum() - cells[k] <= 1e-12 * cells[k]
    r = engine.run(compiled)
    price = r.fan["price"]["p50"].to_numpy(dtype=float)
    np.testing.assert_allclose(price, [SPOT] + path, rtol=1e-6)  # the liquidation does not move it
    return compiled, r


def test_kernel_liquidates_a_single_long_at_its_mark_liquidation_price():
    lev, k = _leverage_on_a_grid_node("long", 10.0)
    mark = liquidation_price(SPOT, lev, MMR, "long", convention="mark")
    entry_conv = liquidation_price(SPOT, lev, MMR, "long", convention="entry")
    assert mark < entry_conv  # a long reaches the entry-convention price first
    between = math.sqrt(mark * entry_conv)
    below = mark * (1 - 5e-4)
    # fall to `between` (liquidated under the entry convention, not under the book's mark one),
    # stay there, then fall just through the mark liquidation price at step 6
    path = [mark * 1.01, between, between, between, between, below, below, below * 0.9, below * 0.9]
    compiled, r = _run_single("long", lev, k, path)
    assert compiled.book_bankruptcy_usd[k] / (1 - MMR) == pytest.approx(mark, rel=1e-12)
    liq = r.fan["long_liquidations_usd"]["p50"].to_numpy(dtype=float)
    assert (liq[:6] == 0).all(), "liquidated before the price reached the mark liquidation price"
    # the whole position, at the step it crosses, filled at its trigger less the 0.1% slippage
    fill = mark * (1 - 0.001)
    assert liq[6] == pytest.approx(10.0 * fill, rel=1e-5)
    assert (liq[7:] == 0).all()
    pp = r.per_path
    np.testing.assert_allclose(pp["long_liquidations_usd"], 10.0 * fill, rtol=1e-6)
    assert (pp["open_interest_end_usd"].abs() <= 1e-6).all()
    assert (pp["max_cascade_rounds"] == 1).all()
    # the equity left (P - P_b per BTC at the fill) goes to the insurance fund
    surplus = 10.0 * (fill - compiled.book_bankruptcy_usd[k])
    # (the price carries a 1e-8 noise: compare to a dollar on ~880k of notional)
    np.testing.assert_allclose(pp["liquidation_surplus_usd"], surplus, atol=1.0)
    np.testing.assert_allclose(pp["insurance_fund_end_usd"], 1e9 + pp["liquidation_surplus_usd"], rtol=1e-15)
    assert (pp["bad_debt_usd"] == 0).all() and (pp["adl_usd"] == 0).all()


def test_kernel_liquidates_a_single_short_at_its_mark_liquidation_price():
    """The mirror image: a short, the price rising through ``P_b / (1 + m)``."""
    lev, k = _leverage_on_a_grid_node("short", 8.0)
    mark = liquidation_price(SPOT, lev, MMR, "short", convention="mark")
    entry_conv = liquidation_price(SPOT, lev, MMR, "short", convention="entry")
    assert mark < entry_conv  # a short reaches the mark-convention price first
    short_of = mark * (1 - 5e-4)
    between = math.sqrt(mark * entry_conv)  # liquidated under the mark convention, not the entry one
    path = [short_of, short_of, short_of, short_of, between, between, between]
    compiled, r = _run_single("short", lev, k, path)
    liq = r.fan["short_liquidations_usd"]["p50"].to_numpy(dtype=float)
    assert (liq[:5] == 0).all(), "liquidated before the price reached the mark liquidation price"
    fill = mark * (1 + 0.001)  # at its trigger, plus the 0.1% slippage
    assert liq[5] == pytest.approx(10.0 * fill, rel=1e-5)
    assert (liq[6:] == 0).all()
    assert (r.fan["long_liquidations_usd"].to_numpy() == 0).all()
    np.testing.assert_allclose(r.per_path["short_liquidations_usd"], 10.0 * fill, rtol=1e-6)


def test_overrides_apply_to_a_scenario_object_as_to_a_path(scenarios_dir):
    """``engine.run(scenario, overrides=[...])`` applies them to a Scenario object too (they were
    once dropped without a word), and refuses them for a compiled scenario, whose arrays are fixed."""
    path = scenarios_dir / "ci" / "ci-calm.yaml"
    vol = ["market.volatility.annual=90%"]
    by_path = engine.run(path, n_paths=128, overrides=vol)
    by_object = engine.run(engine.load_scenario(path), n_paths=128, overrides=vol)
    plain = engine.run(engine.load_scenario(path), n_paths=128)
    assert by_path.per_path.equals(by_object.per_path)
    assert not by_object.per_path.equals(plain.per_path)
    from engine.compile.compiler import compile_scenario

    with pytest.raises(ValueError, match="overrides"):
        engine.run(compile_scenario(engine.load_scenario(path), n_paths=64), overrides=vol)


def test_overrides_of_a_scenario_object_reach_what_it_derives(tiny_scenario, tmp_path):
    """Overrides of a loaded Scenario apply to the data it was loaded from, as with its file, so
    what the loader derives from a value follows it: a standalone scenario's price levels, 10/20/30%
    below its own spot (from its resolved values they stayed below the old spot). The same in
    engine.run, engine.attribute and engine.find_breakpoint (one loader helper)."""
    import yaml

    from engine.scenario.loader import with_overrides

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_scenario))
    spot = ["market.spot_usd=70k"]
    from_file = engine.load_scenario(path, spot)
    from_object = with_overrides(engine.load_scenario(path), spot)
    assert from_file.outputs.price_levels_usd == from_object.outputs.price_levels_usd == [63_000.0, 56_000.0, 49_000.0]
    by_path = engine.run(path, n_paths=32, overrides=spot)
    by_object = engine.run(engine.load_scenario(path), n_paths=32, overrides=spot)
    assert by_path.probabilities() == by_object.probabilities() and "prob_touch_63000" in by_path.probabilities()


def test_step_values_serve_the_kept_arrays_and_refuse_the_rest(scenarios_dir):
    """The per-step arrays through the result's public accessor (other modules once read its
    private ``_raw``): paths x steps, the same array the fans are made of."""
    path = scenarios_dir / "ci" / "ci-calm.yaml"
    kept = engine.run(path, n_paths=64)
    assert kept.kept_steps and kept.step_values("price").shape == (64, kept.n_steps)
    assert np.allclose(np.median(kept.step_values("price"), axis=0), kept.fan[("price", "p50")].to_numpy())
    with pytest.raises(KeyError, match="per-step arrays are"):
        kept.step_values("summary")
    flat = engine.run(path, n_paths=64, keep_steps=False)
    assert not flat.kept_steps
    with pytest.raises(ValueError, match="keep_steps=False"):
        flat.step_values("price")
