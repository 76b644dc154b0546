"""Replay (``engine.replay``, ``cascade replay``): the book and the flows along an observed path.

Synthetic paths on a quiet book (no behavioural flow, no funding, a fund that never runs dry)
check the book against liquidation prices computed here with :mod:`engine.margin`: a cell is
liquidated at the first close at or beyond its trigger, at that close, and never again; open
interest is what is left, at the close. A simulated path replayed reproduces the simulation's
book step by step (same flows, same open interest, liquidations in the same steps) with one
difference stated and checked: replay values liquidations at the step's close, the simulation
at the price each cascade round started from. The Feb-2026 replay runs on the real hourly file
and compares with the facts (skipped without ``../shared``).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import engine
import sim_fixtures
from conftest import SHARED_DATA
from engine.backtest import load_ohlcv
from engine.cli import main
from engine.margin import liquidation_price
from engine.replay import FLOW_COLUMNS, replay

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
    """Every cell of the replayed book with its liquidation price from engine.margin (bankruptcy
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
    path = fall_then_rise()
    result = replay(scenario(QUIET, len(path)), closes(path))
    table = result.table
    cells = triggers(result)
    expected = {"long": np.zeros(len(path)), "short": np.zeros(len(path))}
    left = sum(size for _, size, _ in cells)
    remaining = np.empty(len(path))
    low = high = SPOT
    for t, price in enumerate(path):
        for side, size, trigger in cells:
            first_long = side == "long" and price <= trigger < low
            first_short = side == "short" and high < trigger <= price
            if first_long or first_short:
                expected[side][t] += size * price
                left -= size
        low, high = min(low, price), max(high, price)
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
    deleveraging: each step the book loses liquidated + cut + closed size, in BTC, to rounding."""
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
    lost = (t["long_liquidations_usd"] / path - (t["margin_cut_usd"] + t["deleveraging_flow_usd"]) / start_price)
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
    }),
    {"type": "price_jump", "id": "drop", "start": "+20h", "size": "-8%", "spread": "2%"},
    {"type": "relief_rally", "id": "squeeze", "start": "+30h", "duration": "8h", "new_short_notional_usd": "2B",
     "short_leverage": 20, "macro_move": "8%", "momentum_buying_usd": "2B"})


@pytest.mark.parametrize("seed", [1, 3, 10])  # seeds whose path has a two-round cascade
def test_replaying_a_simulated_path_reproduces_its_book(seed):
    """Given the simulation's own closes (stored as float32), replay finds the same book: the same
    flows from every participant (to the float32 rounding of the closes), the same funding, the same open interest at every close and
    liquidations in the same steps. What differs, by design: the simulation counts a round's
    liquidations at the price that round started from (before their own impact), replay at the
    step's close, which the cascade's impact has pushed further: long liquidations replay lower,
    short ones higher, the liquidated size being the same (equal open interest)."""
    sim = sim_fixtures.run(CASCADING, n_paths=1, seed=seed, keep_steps=True)
    assert 2 <= sim.per_path["max_cascade_rounds"].iloc[0] < 50  # cascades of several rounds, never capped
    assert sim.per_path["adl_usd"].iloc[0] == 0
    prices = sim._raw["price"][0].astype(np.float64)
    result = replay(engine.load_scenario(sim_fixtures.patched(CASCADING, {"seed": seed})), closes(prices))
    t = result.table
    raw = sim._raw
    # the closes come back as float32: a step's log return (~1e-3) then carries a relative error up to
    # ~1e-4, which reaches the realised vol (deleveraging) and the dealers' re-hedge (a difference of deltas)
    np.testing.assert_allclose(t["open_interest_usd"], raw["open_interest"][0], rtol=1e-5)
    np.testing.assert_allclose(t["funding_rate"], raw["funding"][0], rtol=1e-5, atol=1e-12)
    for flow, column in FLOW_COLUMNS.items():
        expected = sim.flows[flow].to_numpy()
        np.testing.assert_allclose(t[column], expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max() + 1e-3,
                                   err_msg=column)
    sim_long, sim_short = -sim.flows["long_liquidations"].to_numpy(), sim.flows["short_liquidations"].to_numpy()
    rep_long, rep_short = t["long_liquidations_usd"].to_numpy(), t["short_liquidations_usd"].to_numpy()
    np.testing.assert_array_equal(rep_long > 0, sim_long > 0)
    np.testing.assert_array_equal(rep_short > 0, sim_short > 0)
    assert (rep_long > 0).any() and (rep_short > 0).any()
    one_side = (sim_long > 0) != (sim_short > 0)  # a step liquidating both sides moves both ways
    long_only = one_side & (sim_long > 0)
    short_only = one_side & (sim_short > 0)
    assert (rep_long[long_only] <= sim_long[long_only] * (1 + 1e-4)).all()
    assert (rep_short[short_only] >= sim_short[short_only] * (1 - 1e-4)).all()
    assert (rep_long[long_only] < sim_long[long_only] * (1 - 3e-3)).any()  # the difference is real (~1%)


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
