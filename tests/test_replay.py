"""Replay (``engine.history.replay``, ``cascade replay``): the book and the flows along an observed path.

Synthetic paths on a quiet book (no behavioural flow, no funding, a fund that never runs dry)
check the book against liquidation prices computed here with :mod:`engine.portfolio.margin`: a replay step's
path is the straight line between its two closes, so a cell is liquidated in the step whose close
first reaches its trigger, fills at that trigger (or the step's open, had it opened beyond it) less
the venue's slippage, and never again; open interest is what is left, at the close. A simulation
run with its bridge switched off, replayed along its closes, reproduces its book step by step
(same flows, same open interest, the same liquidations in USD); with the bridge on, the simulation
also liquidates what its intra-step wicks reach, which its closes do not show, and the replay
reproduces its book up to the first step where that happens. The Feb-2026 replay runs on the real
hourly file and compares with the facts (skipped without ``../shared``).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

import engine
import sim_fixtures
from conftest import SHARED_DATA
from engine.history.data import load_ohlcv
from engine.cli import main
from engine.compile.compiler import compile_scenario
from engine.compile.layout import Driver
from engine.portfolio.margin import liquidation_price
from engine.history.replay import FLOW_COLUMNS, replay
from engine.simulate import prepare, run_prepared

START = pd.Timestamp(sim_fixtures.START)
HOUR = pd.Timedelta(hours=1)
SPOT = 80_000.0

# The book of sim_fixtures, levered at most 10x, with nothing else: no ETF, miners, options,
# deleveraging, momentum or funding, and an insurance fund no bad debt can empty (no ADL)
QUIET = sim_fixtures.quiet({
    "name": "replay-quiet",
    "market.perpetuals.long.leverage": {"distribution": "lognormal", "median": 5, "dispersion": 0.5, "min": 1.2,
                                        "max": 10},
    "market.perpetuals.short.leverage": {"distribution": "lognormal", "median": 5, "dispersion": 0.5, "min": 1.2,
                                         "max": 10},
    "market.perpetuals.funding": {"base_rate": 0, "imbalance_sensitivity": 0},
    "market.perpetuals.insurance_fund_usd": "1T",
    # one flat rate per venue: every crossed cell closes whole (tiers: tests/test_tiers.py, test_reference.py)
    "market.perpetuals.maintenance_margin_rate": "0.5%",
    "market.perpetuals.initial_margin_rate": "1%",
})


def closes(path, start=START, spot=SPOT) -> pd.Series:
    """Hourly closes indexed by candle start: the row before ``start`` holds the starting price."""
    values = np.concatenate([[spot], np.asarray(path, dtype=np.float64)])
    return pd.Series(values, index=pd.date_range(start - HOUR, periods=len(values), freq="h", tz="UTC"))


def scenario(data: dict, n_steps: int):
    data = sim_fixtures.patched(data, {"horizon.duration": f"{n_steps}h"})
    return engine.load_scenario(data)


def fall_then_rise(low=0.72, high=1.25, down=40, up=60) -> np.ndarray:
    return np.concatenate([SPOT * np.geomspace(1.0, low, down + 1)[1:],
                           SPOT * np.geomspace(low, high, up + 1)[1:]])


def triggers(result):
    """Every cell of the replayed book with its liquidation price from engine.portfolio.margin (bankruptcy
    price P_b is reached by an entry at 2x: E = P_b / (1 -+ 1/2)): (side, size BTC, trigger USD)."""
    c = result.simulation.compiled
    grid = c.book_bankruptcy_usd
    out = []
    for v in range(c.n_venues):
        m = float(c.venue("MMR", v)[0])
        for size, pb in zip(c.book_long_btc[v], grid):
            if size > 0:
                out.append(("long", size, liquidation_price(pb / 0.5, 2.0, m, "long")))
        for size, pb in zip(c.book_short_btc[v], grid):
            if size > 0:
                out.append(("short", size, liquidation_price(pb / 1.5, 2.0, m, "short")))
    return out


# ----------------------------------------------------------------------------- the book along a path
def test_liquidations_happen_when_the_close_crosses_each_trigger():
    """A replay step's path is the straight line between its two closes: a cell is liquidated in
    the step whose close first reaches its trigger, and fills at that trigger (or at the step's
    open, had the step opened beyond it), less the venue's slippage; liquidations count at the fills."""
    path = fall_then_rise()
    result = replay(scenario(QUIET, len(path)), closes(path))
    table = result.table
    cells = triggers(result)
    c = result.simulation.compiled
    assert c.n_venues == 1
    penalty = c.venue("LIQ_FILL_PENALTY", 0)  # fill_slippage at normal depth, every step
    assert (penalty > 0).all()
    expected = {"long": np.zeros(len(path)), "short": np.zeros(len(path))}
    left = sum(size for _, size, _ in cells)
    remaining = np.empty(len(path))
    low = high = opened = SPOT
    for t, price in enumerate(path):
        for side, size, trigger in cells:
            first_long = side == "long" and price <= trigger < low
            first_short = side == "short" and high < trigger <= price
            if first_long:
                expected[side][t] += size * min(trigger, opened) * (1 - penalty[t])
                left -= size
            if first_short:
                expected[side][t] += size * max(trigger, opened) * (1 + penalty[t])
                left -= size
        low, high, opened = min(low, price), max(high, price), price
        remaining[t] = left
    long_btc = sum(size for side, size, _ in cells if side == "long")
    assert (expected["long"] / path).sum() > 0.5 * long_btc  # the fall takes most of the longs
    assert (expected["short"] > 0).sum() >= 5 and (expected["long"] > 0).sum() >= 5
    for side in ("long", "short"):
        np.testing.assert_allclose(table[f"{side}_liquidations_usd"], expected[side], rtol=2e-7, atol=1.0)
    np.testing.assert_allclose(table["open_interest_usd"], remaining * path, rtol=1e-9)
    np.testing.assert_array_equal(table["price"], path)
    assert result.totals["adl_usd"] == 0 and result.simulation.per_path["max_cascade_rounds"].max() == 1


def test_no_liquidation_when_the_price_never_reaches_a_trigger():
    probe = replay(scenario(QUIET, 2), closes([SPOT, SPOT]))
    cells = triggers(probe)
    nearest_long = max(tr for side, _, tr in cells if side == "long")
    nearest_short = min(tr for side, _, tr in cells if side == "short")
    assert nearest_long < SPOT < nearest_short
    t = np.arange(96)
    low, high = SPOT - 0.9 * (SPOT - nearest_long), SPOT + 0.9 * (nearest_short - SPOT)
    path = np.where(t % 2, low, high) * (1 - 1e-3 * np.cos(t))  # swings almost to either trigger, and back
    path = np.clip(path, low, high)
    result = replay(scenario(QUIET, len(path)), closes(path))
    table = result.table
    assert (table["long_liquidations_usd"] == 0).all() and (table["short_liquidations_usd"] == 0).all()
    btc = result.totals["open_interest_start_usd"] / SPOT
    np.testing.assert_allclose(table["open_interest_usd"], btc * path, rtol=1e-12)
    assert table["near_liquidation_share"].max() > 0  # it came within 5% of some


def test_open_interest_falls_by_what_was_liquidated_cut_or_closed():
    """A long-only book with a margin hike (top-up 0: every over-levered cell cuts) and voluntary
    deleveraging: each step the book loses liquidated + cut + closed size, less the new positions
    replacing the holding-time closes, in BTC, to rounding.
    Liquidated size is the step's liquidated USD over its fill: the book's grid is coarser than a
    step of this path, so a step's fall from its open to its close crosses the trigger ``T`` of one
    cell at most, which fills at ``T`` less the venue's slippage (not at the close)."""
    data = sim_fixtures.with_shocks(sim_fixtures.patched(QUIET, {
        "market.perpetuals.short.notional_usd": 0,
        "market.behaviour.deleveraging": {"base_hazard_per_day": 0.2, "drawdown_sensitivity": 3.0,
                                          "volatility_sensitivity": 0, "funding_sensitivity": 0},
    }), {"type": "margin_hike", "id": "hike", "start": "+12h", "initial_margin_rate": "25%", "top_up_fraction": 0})
    path = fall_then_rise(low=0.6, high=0.7, down=40, up=20)
    result = replay(scenario(data, len(path)), closes(path))
    t = result.table
    btc = t["open_interest_usd"].to_numpy() / path
    before = np.concatenate([[result.totals["open_interest_start_usd"] / SPOT], btc[:-1]])
    start_price = np.concatenate([[SPOT], path[:-1]])
    c = result.simulation.compiled
    assert c.n_venues == 1
    mmr, penalty = c.venue("MMR", 0), c.venue("LIQ_FILL_PENALTY", 0)
    liquidated = t["long_liquidations_usd"].to_numpy()
    fill = np.full(len(path), np.nan)
    for k in np.flatnonzero(liquidated > 0):
        # every cell's trigger (no funding: bankruptcy prices stay on the grid); the path falls from
        # the previous close, so the cells above the open went in earlier steps, and the grid is
        # coarser than the fall: one trigger between the open and the close
        trigger = c.book_bankruptcy_usd / (1 - mmr[k])
        crossed = trigger[(trigger >= path[k]) & (trigger < start_price[k])]
        assert crossed.size == 1
        fill[k] = crossed[0] * (1 - penalty[k])
    liquidated_btc = np.divide(liquidated, fill, out=np.zeros(len(path)), where=liquidated > 0)
    # new positions replace the holding-time closes: they add to the book (a buy for longs)
    lost = liquidated_btc - (t["margin_cut_usd"] + t["deleveraging_flow_usd"] + t["new_positions_flow_usd"]) / start_price
    np.testing.assert_allclose(before - btc, lost, rtol=0, atol=1e-9 * before[0])
    assert (t["margin_cut_usd"] < 0).sum() == 1 and (t["long_liquidations_usd"] > 0).sum() >= 3
    assert (t["deleveraging_flow_usd"] < 0).all() and result.totals["short_liquidations_usd"] == 0


def test_the_stress_measures_read_the_book():
    path = fall_then_rise(low=0.8, high=1.0, down=30, up=10)
    result = replay(scenario(QUIET, len(path)), closes(path))
    t = result.table
    cells = triggers(result)
    alive = [(side, size, tr) for side, size, tr in cells if (tr < path.min() if side == "long" else tr > path.max())]
    near = sum(size * path[-1] for side, size, tr in alive
               if (tr >= 0.95 * path[-1] if side == "long" else tr <= 1.05 * path[-1]))
    assert t["long_near_liquidation_usd"].iloc[-1] + t["short_near_liquidation_usd"].iloc[-1] == pytest.approx(near, rel=1e-9)
    np.testing.assert_allclose(t["long_open_interest_usd"] + t["short_open_interest_usd"], t["open_interest_usd"])
    assert (t["long_leverage"] > 1).all() and (t["short_leverage"] > 1).all()
    # the fall raises the longs' leverage and lowers the shorts'
    assert t["long_leverage"].iloc[29] > t["long_leverage"].iloc[0] and t["short_leverage"].iloc[29] < t["short_leverage"].iloc[0]
    assert (t["long_over_4x_usd"] <= t["long_open_interest_usd"] + 1e-6).all()


def test_replay_does_not_depend_on_the_seed_and_follows_the_closes_exactly():
    path = fall_then_rise()
    a = replay(scenario(sim_fixtures.patched(sim_fixtures.MARKET, {"seed": 1}), len(path)), closes(path))
    b = replay(scenario(sim_fixtures.patched(sim_fixtures.MARKET, {"seed": 2}), len(path)), closes(path))
    pd.testing.assert_frame_equal(a.table, b.table)
    assert a.simulation.per_path["terminal_price"].iloc[0] == pytest.approx(path[-1], rel=1e-14)
    assert a.simulation.n_paths == 1 and a.scenario.n_paths == 1


# ----------------------------------------------------------------------------- against the simulation
# every behaviour of sim_fixtures.MARKET on, longs levered ~20x, a -8% jump to start a cascade, a
# relief rally with fresh shorts to squeeze, a fund that never empties
CASCADING = sim_fixtures.with_shocks(
    sim_fixtures.patched(sim_fixtures.MARKET, {
        "market.perpetuals.insurance_fund_usd": "1T",
        "market.perpetuals.long.leverage": {"distribution": "lognormal", "median": 20, "dispersion": 0.6, "min": 2,
                                            "max": 100},
        "market.perpetuals.long.entry_price": {"distribution": "uniform", "low_usd": "78k", "high_usd": "82k"},
        "market.perpetuals.maintenance_margin_rate": "0.5%",  # flat, as QUIET
        "market.perpetuals.initial_margin_rate": "1%",
        # no turnover: new positions at this book's leverage (up to 99.9x) open one cell from their
        # trigger, and the grid's split can put part of one beyond it, liquidated in the step it
        # opens whichever way the step moves (docs/model.md, known simplifications)
        "market.behaviour.deleveraging.base_hazard_per_day": 0,
    }),
    {"type": "price_jump", "id": "drop", "start": "+20h", "size": "-8%", "spread": "2%"},
    {"type": "relief_rally", "id": "squeeze", "start": "+30h", "duration": "8h", "new_short_notional_usd": "2B",
     "short_leverage": 20, "macro_move": "8%", "momentum_buying_usd": "2B"})


def straight_line(data: dict, seed: int):
    """One simulated path of ``data`` whose steps run along the straight line from their open to
    their close, as a replay's do (engine.history.replay): the Brownian bridge switched off, so a step's low
    and high are its open and its close, moved by its cascade's impact like the close."""
    scn = engine.load_scenario(sim_fixtures.patched(data, {"seed": seed, "n_paths": 1}))
    prep = prepare(compile_scenario(scn, n_paths=1, seed=seed))
    drivers = prep.drivers.copy()
    drivers[:, Driver.BRIDGE] = np.inf
    drivers[:, Driver.REACH] = 1.0
    drivers[:, Driver.REACH_LOG] = 0.0
    return run_prepared(dataclasses.replace(prep, drivers=drivers), scn, keep_steps=True)


def replayed(sim, seed: int):
    """The replay of :data:`CASCADING` along the simulation's own closes (stored as float32), and the closes."""
    prices = sim._raw["price"][0].astype(np.float64)
    return replay(engine.load_scenario(sim_fixtures.patched(CASCADING, {"seed": seed})), closes(prices)), prices


def liquidated(sim) -> dict:
    """The simulation's liquidations per step and side, USD (positive)."""
    return {"long": -sim.flows["long_liquidations"].to_numpy(), "short": sim.flows["short_liquidations"].to_numpy()}


def book_agrees(t, sim, steps=slice(None)):
    """Replay table ``t`` against the simulation over ``steps``: the same open interest at every close,
    funding, flows from every participant and liquidations (USD) on each side, step by step.
    The closes come back as float32: a step's log return (~1e-3) then carries a relative error up to
    ~1e-4, which reaches the realised vol (deleveraging), the dealers' re-hedge (a difference of
    deltas) and where new positions land on the grid (momentum traders, the rally's shorts): a step
    that liquidates little, from a cell its close just reaches, can differ by ~1e-3 of itself."""
    raw = sim._raw
    np.testing.assert_allclose(t["open_interest_usd"][steps], raw["open_interest"][0][steps], rtol=1e-5)
    np.testing.assert_allclose(t["funding_rate"][steps], raw["funding"][0][steps], rtol=1e-5, atol=1e-12)
    columns = [(sim.flows[flow].to_numpy(), column) for flow, column in FLOW_COLUMNS.items()]
    columns += [(usd, f"{side}_liquidations_usd") for side, usd in liquidated(sim).items()]
    for expected, column in columns:
        np.testing.assert_allclose(t[column].to_numpy()[steps], expected[steps], rtol=1e-4,
                                   atol=1e-4 * np.abs(expected).max() + 1e-3, err_msg=column)


@pytest.mark.parametrize("seed", [1, 3, 10])  # seeds whose path has a multi-round cascade
def test_replaying_a_simulated_path_reproduces_its_book(seed):
    """A simulation run with its bridge switched off (each step's path the straight line from its
    open to its close, as in replay), replayed along its own closes, finds the same book: the same
    flows from every participant, the same funding, the same open interest at every close and the
    same liquidations step by step, in USD too (all to the float32 rounding of the closes). A
    cell fills at its trigger (or the step's open) less the slippage, whichever cascade round
    reached it: the cascade's impact moves the close, not the fills. And a simulated cascade crosses
    the cells the replay finds at the final close: in a step that falls to its close, the low is the
    close and each round's impact moves both together (shorts: the high, in a step that rises). Here
    every step liquidates on the side its close moved to. (A cascade started by cells already beyond
    their trigger at the open, in a step that would otherwise move the other way, could take the
    price beyond both closes: further than a replay sees.)"""
    sim = straight_line(CASCADING, seed)
    assert 2 <= sim.per_path["max_cascade_rounds"].iloc[0] < 50  # cascades of several rounds, never capped
    assert sim.per_path["adl_usd"].iloc[0] == 0
    result, prices = replayed(sim, seed)
    t = result.table
    book_agrees(t, sim)
    sim_long, sim_short = liquidated(sim).values()
    rep_long, rep_short = t["long_liquidations_usd"].to_numpy(), t["short_liquidations_usd"].to_numpy()
    np.testing.assert_array_equal(rep_long > 0, sim_long > 0)
    np.testing.assert_array_equal(rep_short > 0, sim_short > 0)
    assert (rep_long > 0).any() and (rep_short > 0).any()
    opens = np.concatenate([[SPOT], prices[:-1]])
    assert (prices[sim_long > 0] < opens[sim_long > 0]).all() and (prices[sim_short > 0] > opens[sim_short > 0]).all()
    # the straight line has no wick: the path's extremes are its closes
    assert sim.per_path["min_price"].iloc[0] == pytest.approx(min(prices.min(), SPOT), rel=1e-7)
    assert sim.per_path["max_price"].iloc[0] == pytest.approx(max(prices.max(), SPOT), rel=1e-7)


def test_a_simulation_sees_wicks_that_its_closes_do_not_show():
    """With the bridge on (as simulated), a step's low and high lie beyond its open and close, and a
    simulated step can liquidate a cell whose trigger lies between its close and that wick. Replayed
    along its closes, such a path reproduces its book up to the first step that does: there the
    simulation liquidates more on that side than the replay, whose closes do not reach that
    trigger, and holds less open interest."""
    wicked = 0
    for seed in (1, 3, 10):
        sim = sim_fixtures.run(CASCADING, n_paths=1, seed=seed, keep_steps=True)
        result, prices = replayed(sim, seed)
        t = result.table
        # the path's extremes count its wicks: beyond the closes
        assert sim.per_path["min_price"].iloc[0] < min(prices.min(), SPOT) * (1 - 1e-3)
        assert sim.per_path["max_price"].iloc[0] > max(prices.max(), SPOT) * (1 + 1e-3)
        more = np.zeros(len(prices), dtype=bool)  # steps where the simulation liquidated more on a side
        for side, usd in liquidated(sim).items():
            more |= usd > t[f"{side}_liquidations_usd"].to_numpy() * (1 + 1e-4) + 1e-4 * usd.max()
        if not more.any():  # no wick crossed a trigger the closes do not reach
            book_agrees(t, sim)
            continue
        wicked += 1
        k = int(np.argmax(more))
        book_agrees(t, sim, slice(0, k))
        assert t["open_interest_usd"].iloc[k] > sim._raw["open_interest"][0][k] * (1 + 1e-5)
    assert wicked >= 1


# ----------------------------------------------------------------------------- the window
def test_the_window_defaults_to_the_scenario_horizon_and_a_date_ends_with_its_day():
    path = SPOT * (1 + 0.01 * np.sin(np.arange(96) / 5))
    prices = closes(path)
    default = replay(scenario(QUIET, 48), prices)
    assert default.start == START and default.end == START + 48 * HOUR and len(default.table) == 48
    days = replay(scenario(QUIET, 48), prices, start="2026-02-02", end="2026-02-03")
    assert days.end == START + 48 * HOUR
    later = replay(scenario(QUIET, 24), prices, start="2026-02-03T06:00")
    assert later.start == START + 30 * HOUR and len(later.table) == 24 and later.start_price == path[29]
    assert list(days.daily.index.strftime("%Y-%m-%d")) == ["2026-02-02", "2026-02-03"]
    assert days.daily["steps"].tolist() == [24, 24]


@pytest.mark.parametrize(("start", "end", "message"), [
    ("2026-02-01T23:00", None, "needs the close before"),
    ("2026-02-02", "2026-02-09", "after the data's last close"),
    ("2026-02-03", "2026-02-02", "is empty"),
    ("soon", None, "expected a date or a time"),
])
def test_a_window_outside_the_data_is_refused(start, end, message):
    with pytest.raises(ValueError, match=message):
        replay(scenario(QUIET, 24), closes(np.full(48, SPOT)), start, end)


def test_scenario_events_outside_the_window_are_refused():
    data = sim_fixtures.with_shocks(QUIET, {"type": "price_jump", "id": "late", "start": "+40h", "size": "-5%"})
    with pytest.raises(ValueError, match="does not fit the scenario.*shocks\\[0\\].start"):
        replay(scenario(data, 48), closes(np.full(48, SPOT)), end="2026-02-02T20:00")


# ----------------------------------------------------------------------------- facts
FACTS = {
    "derivatives": {
        "futures_open_interest_usd": [{"date": "2025-10-early", "usd": 9e10},
                                      {"date": "2026-02-02", "usd": 3.0e10}, {"date": "2026-02-04", "usd": 2.4e10}],
        "liquidations_usd": [{"date": "2026-02-03", "usd": 1e9, "side": "long"}, {"date": "2026-02-09", "usd": 1e9}],
    },
    "price": {"daily": [{"date": "2026-02-03", "open": 70000, "close": 64000}]},
}


def test_the_facts_comparison_reads_the_days_of_the_window():
    path = fall_then_rise(low=0.8, high=1.0, down=36, up=36)
    result = replay(scenario(QUIET, len(path)), closes(path))
    table = result.compare_facts(FACTS).set_index("fact")
    oi = result.table["open_interest_usd"]
    end_of_2 = oi.iloc[23]
    end_of_4 = oi.iloc[71]
    assert table.loc["open interest, end of 2026-02-02", "model"] == end_of_2
    assert table.loc["open interest change, 02-02 -> 02-04", "model"] == pytest.approx(end_of_4 / end_of_2 - 1)
    assert table.loc["open interest change, 02-02 -> 02-04", "observed"] == pytest.approx(-0.2)
    day = result.table["long_liquidations_usd"].iloc[24:48].sum()
    assert table.loc["long liquidations on 2026-02-03", "model"] == pytest.approx(day)
    assert table.loc["open on 2026-02-03", "model"] == path[23] and table.loc["close on 2026-02-03", "model"] == path[47]
    assert table.loc["open on 2026-02-03", "kind"] == "data"
    assert not any("2025-10" in f or "02-09" in f for f in table.index)  # outside the window: left out


# ----------------------------------------------------------------------------- the command
def _csv(tmp_path, path, start=START) -> str:
    series = closes(path, start)
    file = tmp_path / "prices.csv"
    pd.DataFrame({"timestamp": series.index.strftime("%Y-%m-%d %H:%M:%S"), "close": series.to_numpy()}).to_csv(file, index=False)
    return str(file)


def test_cli_replay_prints_the_daily_table_and_the_facts(tmp_path, write_yaml, capsys):
    path = fall_then_rise(low=0.8, high=1.0, down=36, up=36)
    data = _csv(tmp_path, path)
    scn = write_yaml("scn.yaml", sim_fixtures.patched(QUIET, {"horizon.duration": "72h"}))
    facts = write_yaml("facts.yaml", FACTS)
    out = tmp_path / "out"
    assert main(["replay", "--data", data, "--scenario", str(scn), "--facts", str(facts), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2026-02-04" in text and "long liq" in text and "open interest change, 02-02 -> 02-04" in text
    steps = pd.read_parquet(out / "replay_steps.parquet")
    assert len(steps) == 72 and len(pd.read_csv(out / "replay_steps.csv")) == 72
    assert (out / "replay_facts.csv").is_file() and (out / "replay_daily.csv").is_file()
    assert main(["replay", "--data", data, "--scenario", str(scn), "--facts", str(facts), "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["steps"] == 72 and len(obj["daily"]) == 3 and obj["facts"][0]["fact"].startswith("open interest")


@pytest.mark.parametrize(("changes", "message"), [
    ({"--data": "{tmp}/missing.csv"}, "no such file"),
    ({"--start": "2026-03-01"}, "after the data's last close"),
    ({"--end": "2026-02-10"}, "after the data's last close"),
    ({"--start": "tomorrow"}, "expected a date or a time"),
    ({"--facts": "{tmp}/nope.yaml"}, "no such file"),
    ({"--scenario": "{tmp}/nope.yaml"}, "not found"),
])
def test_cli_replay_user_errors_exit_2_without_traceback(tmp_path, write_yaml, capsys, changes, message):
    options = {"--data": _csv(tmp_path, np.full(72, SPOT)),
               "--scenario": str(write_yaml("scn.yaml", sim_fixtures.patched(QUIET, {"horizon.duration": "72h"})))}
    options.update({k: v.format(tmp=tmp_path) for k, v in changes.items()})
    assert main(["replay", *[x for kv in options.items() for x in kv]]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# ----------------------------------------------------------------------------- February 2026, real closes
HOURLY = "btc_hourly_binance_BTCUSDT_2025-03-05_2026-04-05.csv"


def test_feb_2026_replay_runs_and_compares_with_the_facts(shared_data, root):
    facts = SHARED_DATA.parent / "facts" / "feb-2026-deleveraging.yaml"
    if not facts.is_file():
        pytest.skip(f"../shared/facts/feb-2026-deleveraging.yaml is absent ({facts})")
    result = replay(root / "scenarios" / "feb-2026-deleveraging.yaml", load_ohlcv(shared_data / HOURLY),
                    "2026-01-20", "2026-02-10")
    assert len(result.table) == 22 * 24 and len(result.daily) == 22
    assert result.start == pd.Timestamp("2026-01-20", tz="UTC")
    table = result.compare_facts(facts).set_index("fact")
    change = table.loc["open interest change, 01-29 -> 02-05"]
    assert change["observed"] == pytest.approx(49 / 61 - 1) and np.isfinite(change["model"])
    liq = table.loc["long liquidations on 2026-02-05"]
    assert liq["observed"] == 1e9 and liq["model"] > 0
    data_rows = table[table["kind"] == "data"]
    assert len(data_rows) >= 2 and (data_rows["relative"].abs() < 0.01).all()  # the file agrees with the reports
    daily = result.daily
    # the calibrated book: nothing liquidates while the price holds (20-28 Jan), longs go in the slide
    # from 29 Jan, about 1B of them on 5 Feb, and the 6 Feb rebound squeezes the shorts opened into it
    assert daily.loc[:"2026-01-28", "long_liquidations_usd"].sum() < 50e6
    assert 0.5e9 < liq["model"] < 2e9
    assert daily["short_liquidations_usd"].idxmax() == pd.Timestamp("2026-02-06", tz="UTC")
