"""Each mechanism of the market model moves outcomes in its documented direction.

Every comparison runs the same scenario twice with one knob changed and the same seed (common
random numbers: the same exogenous draws on every path), on 512 paths, and compares means or
medians with a margin, or path by path where the model makes the property exact. The base
market is :data:`sim_fixtures.MARKET` (every behaviour on) or :data:`sim_fixtures.QUIET_MARKET`
(no ETF holders, miners, options or behavioural flows) when a mechanism needs isolating. Where a
test needs the book to come through its shock, it sets the permanent impact explicitly
(:data:`PERMANENT`) instead of relying on the default.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy import stats

from sim_fixtures import START, market, patched, quiet, run, with_shocks

N = 512
SEED = 17

# The permanent impact, explicitly: the share of the visible book's linear impact q/(100*depth) that
# never heals. At the fixtures' 14M depth, 0.5% moves the price for good by 0.36% per 1B of net flow,
# close to the calibrated flagship (0.56%: scenarios/calibration/feb-2026.yaml). Four times as much
# (2%, 1.4% per 1B) makes a 5B short opening move the price for good by 7% and a 10% fall liquidate
# more than half of the long book, and a test of another mechanism would be testing that instead.
PERMANENT = {"market.impact.permanent_fraction": "0.5%"}


def pair(base: dict, changed: dict, **kwargs):
    """The base and the changed scenario, same seed, same paths."""
    return run(base, n_paths=N, seed=SEED, **kwargs), run(changed, n_paths=N, seed=SEED, **kwargs)


def mean(r, column: str) -> float:
    return float(r.per_path[column].mean())


def median(r, column: str) -> float:
    return float(r.per_path[column].median())


# ----------------------------------------------------------------------------- ETF flows
def test_etf_outflow_lowers_the_price_and_liquidates_more_longs():
    outflow = {"type": "etf_flows", "start": START, "daily_flows_usd": {"2026-02-02": "-2B", "2026-02-03": "-2B"}}
    base, hit = pair(market(), with_shocks(market(), outflow))
    assert median(hit, "terminal_price") < median(base, "terminal_price") * 0.995
    assert mean(hit, "long_liquidations_usd") > mean(base, "long_liquidations_usd") * 1.1
    assert mean(hit, "etf_flow_usd") < mean(base, "etf_flow_usd") - 3.9e9  # the scheduled 4B, sold
    # executed in the US session only (14:30-21:00 UTC): nothing scheduled before 14:00 on Monday
    extra = hit.flows["etf"] - base.flows["etf"]
    assert (extra.iloc[:14].abs() < 1e6).all() and extra.iloc[14:21].sum() < -1.9e9


def test_a_bigger_etf_outflow_lowers_the_price_more():
    medians = []
    for day in ("-0.5B", "-2B", "-5B"):
        r = run(with_shocks(market(), {"type": "etf_flows", "start": START, "daily_flows_usd": {"2026-02-02": day}}),
                n_paths=N, seed=SEED)
        medians.append(median(r, "terminal_price"))
    assert medians[0] > medians[1] > medians[2]


# ----------------------------------------------------------------------------- margins
def test_initial_margin_hike_cuts_positions_and_sells():
    """1% -> 10% initial margin at +6h: every cell above 10x tops up or cuts; the cuts are sales.
    (The shorts hold 3x here, so that only longs are over the new limit.)"""
    base_data = market({"outputs.sample_paths": N,
                        "market.perpetuals.short.leverage": {"distribution": "table", "weights": {3: 1.0}}})
    hike = {"type": "margin_hike", "start": "+6h", "initial_margin_rate": "10%", "top_up_fraction": "50%"}
    base, hit = pair(base_data, with_shocks(base_data, hike))
    assert (base.per_path["margin_cut_usd"] == 0).all()
    assert (hit.per_path["margin_cut_usd"] < 0).all()
    assert mean(hit, "margin_cut_usd") < -1e8
    cuts = hit.flows["margin_cuts"]
    assert cuts.iloc[6] < 0 and (cuts.drop(cuts.index[6]) == 0).all()  # at the hike's step only
    # the same paths until the hike, then lower at its step on every path
    before, after = base.sample_paths, hit.sample_paths
    assert before.iloc[:6].equals(after.iloc[:6])
    # lower at its step on (nearly) every path: where the base run's own cascade at that step sells
    # the very cells the hike cut, the base price can end the step lower
    assert (after.iloc[6] < before.iloc[6]).mean() > 0.98
    assert hit.fan["price"]["p50"].iloc[6] < base.fan["price"]["p50"].iloc[6]
    # the open interest drops by what was cut
    assert hit.fan["open_interest_usd"]["p50"].iloc[6] < base.fan["open_interest_usd"]["p50"].iloc[6]


def test_full_top_up_cuts_nothing():
    hike = {"type": "margin_hike", "start": "+6h", "initial_margin_rate": "10%", "top_up_fraction": "100%"}
    r = run(with_shocks(market(), hike), n_paths=64, seed=SEED)
    assert (r.per_path["margin_cut_usd"] == 0).all()


def test_maintenance_hike_liquidates_more_longs():
    hike = {"type": "margin_hike", "start": "+6h", "maintenance_margin_rate": "5%", "top_up_fraction": "100%"}
    base, hit = pair(market(), with_shocks(market(), hike))
    assert mean(hit, "long_liquidations_usd") > 1.5 * mean(base, "long_liquidations_usd")
    # the liquidation prices jump toward the price at the hike: liquidations at its step on most paths
    step = hit.fan["long_liquidations_usd"]["p50"].iloc[6]
    assert step > 0 and step > 10 * base.fan["long_liquidations_usd"]["p50"].iloc[6]


def test_a_maintenance_cut_liquidates_fewer_longs():
    cut = {"type": "margin_hike", "start": "+1h", "maintenance_margin_rate": "0.1%"}
    flat = {"market.perpetuals.maintenance_margin_rate": "0.5%", "market.perpetuals.initial_margin_rate": "1%"}
    base, eased = pair(market(flat), with_shocks(market(flat), cut))
    assert mean(eased, "long_liquidations_usd") < mean(base, "long_liquidations_usd")


# ----------------------------------------------------------------------------- liquidity
@pytest.mark.parametrize("model", ["linear", "both"])
def test_thinner_depth_gives_larger_drawdowns(model):
    thick = market({"market.impact.model": model, "market.impact.depth_usd_per_pct": "400M"})
    thin = market({"market.impact.model": model, "market.impact.depth_usd_per_pct": "100M"})
    a, b = pair(thick, thin)
    assert mean(b, "max_drawdown") > mean(a, "max_drawdown") + 0.01
    assert median(b, "min_price") < median(a, "min_price")


def test_a_depth_shock_gives_larger_drawdowns_under_the_square_root_law():
    """The square-root law reads the depth multiplier through the daily volume it scales."""
    regime = {"type": "balance_sheet_tightening", "start": START, "depth_multiplier": 0.2, "vol_multiplier": 1,
              "etf_reflexivity_multiplier": 1}
    base, thin = pair(market(), with_shocks(market(), regime))
    assert mean(thin, "max_drawdown") > mean(base, "max_drawdown") * 1.05
    np.testing.assert_allclose(thin.fan["depth_usd_per_pct"]["p50"], 14e6 * 0.2, rtol=1e-12)


def test_permanent_impact_stays_and_transient_impact_heals():
    """A 3B forced sale over four hours into an empty market: with permanent_fraction 1 its impact
    stays, with 0 it heals (30-minute half-life) long before the end. Nothing else trades, so the
    impact is the same on every path: the terminal log prices differ by the same amount."""
    empty = quiet({"market.perpetuals.long.notional_usd": 0, "market.perpetuals.short.notional_usd": 0})
    sale = {"type": "cross_asset_shock", "start": "+2h", "duration": "4h", "forced_selling_usd": "-3B",
            "moves": [{"asset": "gold", "move": "-1%", "btc_beta": 0}]}
    terminal = {}
    for fraction in (0.0, 0.5, 1.0):
        r = run(with_shocks(patched(empty, {"market.impact.permanent_fraction": fraction}), sale), n_paths=N, seed=SEED)
        np.testing.assert_allclose(r.per_path["forced_flow_usd"], -3e9, rtol=1e-9)
        terminal[fraction] = np.log(r.per_path["terminal_price"].to_numpy())
    healed = terminal[0.0] - terminal[1.0]
    assert (healed > 0.005).all()
    np.testing.assert_allclose(healed, healed[0], atol=1e-9)
    np.testing.assert_allclose(terminal[0.0] - terminal[0.5], healed / 2, atol=1e-9)  # half of it stays


# ----------------------------------------------------------------------------- options dealers
def _puts(size_btc: str) -> dict:
    return {"market.options.open_interest": [
        {"kind": "put", "strike_usd": "72k", "expiry": "2026-02-27T08:00:00Z", "size_btc": size_btc}]}


def test_more_put_open_interest_means_more_dealer_selling_in_a_fall():
    """Dealers short puts are short gamma: they sell as the price falls toward the strikes."""
    fall = {"type": "price_jump", "start": "+4h", "size": "-8%"}
    small, big = pair(with_shocks(quiet(_puts("10k")), fall), with_shocks(quiet(_puts("100k")), fall))
    assert mean(small, "dealer_flow_usd") < 0
    assert mean(big, "dealer_flow_usd") < 5 * mean(small, "dealer_flow_usd")
    assert (big.per_path["dealer_flow_usd"] < small.per_path["dealer_flow_usd"]).mean() > 0.8
    assert big.flows["dealers"].iloc[5] < small.flows["dealers"].iloc[5] < 0  # the step after the jump


def test_options_positioning_adds_puts_and_dealer_selling():
    fall = {"type": "price_jump", "start": "+6h", "size": "-8%"}
    wall = {"type": "options_positioning", "start": "+2h",
            "open_interest_changes": [{"kind": "put", "strike_usd": "72k", "expiry": "2026-02-27T08:00:00Z",
                                       "size_btc": "90k"}]}
    base, crowded = pair(with_shocks(quiet(_puts("10k")), fall), with_shocks(quiet(_puts("10k")), wall, fall))
    assert mean(crowded, "dealer_flow_usd") < 2 * mean(base, "dealer_flow_usd") < 0


def test_the_surface_reacting_to_the_fall_changes_the_dealers_hedge():
    """A fall toward far out-of-the-money puts (a 60k wall, spot 80k): with vol rising as the price
    falls (spot_vol_beta) and the put skew steepening (skew_beta), their deltas grow faster, and
    dealers sell more. (Near the money a put's delta barely depends on vol.)"""
    fall = {"type": "price_jump", "start": "+4h", "size": "-8%"}
    wall = {"market.options.open_interest": [
        {"kind": "put", "strike_usd": "60k", "expiry": "2026-02-27T08:00:00Z", "size_btc": "60k"}]}
    still = with_shocks(quiet(wall), fall)
    reactive = copy.deepcopy(still)
    for data, svb, sb in ((still, 0.0, 0.0), (reactive, 1.5, 0.5)):
        data["market"]["options"].update({"spot_vol_beta": svb, "skew_beta": sb})
    a, b = pair(still, reactive)
    assert mean(b, "dealer_flow_usd") < mean(a, "dealer_flow_usd") < 0
    smile = copy.deepcopy(still)
    smile["market"]["options"]["butterfly_25d"] = 0.05
    c, _ = pair(smile, still)
    assert mean(c, "dealer_flow_usd") != mean(a, "dealer_flow_usd")


def test_no_options_no_dealer_flow():
    r = run(quiet(), n_paths=64, seed=SEED)
    assert (r.per_path["dealer_flow_usd"] == 0).all()


# ----------------------------------------------------------------------------- miners
def test_miner_capitulation_sells_more():
    capitulation = {"type": "miner_capitulation", "start": "+2h", "duration": "1d", "reserve_sale_fraction": "10%"}
    base, hit = pair(market(), with_shocks(market(), capitulation))
    assert (hit.per_path["miner_sales_usd"] < base.per_path["miner_sales_usd"]).all()
    # 10% of 90k BTC at ~80k: about 720M more sold
    assert mean(hit, "miner_sales_usd") - mean(base, "miner_sales_usd") == pytest.approx(-720e6, rel=0.1)
    assert median(hit, "terminal_price") < median(base, "terminal_price")


# ----------------------------------------------------------------------------- squeezes
RALLY = {"type": "relief_rally", "start": "+12h", "duration": "12h", "new_short_notional_usd": "5B",
         "short_leverage": 20, "macro_move": "5%", "momentum_buying_usd": "1B"}


def test_relief_rally_squeezes_shorts_and_lifts_the_price():
    """5B of 20x shorts open at the rally's start (their triggers about 4.5% above it), then a 5%
    macro move and 1B of buying over 12 hours cross them: the squeeze lifts the price further.
    Opening the shorts is a 5B sale, which moves the price for good by 1.8% at the calibrated
    permanent impact (:data:`PERMANENT`); at four times that (7%) it would outweigh the rally."""
    base, rally = pair(market(PERMANENT), with_shocks(market(PERMANENT), RALLY))
    assert mean(rally, "short_liquidations_usd") > 3 * mean(base, "short_liquidations_usd")
    assert median(rally, "max_price") > median(base, "max_price") * 1.02
    assert median(rally, "terminal_price") > median(base, "terminal_price")


def test_more_squeeze_fuel_means_more_short_liquidations():
    """The new shorts are the fuel: with them the same rally liquidates far more shorts. (Opening
    them is itself a sale, so the fuel alone does not raise the highest price; its permanent impact
    is the calibrated one, :data:`PERMANENT`, under which the rally still crosses their triggers.)"""
    no_fuel, fuel = pair(with_shocks(market(PERMANENT), dict(RALLY, new_short_notional_usd=0)),
                         with_shocks(market(PERMANENT), RALLY))
    assert mean(fuel, "short_liquidations_usd") > mean(no_fuel, "short_liquidations_usd") + 2e9
    opened = fuel.flows["momentum"].iloc[12] - no_fuel.flows["momentum"].iloc[12]
    assert opened == pytest.approx(-5e9, rel=0.2)  # the new shorts sell at the rally's first step


# ----------------------------------------------------------------------------- exchange failure
FAILURE = {"type": "exchange_failure", "start": "+2h", "duration": "1d", "depth_fraction": "20%",
           "liquidation_fill_penalty": "0%"}


def test_worse_liquidation_fills_mean_more_bad_debt():
    """A liquidation fills at its trigger T less the engine's penalty p, and the trigger leaves the
    maintenance margin m = 0.5%: a fill is beyond the bankruptcy price (bad debt) only when p > m.
    In the failure the book's 0.05% slippage grows to 0.05%/20% = 0.25%, inside m: no bad debt on
    any path. A failure fill penalty of 5% on top (p = 5.25%) takes every liquidation in the failure
    beyond bankruptcy by (p - m)*T; one of 2% (p = 2.25%) by less. The fund never runs dry (no
    ADL). The liquidation flow is counted at the fills, so a worse fill is a smaller sale in USD:
    the paths are the same until the failure, and differ after it."""
    rich = market({**PERMANENT, "market.perpetuals.insurance_fund_usd": "1000T",
                   "market.perpetuals.liquidation.fill_slippage": "0.05%"})
    # the failure lasts to the end of the horizon: every liquidation after its first two hours is in it
    clean, mild, penalised = (run(with_shocks(rich, dict(FAILURE, duration="2d", liquidation_fill_penalty=p)),
                                  n_paths=N, seed=SEED) for p in ("0%", "2%", "5%"))
    assert clean.fan["price"].iloc[:2].equals(penalised.fan["price"].iloc[:2])  # before the failure
    assert (clean.per_path["bad_debt_usd"] == 0).all()
    pp = penalised.per_path
    assert (pp["bad_debt_usd"] >= clean.per_path["bad_debt_usd"]).all()
    assert (pp["bad_debt_usd"] > 0).mean() > 0.9  # nearly every path liquidates in the failure
    # each deficit is X*T*(p - m) on a fill X*T*(1 - p): a share (p - m)/(1 - p) of the notional
    # liquidated in the failure, none outside it (bounded path by path, reached where all of it is)
    liquidated = pp["long_liquidations_usd"] + pp["short_liquidations_usd"]
    share = (0.0525 - 0.005) / (1 - 0.0525)
    assert (pp["bad_debt_usd"] <= share * liquidated * (1 + 1e-9)).all()
    assert mean(penalised, "bad_debt_usd") > 0.5 * share * liquidated.mean()  # most liquidations fall in it
    assert 0 < mean(mild, "bad_debt_usd") < 0.5 * mean(penalised, "bad_debt_usd")
    # and the surpluses fills inside the margin leave are gone in the failure
    assert mean(penalised, "liquidation_surplus_usd") < 0.5 * mean(clean, "liquidation_surplus_usd")


def test_circuit_breaker_pauses_liquidations_and_shortens_cascades():
    """A book of highly levered longs in a thin market: a -6% jump sets off multi-round cascades;
    a breaker that trips after a 1% move in a step pauses liquidations for two hours."""
    fragile = market({
        "market.impact.model": "both", "market.impact.depth_usd_per_pct": "1B",
        "market.perpetuals.long.leverage": {"distribution": "lognormal", "median": 20, "dispersion": 0.5,
                                            "min": 2, "max": 100}})
    jump = {"type": "price_jump", "start": "+3h", "size": "-6%"}
    breaker = dict(FAILURE, circuit_breaker_move="1%", circuit_breaker_pause="2h")
    free, paused = pair(with_shocks(fragile, jump, FAILURE), with_shocks(fragile, jump, breaker))
    assert (free.per_path["paused_steps"] == 0).all()
    assert (paused.per_path["paused_steps"] > 0).mean() > 0.5
    assert mean(free, "max_cascade_rounds") > 1.5
    assert mean(paused, "max_cascade_rounds") < mean(free, "max_cascade_rounds")
    assert (paused.per_path["max_cascade_rounds"] <= free.per_path["max_cascade_rounds"]).mean() > 0.9
    # nothing before the failure starts: the same paths
    assert free.fan["price"].iloc[:2].equals(paused.fan["price"].iloc[:2])


# ----------------------------------------------------------------------------- tails
def test_student_t_innovations_have_fatter_tails_than_gaussian():
    """One-step log returns of an empty, quiet market (only the diffusion moves the price):
    excess kurtosis near 0 for Gaussian innovations, large for Student-t with 3 degrees of freedom,
    at the same variance (the t is scaled to unit variance)."""
    empty = quiet({"market.perpetuals.long.notional_usd": 0, "market.perpetuals.short.notional_usd": 0,
                   "market.volatility.jumps": {"intensity_per_day": 0}, "market.macro": {"annual_vol": 0},
                   "outputs.sample_paths": N})
    returns = {}
    for dof in (None, 3):
        r = run(patched(empty, {"market.volatility.tail_dof": dof}), n_paths=N, seed=SEED)
        prices = r.sample_paths.to_numpy()
        assert prices.shape == (48, N)
        returns[dof] = np.diff(np.log(np.vstack([np.full(N, 80e3), prices])), axis=0).ravel()
    gauss, student = stats.kurtosis(returns[None]), stats.kurtosis(returns[3])
    assert abs(gauss) < 0.3
    assert student > gauss + 3
    step_vol = 0.5 * np.sqrt(1 / 8766)
    for dof in (None, 3):
        assert returns[dof].std() == pytest.approx(step_vol, rel=0.1)
    # more extreme moves, beyond 4 standard deviations
    assert (np.abs(returns[3]) > 4 * step_vol).sum() > 5 * max((np.abs(returns[None]) > 4 * step_vol).sum(), 1)


# ----------------------------------------------------------------------------- behaviour
def test_a_shorter_holding_time_turns_the_book_over_faster():
    """The base hazard is the holding time: every position closes at it (longs sell, shorts buy;
    the book is long-heavy, 20B vs 10B) and new positions replace them at the starting size times
    it. A nervous book (0.2/day) closes and opens about 20 times more than a patient one
    (0.01/day), the two flows cancel but for the stress terms, and the open interest stays put."""
    base, nervous = pair(market({"market.behaviour.deleveraging.base_hazard_per_day": 0.01}),
                         market({"market.behaviour.deleveraging.base_hazard_per_day": 0.2}))
    assert mean(nervous, "deleveraging_flow_usd") < 5 * mean(base, "deleveraging_flow_usd") < 0
    assert mean(nervous, "new_positions_flow_usd") > 5 * mean(base, "new_positions_flow_usd") > 0
    assert nervous.flows["deleveraging"].abs().sum() > 5 * base.flows["deleveraging"].abs().sum()
    net = mean(nervous, "deleveraging_flow_usd") + mean(nervous, "new_positions_flow_usd")
    assert abs(net) < 0.25 * abs(mean(nervous, "deleveraging_flow_usd"))
    assert abs(median(nervous, "open_interest_change") - median(base, "open_interest_change")) < 0.05


def test_momentum_traders_ignore_moves_below_their_threshold():
    """They act on the lookback return beyond the threshold: none of a calm day's hourly moves
    reaches 50%, so they open nothing; at 0.5% they trade and their flow shrinks as it rises."""
    idle, some, all_moves = (run(market({"market.behaviour.momentum.threshold": x}), n_paths=N, seed=SEED)
                             for x in (0.5, 0.005, 0.0))
    assert (idle.per_path["momentum_flow_usd"] == 0).all()
    gross = [r.flows["momentum"].abs().sum() for r in (some, all_moves)]
    assert 0 < gross[0] < gross[1]


def test_deleveraging_rises_with_the_drawdown():
    """The longs' hazard rises with the drawdown from the peak: after a 10% fall a sensitive book
    closes far more longs (net selling). At the calibrated permanent impact (:data:`PERMANENT`) the
    fall's liquidations leave the book long-heavy; at four times that they take more than half of the
    longs, and the shorts' closing (buying) would dominate."""
    fall = {"type": "price_jump", "start": "+6h", "size": "-10%"}
    base, sensitive = pair(
        with_shocks(market({**PERMANENT, "market.behaviour.deleveraging.drawdown_sensitivity": 0.1}), fall),
        with_shocks(market({**PERMANENT, "market.behaviour.deleveraging.drawdown_sensitivity": 5}), fall))
    assert mean(sensitive, "deleveraging_flow_usd") < 3 * mean(base, "deleveraging_flow_usd") < 0
    # the fall (10% below the peak, more with its liquidations) adds at least 5 * 0.1 = 0.5 a day to
    # the hazard of the longs
    assert sensitive.flows["deleveraging"].iloc[8] < 5 * base.flows["deleveraging"].iloc[8] < 0


FALL = {"type": "price_jump", "start": "+6h", "size": "-10%"}
REBOUND = {"type": "price_jump", "start": "+24h", "size": "12%"}


def test_momentum_traders_trade_more_with_a_higher_open_rate():
    # a capital of 100% of the book: at these rates their target stays below it (the cap is tested apart)
    runs = {rate: run(with_shocks(market({"market.behaviour.momentum.open_rate": rate,
                                          "market.behaviour.momentum.capital": "100%"}), FALL), n_paths=N, seed=SEED)
            for rate in (0, 0.5, 5)}
    assert (runs[0].per_path["momentum_flow_usd"] == 0).all()
    assert (runs[0].flows["momentum"] == 0).all()
    gross = {rate: r.flows["momentum"].abs().sum() for rate, r in runs.items()}
    assert gross[5] > 5 * gross[0.5] > 0
    # into the fall they open shorts: a sale
    after = slice(7, 12)
    assert (runs[5].flows["momentum"].iloc[after] < 0).all()


def test_momentum_shorts_opened_into_a_fall_are_squeezed_on_the_rebound():
    none, many = pair(with_shocks(market({"market.behaviour.momentum.open_rate": 0}), FALL, REBOUND),
                      with_shocks(market({"market.behaviour.momentum.open_rate": 5}), FALL, REBOUND))
    assert mean(many, "short_liquidations_usd") > mean(none, "short_liquidations_usd") + 1e9
    rebound = many.fan["short_liquidations_usd"]["p50"].iloc[24]
    assert rebound > 3 * none.fan["short_liquidations_usd"]["p50"].iloc[24]


def test_momentum_traders_close_as_the_move_fades():
    """Their capital is finite: their position relaxes toward a target set by the lookback return
    beyond the threshold, and back toward flat once the fall has left their 6-hour window. Into the
    fall they sell (open shorts); once it has left the window they buy them back, sooner the shorter
    their holding time, and over the two days their net flow is a small part of what they traded
    (the rest went to liquidations and the side's own hazards)."""
    def momentum(holding):
        return run(with_shocks(market({"market.behaviour.momentum.open_rate": 5,
                                       "market.behaviour.momentum.capital": "100%",
                                       "market.behaviour.momentum.holding_time": holding}), FALL),
                   n_paths=N, seed=SEED).flows["momentum"]
    quick, patient = momentum("3h"), momentum("3d")
    for flows in (quick, patient):
        assert (flows.iloc[7:12] < 0).all()  # shorts opened into the fall
    assert quick.iloc[13:24].sum() > 0  # bought back once the fall is out of the lookback
    assert quick.iloc[13:24].sum() > 2 * max(patient.iloc[13:24].sum(), 0.0)
    assert abs(quick.sum()) < 0.25 * quick.abs().sum()
    # the patient ones keep relaxing toward a target 24 times larger (up to their capital) while the
    # fall is in the window
    assert patient.iloc[7:13].sum() < quick.iloc[7:13].sum() < 0


def test_momentum_traders_hold_no_more_than_their_capital():
    """Their target stops at their capital (a share of the book's starting size, 30B here): after a
    10% fall at a high open rate, 2% of the book is all they sell, against far more with a capital
    of 100%; what they sold is bounded by the cap however long the fall lasts."""
    def sold(capital):
        r = run(with_shocks(market({"market.behaviour.momentum.open_rate": 50,
                                    "market.behaviour.momentum.holding_time": "3d",
                                    "market.behaviour.momentum.capital": capital}), FALL), n_paths=N, seed=SEED)
        return -r.flows["momentum"].iloc[6:13].sum()
    small, large = sold("2%"), sold("100%")
    book_usd = 30e9
    assert 0 < small <= 0.02 * book_usd * 1.05  # at the fall's price, within rounding
    assert large > 3 * small


def test_funding_follows_the_imbalance():
    """funding = base + sensitivity * (long - short) / (long + short), per interval. The book's
    imbalance must last the two days: at the calibrated permanent impact (:data:`PERMANENT`) the
    longs' liquidations never take the long-heavy book below the short side; at four times that,
    on a few paths they do, and funding there follows the imbalance below the base rate."""
    flat = run(market({**PERMANENT, "market.perpetuals.funding.imbalance_sensitivity": 0}), n_paths=64, seed=SEED)
    assert (flat.per_path["min_funding_rate"] == 1e-4).all() and (flat.per_path["max_funding_rate"] == 1e-4).all()
    low, high = pair(market({**PERMANENT, "market.perpetuals.funding.imbalance_sensitivity": "0.05%"}),
                     market({**PERMANENT, "market.perpetuals.funding.imbalance_sensitivity": "0.2%"}))
    # long-heavy book (20B vs 10B): imbalance ~ +1/3, funding above the base and more so
    assert (low.per_path["min_funding_rate"] > 1e-4).all()
    assert median(high, "max_funding_rate") > median(low, "max_funding_rate") + 3e-4
    assert median(high, "max_funding_rate") == pytest.approx(1e-4 + 0.002 / 3, rel=0.2)
    # a short-heavy book pays the other way
    shorts = {**PERMANENT, "market.perpetuals.long.notional_usd": "10B", "market.perpetuals.short.notional_usd": "20B"}
    low_s, high_s = pair(market({**shorts, "market.perpetuals.funding.imbalance_sensitivity": "0.05%"}),
                         market({**shorts, "market.perpetuals.funding.imbalance_sensitivity": "0.2%"}))
    assert median(high_s, "min_funding_rate") < median(low_s, "min_funding_rate") < 1e-4
    assert median(high_s, "min_funding_rate") < 0
    # and the cap holds
    capped = run(market({**PERMANENT, "market.perpetuals.funding": {"imbalance_sensitivity": "5%", "cap": "0.3%"}}),
                 n_paths=64, seed=SEED)
    assert (capped.per_path["max_funding_rate"] <= 0.003).all()
    assert (capped.per_path["max_funding_rate"] == 0.003).mean() > 0.9


# ----------------------------------------------------------------------------- insurance fund and ADL
# A jump is a continuous move: liquidations fill at their trigger, inside the maintenance margin
# (0.5%), and leave no bad debt. A liquidation engine that fills 3% beyond the trigger (a slow
# engine on a thin book) takes every liquidation 2.5% of its trigger beyond bankruptcy: the crash
# leaves bad debt.
CRASH = {"type": "price_jump", "start": "+3h", "size": "-15%"}
BAD_FILLS = {**PERMANENT, "market.perpetuals.liquidation.fill_slippage": "3%"}


def test_without_an_insurance_fund_bad_debt_goes_to_adl():
    """The crash's bad debt (0.13B to 0.32B a path) is paid by a 1B fund; with no fund all of it is
    auto-deleveraged (no fill is inside the margin, so there is no surplus to pay any of it)."""
    funded, bare = pair(with_shocks(market(BAD_FILLS), CRASH),
                        with_shocks(market({**BAD_FILLS, "market.perpetuals.insurance_fund_usd": 0}), CRASH))
    assert (funded.per_path["bad_debt_usd"] > 0).all()
    assert (funded.per_path["adl_usd"] == 0).all()  # a 1B fund covers it
    pp = bare.per_path
    assert (pp["adl_usd"] > 0).all()
    uncovered = pp["bad_debt_usd"] > pp["liquidation_surplus_usd"]
    assert uncovered.all() and (pp.loc[uncovered, "adl_usd"] > 0).all()
    assert (pp["adl_usd"] <= pp["bad_debt_usd"] * (1 + 1e-12)).all()  # summed per step: last-bit rounding
    assert (pp["liquidation_surplus_usd"] == 0).all()
    np.testing.assert_allclose(pp["adl_usd"], pp["bad_debt_usd"], rtol=1e-9)
    assert bare.probabilities()["prob_adl"] == 1.0 and funded.probabilities()["prob_adl"] == 0.0


def test_a_smaller_insurance_fund_means_more_adl():
    """The same crash and fills (bad debt 0.13B to 0.32B a path, 0.2B at the median) against funds
    of 0 to 1B: the less the fund pays, the more is auto-deleveraged."""
    adl = []
    for fund in ("0", "100M", "200M", "1B"):
        r = run(with_shocks(market({**BAD_FILLS, "market.perpetuals.insurance_fund_usd": fund}), CRASH),
                n_paths=N, seed=SEED)
        adl.append(mean(r, "adl_usd"))
    assert adl[0] > adl[1] > adl[2] > adl[3] == 0
