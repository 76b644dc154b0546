"""Each shock writes what engine/compile/shocks.py documents, where and when it says."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import engine

from compile_fixtures import RICH

BASE = {
    "name": "base",
    "seed": 3,
    "n_paths": 100,
    "horizon": {"start": "2026-01-29T00:00:00Z", "duration": "6d", "step": "1h"},
    "market": {
        "spot_usd": "88k",
        "perpetuals": {
            "long": {"notional_usd": "38B"},
            "short": {"notional_usd": "23B"},
            "venues": {"main": 0.7, "cme": 0.3},
            # flat rates: the shocks' rates read plainly (tiers: tests/test_tiers.py)
            "maintenance_margin_rate": "0.5%",
            "initial_margin_rate": "1%",
        },
    },
}


def compiled(*shocks, **market):
    data = copy.deepcopy(BASE)
    data["shocks"] = list(shocks)
    data["market"].update(market)
    return engine.compile_scenario(engine.load_scenario(data))


@pytest.fixture(scope="module")
def base():
    return compiled()


def hour(c, text: str) -> int:
    """Step index of a UTC time string."""
    return int((np.datetime64(text) - c.timeline[0]) / np.timedelta64(1, "h"))


# ----------------------------------------------------------------------------- margin hike
def test_margin_hike_rates_apply_from_start_on_targeted_venue_and_revert(base):
    c = compiled({"type": "margin_hike", "start": "+1d", "venues": ["cme"], "initial_margin_rate": "5%",
                  "maintenance_margin_rate": "2%", "duration": "2d", "top_up_fraction": "30%"})
    imr, mmr = c.venue("IMR", "cme"), c.venue("MMR", "cme")
    assert (imr[:24] == 0.01).all() and (imr[24:72] == 0.05).all() and (imr[72:] == 0.01).all()
    assert (mmr[24:72] == 0.02).all() and (mmr[72:] == 0.005).all()
    np.testing.assert_array_equal(c.venue("IMR", "main"), base.venue("IMR", "main"))
    change = c.venue("MARGIN_CHANGE", "cme")
    assert np.flatnonzero(change).tolist() == [24, 72]
    assert c.venue("TOP_UP_FRACTION", "cme")[24] == 0.3


def test_margin_hike_cme_schedule_usd_per_contract_then_rate():
    c = compiled({"type": "margin_hike", "start": "+12h", "venues": ["cme"], "contract_size_btc": 5,
                  "schedule": [{"initial_margin_usd_per_contract": "25k"},
                               {"at": "+2d", "initial_margin_usd_per_contract": "32.5k"},
                               {"at": "+4d", "initial_margin_rate": "15%"}]})
    usd, rate = c.venue("IM_USD_PER_BTC", "cme"), c.venue("IMR", "cme")
    assert usd[11] == 0 and usd[12] == 5_000 and usd[47] == 5_000 and usd[48] == 6_500
    assert usd[96] == 0 and rate[96] == 0.15 and rate[95] == 0.01
    assert np.flatnonzero(c.venue("MARGIN_CHANGE", "cme")).tolist() == [12, 48, 96]


# ----------------------------------------------------------------------------- ETF flows
def test_etf_daily_flows_land_in_the_us_session_and_sum_exactly(base):
    flows = {"2026-01-29": "-817.8M", "2026-01-30": "-509.7M", "2026-02-02": "561.8M"}
    c = compiled({"type": "etf_flows", "start": "2026-01-29", "daily_flows_usd": flows})
    f = c.step("ETF_FLOW_USD")
    assert f.sum() == pytest.approx(-817.8e6 - 509.7e6 + 561.8e6, rel=1e-12)
    # 14:30-21:00 UTC: the 14:00 step gets half an hour, 15:00..20:00 full hours, nothing at 21:00
    assert f[14] == pytest.approx(-817.8e6 * 0.5 / 6.5) and f[15] == pytest.approx(-817.8e6 / 6.5)
    assert f[13] == 0 and f[21] == 0
    assert f[hour(c, "2026-02-02T16:00")] > 0
    np.testing.assert_array_equal(c.step("ETF_LOSS_SENS"), base.step("ETF_LOSS_SENS"))


def test_etf_generated_run_total_weekdays_and_seed():
    run = {"type": "etf_flows", "start": "2026-01-30", "generated": {"days": 3, "total_usd": "-1.5B",
                                                                      "dispersion": "50%", "seed": 4}}
    c = compiled(run)
    f = c.step("ETF_FLOW_USD")
    assert f.sum() == pytest.approx(-1.5e9, rel=1e-12)
    # 30 Jan is a Friday: the run skips the weekend (31 Jan, 1 Feb) and ends Tuesday 3 Feb
    assert f[hour(c, "2026-01-31T00:00"):hour(c, "2026-02-02T00:00")].sum() == 0
    assert f[hour(c, "2026-02-03T15:00")] != 0 and f[hour(c, "2026-02-03T21:00"):].sum() == 0
    again = compiled(run)
    np.testing.assert_array_equal(again.step("ETF_FLOW_USD"), f)
    other = compiled({**run, "generated": {**run["generated"], "seed": 5}})
    assert not np.array_equal(other.step("ETF_FLOW_USD"), f)
    assert other.step("ETF_FLOW_USD").sum() == pytest.approx(-1.5e9, rel=1e-12)


def test_etf_reflexivity_override_and_multiplier_from_start(base):
    c = compiled({"type": "etf_flows", "start": "+2d", "reflexivity_multiplier": 2,
                  "reflexivity": {"loss_sensitivity": 0.05, "below_cost_basis_sensitivity": 0.03}})
    assert (c.step("ETF_LOSS_SENS")[:48] == 0.01).all() and (c.step("ETF_LOSS_SENS")[48:] == 0.05).all()
    assert (c.step("ETF_BASIS_SENS")[48:] == 0.03).all()
    assert (c.step("ETF_REFLEX_MULT")[:48] == 1).all() and (c.step("ETF_REFLEX_MULT")[48:] == 2).all()


def test_etf_window_is_zero_on_weekends(base):
    w = base.step("ETF_WINDOW")
    saturday = hour(base, "2026-01-31T00:00")
    assert w[saturday:saturday + 48].sum() == 0
    assert w[:24].sum() == pytest.approx(1.0)  # Thursday: the whole session


# ----------------------------------------------------------------------------- regimes
def test_tightening_ramps_in_and_out(base):
    c = compiled({"type": "balance_sheet_tightening", "start": "+1d", "ramp": "1d", "duration": "1d",
                  "ramp_out": "1d", "depth_multiplier": 0.5, "vol_multiplier": 2, "macro_beta": 2.0,
                  "drift_annual": "-50%", "etf_reflexivity_multiplier": 3,
                  "announcement_jump": {"size": "-3%"}})
    depth = c.step("DEPTH_MULT")
    assert (depth[:24] == 1).all() and depth[36] == pytest.approx(1 - 0.5 * 12.5 / 24)
    assert (depth[48:72] == pytest.approx(0.5)) and (depth[96:] == 1).all()
    assert np.all(np.diff(depth[24:48]) < 0) and np.all(np.diff(depth[72:96]) > 0)
    assert c.step("VOL")[60] == pytest.approx(2 * base.step("VOL")[60])
    assert c.step("MACRO_BETA")[60] == pytest.approx(2.0) and c.step("MACRO_BETA")[0] == 1.0
    assert c.step("DRIFT")[60] == pytest.approx(-0.5 * c.param("DT_YEARS"))
    assert c.step("ETF_REFLEX_MULT")[60] == pytest.approx(3)
    assert c.step("SCHEDULED_JUMP")[24] == -0.03 and c.step("SCHEDULED_JUMP").sum() == -0.03


def test_cross_asset_shock_transmits_log_moves_and_forced_selling(base):
    c = compiled({"type": "cross_asset_shock", "start": "+13h", "duration": "3d", "macro_vol_multiplier": 2,
                  "forced_selling_usd": "-1.5B",
                  "moves": [{"asset": "silver", "move": "-34%", "btc_beta": 0.15},
                            {"asset": "nasdaq", "move": "-2%", "is_macro_factor": True}]})
    assert c.step("CROSS_ASSET_RETURN").sum() == pytest.approx(0.15 * math.log(0.66))
    assert c.step("MACRO_DRIFT").sum() == pytest.approx(math.log(0.98))
    assert c.step("FORCED_FLOW_USD").sum() == pytest.approx(-1.5e9)
    inside = slice(13, 13 + 72)
    assert (c.step("FORCED_FLOW_USD")[inside] < 0).all() and c.step("FORCED_FLOW_USD")[:13].sum() == 0
    assert c.step("MACRO_VOL")[20] == pytest.approx(2 * base.step("MACRO_VOL")[20])
    assert c.step("MACRO_VOL")[100] == base.step("MACRO_VOL")[100]


def test_exchange_failure_depth_resilience_penalty_breaker(base):
    c = compiled({"type": "exchange_failure", "start": "+2d", "duration": "6h", "depth_fraction": "10%",
                  "liquidation_fill_penalty": "3%", "venues": ["main"], "circuit_breaker_move": "8%",
                  "circuit_breaker_pause": "2h"})
    on = slice(48, 54)
    # "main" holds 70% of the book: it takes 70% of the depth down to 10%, and 70% of the healing
    assert np.allclose(c.step("DEPTH_MULT")[on], 1 - 0.7 * 0.9) and c.step("DEPTH_MULT")[54] == 1
    assert np.allclose(c.step("RESILIENCE_MULT")[on], 0.3) and c.step("RESILIENCE_MULT")[47] == 1
    # the failing venue's penalty, on top of the liquidation engine's base slippage (0.1%), which
    # every venue pays divided by the market's depth multiplier
    thin = 0.001 / (1 - 0.7 * 0.9)
    assert np.allclose(c.venue("LIQ_FILL_PENALTY", "main")[on], 0.03 + thin)
    assert np.allclose(c.venue("LIQ_FILL_PENALTY", "cme")[on], thin)
    np.testing.assert_array_equal(c.venue("LIQ_FILL_PENALTY", "cme")[54:], base.venue("LIQ_FILL_PENALTY", "cme")[54:])
    assert (c.step("CIRCUIT_BREAKER_MOVE")[on] == 0.08).all() and c.step("CIRCUIT_BREAKER_MOVE")[54] == 0
    assert (c.step("CIRCUIT_BREAKER_STEPS")[on] == 2).all()


def test_exchange_failure_on_one_venue_takes_its_share_of_depth():
    c = compiled({"type": "exchange_failure", "start": "+2d", "duration": "6h", "depth_fraction": "10%",
                  "venues": ["cme"], "market_makers_gone": True})
    assert c.step("DEPTH_MULT")[50] == pytest.approx(1 - 0.3 * 0.9)
    assert c.step("RESILIENCE_MULT")[50] == pytest.approx(0.7)


def test_miner_capitulation_sells_the_stated_share_of_reserves():
    c = compiled({"type": "miner_capitulation", "start": "+1d", "duration": "2d", "breakeven_multiplier": 1.5,
                  "reserve_sale_fraction": "10%", "hashrate_change": "-20%"},
                 miners={"reserves_btc": "90k"})
    assert c.step("MINER_FORCED_SALE_BTC").sum() == pytest.approx(9_000)
    assert c.step("MINER_BREAKEVEN")[30] == pytest.approx(60) and c.step("MINER_BREAKEVEN")[0] == 40
    assert c.step("MINER_HASHRATE_MULT")[30] == pytest.approx(0.8)


def test_relief_rally_adds_short_fuel_macro_move_and_buying():
    c = compiled({"type": "relief_rally", "start": "+4d", "duration": "12h", "new_short_notional_usd": "2B",
                  "short_leverage": 20, "macro_move": "2%", "momentum_buying_usd": "500M"})
    fuel = c.step("NEW_SHORT_NOTIONAL_USD")
    assert np.flatnonzero(fuel).tolist() == [96] and fuel[96] == 2e9 and c.step("NEW_SHORT_LEVERAGE")[96] == 20
    assert c.step("MACRO_DRIFT").sum() == pytest.approx(math.log(1.02))
    assert c.step("FORCED_FLOW_USD").sum() == pytest.approx(5e8)


def test_price_jumps_add_and_spreads_combine():
    c = compiled({"type": "price_jump", "start": "+5d", "size": "-5%", "spread": "3%"},
                 {"type": "price_jump", "start": "+5d30m", "size": "-1%", "spread": "4%"})
    assert c.step("SCHEDULED_JUMP")[120] == pytest.approx(-0.06)
    assert c.step("SCHEDULED_JUMP_SPREAD")[120] == pytest.approx(0.05)


def test_options_positioning_changes_oi_and_surface(base):
    expiry = "2026-02-27T08:00:00Z"
    c = compiled({"type": "options_positioning", "start": "+2d", "ramp": "1d", "atm_iv": "80%",
                  "risk_reversal_25d": "-13%", "term_structure_slope": "-20%", "dealer_short_share": "90%",
                  "open_interest_changes": [{"kind": "put", "strike_usd": "55k", "expiry": expiry, "size_btc": "10k"}],
                  "open_interest_removed": [{"kind": "put", "strike_usd": "60k", "expiry": expiry, "size_btc": "5k"}]},
                 options={"open_interest": [{"kind": "put", "strike_usd": "60k", "expiry": expiry, "size_btc": "25k"}]})
    oi = c.options.open_interest_btc
    k55 = int(np.flatnonzero(c.options.strike_usd == 55_000)[0])
    k60 = int(np.flatnonzero(c.options.strike_usd == 60_000)[0])
    assert oi[47, k55] == 0 and oi[48, k55] == 10_000
    assert oi[47, k60] == 25_000 and oi[48, k60] == 20_000
    assert c.step("RISK_REVERSAL_25D")[80] == pytest.approx(-0.13) and c.step("ATM_IV")[80] == pytest.approx(0.8)
    assert c.step("TERM_SLOPE")[80] == pytest.approx(-0.2) and c.step("DEALER_SHORT_SHARE")[80] == pytest.approx(0.9)
    assert c.step("ATM_IV")[47] == base.step("ATM_IV")[47]
    assert c.options.expiry_step[k55] == c.n_steps  # expires after the horizon


# ----------------------------------------------------------------------------- composition
def test_shocks_compose_multiplicatively_and_in_order():
    one = {"type": "exchange_failure", "start": "+1d", "duration": "1d", "depth_fraction": "50%"}
    two = {"type": "balance_sheet_tightening", "start": "+1d", "duration": "1d", "depth_multiplier": 0.5}
    c = compiled(one, two)
    assert c.step("DEPTH_MULT")[30] == pytest.approx(0.25)


def test_rich_scenario_compiles_deterministically_and_read_only():
    a = engine.compile_scenario(engine.load_scenario(RICH))
    b = engine.compile_scenario(engine.load_scenario(RICH))
    assert a.fingerprint() == b.fingerprint()
    with pytest.raises(ValueError):
        a.steps[0, 0] = 1.0
    assert np.isfinite(a.steps).all() and np.isfinite(a.venue_steps).all()
    assert a.describe().count("\n") > 40
