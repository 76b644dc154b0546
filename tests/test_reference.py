"""The numba kernel against the plain-Python reference (``tests/reference.py``), path by path.

Small scenarios (a few paths, 24-180 steps) each exercise a part of the model: a calm market
(turnover: positions closing at their holding-time hazard, stop-loss and take-profit against the
average entry, new ones arriving; model v5),
a cascade of many rounds with bad debt and auto-deleveraging (and the same with a round cap), a
margin-hike schedule in USD per contract, an exchange failure with a circuit breaker, a relief
rally, ``RICH`` (every shock type), a crash through the default margin tiers (partial
liquidations down the size classes), bad debt auto-deleveraged by rank across a tiered venue's
rows, the cascade under conditional volatility (``clustering``, model v4) and option vols that
follow the path (``implied-vol``, model v6: dealers hedging at the path's ATM implied vol over six
weeks, long enough for the quote's gap to roll off) and liquidations that feed the log variance back
(``liq-feedback`` and, without a vol of vol, ``feedback-only``: model v11). The reference gets
the same uniforms as the kernel (``draw_uniforms_nb``) and must give the same per-path summary,
flow decomposition and book events (ADL, partial liquidations) to 1e-9 (relative; absolute where
a value can be ~0) and the same float32 per-step records (price, open interest, liquidations, ATM
implied vol). Then: the
cases do run the mechanisms they are meant to, and a change of one part in a million in one
parameter of the reference is caught; the reference's log variance follows its stated law, and
without a vol of vol it changes nothing (without one, liquidations move it by the feedback
alone); with no stress and no momentum, the reference's closings
and arrivals balance; every path's implied vol starts at the quote and relaxes toward the model's
level, the kernel agrees at its floor and above the dealer table's top level, and the prepared
tables of model v6 (``F(h)``, the IV drivers, the dealers' hedge by ATM level) are the spec's. The
tests at the end pin kernel discrepancies the
reference found (netted bad debt, a side's scale reaching 0, ADL inside a round, extreme
initial margins), all fixed.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pytest

import engine
import reference
from compile_fixtures import RICH
from engine.compile import layout
from engine.compile.layout import BOOK_EVENT_FIELDS, Row
from engine.compile.layout import FLOW_FIELDS, SUMMARY_FIELDS
from engine.simulate import prepare

RTOL = 1e-9
F32_RTOL = 2.0**-22  # two float32 ulps: the kernel stores per-step values as float32

# ----------------------------------------------------------------------------- scenarios
_BASE = {
    "name": "reference-base",
    "seed": 11,
    "horizon": {"start": "2026-01-29T00:00:00Z", "duration": "3d", "step": "1h"},
    "market": {
        "spot_usd": "88.5k",
        # 0.36% of permanent move per 1B of net flow: cascades that run rounds, not away
        "impact": {"permanent_fraction": 0.005},
        "perpetuals": {
            "long": {"notional_usd": "38B"},
            "short": {"notional_usd": "23B"},
            "book_cells": 80,
        },
    },
}


def _merge(base: dict, patch: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# a take-profit sensitivity (0 by default) so that every term of the unwinding hazard acts
CALM = _merge(_BASE, {"name": "calm", "horizon": {"duration": "2d"},
                      "market": {"behaviour": {"deleveraging": {"take_profit_sensitivity": 2.0},
                                               "momentum": {"threshold": "0.3%"}}}})

CASCADE = _merge(_BASE, {
    "name": "cascade",
    "horizon": {"duration": "2d"},
    "market": {
        "volatility": {"annual": "60%", "tail_dof": 3},
        "impact": {"model": "sqrt", "daily_volume_usd": "15B", "permanent_fraction": "1%"},
        "perpetuals": {
            "long": {"notional_usd": "40B",
                     "leverage": {"distribution": "lognormal", "median": 25, "dispersion": 0.6, "min": 5,
                                  "max": 100},
                     "entry_price": {"distribution": "uniform", "low_usd": "86k", "high_usd": "90k"}},
            "short": {"notional_usd": "10B"},
            "book_cells": 240,
            "grid_span": 1.6,
            "insurance_fund_usd": "20M",
            # a flat venue (one row, no partial liquidation: the v2 book), whose fills 1% beyond the
            # triggers, past the 0.5% maintenance margin, make every liquidation leave bad debt, more
            # than the 20M fund can pay
            "maintenance_margin_rate": "0.5%",
            "initial_margin_rate": "1%",
            "liquidation": {"fill_slippage": "1%", "max_cascade_rounds": 40},
        },
    },
    "shocks": [{"type": "price_jump", "id": "drop", "start": "+6h", "size": "-3%", "spread": "1%"}],
})

# the same with a cap of 2 rounds: what still crosses waits for the next step
CASCADE_CAPPED = _merge(CASCADE, {"name": "cascade-capped",
                                  "market": {"perpetuals": {"liquidation": {"max_cascade_rounds": 2}}}})

MARGIN_HIKE = _merge(_BASE, {
    "name": "margin-hike",
    "market": {"perpetuals": {"venues": {"crypto_exchanges": "80%", "cross_margined": "20%"}}},
    "shocks": [
        {"type": "margin_hike", "id": "cme_schedule", "start": "+0h", "venues": ["cross_margined"],
         "contract_size_btc": 5, "top_up_fraction": "40%",
         "schedule": [{"initial_margin_usd_per_contract": "20k"},
                      {"at": "+14h", "initial_margin_usd_per_contract": "25k",
                       "maintenance_margin_usd_per_contract": "12k"},
                      {"at": "+1d14h", "initial_margin_usd_per_contract": "32.5k"},
                      {"at": "+2d2h", "initial_margin_rate": "11%"},
                      {"at": "+2d14h", "initial_margin_rate": "15%"}]},
        {"type": "margin_hike", "id": "crypto_follow", "start": "+2d2h", "venues": ["crypto_exchanges"],
         "maintenance_margin_rate": "1%", "initial_margin_rate": "4%", "top_up_fraction": "50%",
         "duration": "12h"},
    ],
})

EXCHANGE_FAILURE = _merge(_BASE, {
    "name": "exchange-failure",
    "horizon": {"duration": "12h", "step": "10m"},
    "market": {
        "impact": {"resilience_half_life": "30m"},
        "perpetuals": {"long": {"leverage": {"distribution": "lognormal", "median": 20, "dispersion": 0.7,
                                             "min": 2, "max": 100}},
                       "venues": {"failing": "30%", "others": "70%"}, "book_cells": 160, "grid_span": 3},
    },
    "shocks": [
        {"type": "price_jump", "id": "trigger", "start": "+1h", "size": "-3%", "spread": "1%"},
        {"type": "exchange_failure", "id": "failure", "start": "+1h", "ramp": "10m", "duration": "1h",
         "ramp_out": "1h", "venues": ["failing"], "depth_fraction": "5%", "market_makers_gone": True,
         "liquidation_fill_penalty": "4%", "circuit_breaker_move": "3%", "circuit_breaker_pause": "30m"},
    ],
})

RELIEF_RALLY = _merge(_BASE, {
    "name": "relief-rally",
    "market": {"perpetuals": {"short": {"notional_usd": "30B",
                                        "leverage": {"distribution": "lognormal", "median": 15, "dispersion": 0.6,
                                                     "min": 2, "max": 100}}},
               # momentum traders whose target the rally's move takes to their capital (model v7's cap)
               "behaviour": {"momentum": {"open_rate": 5, "holding_time": "12h", "capital": "0.5%"}}},
    "shocks": [{"type": "relief_rally", "id": "squeeze", "start": "+1d", "ramp": "2h", "duration": "10h",
                "ramp_out": "2h", "new_short_notional_usd": "3B", "short_leverage": 25, "macro_move": "6%",
                "momentum_buying_usd": "2B"}],
})

# the default margin tiers (Binance BTCUSDT: no flat rate is set) and a stated spread of position
# sizes, so that much of the book sits in the upper classes; a crash through their triggers
# liquidates them in part, down a class at a time, round after round
TIERED_CRASH = _merge(_BASE, {
    "name": "tiered-crash",
    "horizon": {"duration": "1d"},
    "market": {
        "perpetuals": {
            "long": {"notional_usd": "40B",
                     "leverage": {"distribution": "lognormal", "median": 15, "dispersion": 0.6, "min": 2,
                                  "max": 100}},
            "position_size": {"median_usd": "20M", "dispersion": 1.5},
            "book_cells": 160,
            "grid_span": 2,
        },
    },
    "shocks": [{"type": "price_jump", "id": "crash", "start": "+6h", "size": "-8%", "spread": "2%"}],
})

# bad debt far beyond a 5M fund on a venue with the Binance tiers (longs levered down to 1.5x, so
# that every class holds some), beside a flat one whose own fund pays all its bad debt: the
# shortfall is taken from the shorts of every class of the tiered venue, the most profitable and
# levered first, not pro rata (which shorts are left shows in the rally that follows). Its longs
# hold the same positions in several classes (one cell, one entry mix), which tie in exact
# arithmetic and not in float64: ranks are compared in single precision, so that such a group goes
# in row order here and in the kernel alike (at full precision a few paths in a hundred parted)
RANKED_ADL = _merge(CASCADE, {
    "name": "ranked-adl",
    "market": {
        "perpetuals": {
            "long": {"leverage": {"distribution": "lognormal", "median": 12, "dispersion": 0.8, "min": 1.5,
                                  "max": 100}},
            "short": {"notional_usd": "15B",
                      "leverage": {"distribution": "lognormal", "median": 10, "dispersion": 0.8, "min": 2,
                                   "max": 100},
                      "entry_price": {"distribution": "lognormal", "dispersion": "4%"}},
            "venues": {"tiered": {"share": "70%", "margin_tiers": "binance-btcusdt"},
                       "flat": {"share": "30%", "insurance_fund_usd": "10B"}},
            "insurance_fund_usd": "5M",
            "liquidation": {"fill_slippage": "1.5%"},
        },
    },
    # then a rally: the shorts ADL spared (the least profitable, opened low) are liquidated
    "shocks": CASCADE["shocks"] + [{"type": "relief_rally", "id": "rebound", "start": "+1d", "ramp": "2h",
                                    "duration": "8h", "ramp_out": "2h", "macro_move": "15%"}],
})

# conditional volatility (model v4) on the cascade (its Student-t innovations kept: h's shock is
# correlated with the normal score of the diffusion's uniform, not with the t draw): a vol of vol
# of 1.2 (the diffusion's scale typically within a factor 1.8 of its average), a half-life of 12
# steps and a leverage effect; its scheduled jump's spread comes after the clustering draw
CLUSTER = {"vol_of_vol": 1.2, "half_life": "12h", "leverage": -0.6}
CLUSTERING = _merge(CASCADE, {"name": "clustering", "market": {"volatility": {"clustering": CLUSTER}}})

# option vols that follow the path (model v6): six weeks of 6h steps (the quote's gap to the model's
# level rolls off with the 30-day tenor: e^-1.5 of it is left), dealers short a put and a call book
# they hedge at the path's ATM vol, the vol clustering (F(h) moves the model's level), a variance risk
# premium of its own, the spot-vol beta and an options-positioning shock that lifts the scheduled ATM
# vol (IV_SHIFT) for a while
IMPLIED_VOL = _merge(CALM, {
    "name": "implied-vol",
    "horizon": {"duration": "45d", "step": "6h"},
    "market": {
        "volatility": {"clustering": {"vol_of_vol": 1.0, "half_life": "3d", "leverage": -0.5}},
        "options": {"open_interest": [
            {"kind": "put", "strike_usd": "75k", "expiry": "2026-04-24T08:00:00Z", "size_btc": "40k"},
            {"kind": "call", "strike_usd": "105k", "expiry": "2026-04-24T08:00:00Z", "size_btc": "25k"}],
            "dealer_short_share": "70%", "atm_iv": "45%", "variance_risk_premium": 0.3, "spot_vol_beta": 0.6},
    },
    "shocks": [{"type": "options_positioning", "id": "vol_bid", "start": "+12d", "ramp": "1d", "duration": "6d",
                "ramp_out": "2d", "atm_iv": "75%"}],
})

# liquidations feed volatility back (model v11): the clustering case, whose cascades liquidate on
# every path (three quarters of the open interest at the first step), with a feedback of 20
# (liquidating 1% of the open interest in a step raises h by 0.2): on every path h is raised below the
# cap, raised to it, and left where the Ornstein-Uhlenbeck move put it above it
LIQ_FEEDBACK = _merge(CLUSTERING, {"name": "liq-feedback",
                                   "market": {"volatility": {"clustering": {"liquidation_feedback": 20}}}})
# the feedback alone: no vol of vol (s = 0), so h runs only for it: its start draw and u6 are made, h
# starts at 0, has no shock of its own and m = exp(h/2); a feedback of 5, which keeps h below the cap
FEEDBACK_ONLY = _merge(CASCADE, {"name": "feedback-only", "market": {"volatility": {
    "clustering": dict(CLUSTER, vol_of_vol=0, liquidation_feedback=5)}}})

SCENARIOS = {"calm": CALM, "cascade": CASCADE, "cascade-capped": CASCADE_CAPPED, "margin-hike": MARGIN_HIKE,
             "exchange-failure": EXCHANGE_FAILURE, "relief-rally": RELIEF_RALLY, "rich": RICH,
             "tiered-crash": TIERED_CRASH, "ranked-adl": RANKED_ADL, "clustering": CLUSTERING,
             "implied-vol": IMPLIED_VOL, "liq-feedback": LIQ_FEEDBACK, "feedback-only": FEEDBACK_ONLY}
N_PATHS = {"rich": 6, "ranked-adl": 16}  # 4 for the others; ranked ADL's near-ties need more paths


# ----------------------------------------------------------------------------- runs
@dataclass
class Case:
    compiled: object
    kernel: object  # SimulationResult
    refs: list  # reference.PathResult per path


_CASES: dict = {}


def _case(name: str) -> Case:
    if name not in _CASES:
        compiled = engine.compile_scenario(engine.load_scenario(SCENARIOS[name]), n_paths=N_PATHS.get(name, 4))
        kernel = engine.run(compiled, keep_steps=True)
        _CASES[name] = Case(compiled, kernel, _reference_paths(compiled, compiled.n_paths))
    return _CASES[name]


def _reference_paths(compiled, n_paths: int) -> list:
    prep = prepare(compiled)
    return [reference.simulate_path(prep, reference.path_uniforms(compiled, i)) for i in range(n_paths)]


@pytest.fixture(params=list(SCENARIOS), scope="module")
def case(request) -> Case:
    return _case(request.param)


# ----------------------------------------------------------------------------- comparison
# summary fields that are sums of a per-step flow: their rounding grows with the flow's magnitude
_SUMMED_FLOW = {"etf_flow_usd": "etf", "etf_reflexive_usd": "etf", "miner_sales_usd": "miners",
                "dealer_flow_usd": "dealers", "deleveraging_flow_usd": "deleveraging",
                "momentum_flow_usd": "momentum", "new_positions_flow_usd": "new_positions",
                "margin_cut_usd": "margin_cuts", "forced_flow_usd": "forced"}
_EXACT = {"trough_step", "max_cascade_rounds", "paused_steps"}
_PRICES = {"min_price", "max_price", "terminal_price"}
# bad debt and surpluses are counted position by position (cell by cell), never netted
_NETTED = {"bad_debt_usd", "liquidation_surplus_usd"}


def _usd_atol(compiled) -> float:
    """Absolute tolerance of USD values that can be ~0: 1e-12 of the book's open interest."""
    return 1e-12 * (compiled.book_long_btc.sum() + compiled.book_short_btc.sum()) * compiled.param("SPOT0")


def _check(label, kernel, ref, rtol, atol):
    kernel, ref = np.asarray(kernel, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    bad = ~np.isclose(kernel, ref, rtol=rtol, atol=atol)
    if bad.any():
        i = np.flatnonzero(bad.ravel())[0]
        raise AssertionError(f"{label}: {bad.sum()} of {bad.size} differ; first at {np.unravel_index(i, bad.shape)}: "
                             f"kernel {kernel.ravel()[i]!r}, reference {ref.ravel()[i]!r}")


def _check_trough_step(kernel, refs) -> None:
    """The step of the lowest price, exactly (a step with no bridge variance has its open or its
    close as its low, exactly, in both; the first of two equal lows counts)."""
    kernel = np.asarray(kernel, dtype=np.float64)
    for i, ref in enumerate(refs):
        if int(kernel[i]) != ref.summary["trough_step"]:
            raise AssertionError(f"trough_step: path {i}: kernel {int(kernel[i])}, reference "
                                 f"{ref.summary['trough_step']:g}")


def compare_summary(case: Case, refs=None) -> None:
    refs = case.refs if refs is None else refs
    summary = case.kernel.per_path
    usd = _usd_atol(case.compiled)
    ref = {f: np.array([r.summary[f] for r in refs]) for f in SUMMARY_FIELDS}
    for field in SUMMARY_FIELDS:
        if field == "trough_step":
            _check_trough_step(summary[field], refs)
        elif field in _EXACT:
            _check(field, summary[field], ref[field], 0.0, 0.0)
        elif field in _SUMMED_FLOW:
            flow = _SUMMED_FLOW[field]
            scale = np.array([np.abs(r.flows[flow]).sum() for r in refs])
            _check(field, summary[field], ref[field], RTOL, RTOL * scale + usd)
        elif field in _PRICES:
            _check(field, summary[field], ref[field], RTOL, 0.0)
        elif field.endswith("funding_rate"):
            _check(field, summary[field], ref[field], RTOL, RTOL * case.compiled.param("FUNDING_CAP"))
        elif field == "max_drawdown":
            _check(field, summary[field], ref[field], RTOL, 1e-15)
        else:
            _check(field, summary[field], ref[field], RTOL, usd)
    net_kernel = summary["liquidation_surplus_usd"] - summary["bad_debt_usd"]
    net_ref = ref["liquidation_surplus_usd"] - ref["bad_debt_usd"]
    gross = ref["liquidation_surplus_usd"] + ref["bad_debt_usd"]
    _check("liquidation_surplus_usd - bad_debt_usd", net_kernel, net_ref, RTOL, RTOL * gross + usd)


def compare_steps(case: Case, refs=None) -> None:
    refs = case.refs if refs is None else refs
    raw = case.kernel._raw  # the per-path, per-step arrays (float32) engine.run kept
    usd = _usd_atol(case.compiled)
    for key, atol in (("price", 0.0), ("open_interest", usd), ("liq_long", usd), ("liq_short", usd),
                      ("atm_iv", 0.0)):
        ref32 = np.array([getattr(r, key) for r in refs]).astype(np.float32)
        _check(f"per-step {key}", raw[key], ref32, F32_RTOL, atol)


def compare_flows(case: Case, refs=None) -> None:
    refs = case.refs if refs is None else refs
    kernel_sum = case.kernel.flows.to_numpy() * case.kernel.n_paths
    for j, field in enumerate(FLOW_FIELDS):
        per_path = np.array([r.flows[field] for r in refs])
        _check(f"flows.{field}", kernel_sum[:, j], per_path.sum(axis=0), RTOL,
               RTOL * np.abs(per_path).sum(axis=0) + _usd_atol(case.compiled))


def compare_book_events(case: Case, refs=None) -> None:
    """ADL and partial liquidations per step (sums over paths), like the flows."""
    refs = case.refs if refs is None else refs
    kernel_sum = case.kernel.book_events.to_numpy() * case.kernel.n_paths
    for j, field in enumerate(BOOK_EVENT_FIELDS):
        per_path = np.array([r.book_events[field] for r in refs])
        _check(f"book_events.{field}", kernel_sum[:, j], per_path.sum(axis=0), RTOL,
               RTOL * np.abs(per_path).sum(axis=0) + _usd_atol(case.compiled))


def compare_all(case: Case, refs=None) -> None:
    compare_summary(case, refs)
    compare_steps(case, refs)
    compare_flows(case, refs)
    compare_book_events(case, refs)


# ----------------------------------------------------------------------------- tests
@pytest.mark.slow
def test_summary_matches_the_reference(case):
    compare_summary(case)


def test_per_step_records_match_the_reference(case):
    compare_steps(case)


def test_flow_decomposition_matches_the_reference(case):
    compare_flows(case)


def test_book_events_match_the_reference(case):
    compare_book_events(case)


def test_book_events_add_up_to_the_summary(case):
    """The per-step ADL and partial liquidations are the steps' shares of the summary's totals."""
    for ref in case.refs:
        for event, field in (("adl", "adl_usd"), ("partial_liquidations", "partial_liquidations_usd")):
            total = ref.summary[field]
            assert sum(ref.book_events[event]) == pytest.approx(total, rel=1e-12, abs=_usd_atol(case.compiled))


def test_the_cascade_case_runs_multi_round_cascades_with_adl():
    """The comparison exercises the cascade loop: three or more rounds in a step, a step of two or
    more on every path, and bad debt beyond the insurance fund left to auto-deleveraging."""
    case = _case("cascade")
    per_path = case.kernel.per_path
    assert per_path["max_cascade_rounds"].max() >= 3
    assert all(max(ref.rounds) >= 2 for ref in case.refs)
    adl = per_path["adl_usd"] > 0
    assert adl.any() and (per_path["insurance_fund_end_usd"][adl] == 0).all()


def _venue_steps(case, name):
    return case.compiled.venue_steps[getattr(layout.Venue, name)]


def _rows_of(case, venue: int) -> int:
    return int((case.compiled.book_rows[:, Row.VENUE] == venue).sum())


# what each case is for: the mechanism must run, else its comparison proves little
_EXERCISED = {
    "calm": lambda case, pp: (pp["momentum_flow_usd"] != 0).all() and (pp["deleveraging_flow_usd"] != 0).all()
    and (pp["new_positions_flow_usd"] != 0).all() and case.compiled.param("DELEV_TAKE_PROFIT") > 0
    and _take_profit_acts(case)
    and not case.compiled.step("SCHEDULED_JUMP").any() and not _venue_steps(case, "MARGIN_CHANGE").any(),
    "cascade": lambda case, pp: (pp["max_cascade_rounds"] >= 3).any() and (pp["bad_debt_usd"] > 0).all(),
    "cascade-capped": lambda case, pp: (pp["max_cascade_rounds"] == 2).any() and (pp["max_cascade_rounds"] <= 2).all(),
    "margin-hike": lambda case, pp: (pp["margin_cut_usd"] != 0).all()
    and _venue_steps(case, "IM_USD_PER_BTC").any() and _venue_steps(case, "MM_USD_PER_BTC").any(),
    "exchange-failure": lambda case, pp: (pp["paused_steps"] > 0).any()
    and _venue_steps(case, "LIQ_FILL_PENALTY").max() > 0.03,
    "relief-rally": lambda case, pp: (pp["short_liquidations_usd"] > 1e9).any()
    and case.compiled.step("NEW_SHORT_NOTIONAL_USD").any(),
    # margin cuts on most paths, not all: RICH's liquidation feedback (model v11) can wipe a path's
    # over-levered positions out before the hikes reach them
    "rich": lambda case, pp: (pp["margin_cut_usd"] != 0).mean() > 0.5 and (pp["dealer_flow_usd"] != 0).all()
    and (pp["miner_sales_usd"] < 0).all() and (pp["short_liquidations_usd"] > 0).any(),
    "tiered-crash": lambda case, pp: (pp["partial_liquidations_usd"] > 0).any()
    and (pp["max_cascade_rounds"] >= 2).any() and _rows_of(case, 0) > 2
    and not _venue_steps(case, "MARGIN_CHANGE").any(),
    "ranked-adl": lambda case, pp: (pp["adl_usd"] > 0).any() and _rows_of(case, 0) > 1 and _rows_of(case, 1) == 1,
    # the diffusion's scale m (the reference's, which the kernel's prices match) ranges over more
    # than a factor 4, and the cascades still run
    "clustering": lambda case, pp: case.compiled.param("CLUSTER_STDEV") > 0
    and _vol_range(case) > 4.0 and (pp["max_cascade_rounds"] >= 3).any(),
    # dealers trade on every path; the quote's gap has mostly rolled off; the path's ATM vol (the
    # reference's) spreads over the paths and moves with the shock, never at the floor
    "implied-vol": lambda case, pp: (pp["dealer_flow_usd"] != 0).all() and case.compiled.param("CLUSTER_STDEV") > 0
    and case.compiled.param("IV_VRP") == 0.3 and np.ptp(case.compiled.step("ATM_IV")) > 0.25
    and math.exp(-case.compiled.n_steps * case.compiled.param("DT_YEARS") / reference.IV_TENOR) < 0.25
    and _iv_range(case) > 1.5 and min(min(ref.atm_iv) for ref in case.refs) > reference.IV_FLOOR,
    # model v11: the feedback changes every path's m (the reference's without it differs) and the
    # cascades still run; with a vol of vol, every path takes all three ways of the cap; without one
    # h moves only by the feedback (m >= 1, above 2 on some path), never to the cap
    "liq-feedback": lambda case, pp: case.compiled.param("CLUSTER_STDEV") > 0
    and case.compiled.param("LIQ_FEEDBACK") == 20 and _feedback_acts(case) and (pp["max_cascade_rounds"] >= 3).any()
    and all(min(ways.values()) > 0 for ways in _feedback_ways(case)),
    "feedback-only": lambda case, pp: case.compiled.param("CLUSTER_STDEV") == 0
    and case.compiled.param("CLUSTER_SHOCK") == 0 and case.compiled.param("LIQ_FEEDBACK") == 5
    and _feedback_acts(case) and min(min(ref.vol_multiplier) for ref in case.refs) >= 1.0 and _vol_range(case) > 2.0
    and (pp["max_cascade_rounds"] >= 3).any()
    and all(ways["below"] > 0 and ways["capped"] == ways["above"] == 0 for ways in _feedback_ways(case)),
}


def _feedback_acts(case) -> bool:
    """Every path's diffusion scale ``m`` (the reference's) differs from the one without the feedback."""
    refs = _reference_with(case, LIQ_FEEDBACK=0.0)
    return all(a.vol_multiplier != b.vol_multiplier for a, b in zip(refs, case.refs))


def _feedback_ways(case) -> list:
    """Per path of the reference, its steps that liquidate (model v11) by the way the feedback went:
    ``below`` the cap, ``capped`` (the rise would have passed it), ``above`` (the Ornstein-Uhlenbeck
    move had already put ``h`` at it or above: left as it is)."""
    prep, cap, eta = prepare(case.compiled), reference.LIQ_FEEDBACK_H_MAX, case.compiled.param("LIQ_FEEDBACK")
    out = []
    for i in range(len(case.refs)):
        path, ways = reference._Path(prep), {"below": 0, "capped": 0, "above": 0}

        def feedback(liquidated, open_interest, path=path, ways=ways):
            if liquidated > 0.0 and open_interest > 0.0:
                rise = eta * liquidated / open_interest
                ways["above" if path.h >= cap else "capped" if path.h + rise > cap else "below"] += 1
            reference._Path.liquidation_feedback(path, liquidated, open_interest)

        path.liquidation_feedback = feedback
        u = reference.path_uniforms(case.compiled, i)
        for t in range(path.n_steps):
            path.step(t, [float(x) for x in u[t]])
        assert path.finish().vol_multiplier == case.refs[i].vol_multiplier
        out.append(ways)
    return out


def _take_profit_acts(case) -> bool:
    """Every path of the case has steps where the price is off its average entry (one side's
    take-profit term is then on): the reference's path without take-profit differs from it."""
    refs = _reference_with(case, DELEV_TAKE_PROFIT=0.0)
    return all(a.flows["deleveraging"] != b.flows["deleveraging"] for a, b in zip(refs, case.refs))


def _vol_range(case) -> float:
    """The largest over the smallest diffusion scale ``m`` the reference applied, over the case's paths."""
    m = np.concatenate([ref.vol_multiplier for ref in case.refs])
    return float(m.max() / m.min())


def _iv_range(case) -> float:
    """The highest over the lowest ATM implied vol of the reference, over the case's paths and steps."""
    iv = np.concatenate([ref.atm_iv for ref in case.refs])
    return float(iv.max() / iv.min())


def test_each_case_exercises_its_mechanism(case):
    assert _EXERCISED[case.compiled.name](case, case.kernel.per_path)


def _reference_with(case: Case, **params) -> list:
    """The reference run on the case's paths with some parameters (or venue fields, every venue)
    changed; the kernel's are not."""
    values = case.compiled.params.copy()
    venue_steps = case.compiled.venue_steps.copy()
    for name, factor in params.items():
        if name in layout.VENUE_FIELDS:
            venue_steps[getattr(layout.Venue, name)] *= factor
        else:
            values[getattr(layout.Param, name)] *= factor
    return _reference_paths(dataclasses.replace(case.compiled, params=values, venue_steps=venue_steps), len(case.refs))


@pytest.mark.slow
@pytest.mark.parametrize(("name", "parameter"), [
    ("cascade", "PERMANENT_FRACTION"),
    ("cascade", "INSURANCE_FUND_USD"),
    ("rich", "FUNDING_SENSITIVITY"),
    ("rich", "MINER_SELL_SENSITIVITY"),
    ("calm", "MOMENTUM_RATE"),
    ("calm", "DELEV_TAKE_PROFIT"),
    ("calm", "DELEV_BASE"),
    ("calm", "MOMENTUM_THRESHOLD"),
    ("margin-hike", "DELEV_DRAWDOWN"),
    ("tiered-crash", "LIQ_FILL_PENALTY"),
    ("ranked-adl", "INSURANCE_FUND_USD"),
    ("clustering", "CLUSTER_SHOCK"),
    ("clustering", "CLUSTER_RHO"),
    ("rich", "IV_VRP"),
    ("implied-vol", "IV_VRP"),
    ("implied-vol", "SURFACE_SPOT_VOL_BETA"),
    ("liq-feedback", "LIQ_FEEDBACK"),
    ("feedback-only", "LIQ_FEEDBACK"),
])
def test_the_comparison_catches_a_parameter_off_by_one_in_a_million(name, parameter):
    case = _case(name)
    with pytest.raises(AssertionError):
        compare_all(case, _reference_with(case, **{parameter: 1.0 + 1e-6}))


def test_each_comparison_catches_a_small_change_on_its_own():
    case = _case("rich")
    refs = _reference_with(case, PERMANENT_FRACTION=1.001)
    for compare in (compare_summary, compare_steps, compare_flows):
        with pytest.raises(AssertionError):
            compare(case, refs)
    case = _case("tiered-crash")
    with pytest.raises(AssertionError):
        compare_book_events(case, _reference_with(case, PERMANENT_FRACTION=1.001))


def test_the_comparison_catches_a_cascade_cut_short():
    case = _case("cascade")
    with pytest.raises(AssertionError):
        compare_summary(case, _reference_with(case, MAX_CASCADE_ROUNDS=2 / case.compiled.param("MAX_CASCADE_ROUNDS")))


def test_reference_inverse_normal_is_acklams_approximation():
    from scipy.special import ndtri

    p = np.concatenate([np.logspace(-15, -1, 200), np.linspace(0.001, 0.999, 999), 1 - np.logspace(-9, -1, 200)])
    exact = ndtri(p)
    approx = np.array([reference.inverse_normal_cdf(x) for x in p])
    away_from_zero = np.abs(exact) > 1e-3
    assert np.max(np.abs(approx - exact)[away_from_zero] / np.abs(exact[away_from_zero])) < 1.2e-9
    assert np.max(np.abs(approx - exact)) < 1e-8


def test_reference_puts_a_long_that_cannot_go_bankrupt_in_the_lowest_cell():
    """At 1x or less (an initial margin of 100% caps new positions there) a long's bankruptcy
    price is <= 0: the reference files it in the grid's lowest cell."""
    grid = _case("calm").compiled.book_bankruptcy_usd
    zeros = np.zeros((1, grid.size))
    book = reference.Book(grid, [reference.BookRow(0, 0.0, 0.0, 1.0, -1, 0.0)], zeros, zeros, zeros, zeros)
    book.deposit(reference.LONG, 0, reference.log_bankruptcy(np.log(88_500.0), -1.0, 0.999), 2.0, 2.0 * 88_500.0)
    assert book.cells[reference.LONG][0][0] == 2.0 and book.size(reference.LONG) == 2.0
    assert book.entry_price[reference.LONG][0][0] == 88_500.0


def test_reference_adl_score_ranks_profit_times_leverage():
    """Longs at a price of 100k: entered at 95k with bankruptcy 90k (return on margin 1, 10x)
    scores 10, above the same entry with bankruptcy 80k (1/3, 5x); a position at a loss scores its
    return divided by its leverage, below every one in profit."""
    score = reference.adl_score
    levered = score(reference.LONG, 100_000.0, 95_000.0, 90_000.0)  # roe 1, lev 10
    less = score(reference.LONG, 100_000.0, 95_000.0, 80_000.0)  # roe 1/3, lev 5
    loser = score(reference.LONG, 100_000.0, 105_000.0, 90_000.0)  # roe -1/3, lev 10
    assert levered == pytest.approx(10.0) and less == pytest.approx(5.0 / 3.0) and loser == pytest.approx(-1.0 / 30.0)
    assert score(reference.SHORT, 100_000.0, 105_000.0, 110_000.0) == pytest.approx(10.0)  # the mirror image


def test_the_comparison_catches_a_partial_liquidation_keeping_a_millionth_more():
    """The reference with every KEEP one part in a million larger: partial liquidations close a
    little less, which the summary and the book events both see."""
    case = _case("tiered-crash")
    rows = case.compiled.book_rows.copy()
    rows[:, Row.KEEP] *= 1.0 + 1e-6
    refs = _reference_paths(dataclasses.replace(case.compiled, book_rows=rows), len(case.refs))
    for compare in (compare_summary, compare_book_events):
        with pytest.raises(AssertionError):
            compare(case, refs)


def test_the_comparison_catches_pro_rata_adl(monkeypatch):
    """The ranked-adl case tells ranked ADL from pro rata: a reference that shrinks every short of
    the venue by the same share (the v2 rule) disagrees with the kernel."""

    def pro_rata(self, side, venue, usd):
        rows = self.book.rows_of(venue)
        notional = sum(sum(self.book.cells[side][r]) for r in rows) * self.price
        keep = max(0.0, 1.0 - usd / notional) if notional > 0.0 else 1.0
        for r in rows:
            for c in range(len(self.book.cells[side][r])):
                self.book.cells[side][r][c] *= keep

    case = _case("ranked-adl")
    monkeypatch.setattr(reference._Path, "auto_deleverage", pro_rata)
    with pytest.raises(AssertionError):
        compare_all(case, _reference_paths(case.compiled, len(case.refs)))


# ----------------------------------------------------------------------------- turnover (model v5)
def test_reference_closings_and_arrivals_balance_without_stress():
    """With no stop-loss, take-profit, volatility or funding hazard and no momentum traders, each
    side closes ``lam*dt`` of itself and ``lam*dt`` of its starting size arrives: at the first step,
    the book at its starting size, the deleveraging and new-positions flows cancel (in exact
    arithmetic: ``-lam*dt*(L0 - S0)*S + lam*dt*(L0 - S0)*S``); at every step they add up to ``lam*dt*S``
    times what the sides lack of their starting sizes (liquidations shrink them), 0 on a full book."""
    case = _case("calm")
    compiled = case.compiled
    values = compiled.params.copy()
    for name in ("DELEV_DRAWDOWN", "DELEV_TAKE_PROFIT", "DELEV_VOLATILITY", "DELEV_FUNDING", "MOMENTUM_RATE"):
        values[getattr(layout.Param, name)] = 0.0
    prep = prepare(dataclasses.replace(compiled, params=values))
    lam_dt = compiled.param("DELEV_BASE") * compiled.param("DT_YEARS") * 365.25
    long0, short0 = compiled.book_long_btc.sum(), compiled.book_short_btc.sum()
    assert lam_dt > 0.0 and long0 != short0
    for i in range(compiled.n_paths):
        path = reference._Path(prep)
        u = reference.path_uniforms(compiled, i)
        for t in range(path.n_steps):
            lacking = (long0 - path.book.size(reference.LONG)) - (short0 - path.book.size(reference.SHORT))
            s = path.price
            path.step(t, [float(x) for x in u[t]])
            delev, arrivals = path.out.flows["deleveraging"][t], path.out.flows["new_positions"][t]
            assert path.out.flows["momentum"][t] == 0.0
            assert arrivals == pytest.approx(lam_dt * (long0 - short0) * s, rel=1e-12)
            if t == 0:
                assert abs(delev + arrivals) <= 1e-12 * abs(arrivals)
            assert delev + arrivals == pytest.approx(lam_dt * lacking * s, abs=1e-12 * abs(arrivals))
        assert sum(path.out.liq_long) + sum(path.out.liq_short) > 0  # the book did not stay full


# ----------------------------------------------------------------------------- conditional volatility
def test_without_vol_of_vol_clustering_is_model_v3():
    """A ``clustering`` block with ``vol_of_vol: 0`` (its other keys set) draws nothing more and
    changes nothing: the uniforms, the reference's paths and the kernel's are the cascade case's,
    exactly."""
    cascade = _case("cascade")
    data = _merge(CASCADE, {"market": {"volatility": {"clustering": dict(CLUSTER, vol_of_vol=0)}}})
    compiled = engine.compile_scenario(engine.load_scenario(data), n_paths=cascade.compiled.n_paths)
    assert compiled.param("CLUSTER_STDEV") == 0.0 and compiled.param("CLUSTER_RHO") == -0.6
    for i in range(compiled.n_paths):
        u = reference.path_uniforms(compiled, i)
        np.testing.assert_array_equal(u, reference.path_uniforms(cascade.compiled, i))
        assert np.isnan(u[:, 6:8]).all() and np.isnan(u[:, 10:]).all()
    refs = _reference_paths(compiled, compiled.n_paths)
    for ref, before in zip(refs, cascade.refs):
        assert ref.summary == before.summary and ref.price == before.price and ref.low == before.low
        assert ref.vol_multiplier == [1.0] * compiled.n_steps
    kernel = engine.run(compiled, keep_steps=True)
    for field in SUMMARY_FIELDS:
        np.testing.assert_array_equal(kernel.per_path[field], cascade.kernel.per_path[field], err_msg=field)
    np.testing.assert_array_equal(kernel._raw["price"], cascade.kernel._raw["price"])


def test_reference_log_variance_is_stationary_with_its_half_life():
    """The reference's ``h`` (its start and its step, on uniforms of its own) against the spec's
    law: stationary ``N(0, s^2)`` from the first step, a correlation of 1/2 one half-life (12 steps)
    apart, shocks correlated ``rho`` with the diffusion's normal score, and ``E[m^2] = 1`` (the
    scenario's variance on average). 4000 paths of 25 steps, each ``h`` from its stationary law:
    the tolerances are about 4 standard errors."""
    case = _case("clustering")
    s, rho = CLUSTER["vol_of_vol"], CLUSTER["leverage"]
    path = reference._Path(prepare(case.compiled))
    rng = np.random.default_rng(5)
    n_paths, n_steps, lag = 4000, 25, 12
    h, m = np.empty((n_paths, n_steps)), np.empty((n_paths, n_steps))
    x, shock = np.empty((n_paths, n_steps - 1)), np.empty((n_paths, n_steps - 1))
    for i in range(n_paths):
        u = rng.random((n_steps, 12))
        path.start_regime(u[0, 10])
        for t in range(n_steps):
            h[i, t], m[i, t] = path.h, path.vol_multiplier()
            if t < n_steps - 1:
                path.evolve_volatility(u[t])
                x[i, t] = reference.standard_normal(path.prep, u[t, 0])
                shock[i, t] = path.h - case.compiled.param("CLUSTER_PERSIST") * h[i, t]
    assert np.allclose(m, np.exp(h / 2 - s * s / 4), rtol=1e-15, atol=0)
    assert abs(h.mean()) < 0.06 and np.std(h[:, 0]) == pytest.approx(s, rel=0.05)
    assert np.std(h[:, -1]) == pytest.approx(s, rel=0.05)  # still stationary 24 steps on
    assert np.corrcoef(h[:, 0], h[:, lag])[0, 1] == pytest.approx(0.5, abs=0.06)
    assert np.corrcoef(x.ravel(), shock.ravel())[0, 1] == pytest.approx(rho, abs=0.01)
    assert (m[:, 0] ** 2).mean() == pytest.approx(1.0, abs=0.12)
    assert (m ** 2).mean() == pytest.approx(1.0, abs=0.1)


def test_reference_replay_evolves_the_log_variance_as_the_simulation_does():
    """Replaying its own path 0, the reference's ``h`` (hence ``m``) follows the same course: the
    draws are made and the log variance moves on, though the observed close replaces the move."""
    case = _case("clustering")
    sim = case.refs[0]
    prep = prepare(case.compiled)
    ref = reference.simulate_path(prep, reference.path_uniforms(case.compiled, 0), replay=np.log(sim.price))
    assert ref.vol_multiplier == sim.vol_multiplier and len(set(sim.vol_multiplier)) == case.compiled.n_steps
    assert np.allclose(ref.price, sim.price, rtol=1e-14, atol=0)


# ----------------------------------------------------------------------------- liquidation feedback (model v11)
@pytest.mark.parametrize("eta", [5.0, 20.0])
def test_reference_liquidations_raise_the_log_variance(eta):
    """Without a vol of vol ``h`` moves only by the decay and the feedback: it starts at 0 (``u10``
    drawn all the same, and ``u6`` at every step), ``m = exp(h/2)``, and from one step to the next
    ``h <- min(CLUSTER_PERSIST*h + eta*L/OI, 2 ln 10)`` (``h`` never starts a step above the cap,
    so the Ornstein-Uhlenbeck move, a decay here, cannot put it there), ``L`` the step's recorded
    liquidations and ``OI`` the open interest at its open: the previous step's recorded one (the
    book at its close, priced at the close that is this step's open; the start's before the first
    step). No margin change moves the book in between. A feedback of 5 stays below the cap, one of
    20 reaches it."""
    case = _case("feedback-only")
    compiled = case.compiled
    values = compiled.params.copy()
    values[layout.Param.LIQ_FEEDBACK] = eta
    compiled = dataclasses.replace(compiled, params=values)
    refs = case.refs if eta == case.compiled.param("LIQ_FEEDBACK") else _reference_paths(compiled, len(case.refs))
    persist, cap = compiled.param("CLUSTER_PERSIST"), 2.0 * math.log(10.0)
    assert not _venue_steps(case, "MARGIN_CHANGE").any() and 0.0 < persist < 1.0
    quiet = capped = 0
    for i, ref in enumerate(refs):
        u = reference.path_uniforms(compiled, i)
        assert not np.isnan(u[:, 6]).any() and not np.isnan(u[0, 10])
        h = 2.0 * np.log(ref.vol_multiplier)
        assert ref.vol_multiplier[0] == 1.0
        liquidated = np.array(ref.liq_long) + np.array(ref.liq_short)
        open_interest = np.array([ref.summary["open_interest_start_usd"]] + ref.open_interest[:-1])
        rise = persist * h[:-1] + eta * liquidated[:-1] / open_interest[:-1]
        np.testing.assert_allclose(h[1:], np.minimum(rise, cap), rtol=1e-12, atol=1e-14)
        quiet += int((liquidated[:-1] == 0).sum())
        capped += int((rise > cap).sum())
    assert quiet > 0  # steps without liquidations: h only decays
    assert (capped > 0) == (eta == 20.0)


def test_the_comparison_catches_the_feedback_on_the_closing_open_interest(monkeypatch):
    """A reference dividing the step's liquidations by the open interest at the step's close (after
    its flows and liquidations) instead of its open disagrees with the kernel, with or without a
    vol of vol."""
    feedback = reference._Path.liquidation_feedback

    def at_close(self, liquidated, open_interest):
        feedback(self, liquidated, self.book.open_interest_btc() * self.price)

    monkeypatch.setattr(reference._Path, "liquidation_feedback", at_close)
    for name in ("liq-feedback", "feedback-only"):
        case = _case(name)
        with pytest.raises(AssertionError):
            compare_all(case, _reference_paths(case.compiled, len(case.refs)))


# ----------------------------------------------------------------------------- option vols that follow the path
# model v6: constant diffusion, jumps and quote, no clustering, no shock, daily steps over four months:
# the quote's gap to the model's level rolls off (e^-4 of it is left)
IV_RELAX = _merge(_BASE, {
    "name": "iv-relax",
    "horizon": {"duration": "120d", "step": "1d"},
    "market": {"volatility": {"jumps": {"intensity_per_day": 0.1, "mean": "-3%", "stdev": "4%"}},
               "options": {"atm_iv": "45%", "variance_risk_premium": 0.25, "spot_vol_beta": 0.4}},
})


def _model_iv(compiled, t: int, factor: float = 1.0) -> float:
    """The spec's ``(1 + VRP)*sqrt(D_t*F + J_t)``, from the compiled arrays."""
    p, step, dt = compiled.param, compiled.step, compiled.param("DT_YEARS")
    diffusion = (step("VOL")[t] ** 2 + (step("MACRO_BETA")[t] * step("MACRO_VOL")[t]) ** 2) / dt
    jumps = step("JUMP_PROB")[t] * (p("JUMP_MEAN") ** 2 + p("JUMP_STDEV") ** 2) / dt
    return (1.0 + p("IV_VRP")) * math.sqrt(diffusion * factor + jumps)


def test_every_path_starts_at_the_quoted_atm_iv():
    """Every path's implied vol starts at ``ATM_IV_0`` whatever its starting regime: the gap is the
    quote less the model's level at the path's own ``h0``. The starting hedge and the first step's
    target are both read there (at spot), so the dealers do not trade at the first step."""
    for name in ("rich", "clustering", "implied-vol"):
        case = _case(name)
        compiled = case.compiled
        prep = prepare(compiled)
        atm0, s = compiled.step("ATM_IV")[0], compiled.param("CLUSTER_STDEV")
        decay = math.exp(-compiled.param("DT_YEARS") / reference.IV_TENOR)
        gaps = []
        for i in range(compiled.n_paths):
            u = reference.path_uniforms(compiled, i)
            path = reference._Path(prep)
            assert path.iv == atm0
            assert path.hedge == reference.dealer_hedge(prep, 0, math.log(compiled.param("SPOT0")), atm0)
            path.step(0, [float(x) for x in u[0]])
            h0 = s * reference.standard_normal(prep, u[0, 10])
            gap = atm0 - _model_iv(compiled, 0, reference.forward_variance_factor(prep, h0))
            assert path.iv_gap == pytest.approx(gap * decay, rel=1e-14, abs=1e-15)
            assert path.out.flows["dealers"][0] == 0.0
            gaps.append(gap)
        assert len(set(gaps)) == compiled.n_paths  # each path its own regime, its own gap
        assert case.kernel.flows["dealers"].iloc[0] == 0.0


def test_implied_vol_relaxes_toward_the_models_level():
    """With no clustering and no shock the model's level is the constant ``(1 + VRP)*sqrt(D + J)``:
    net of the spot-vol beta on the return since the start, the path's ATM vol is that level plus
    the quote's gap rolled off over the tenor, ``gap*exp(-(t + 1)*dt/T)``, on every path; the kernel's
    agrees."""
    compiled = engine.compile_scenario(engine.load_scenario(IV_RELAX), n_paths=2)
    assert compiled.param("CLUSTER_STDEV") == 0.0 and compiled.param("JUMP_STDEV") > 0.0
    for name in ("VOL", "MACRO_VOL", "MACRO_BETA", "JUMP_PROB", "ATM_IV"):
        assert np.ptp(compiled.step(name)) == 0.0, name
    atm0, beta = compiled.step("ATM_IV")[0], compiled.param("SURFACE_SPOT_VOL_BETA")
    target = _model_iv(compiled, 0)
    gap = atm0 - target
    assert abs(gap) > 0.2 and beta > 0.0
    t = np.arange(compiled.n_steps)
    rolled = gap * np.exp(-(t + 1) * compiled.param("DT_YEARS") / reference.IV_TENOR)
    assert abs(rolled[-1]) < 0.02 * abs(gap)
    refs = _reference_paths(compiled, compiled.n_paths)
    for ref in refs:
        iv = np.array(ref.atm_iv)
        assert iv.min() > reference.IV_FLOOR
        net = iv + beta * (np.log(ref.price) - math.log(compiled.param("SPOT0")))
        np.testing.assert_allclose(net, target + rolled, rtol=1e-12, atol=0)
        assert abs(net[-1] - target) < 0.02 * abs(gap)
    compare_all(Case(compiled, engine.run(compiled, keep_steps=True), refs))


_OPTION_BOOK = [{"kind": "put", "strike_usd": "80k", "expiry": "2026-02-27T08:00:00Z", "size_btc": "30k"},
                {"kind": "call", "strike_usd": "95k", "expiry": "2026-02-27T08:00:00Z", "size_btc": "20k"}]
# the ends of the path's ATM vol: a calm market priced at half its vol (VRP -0.5) whose vol falls as
# the price rises (spot-vol beta 3): floored at 0.05 on some steps, not on others; a wild one quoted
# above the dealer table's highest level (4), read there
IV_ENDS = {
    "floor": _merge(_BASE, {"name": "iv-floor", "market": {
        "volatility": {"annual": "8%", "jumps": {"intensity_per_day": 0.0}}, "macro": {"annual_vol": "1%"},
        "options": {"open_interest": _OPTION_BOOK, "atm_iv": "6%", "variance_risk_premium": -0.5,
                    "spot_vol_beta": 3.0}}}),
    "ceiling": _merge(_BASE, {"name": "iv-ceiling", "market": {
        "volatility": {"annual": "150%"},
        "options": {"open_interest": _OPTION_BOOK, "atm_iv": "480%", "variance_risk_premium": 2.0}}}),
}


@pytest.mark.parametrize("end", list(IV_ENDS))
def test_kernel_matches_the_reference_at_the_ends_of_the_implied_vol(end):
    compiled = engine.compile_scenario(engine.load_scenario(IV_ENDS[end]), n_paths=4)
    refs = _reference_paths(compiled, compiled.n_paths)
    iv = np.array([ref.atm_iv for ref in refs])
    if end == "floor":
        assert (iv == reference.IV_FLOOR).any() and (iv > reference.IV_FLOOR).any()
    else:
        assert iv.min() > 4.0
    case = Case(compiled, engine.run(compiled, keep_steps=True), refs)
    assert (case.kernel.per_path["dealer_flow_usd"] != 0).all()
    compare_all(case)


def _forward_variance_quad(h: float, s: float, k: float) -> float:
    """The spec's ``F(h) = (1/T) int_0^T exp(h e^{-k u} - s^2 e^{-2 k u}/2) du`` by adaptive quadrature,
    split where ``e^{-k u}`` has fallen to e^-40 (beyond, the integrand is 1 to double precision) so
    that a short half-life's boundary layer is resolved."""
    from scipy.integrate import quad

    T = reference.IV_TENOR
    split = min(T, 40.0 / k)
    f = lambda u: math.exp(h * math.exp(-k * u) - 0.5 * s * s * math.exp(-2.0 * k * u))  # noqa: E731
    head = quad(f, 0.0, split, epsabs=0.0, epsrel=1e-12, limit=200)[0]
    tail = quad(f, split, T, epsabs=0.0, epsrel=1e-12, limit=200)[0] if split < T else 0.0
    return (head + tail) / T


@pytest.mark.parametrize("half_life", ["2d", "12h", "1h"])
def test_prepared_forward_variance_factor_is_the_specs_integral(half_life):
    """``prep.iv_table``: 129 values of ``F`` at ``h = iv_h_lo + i/iv_h_inv`` over ``[-6s, 6s]``, each
    the spec's integral to 1e-6 (relative), however short the half-life (a 1h one puts all of
    ``h``'s decay in the first 1/500 of the tenor); read linearly, clamped beyond the ends."""
    data = _merge(CLUSTERING, {"market": {"volatility": {"clustering": {"half_life": half_life}}}})
    compiled = engine.compile_scenario(engine.load_scenario(data), n_paths=1)
    prep = prepare(compiled)
    s = compiled.param("CLUSTER_STDEV")
    k = -math.log(compiled.param("CLUSTER_PERSIST")) / compiled.param("DT_YEARS")
    table = np.asarray(prep.iv_table)
    assert table.shape == (129,)
    assert prep.iv_h_lo == pytest.approx(-6.0 * s, rel=1e-12)
    assert prep.iv_h_lo + 128 / prep.iv_h_inv == pytest.approx(6.0 * s, rel=1e-12)
    for i in (0, 13, 40, 64, 77, 101, 128):
        h = prep.iv_h_lo + i / prep.iv_h_inv
        exact = _forward_variance_quad(h, s, k)
        assert table[i] == pytest.approx(exact, rel=1e-6), f"F({h:.4g}): table {table[i]!r}, quad {exact!r}"
        assert reference.forward_variance_factor(prep, h) == pytest.approx(table[i], rel=1e-12)
    assert _forward_variance_quad(0.0, 0.0, k) == pytest.approx(1.0, rel=1e-12)  # the quadrature itself
    assert reference.forward_variance_factor(prep, -7.0 * s) == table[0]
    assert reference.forward_variance_factor(prep, 7.0 * s) == table[-1]
    # without clustering: all ones on [-1, 1]
    flat = prepare(_case("cascade").compiled)
    assert (np.asarray(flat.iv_table) == 1.0).all() and len(flat.iv_table) == 129
    assert flat.iv_h_lo == -1.0 and flat.iv_h_lo + 128 / flat.iv_h_inv == pytest.approx(1.0, rel=1e-12)


def test_prepared_iv_drivers_are_the_specs():
    """``D_t``, ``J_t`` and ``IV_SHIFT_t`` in ``prep.drivers`` (the kernel's; the reference recomputes
    them): the step's diffusive and jump variance per year, the scheduled ATM vol's move."""
    for name in ("rich", "implied-vol"):
        compiled = _case(name).compiled
        drivers = prepare(compiled).drivers
        p, dt = compiled.param, compiled.param("DT_YEARS")
        diffusion = (compiled.step("VOL") ** 2 + (compiled.step("MACRO_BETA") * compiled.step("MACRO_VOL")) ** 2) / dt
        jumps = compiled.step("JUMP_PROB") * (p("JUMP_MEAN") ** 2 + p("JUMP_STDEV") ** 2) / dt
        shift = compiled.step("ATM_IV") - compiled.step("ATM_IV")[0]
        np.testing.assert_allclose(drivers[:, layout.Driver.IV_DIFFUSION_VAR], diffusion, rtol=1e-14, atol=0)
        np.testing.assert_allclose(drivers[:, layout.Driver.IV_JUMP_VAR], jumps, rtol=1e-14, atol=0)
        np.testing.assert_allclose(drivers[:, layout.Driver.IV_SHIFT], shift, rtol=1e-14, atol=1e-16)
        assert np.ptp(shift) > 0.1 and jumps.min() > 0.0


def test_prepared_dealer_table_holds_the_surface_at_each_atm_level():
    """``prep.dealer_table[t, k, g]``: the dealers' delta (share times OI times each option's
    Black-Scholes delta, :mod:`engine.options.black_scholes`) on step ``t``'s surface with its ATM
    level at ``exp(IV_LEVEL_LO + k/IV_LEVEL_INV)`` (0.05 to 4) and its risk reversal moved by
    ``skew_beta`` times the return at grid price ``g``: no spot-vol beta (it is in the path's vol)."""
    from engine.options import black_scholes
    from engine.options.surface import VolSurface

    compiled = _case("rich").compiled
    prep = prepare(compiled)
    opts = compiled.options
    assert prep.dealer_table.shape == (compiled.n_steps, reference.N_IV_LEVELS, 256)
    assert compiled.param("SURFACE_SPOT_VOL_BETA") != 0.0 and compiled.param("SURFACE_SKEW_BETA") != 0.0
    spot = compiled.param("SPOT0")
    for t, k, g in ((0, 0, 128), (0, 5, 100), (50, 7, 140), (60, 15, 90), (143, 9, 30), (100, 3, 255)):
        atm = math.exp(reference.IV_LEVEL_LO + k / reference.IV_LEVEL_INV)
        log_s = prep.dealer_lo + g / prep.dealer_inv
        surface = VolSurface(atm=atm, rr25=compiled.step("RISK_REVERSAL_25D")[t],
                             term_slope=compiled.step("TERM_SLOPE")[t], bf25=compiled.param("SURFACE_BF25"),
                             skew_beta=compiled.param("SURFACE_SKEW_BETA")).moved(log_s - math.log(spot))
        expected = 0.0
        for j in range(opts.kind.size):
            tau = opts.expiry_years[j] - t * compiled.param("DT_YEARS")
            if tau <= 0.0:
                continue
            vol = float(surface.vol(opts.strike_usd[j], math.exp(log_s), tau))
            delta = float(black_scholes.greek("delta", np.array(opts.kind[j] == layout.OPTION_CALL), math.exp(log_s),
                                              opts.strike_usd[j], tau, vol=vol))
            expected += compiled.step("DEALER_SHORT_SHARE")[t] * opts.open_interest_btc[t, j] * delta
        assert prep.dealer_table[t, k, g] == pytest.approx(expected, rel=1e-9, abs=1e-9 * opts.open_interest_btc.max())
    assert math.exp(reference.IV_LEVEL_LO + 15 / reference.IV_LEVEL_INV) == pytest.approx(4.0, rel=1e-14)


def test_reference_dealer_hedge_is_bilinear_in_log_price_and_log_iv():
    """The reference's lookup against the table: at a level and a grid price exactly, the entry; half
    way between two levels, their mean; below 0.05 and above 4, the end levels."""
    prep = prepare(_case("rich").compiled)
    table, t = prep.dealer_table, 70
    level = lambda k: math.exp(reference.IV_LEVEL_LO + k / reference.IV_LEVEL_INV)  # noqa: E731
    log_s = prep.dealer_lo + 120 / prep.dealer_inv
    hedge = lambda iv: reference.dealer_hedge(prep, t, log_s, iv)  # noqa: E731
    assert hedge(level(6)) == pytest.approx(table[t, 6, 120], rel=1e-12)
    mid = math.exp(reference.IV_LEVEL_LO + 6.5 / reference.IV_LEVEL_INV)
    assert hedge(mid) == pytest.approx(0.5 * (table[t, 6, 120] + table[t, 7, 120]), rel=1e-12)
    assert hedge(0.01) == pytest.approx(table[t, 0, 120], rel=1e-12)
    assert hedge(9.0) == pytest.approx(table[t, 15, 120], rel=1e-12)
    assert table[t, 0, 120] != table[t, 15, 120]


# ----------------------------------------------------------------------------- fixed kernel discrepancies
# Each test below pins a kernel behaviour the reference found wrong and that was fixed.
def test_bad_debt_is_counted_per_position():
    case = _case("rich")
    for field in sorted(_NETTED):
        _check(field, case.kernel.per_path[field], [r.summary[field] for r in case.refs], RTOL,
               _usd_atol(case.compiled))


# Three ways to empty a side of the book: CASCADE with linear impact on a thin book (the longs go in
# the first steps and their bad debt auto-deleverages the whole short side); daily steps with no
# holding-time hazard (no new positions arrive) and a volatility hazard far above 1 per day (both
# sides close in full), then relief-rally shorts; and daily steps with a holding-time hazard of 1 per
# day (model v5: both sides close in full at every step, and new positions at their starting sizes
# replace them)
WIPEOUTS = {
    "adl": _merge(CASCADE, {"name": "adl-wipeout",
                            "market": {"impact": {"model": "both", "depth_usd_per_pct": "40M"}}}),
    "deleveraging": _merge(CALM, {
        "name": "deleveraging-wipeout", "horizon": {"duration": "8d", "step": "1d"},
        "market": {"behaviour": {"deleveraging": {"base_hazard_per_day": 0.0, "volatility_sensitivity": 100.0,
                                                  "reference_volatility": 0.0}}},
        "shocks": [{"type": "relief_rally", "id": "fuel", "start": "+3d", "duration": "2d",
                    "new_short_notional_usd": "2B", "short_leverage": 20}]}),
    # linear impact, on a book deep enough for the 2B of fresh shorts: at the first step the closes and
    # arrivals cancel (the net flow is their rounding, ~1e-5 USD), which a square-root law, infinitely
    # steep at 0, would turn into a ~1e-10 price move set by the order of the sums, not by the model
    "turnover": _merge(CALM, {
        "name": "turnover-wipeout", "horizon": {"duration": "8d", "step": "1d"},
        "market": {"behaviour": {"deleveraging": {"base_hazard_per_day": 1.0}},
                   "impact": {"model": "linear", "depth_usd_per_pct": "1B"}},
        "shocks": [{"type": "relief_rally", "id": "fuel", "start": "+3d", "duration": "2d",
                    "new_short_notional_usd": "2B", "short_leverage": 20}]}),
}


@pytest.mark.parametrize("how", list(WIPEOUTS))
def test_the_reference_survives_a_side_wiped_out(how):
    compiled = engine.compile_scenario(engine.load_scenario(WIPEOUTS[how]), n_paths=2)
    ref = reference.simulate_path(prepare(compiled), reference.path_uniforms(compiled, 0))
    if how == "turnover":  # the whole book closes at the first step (and new positions replace it)
        long0, short0 = compiled.book_long_btc.sum(), compiled.book_short_btc.sum()
        assert ref.flows["deleveraging"][0] == pytest.approx((short0 - long0) * compiled.param("SPOT0"), rel=1e-12)
        assert min(ref.open_interest) > 0.0
    else:
        assert min(ref.open_interest) == 0.0 and (how != "adl" or ref.summary["adl_usd"] > 0)
    assert np.isfinite(ref.price).all() and np.isfinite(list(ref.summary.values())).all()


@pytest.mark.parametrize("how", list(WIPEOUTS))
def test_kernel_matches_the_reference_when_a_side_is_wiped_out(how):
    compiled = engine.compile_scenario(engine.load_scenario(WIPEOUTS[how]), n_paths=2)
    kernel = engine.run(compiled, keep_steps=True)
    assert np.isfinite(kernel.per_path[list(SUMMARY_FIELDS)].to_numpy()).all(), "kernel summary not finite"
    compare_all(Case(compiled, kernel, _reference_paths(compiled, 2)))


def test_kernel_files_longs_at_a_full_initial_margin_on_the_grid():
    from engine.nb.book import cell_of_nb
    from engine.nb.kernel import _leverage_offsets_nb

    offset_long, offset_short = np.empty(1), np.empty(1)
    _leverage_offsets_nb(offset_long, offset_short, np.array([1.0]), 15.0, 15.0)
    grid = prepare(_case("calm").compiled).grid
    lo, w = cell_of_nb(grid, np.log(88_500.0) + offset_long[0])
    assert 0 <= lo <= len(grid) - 4 and 0.0 <= w <= 1.0


def _crossed_book_case() -> Case:
    """CALM on two venues with a 1M insurance fund, plus, already crossed at the start, a long cell
    bankrupt above spot in venue ``b``'s smallest class and a short cell in venue ``a``'s: in the
    first round venue ``a``'s shorts are closed, then venue ``b``'s long deficit is
    auto-deleveraged onto its shorts, by rank over all its classes. (The compiler never builds a
    crossed book; a paused or capped cascade can leave one.)"""
    data = _merge(CALM, {"name": "crossed-book", "horizon": {"duration": "6h"}, "market": {"perpetuals": {
        "venues": {"a": "50%", "b": "50%"}, "insurance_fund_usd": "1M"}}})
    compiled = engine.compile_scenario(engine.load_scenario(data), n_paths=2)
    grid, spot = compiled.book_bankruptcy_usd, compiled.param("SPOT0")
    venue = compiled.book_rows[:, Row.VENUE]
    row_a, row_b = int(np.flatnonzero(venue == 0)[0]), int(np.flatnonzero(venue == 1)[0])
    longs, shorts = compiled.book_long_btc.copy(), compiled.book_short_btc.copy()
    long_entry, short_entry = compiled.book_long_entry_usd.copy(), compiled.book_short_entry_usd.copy()
    c_long, c_short = np.searchsorted(grid, spot * 1.02), np.searchsorted(grid, spot * 0.98) - 1
    longs[row_b, c_long] += 20_000.0
    long_entry[row_b, c_long] += 20_000.0 * grid[c_long] * 1.03  # entered above its bankruptcy price
    shorts[row_a, c_short] += 20_000.0
    short_entry[row_a, c_short] += 20_000.0 * grid[c_short] * 0.97
    compiled = dataclasses.replace(compiled, book_long_btc=longs, book_short_btc=shorts,
                                   book_long_entry_usd=long_entry, book_short_entry_usd=short_entry)
    return Case(compiled, engine.run(compiled, keep_steps=True), _reference_paths(compiled, 2))


def test_an_adl_in_a_round_spares_the_positions_closed_before_it():
    case = _crossed_book_case()
    per_path = case.kernel.per_path
    assert (per_path["adl_usd"] > 0).all() and (per_path["short_liquidations_usd"] > 0).all()
    compare_all(case)


# ----------------------------------------------------------------------------- replay
# The kernel replaying an observed path (engine.history.replay) against the reference replaying it. The
# observed path is path 0 of the case's own simulation (its float32 closes): it holds the jumps,
# cascades, margin hikes and breaker trips each case was built for.
REPLAYED = ["cascade", "margin-hike", "exchange-failure", "relief-rally", "rich", "tiered-crash", "clustering",
            "liq-feedback"]
_REPLAYS: dict = {}


def _replay_case(name: str) -> Case:
    if name not in _REPLAYS:
        import pandas as pd

        from engine.history.replay import replay

        sim = _case(name).kernel
        step = sim.timeline[1] - sim.timeline[0]
        index = sim.timeline.insert(0, sim.timeline[0] - step)
        closes = pd.Series(np.concatenate([[sim.compiled.param("SPOT0")], sim._raw["price"][0]]), index=index)
        kernel = replay(engine.load_scenario(SCENARIOS[name]), closes).simulation
        prep = kernel.prepared
        ref = reference.simulate_path(prep, reference.path_uniforms(kernel.compiled, 0), replay=prep.replay)
        _REPLAYS[name] = Case(kernel.compiled, kernel, [ref])
    return _REPLAYS[name]


@pytest.mark.parametrize("name", REPLAYED)
def test_replay_matches_the_reference(name):
    case = _replay_case(name)
    compare_all(case)
    ref = case.refs[0]
    stress = case.kernel._raw["stress"]
    for j, field in enumerate(reference.STRESS_FIELDS):
        _check(f"stress.{field}", stress[:, j], [s[field] for s in ref.stress], RTOL, _usd_atol(case.compiled))


@pytest.mark.parametrize("name", REPLAYED)
def test_replay_follows_the_observed_path_and_liquidates(name):
    case = _replay_case(name)
    sim = _case(name).kernel
    np.testing.assert_array_equal(case.kernel._raw["price"][0], sim._raw["price"][0])
    pp = case.kernel.per_path.iloc[0]
    assert pp["long_liquidations_usd"] + pp["short_liquidations_usd"] > 0
    # the price does not move: the first round takes every crossed position; the next ones only what
    # partial liquidations moved down a class (one class a round), so no more rounds than classes
    venues = case.compiled.book_rows[:, Row.VENUE].astype(int)
    assert pp["max_cascade_rounds"] <= np.bincount(venues).max()


def test_the_replay_comparison_catches_impact_left_on():
    """A reference that lets the flows move the price is caught: the replay's price is the data's."""
    case = _replay_case("cascade")
    prep = case.kernel.prepared
    path = reference._Path(prep, prep.replay)
    path.impact = lambda t: reference._Path.impact(reference._Path(prep), t)  # the simulation's impact
    u = reference.path_uniforms(case.compiled, 0)
    for t in range(path.n_steps):
        path.step(t, [float(x) for x in u[t]])
    with pytest.raises(AssertionError):
        compare_steps(case, [path.finish()])
