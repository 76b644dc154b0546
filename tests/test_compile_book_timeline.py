"""The initial book, the exact step averages of envelopes, and the RNG plan."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine
from engine.compile.compiler import rng_plan
from engine.compile.layout import Row, Venue
from engine.compile.timeline import Envelope, Timeline
from engine.errors import ScenarioError

from compile_fixtures import RICH, RICH_TABLES

T0 = datetime(2026, 1, 29, tzinfo=timezone.utc)


# ----------------------------------------------------------------------------- book
@pytest.mark.parametrize("raw", [RICH, RICH_TABLES], ids=["lognormal-uniform", "tables"])
def test_book_holds_the_stated_notional_and_no_dead_positions(raw):
    scenario = engine.load_scenario(raw)
    c = engine.compile_scenario(scenario)
    perps = scenario.market.perpetuals
    spot = scenario.market.spot_usd
    assert c.book_long_btc.sum() * spot == pytest.approx(perps.long.notional_usd, rel=1e-12)
    assert c.book_short_btc.sum() * spot == pytest.approx(perps.short.notional_usd, rel=1e-12)
    grid = c.book_bankruptcy_usd
    assert np.all(np.diff(np.log(grid)) > 0)
    # no cell is past its liquidation price at spot: longs liquidate at P_b/(1-m), shorts at P_b/(1+m),
    # m the row's rate (its tier's, or its flat venue's)
    venue = c.book_rows[:, Row.VENUE].astype(int)
    m = np.maximum(c.book_rows[:, Row.MMR], c.venue_steps[Venue.MMR, venue, 0])[:, None]
    assert (c.book_long_btc * (grid / (1 - m) >= spot)).sum() == 0
    assert (c.book_short_btc * (grid / (1 + m) <= spot)).sum() == 0
    shares = np.array([v.share for v in perps.venues.values()])
    by_venue = np.bincount(venue, c.book_long_btc.sum(axis=1))
    np.testing.assert_allclose(by_venue / c.book_long_btc.sum(), shares)


def test_book_matches_the_bankruptcy_price_formula_for_a_single_node():
    """One entry price and one leverage: the size sits around E*(1-1/L) (long) and E*(1+1/L) (short)."""
    data = copy.deepcopy(RICH)
    perps = data["market"]["perpetuals"]
    perps["long"] = {"notional_usd": "1B", "leverage": {"distribution": "table", "weights": {10: 1.0}},
                     "entry_price": {"distribution": "table", "weights": {90000: 1.0}}}
    perps["short"] = {"notional_usd": "1B", "leverage": {"distribution": "table", "weights": {5: 1.0}},
                      "entry_price": {"distribution": "table", "weights": {85000: 1.0}}}
    c = engine.compile_scenario(engine.load_scenario(data))
    grid = c.book_bankruptcy_usd
    for cells, expected in ((c.book_long_btc.sum(0), 90000 * 0.9), (c.book_short_btc.sum(0), 85000 * 1.2)):
        nz = np.flatnonzero(cells)
        assert len(nz) <= 2 and grid[nz[0]] <= expected <= grid[nz[-1]]
        log_mean = (cells * np.log(grid)).sum() / cells.sum()
        assert np.exp(log_mean) == pytest.approx(expected, rel=1e-12)


def test_longs_already_liquidated_at_spot_are_dropped_and_the_rest_rescaled():
    data = copy.deepcopy(RICH)
    data["market"]["perpetuals"]["long"]["entry_price"] = {"distribution": "uniform", "low_usd": "85k",
                                                           "high_usd": "200k"}
    c = engine.compile_scenario(engine.load_scenario(data))
    assert c.book_long_btc.sum() * 88_000 == pytest.approx(38e9, rel=1e-12)
    bankrupt = c.book_bankruptcy_usd[c.book_long_btc.sum(0) > 0]
    assert bankrupt.max() / (1 - 0.005) < 88_000  # no cell is past its liquidation price at spot


def test_venue_margins_cap_leverage_and_set_the_starting_rates():
    """A CME-like venue (11% initial margin) holds no position above 1/0.11 = 9.1x leverage."""
    data = copy.deepcopy(RICH)
    perps = data["market"]["perpetuals"]
    perps["venues"] = {"main": "70%", "cme": {"share": "30%", "initial_margin_rate": "11%",
                                             "maintenance_margin_rate": "8%"}}
    perps["long"]["entry_price"] = {"distribution": "table", "weights": {88000: 1.0}}
    c = engine.compile_scenario(engine.load_scenario(data))
    assert c.venue("IMR", "cme")[0] == 0.11 and c.venue("MMR", "cme")[0] == 0.08
    assert c.venue("IMR", "main")[0] == 0.01  # its first tier's: 100x
    spot, grid = 88_000, c.book_bankruptcy_usd
    venue = c.book_rows[:, Row.VENUE]
    cme = c.book_long_btc[venue == 1].sum(axis=0)
    main = c.book_long_btc[venue == 0].sum(axis=0)
    # entries at spot: leverage L puts P_b at spot*(1-1/L); CME holds nothing above 1/0.11 = 9.1x
    limit = spot * (1 - 0.11) * grid[1] / grid[0]  # one cell of interpolation
    assert cme[grid > limit].sum() == 0 and cme[grid <= limit].sum() > 0
    assert main[grid > limit].sum() > 0
    assert cme.sum() * spot == pytest.approx(0.3 * 38e9, rel=1e-12)


def test_a_book_that_cannot_exist_is_a_scenario_error():
    data = copy.deepcopy(RICH)
    data["market"]["perpetuals"]["long"]["entry_price"] = {"distribution": "uniform", "low_usd": "150k",
                                                           "high_usd": "200k"}
    data["market"]["perpetuals"]["long"]["leverage"] = {"distribution": "table", "weights": {25: 1.0}}
    with pytest.raises(ScenarioError, match="already be liquidated"):
        engine.compile_scenario(engine.load_scenario(data))


# ----------------------------------------------------------------------------- timeline
envelopes = st.builds(
    lambda start_h, ramp_h, dur_h, out_h: (start_h, ramp_h, dur_h, out_h),
    st.floats(0, 100), st.floats(0, 30), st.floats(0, 40), st.floats(0, 30),
)


@settings(max_examples=200, deadline=None)
@given(envelopes, st.sampled_from([15, 30, 60, 240]))
def test_envelope_averages_are_exact_and_step_independent(env, step_minutes):
    """Step averages lie in [0, 1] and their mass equals the envelope's area for any step size."""
    start_h, ramp_h, dur_h, out_h = env
    envelope = Envelope.of(T0 + timedelta(hours=start_h), timedelta(hours=ramp_h), timedelta(hours=dur_h),
                           timedelta(hours=out_h))
    timeline = Timeline(T0, timedelta(minutes=step_minutes), int(240 * 60 / step_minutes))
    avg = timeline.average(envelope)
    assert np.all(avg >= -1e-12) and np.all(avg <= 1 + 1e-12)
    mass = avg.sum() * timeline.step_seconds
    assert mass == pytest.approx(envelope.area, rel=1e-9, abs=1e-6)
    share = timeline.share_of(envelope)
    if envelope.area > 0:
        assert share.sum() == pytest.approx(1.0, rel=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.floats(0, 47), st.floats(0.01, 24))
def test_window_share_is_uniform_over_the_window(start_h, length_h):
    timeline = Timeline(T0, timedelta(minutes=30), 200)
    share = timeline.window_share(T0 + timedelta(hours=start_h), T0 + timedelta(hours=start_h + length_h))
    assert share.sum() == pytest.approx(1.0, rel=1e-9)
    full = share[share > 0]
    assert full.max() <= 0.5 / length_h + 1e-9


def test_events_count_funding_times_aligned_to_utc():
    timeline = Timeline(T0 + timedelta(hours=3), timedelta(hours=1), 48)
    events = timeline.events(datetime(1970, 1, 1, tzinfo=timezone.utc), timedelta(hours=8))
    assert np.flatnonzero(events).tolist() == [5, 13, 21, 29, 37, 45]  # 08:00, 16:00, 00:00 ...
    coarse = Timeline(T0, timedelta(days=1), 3)
    assert coarse.events(datetime(1970, 1, 1, tzinfo=timezone.utc), timedelta(hours=8)).tolist() == [3, 3, 3]


# ----------------------------------------------------------------------------- RNG plan
def test_rng_blocks_do_not_depend_on_the_number_of_paths():
    """Path p is seeded by block p // 256 whatever n_paths is: chunking cannot change a number."""
    small, large = rng_plan(42, 1_000), rng_plan(42, 10_000)
    assert small.block_seeds.shape == (4, 2) and large.block_seeds.shape == (40, 2)
    np.testing.assert_array_equal(small.block_seeds, large.block_seeds[:4])
    assert len({tuple(s) for s in large.block_seeds}) == 40
    assert not np.array_equal(rng_plan(43, 1_000).block_seeds, small.block_seeds)


def test_compile_overrides_paths_and_seed():
    scenario = engine.load_scenario(RICH)
    c = engine.compile_scenario(scenario, n_paths=1000, seed=9)
    assert c.n_paths == 1000 and c.rng.seed == 9
    assert engine.compile_scenario(scenario).n_paths == scenario.n_paths
