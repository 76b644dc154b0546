"""Properties every simulation must have, over small random scenarios (hypothesis) and at the extremes.

Each hypothesis example is a small market (spot, volatility, tails, depth, impact model, book
size and leverage, margin rates, funding, insurance fund, behaviour) with a few shocks of random
size, simulated on 64 paths over one day: milliseconds once the kernel is compiled. Hypothesis
runs derandomized (a fixed sequence of examples, no example database), so CI sees the same
examples on every run.

Checked on every example: prices positive and finite at every step, open interest never
negative, no NaN anywhere in the outputs, the insurance-fund accounting identity, liquidations
bounded by the book (where the bound is sound, see :func:`test_liquidations_are_bounded_by_the_book`),
aggregates that do not depend on the order of the paths and a flow decomposition that adds up
to the per-path totals. Then: a bigger shock never lowers expected liquidations, and the
extremes (no depth, price to zero, empty book, one path, one step, minute steps, ...) give
finite numbers or a clear :class:`~engine.ScenarioError`.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.compile.layout import Venue
from engine.nb.kernel import LOG_FLOOR

from sim_fixtures import START, market, patched, quiet, run, with_shocks

N_PATHS = 64
PROPERTY = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

# per-path total <-> per-step flow column (flows are per-path means, sell < 0)
FLOW_TOTALS = {
    "etf_flow_usd": ("etf", 1.0),
    "deleveraging_flow_usd": ("deleveraging", 1.0),
    "dealer_flow_usd": ("dealers", 1.0),
    "miner_sales_usd": ("miners", 1.0),
    "momentum_flow_usd": ("momentum", 1.0),
    "forced_flow_usd": ("forced", 1.0),
    "margin_cut_usd": ("margin_cuts", 1.0),
    "long_liquidations_usd": ("long_liquidations", -1.0),  # a long liquidation sells
    "short_liquidations_usd": ("short_liquidations", 1.0),
}

# Kernel bugs these tests found (engine/nb/kernel.py at 84b198e), fixed since; the tests pin them.
BUG_B = ("kernel bug B: no ceiling on the price: a short-squeeze cascade values the shorts it buys "
         "back at the price it pushes up, and ln(price) runs away to +inf within one step")
BUG_C = ("kernel bug C: momentum traders open rate * |lookback return| * dt * open interest per step, "
         "without bound: in a steep rally their buying compounds to inf")
BUG_D = ("kernel bug D: funding moves bankruptcy prices by the factor 1 + f * events; with many funding "
         "events in a step (1-minute funding, daily steps) the factor goes negative: negative bankruptcy "
         "prices, the long book liquidated at once with bad debt 100x its value")


def _log_uniform(lo: float, hi: float):
    return st.floats(math.log(lo), math.log(hi)).map(math.exp)


@st.composite
def small_scenarios(draw, *, new_positions: bool = True) -> dict:
    """Raw data of a small random scenario: one day of hourly steps.

    ``new_positions=False`` keeps momentum traders and relief-rally shorts out (the book only
    shrinks). Liquidity (depth, daily volume) is drawn relative to the book and to the other
    flows, so that no squeeze can push the price up without bound (kernel bugs B and C); thin
    markets are exercised on the way down by the extremes below.
    """
    spot = draw(_log_uniform(1e3, 5e5))
    vol = draw(st.floats(0.05, 2.0))
    mmr = draw(st.floats(0.001, 0.05))
    imr = min(mmr * draw(st.floats(1.5, 6.0)), 0.5)
    max_lev = min(100.0, 1.0 / imr)
    median = draw(st.floats(1.3, 0.95 * max_lev))  # min < median < max
    long_n = draw(st.sampled_from([0, 1e7, 5e9, 4e10]))
    short_n = draw(st.sampled_from([0, 1e7, 5e9, 4e10]))
    fuel = draw(st.sampled_from([0, 1e9, 1e10])) if new_positions and draw(st.booleans()) else None
    failure = draw(st.sampled_from([None, 1.0, 0.5, 0.2]))  # depth left during an exchange failure
    # the whole book (or the other flows: ETF holders' 1.28M BTC, squeeze buying, ...), traded at
    # once, moves the price by at most 0.05 in log even with the depth an exchange failure leaves:
    # c = N / (depth * 100) for linear impact, Y * sigma_day * sqrt(N / volume) for the square
    # root. Momentum traders can triple the book in a day: still far from a runaway (c ~ 1/e)
    book = max(short_n + (fuel or 0), long_n, 1.28e6 * spot, 5e9) / (failure or 1.0)
    depth = book / (100 * draw(_log_uniform(1e-3, 0.05)))
    sigma_day = vol / math.sqrt(365.25)
    volume = book * (0.7 * sigma_day / draw(_log_uniform(1e-3, 0.05))) ** 2
    data = market({
        "horizon": {"start": START, "duration": "1d", "step": "1h"},
        "market.spot_usd": spot,
        "market.volatility": {
            "annual": vol,
            "tail_dof": draw(st.sampled_from([None, 3, 4, 10])),
            "jumps": {"intensity_per_day": draw(st.sampled_from([0, 0.05, 2])), "mean": -0.02, "stdev": 0.05},
        },
        "market.impact": {
            "model": draw(st.sampled_from(["sqrt", "linear", "both"])),
            "depth_usd_per_pct": depth,
            "daily_volume_usd": volume,
            "permanent_fraction": draw(st.floats(0.0, 1.0)),
        },
        "market.perpetuals.long": {
            "notional_usd": long_n,
            "leverage": {"distribution": "lognormal", "median": median, "dispersion": draw(st.floats(0.1, 1.5)),
                         "min": 1.2, "max": max_lev},
            "entry_price": {"distribution": "lognormal", "center_usd": spot, "dispersion": draw(st.floats(0.01, 0.2))},
        },
        "market.perpetuals.short": {
            "notional_usd": short_n,
            "leverage": {"distribution": "lognormal", "median": median, "dispersion": 0.6, "min": 1.2, "max": max_lev},
            "entry_price": {"distribution": "uniform", "low_usd": spot * 0.9, "high_usd": spot * 1.1},
        },
        "market.perpetuals.maintenance_margin_rate": mmr,
        "market.perpetuals.initial_margin_rate": imr,
        "market.perpetuals.insurance_fund_usd": draw(st.sampled_from([0, 1e6, 1e8, 1e9, 1e15])),
        "market.perpetuals.funding": {"base_rate": draw(st.sampled_from([0, 1e-4, -3e-4])),
                                      "imbalance_sensitivity": draw(st.sampled_from([0, 5e-4, 5e-3]))},
        "market.etf.cost_basis_usd": spot * draw(st.floats(0.7, 1.3)),
        "market.behaviour.momentum.open_rate": draw(st.sampled_from([0, 0.5, 3])) if new_positions else 0,
        # turnover: the holding-time hazard's closes replaced by new positions
        "market.behaviour.deleveraging.base_hazard_per_day": draw(st.sampled_from([0.02, 0.2, 2])) if new_positions
        else 0,
        "market.options.open_interest": [
            {"kind": "put", "strike_usd": spot * 0.85, "expiry": "2026-02-27T08:00:00Z", "size_btc": 20000},
        ],
        "outputs": {"sample_paths": N_PATHS, "price_levels_usd": [spot * 0.95, spot * 0.8, spot * 0.5]},
    })
    shocks = [{"type": "price_jump", "start": "+3h", "size": draw(st.floats(-0.6, 0.3)),
               "spread": draw(st.floats(0.0, 0.1))}]
    if draw(st.booleans()):
        shocks.append({"type": "etf_flows", "start": START,
                       "daily_flows_usd": {"2026-02-02": draw(st.floats(-5e9, 1e9))}})
    hike = draw(st.sampled_from(["none", "initial", "maintenance"]))
    if hike == "initial":
        shocks.append({"type": "margin_hike", "start": "+6h", "initial_margin_rate": min(imr * 5, 1.0),
                       "top_up_fraction": draw(st.floats(0.0, 1.0))})
    elif hike == "maintenance":
        shocks.append({"type": "margin_hike", "start": "+6h", "maintenance_margin_rate": min(mmr * 4, 0.3),
                       "initial_margin_rate": min(max(imr, mmr * 5), 1.0)})
    if failure is not None:
        shocks.append({"type": "exchange_failure", "start": "+8h", "duration": "4h", "depth_fraction": failure,
                       "liquidation_fill_penalty": draw(st.floats(0.0, 0.1)),
                       "circuit_breaker_move": draw(st.sampled_from([None, 0.02]))})
    if fuel is not None:
        shocks.append({"type": "relief_rally", "start": "+12h", "duration": "6h", "new_short_notional_usd": fuel,
                       "macro_move": 0.05, "momentum_buying_usd": 1e9})
    if draw(st.booleans()):
        shocks.append({"type": "miner_capitulation", "start": "+2h", "duration": "12h"})
    return with_shocks(data, *shocks)


# ----------------------------------------------------------------------------- the checks
def _non_finite(frame: pd.DataFrame) -> list:
    values = frame.to_numpy(dtype=float)
    return [frame.columns[j] for j in np.flatnonzero(~np.isfinite(values).all(axis=0))]


def _finite_outputs(r) -> None:
    pp = r.per_path
    assert not _non_finite(pp.drop(columns=["trough_time"])), _non_finite(pp.drop(columns=["trough_time"]))
    assert pp["trough_time"].notna().all()
    assert not _non_finite(r.fan), _non_finite(r.fan)
    assert not _non_finite(r.flows), _non_finite(r.flows)
    assert np.isfinite(r.sample_paths.to_numpy()).all()
    assert not _non_finite(r.summary()), _non_finite(r.summary())
    assert all(np.isfinite(v) for v in r.probabilities().values())


def _prices_positive(r) -> None:
    spot = r.compiled.param("SPOT0")
    pp = r.per_path
    floor = spot * math.exp(-LOG_FLOOR) * (1 - 1e-9)
    assert (pp["min_price"] >= floor).all() and (pp["min_price"] > 0).all()
    assert np.isfinite(pp["max_price"]).all()
    every_step = r.sample_paths.to_numpy()  # outputs.sample_paths >= n_paths: every path, every step
    assert every_step.shape[1] == r.n_paths
    assert (every_step > 0).all() and np.isfinite(every_step).all()
    assert (r.fan["price"].to_numpy() > 0).all()


def _open_interest_non_negative(r) -> None:
    pp = r.per_path
    scale = max(pp["open_interest_start_usd"].max(), 1.0)
    # open interest is a running total: allow float dust of 1e-9 of the book
    assert (pp["open_interest_end_usd"] >= -1e-9 * scale).all()
    assert (r.fan["open_interest_usd"].to_numpy() >= -1e-9 * scale).all()
    assert (pp["open_interest_change"] >= -1 - 1e-9).all()


def _insurance_fund_identity(r) -> None:
    """``fund_end = fund_start + surplus - (bad_debt - adl)``: the fund takes every surplus, pays
    every deficit while it lasts, and auto-deleveraging covers exactly what it could not."""
    pp = r.per_path
    fund0 = r.compiled.venue_steps[Venue.INSURANCE_FUND_USD, :, 0].sum()  # every venue's fund
    change = pp["insurance_fund_end_usd"].to_numpy() - fund0
    expected = (pp["liquidation_surplus_usd"] - (pp["bad_debt_usd"] - pp["adl_usd"])).to_numpy()
    scale = np.maximum(np.maximum(pp["bad_debt_usd"].to_numpy(), pp["liquidation_surplus_usd"].to_numpy()), 1.0)
    tolerance = 1e-6 * scale + 8 * np.finfo(float).eps * fund0  # relative, plus the rounding of fund0 + x
    worst = int(np.argmax(np.abs(change - expected) - tolerance))
    assert (np.abs(change - expected) <= tolerance).all(), (worst, change[worst], expected[worst])
    assert (pp["insurance_fund_end_usd"] >= 0).all()
    assert (pp["bad_debt_usd"] >= 0).all() and (pp["liquidation_surplus_usd"] >= 0).all()
    assert (pp["adl_usd"] >= 0).all() and (pp["adl_usd"] <= pp["bad_debt_usd"] * (1 + 1e-12)).all()
    if fund0 == 0:  # no fund at the start: ADL pays whatever the surplus so far could not
        assert (pp["adl_usd"] >= pp["bad_debt_usd"] - pp["liquidation_surplus_usd"] - 1e-6 * scale).all()
    # a liquidated position's equity is at most its value: P - P_b <= P for a long (P_b > 0), and
    # P_b - P <= m * P for a short (it is liquidated once P >= P_b / (1 + m))
    liquidated = pp["long_liquidations_usd"] + pp["short_liquidations_usd"]
    assert (pp["liquidation_surplus_usd"] <= liquidated * (1 + 1e-9)).all()


def _order_free_aggregates(r) -> None:
    """Permuting the paths changes no aggregate; the flow decomposition adds up to the per-path totals."""
    pp = r.per_path
    shuffled = pp.sample(frac=1.0, random_state=np.random.default_rng(0))
    assert not shuffled.index.equals(pp.index) or len(pp) == 1
    other = copy.copy(r)  # the same result, its per-path table in another order
    other.__dict__["per_path"] = shuffled.reset_index(drop=True)
    a, b = r.summary(), other.summary()
    assert a.index.equals(b.index) and a.columns.equals(b.columns)
    np.testing.assert_array_equal(a[["p05", "p50", "p95"]].to_numpy(), b[["p05", "p50", "p95"]].to_numpy())
    np.testing.assert_allclose(a["mean"].to_numpy(), b["mean"].to_numpy(), rtol=1e-12, atol=1e-9)
    assert r.probabilities() == other.probabilities()
    for total, (column, sign) in FLOW_TOTALS.items():
        per_path = pp[total].sum()
        from_flows = sign * r.flows[column].sum() * r.n_paths
        scale = max(pp[total].abs().sum(), 1.0)
        assert abs(per_path - from_flows) <= 1e-9 * scale, (total, per_path, from_flows)


def _all_invariants(r, data) -> None:
    _finite_outputs(r)
    _prices_positive(r)
    _open_interest_non_negative(r)
    _insurance_fund_identity(r)
    _order_free_aggregates(r)
    pp = r.per_path
    assert ((pp["max_drawdown"] >= 0) & (pp["max_drawdown"] <= 1)).all()
    assert (pp["long_liquidations_usd"] >= 0).all() and (pp["short_liquidations_usd"] >= 0).all()
    assert (pp["min_funding_rate"] <= pp["max_funding_rate"]).all()
    cap = data["market"]["perpetuals"].get("funding", {}).get("cap", 0.003)
    assert (pp["max_funding_rate"] <= cap).all() and (pp["min_funding_rate"] >= -cap).all()


# ----------------------------------------------------------------------------- random scenarios
@given(small_scenarios())
@PROPERTY
def test_invariants_hold_on_random_scenarios(data):
    r = run(data, n_paths=N_PATHS, seed=5)
    _all_invariants(r, data)


@given(small_scenarios(new_positions=False))
@PROPERTY
def test_liquidations_are_bounded_by_the_book(data):
    """No more BTC can be liquidated than the book held: ``long_liq <= N_long`` and
    ``short_liq <= N_short / spot * max_price``.

    Made sound by removing what could move a liquidation price toward the market: funding is
    set to zero (bankruptcy prices stay put) and maintenance-rate hikes are dropped; nothing adds
    positions (no turnover arrivals, no momentum traders, no relief-rally shorts). An initial-margin top-up only moves
    a long's bankruptcy price down (a short's up), deleveraging and ADL only shrink sizes. So a
    long is liquidated at or below its trigger at the start, which is below spot; and a short
    cascade only pushes the price up, so each short is bought back at or below the price that
    ends its step.
    """
    data = copy.deepcopy(data)
    data["market"]["perpetuals"]["funding"] = {"base_rate": 0, "imbalance_sensitivity": 0}
    # no turnover: the holding-time hazard's closes would be replaced by new positions
    data["market"].setdefault("behaviour", {}).setdefault("deleveraging", {})["base_hazard_per_day"] = 0
    data["shocks"] = [s for s in data["shocks"]
                      if not (s["type"] == "margin_hike" and "maintenance_margin_rate" in s)]
    r = run(data, n_paths=N_PATHS, seed=9)
    perps = data["market"]["perpetuals"]
    spot = data["market"]["spot_usd"]
    pp = r.per_path
    long_btc, short_btc = perps["long"]["notional_usd"] / spot, perps["short"]["notional_usd"] / spot
    assert (pp["long_liquidations_usd"] <= long_btc * spot * (1 + 1e-9)).all()
    assert (pp["long_liquidations_usd"] <= long_btc * pp["max_price"] * (1 + 1e-9)).all()
    assert (pp["short_liquidations_usd"] <= short_btc * pp["max_price"] * (1 + 1e-9)).all()
    oi_bound = (long_btc + short_btc) * pp["terminal_price"] * (1 + 1e-9) + 1e-6
    assert (pp["open_interest_end_usd"] <= oi_bound).all()
    _all_invariants(r, data)


# ----------------------------------------------------------------------------- bigger shocks
def _book_for_monotonicity() -> dict:
    """A book with leverage spread from 1.2x to 100x and entries around spot, so that a deeper fall
    reaches ever more positions."""
    return market({
        "market.perpetuals.long.leverage": {"distribution": "lognormal", "median": 6, "dispersion": 0.8,
                                            "min": 1.2, "max": 100},
        "market.perpetuals.long.entry_price": {"distribution": "lognormal", "center_usd": "80k",
                                               "dispersion": "4%"},
    })


@pytest.mark.parametrize("kind, sizes", [
    ("price_jump", [-0.02, -0.05, -0.10, -0.20]),
    ("etf_outflow", [-0.25e9, -1e9, -3e9, -6e9]),
])
def test_a_bigger_shock_never_lowers_expected_liquidations(kind, sizes):
    """Common random numbers: the same seed, only the size of one shock grows.

    Not a path-by-path property: liquidations are counted in USD at the fill price, so a position
    liquidated in both runs counts for less in the deeper one, and a bigger early fall changes
    the book (momentum shorts, funding) that later steps see. The mean over 512 paths is what
    must not fall; a 1% tolerance absorbs that noise, and the step from the smallest to the
    largest shock must raise it clearly.
    """
    means = []
    for size in sizes:
        if kind == "price_jump":
            shock = {"type": "price_jump", "start": "+6h", "size": size}
        else:
            shock = {"type": "etf_flows", "start": START, "daily_flows_usd": {"2026-02-02": size, "2026-02-03": size}}
        r = run(with_shocks(_book_for_monotonicity(), shock), n_paths=512, seed=21)
        means.append(r.per_path["long_liquidations_usd"].mean())
    assert all(b >= a * 0.99 for a, b in zip(means, means[1:])), means
    assert means[-1] > 1.25 * means[0], means


# ----------------------------------------------------------------------------- extremes
NO_ADL = {"market.perpetuals.insurance_fund_usd": 1e15}  # a fund that never runs dry
NO_MOMENTUM = {"market.behaviour.momentum.open_rate": 0}
TO_ZERO = [{"type": "price_jump", "start": f"+{h}h", "size": "-90%"} for h in range(1, 40)]
STEEP_RALLY = [{"type": "price_jump", "start": f"+{h}h", "size": "200%"} for h in range(1, 12)]
WILD = {"market.volatility": {"annual": "500%", "tail_dof": 2.05, "jumps": {"intensity_per_day": 24, "stdev": "100%"}}}
MAX_DELEVERAGING = {"market.behaviour.deleveraging": {"base_hazard_per_day": 10, "drawdown_sensitivity": 100,
                                                      "volatility_sensitivity": 100, "funding_sensitivity": 1000}}
CRASH = {"type": "price_jump", "start": "+3h", "size": "-20%"}

EXTREMES = {
    "tiny depth, exchange failure": with_shocks(
        market({"market.impact.depth_usd_per_pct": "1k", "market.impact.model": "both"}),
        {"type": "exchange_failure", "start": "+2h", "duration": "1d", "depth_fraction": "0.1%",
         "liquidation_fill_penalty": "50%"}),
    "tiny depth, linear impact": market({"market.impact.depth_usd_per_pct": "1k", "market.impact.model": "linear"}),
    "tiny volume, sqrt impact": with_shocks(
        market({"market.impact.daily_volume_usd": "1k"}),
        {"type": "exchange_failure", "start": "+2h", "depth_fraction": "0.1%"}),
    "price to zero": with_shocks(market(), *TO_ZERO),
    "price to zero, no ADL": with_shocks(market(NO_ADL), *TO_ZERO),
    "steep rally, no momentum": with_shocks(market(NO_MOMENTUM), *STEEP_RALLY),
    "empty book": market({"market.perpetuals.long.notional_usd": 0, "market.perpetuals.short.notional_usd": 0}),
    "empty book, quiet": quiet({"market.perpetuals.long.notional_usd": 0, "market.perpetuals.short.notional_usd": 0}),
    "only longs": with_shocks(market({"market.perpetuals.short.notional_usd": 0}),
                              {"type": "price_jump", "start": "+3h", "size": "-30%"}),
    "only shorts": with_shocks(market({"market.perpetuals.long.notional_usd": 0}),
                               {"type": "price_jump", "start": "+3h", "size": "30%"}),
    "no options": market({"market.options.open_interest": []}),
    "no insurance fund, crash": with_shocks(market({"market.perpetuals.insurance_fund_usd": 0}),
                                            {"type": "price_jump", "start": "+3h", "size": "-40%"}),
    "one step": market({"horizon": {"start": START, "duration": "1h", "step": "1h"}}),
    "one-minute steps": with_shocks(
        market({"horizon": {"start": "2026-02-02T14:00:00Z", "duration": "3h", "step": "1m"}}),
        {"type": "etf_flows", "start": "2026-02-02T14:00:00Z", "daily_flows_usd": {"2026-02-02": "-3B"}}),
    "one-day steps": market({"horizon": {"start": START, "duration": "10d", "step": "1d"}}),
    "extreme volatility, no momentum": market({**WILD, **NO_MOMENTUM}),
    "maximum funding": with_shocks(
        market({"market.perpetuals.funding": {"interval": "1h", "base_rate": "1%", "imbalance_sensitivity": "5%",
                                              "cap": "5%"}}), CRASH),
    "funding at the cap, daily steps": market({
        "horizon": {"start": START, "duration": "5d", "step": "1d"},
        "market.perpetuals.funding": {"base_rate": "1%", "imbalance_sensitivity": "5%", "cap": "5%"}}),
    "maximum margins": with_shocks(
        market(), {"type": "margin_hike", "start": "+1h", "initial_margin_rate": "100%",
                   "maintenance_margin_rate": "49%", "top_up_fraction": 0}),
    "maximum deleveraging": with_shocks(market(MAX_DELEVERAGING), CRASH),
    "maximum momentum": with_shocks(
        market({"market.behaviour.momentum": {"open_rate": 100, "leverage": 100, "lookback": "1h"}}), CRASH),
}
# the same extremes with the mechanisms that hit the open kernel bugs
EXTREMES_HITTING_BUGS = {
    "steep rally": (with_shocks(market(), *STEEP_RALLY), BUG_C),
    "extreme volatility": (market(WILD), BUG_C),
}


def _check_all(r) -> None:
    _finite_outputs(r)
    _prices_positive(r)
    _open_interest_non_negative(r)
    _insurance_fund_identity(r)
    _order_free_aggregates(r)


@pytest.mark.parametrize("name", list(EXTREMES))
def test_extremes_give_finite_numbers(name):
    data = patched(EXTREMES[name], {"outputs.sample_paths": 64})
    r = run(data, n_paths=64, seed=2)
    _check_all(r)


@pytest.mark.parametrize("name", list(EXTREMES_HITTING_BUGS))
def test_extremes_hitting_kernel_bugs_give_finite_numbers(name):
    data = patched(EXTREMES_HITTING_BUGS[name][0], {"outputs.sample_paths": 64})
    r = run(data, n_paths=64, seed=2)
    _check_all(r)


def test_price_floor_when_the_price_goes_to_zero():
    r = run(EXTREMES["price to zero"], n_paths=16, seed=2)
    pp = r.per_path
    floor = 80e3 * math.exp(-LOG_FLOOR)
    np.testing.assert_allclose(pp["min_price"], floor, rtol=1e-9)  # 39 jumps of -0.9 in log: at the floor
    assert (pp["long_liquidations_usd"] > 0).all()
    assert (pp["open_interest_end_usd"] < 0.5 * pp["open_interest_start_usd"]).all()


def test_one_path_one_step():
    r = run(EXTREMES["one step"], n_paths=1, seed=4)
    assert (r.n_paths, r.n_steps) == (1, 1)
    assert r.per_path.shape[0] == 1 and r.fan.shape[0] == 1 and r.sample_paths.shape == (1, 1)
    assert r.per_path["trough_step"].iloc[0] == 0
    _check_all(r)
    d = r.to_dict()
    assert d["n_paths"] == 1 and d["n_steps"] == 1
    for metric, row in d["market"].items():
        if isinstance(row, dict):
            assert row["p05"] == row["p50"] == row["p95"], metric


def test_empty_book_has_no_liquidations_and_no_open_interest():
    r = run(EXTREMES["empty book"], n_paths=64, seed=2)
    pp = r.per_path
    for column in ("long_liquidations_usd", "short_liquidations_usd", "open_interest_start_usd",
                   "open_interest_end_usd", "open_interest_change", "bad_debt_usd", "adl_usd",
                   "deleveraging_flow_usd", "momentum_flow_usd", "max_cascade_rounds"):
        assert (pp[column] == 0).all(), column
    assert (r.fan["open_interest_usd"].to_numpy() == 0).all()
    assert (pp["insurance_fund_end_usd"] == 1e9).all()


def test_horizon_shorter_than_a_step_is_a_clear_error():
    with pytest.raises(engine.ScenarioError):
        run(market({"horizon": {"start": START, "duration": "30m", "step": "1h"}}), n_paths=4)


@pytest.mark.parametrize("changes", [
    {"market.impact.depth_usd_per_pct": 0},
    {"market.spot_usd": -1},
    {"market.volatility.annual": 0},
    {"horizon": {"start": START, "duration": "1d", "step": "10s"}},
    {"market.perpetuals.initial_margin_rate": "0.4%"},  # below the maintenance rate
    # above 1 / a flat initial margin (margin tiers hold such positions at their tier's maximum instead)
    {"market.perpetuals.initial_margin_rate": "1%", "market.perpetuals.long.leverage.max": 150},
])
def test_out_of_range_inputs_are_clear_errors(changes):
    with pytest.raises(engine.ScenarioError) as info:
        run(market(changes), n_paths=4)
    assert info.value.problems and str(info.value)


# ----------------------------------------------------------------------------- a side wiped out
def _nan_paths(r) -> int:
    pp = r.per_path
    return int((~np.isfinite(pp["terminal_price"]) | ~np.isfinite(pp["max_price"])).sum())


def test_momentum_after_adl_wipes_out_the_long_side_stays_finite():
    """No leveraged longs but those momentum traders open; the shorts' bad debt in a +20% jump
    that a failing liquidation engine fills 30% beyond the triggers, with no insurance fund, is
    auto-deleveraged against those few longs and wipes them out; the next momentum longs open on
    an empty side (this divided by a zero scale until 84b198e)."""
    data = {"name": "wiped-by-adl", "seed": 1, "n_paths": 64, "outputs": {"sample_paths": 64},
            "horizon": {"start": START, "duration": "1d", "step": "1h"},
            "market": {"spot_usd": "80k",
                       "perpetuals": {"long": {"notional_usd": 0}, "short": {"notional_usd": "1B"},
                                      "insurance_fund_usd": 0}},
            "shocks": [{"type": "price_jump", "start": "+12h", "size": "20%"},
                       {"type": "exchange_failure", "start": "+12h", "duration": "2h",
                        "liquidation_fill_penalty": "30%"}]}
    r = run(data)
    assert (r.per_path["adl_usd"] > 0).all()
    assert _nan_paths(r) == 0
    _check_all(r)


def test_squeeze_fuel_after_a_full_voluntary_close_stays_finite():
    """Daily steps and a deleveraging hazard of at least 1/day: both sides close completely in the first
    step (``close = min(1, h*dt) = 1``); the relief rally's new shorts then open on an empty side."""
    data = {"name": "wiped-by-closing", "seed": 1, "n_paths": 4,
            "horizon": {"start": START, "duration": "5d", "step": "1d"},
            "market": {"spot_usd": "80k",
                       "perpetuals": {"long": {"notional_usd": "20B"}, "short": {"notional_usd": "10B"}},
                       # no momentum traders: the momentum flow is the rally's new shorts alone
                       # closing is the vol term's (1/day at least), not the base hazard's, which new positions replace
                           "behaviour": {"deleveraging": {"base_hazard_per_day": 0, "volatility_sensitivity": 100,
                                                          "reference_volatility": 0},
                                         "momentum": {"open_rate": 0}}},
            "shocks": [{"type": "relief_rally", "start": "+2d", "new_short_notional_usd": "1B"}]}
    r = run(data)
    assert _nan_paths(r) == 0
    # the new shorts open on the empty side on every path (the same step's move may liquidate them)
    assert (r.per_path["momentum_flow_usd"] <= -1e9 * 0.999).all()
    assert (r._raw["open_interest"][:, 1] == 0).all() and (r._raw["open_interest"][:, 2] > 0).any()


# ----------------------------------------------------------------------------- fixed kernel bugs, minimal
def test_kernel_bug_b_short_squeeze_with_linear_impact_overflows():
    """20B of shorts, linear impact at the default 14M of depth per 1%, a +10% jump: the squeeze
    prices each round's buy-back at the price the previous round pushed up (c = N/(D*100) ~ 14 in
    log), so ln(price) runs away to +inf within the step."""
    data = {"name": "bug-b", "seed": 1, "n_paths": 16,
            "horizon": {"start": START, "duration": "6h", "step": "1h"},
            "market": {"spot_usd": "80k", "impact": {"model": "linear", "depth_usd_per_pct": "14M"},
                       "perpetuals": {"long": {"notional_usd": 0}, "short": {"notional_usd": "20B"}}},
            "shocks": [{"type": "price_jump", "start": "+2h", "size": "10%"}]}
    assert _nan_paths(run(data)) == 0


def test_kernel_bug_c_momentum_buying_compounds_in_a_steep_rally():
    """+100% (log) an hour for six hours with the default momentum traders (open rate 0.5) and an
    insurance fund that never runs dry (no ADL): the buying they add each step is proportional to
    the lookback return times the open interest, both of which it raises."""
    data = {"name": "bug-c", "seed": 1, "n_paths": 16,
            "horizon": {"start": START, "duration": "1d", "step": "1h"},
            "market": {"spot_usd": "80k",
                       "perpetuals": {"long": {"notional_usd": "20B"}, "short": {"notional_usd": "10B"},
                                      "insurance_fund_usd": "1000T"}},
            "shocks": [{"type": "price_jump", "start": f"+{h}h", "size": "100%"} for h in range(1, 7)]}
    assert _nan_paths(run(data)) == 0


def test_kernel_bug_d_many_funding_events_in_a_step():
    """Funding every minute at -1% with daily steps: 1440 events a step, ``pb_mult *= 1 - 0.01*1440``.
    Compounding, ``(1 + f) ** events``, would keep the factor positive."""
    data = {"name": "bug-d", "seed": 1, "n_paths": 8,
            "horizon": {"start": START, "duration": "3d", "step": "1d"},
            "market": {"spot_usd": "80k",
                       "perpetuals": {"long": {"notional_usd": "20B"}, "short": {"notional_usd": "10B"},
                                      "funding": {"interval": "1m", "base_rate": "-1%", "cap": "5%"}}}}
    pp = run(data).per_path
    liquidated = pp["long_liquidations_usd"] + pp["short_liquidations_usd"]
    assert (pp["liquidation_surplus_usd"] <= liquidated).all()
    assert (pp["bad_debt_usd"] <= 30e9).all()  # trillions of bad debt from a 30B book, as it stands
