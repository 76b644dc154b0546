"""Scenario -> CompiledScenario: base arrays from ``market``, then each shock in order.

Usage::

    compiled = engine.compile_scenario("scenarios/feb-2026-deleveraging.yaml")
    compiled.step("DEPTH_MULT")          # per-step depth multiplier
    compiled.venue("IMR", "cross_margined")

The arrays and their units are the kernel ABI documented in :mod:`engine.compile.layout`; what
each shock writes is documented in :mod:`engine.compile.shocks`.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import numpy as np

from ..errors import Problem, ScenarioError
from . import layout
from .book import build_book, new_leverage_nodes, tier_rate
from .compiled import CompiledScenario, OptionBook, OutputPlan, PortfolioArrays, RngPlan
from .layout import Param, Step, Venue
from .shocks import APPLY, Context
from .timeline import Timeline

__all__ = ["compile_scenario", "RNG_BLOCK_SIZE"]

RNG_BLOCK_SIZE = 256  # paths per random stream; fixed so that chunking never changes a number


def _base_steps(scenario, timeline: Timeline) -> np.ndarray:
    m = scenario.market
    n = timeline.n_steps
    s = np.zeros((layout.N_STEP_FIELDS, n))
    dt = timeline.dt_years
    s[Step.DRIFT] = m.drift_annual * dt
    s[Step.VOL] = m.volatility.annual * math.sqrt(dt)
    s[Step.JUMP_PROB] = -math.expm1(-m.volatility.jumps.intensity_per_day * timeline.dt_days)
    s[Step.MACRO_BETA] = m.macro.btc_beta
    s[Step.MACRO_DRIFT] = m.macro.drift_annual * dt
    s[Step.MACRO_VOL] = m.macro.annual_vol * math.sqrt(dt)
    s[Step.DEPTH_MULT] = 1.0
    s[Step.RESILIENCE_MULT] = 1.0
    window = m.etf.execution_window
    s[Step.ETF_WINDOW] = _us_session_share(timeline, window.start, window.end)
    s[Step.ETF_LOSS_SENS] = m.etf.reflexivity.loss_sensitivity
    s[Step.ETF_BASIS_SENS] = m.etf.reflexivity.below_cost_basis_sensitivity
    s[Step.ETF_REFLEX_MULT] = 1.0
    s[Step.MINER_BREAKEVEN] = m.miners.breakeven_hash_price_usd_per_ph_day
    s[Step.MINER_HASHRATE_MULT] = 1.0
    first = (scenario.horizon.resolve(m.miners.next_difficulty_adjustment)
             if m.miners.next_difficulty_adjustment is not None
             else scenario.horizon.start + m.miners.difficulty_period)
    s[Step.DIFFICULTY_ADJUST] = np.minimum(timeline.events(first, m.miners.difficulty_period), 1.0)
    epoch = datetime(1970, 1, 1, tzinfo=scenario.horizon.start.tzinfo)
    s[Step.FUNDING_EVENTS] = timeline.events(epoch, m.perpetuals.funding.interval)
    s[Step.ATM_IV] = m.options.atm_iv
    s[Step.RISK_REVERSAL_25D] = m.options.risk_reversal_25d
    s[Step.TERM_SLOPE] = m.options.term_structure_slope
    s[Step.DEALER_SHORT_SHARE] = m.options.dealer_short_share
    return s


def _us_session_share(timeline: Timeline, start_min: int, end_min: int) -> np.ndarray:
    """Share of each weekday's execution window inside each step (weekends: 0)."""
    from datetime import timedelta, timezone

    out = np.zeros(timeline.n_steps)
    first = timeline.start.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    day = first
    end = timeline.start + timeline.step * timeline.n_steps
    while day < end:
        if day.weekday() < 5:
            out += timeline.window_share(day + timedelta(minutes=start_min), day + timedelta(minutes=end_min))
        day += timedelta(days=1)
    return out


def _base_venues(scenario, timeline: Timeline) -> np.ndarray:
    perps = scenario.market.perpetuals
    v = np.zeros((layout.N_VENUE_FIELDS, len(perps.venues), timeline.n_steps))
    for i, name in enumerate(perps.venues):
        v[Venue.MMR, i], v[Venue.IMR, i] = perps.margin_rates(name)
        v[Venue.INSURANCE_FUND_USD, i] = perps.insurance_fund(name)
    v[Venue.LIQ_FILL_PENALTY] = perps.liquidation.fill_slippage
    return v


def _params(scenario, timeline: Timeline) -> np.ndarray:
    m = scenario.market
    p = np.zeros(layout.N_PARAMS)
    p[Param.SPOT0] = m.spot_usd
    p[Param.DT_YEARS] = timeline.dt_years
    p[Param.TAIL_DOF] = m.volatility.tail_dof or 0.0
    p[Param.JUMP_MEAN] = m.volatility.jumps.mean
    p[Param.JUMP_STDEV] = m.volatility.jumps.stdev
    cl = m.volatility.clustering
    persist = math.exp(-math.log(2) * timeline.step_seconds / cl.half_life.total_seconds())
    p[Param.CLUSTER_PERSIST] = persist
    p[Param.CLUSTER_SHOCK] = cl.vol_of_vol * math.sqrt(1.0 - persist * persist)
    p[Param.CLUSTER_STDEV] = cl.vol_of_vol
    p[Param.CLUSTER_RHO] = cl.leverage
    p[Param.LIQ_FEEDBACK] = cl.liquidation_feedback
    p[Param.IMPACT_MODEL] = {"sqrt": layout.IMPACT_SQRT, "linear": layout.IMPACT_LINEAR,
                             "both": layout.IMPACT_BOTH}[m.impact.model]
    p[Param.SQRT_COEFFICIENT] = m.impact.sqrt_coefficient
    p[Param.SIGMA_DAY] = m.volatility.annual / math.sqrt(365.25)
    p[Param.DAILY_VOLUME_USD] = m.impact.daily_volume_usd
    p[Param.DEPTH_USD_PER_PCT] = m.impact.depth_usd_per_pct
    p[Param.RESILIENCE_DECAY] = math.exp(-math.log(2) * timeline.step_seconds
                                         / m.impact.resilience_half_life.total_seconds())
    p[Param.PERMANENT_FRACTION] = m.impact.permanent_fraction
    memory = m.impact.depth_memory
    p[Param.DEPTH_MEMORY_DECAY] = (1.0 if memory is None else 0.0 if memory.total_seconds() == 0
                                   else math.exp(-timeline.step_seconds / memory.total_seconds()))
    p[Param.MAX_CASCADE_ROUNDS] = m.perpetuals.liquidation.max_cascade_rounds
    p[Param.FUNDING_BASE] = m.perpetuals.funding.base_rate
    p[Param.FUNDING_SENSITIVITY] = m.perpetuals.funding.imbalance_sensitivity
    p[Param.FUNDING_CAP] = m.perpetuals.funding.cap
    p[Param.ETF_HOLDINGS_BTC] = m.etf.holdings_btc
    p[Param.ETF_COST_BASIS_USD] = m.etf.cost_basis_usd
    p[Param.ETF_LOOKBACK_STEPS] = max(1, round(m.etf.reflexivity.lookback.total_seconds() / timeline.step_seconds))
    p[Param.MINER_HASHRATE_PH] = m.miners.hashrate_eh_per_s * 1000.0
    p[Param.MINER_RESERVES_BTC] = m.miners.reserves_btc
    p[Param.MINER_REVENUE_BTC_PER_DAY] = m.miners.block_subsidy_btc * 144 * (1 + m.miners.fee_share)
    p[Param.MINER_SELL_SENSITIVITY] = m.miners.sell_sensitivity
    p[Param.MINER_HASHRATE_SENSITIVITY] = m.miners.hashrate_sensitivity
    delev, momentum = m.behaviour.deleveraging, m.behaviour.momentum
    p[Param.DELEV_BASE] = delev.base_hazard_per_day
    p[Param.DELEV_DRAWDOWN] = delev.drawdown_sensitivity
    p[Param.DELEV_TAKE_PROFIT] = delev.take_profit_sensitivity
    # the average entry of a book whose positions arrive steadily and close at the base hazard: the
    # price's exponential average at that rate (the open positions' ages are exponential)
    p[Param.ENTRY_EMA_DECAY] = math.exp(-delev.base_hazard_per_day * timeline.step_seconds / 86400.0)
    p[Param.DELEV_VOLATILITY] = delev.volatility_sensitivity
    p[Param.DELEV_VOL_REFERENCE] = delev.reference_volatility
    p[Param.DELEV_FUNDING] = delev.funding_sensitivity
    p[Param.VOL_EWMA_DECAY] = math.exp(-math.log(2) * timeline.step_seconds
                                       / max(delev.volatility_half_life.total_seconds(), 1.0))
    p[Param.MOMENTUM_LOOKBACK_STEPS] = max(1, round(momentum.lookback.total_seconds() / timeline.step_seconds))
    p[Param.MOMENTUM_RATE] = momentum.open_rate
    p[Param.MOMENTUM_THRESHOLD] = momentum.threshold
    p[Param.MOMENTUM_HOLD_DAYS] = momentum.holding_time.total_seconds() / 86400.0
    p[Param.MOMENTUM_CAPITAL] = momentum.capital
    p[Param.FUNDING_INTERVALS_PER_DAY] = 86400 / m.perpetuals.funding.interval.total_seconds()
    p[Param.SURFACE_BF25] = m.options.butterfly_25d
    p[Param.SURFACE_SPOT_VOL_BETA] = m.options.spot_vol_beta
    p[Param.SURFACE_SKEW_BETA] = m.options.skew_beta
    p[Param.IV_VRP] = m.options.variance_risk_premium
    return p


def _years(scenario, when: datetime) -> float:
    return (when - scenario.horizon.start).total_seconds() / (365.25 * 86400)


def _option_book(scenario, timeline: Timeline, oi: dict) -> OptionBook:
    keys = sorted(oi, key=lambda k: (k[2], k[0], k[1]))
    n = timeline.n_steps
    return OptionBook(
        kind=np.array([layout.OPTION_PUT if k[0] == "put" else layout.OPTION_CALL for k in keys], dtype=np.int8),
        strike_usd=np.array([k[1] for k in keys], dtype=float),
        expiry_years=np.array([_years(scenario, k[2]) for k in keys], dtype=float),
        expiry_step=np.array([min(timeline.index(k[2]), n) for k in keys], dtype=np.int64),
        open_interest_btc=(np.stack([oi[k] for k in keys], axis=1) if keys else np.zeros((n, 0))),
    )


def _portfolio(scenario, venue_names) -> PortfolioArrays | None:
    pf = scenario.portfolio
    if pf is None:
        return None
    perp = pf.perp
    perps = scenario.market.perpetuals
    entry = (perp.entry_price_usd or scenario.market.spot_usd) if perp else 0.0
    mmr = 0.0
    if perp:  # its tier's rate at its notional, or its venue's flat rate
        tiers = perps.schedule(perp.venue or venue_names[0])
        mmr = perps.margin_rates(perp.venue or venue_names[0])[0] if tiers is None else tier_rate(
            tiers, abs(perp.size_btc) * entry)
    return PortfolioArrays(
        spot_btc=pf.spot_btc,
        cash_usd=pf.cash_usd,
        perp_size_btc=perp.size_btc if perp else 0.0,
        perp_leverage=perp.leverage if perp else 0.0,
        perp_entry_usd=entry,
        perp_venue=venue_names.index(perp.venue) if perp and perp.venue else 0,
        perp_mmr=mmr,
        option_kind=np.array([layout.OPTION_PUT if o.kind == "put" else layout.OPTION_CALL
                              for o in pf.options], dtype=np.int8),
        option_strike_usd=np.array([o.strike_usd for o in pf.options], dtype=float),
        option_expiry_years=np.array([_years(scenario, o.expiry) for o in pf.options], dtype=float),
        option_size_btc=np.array([o.size_btc for o in pf.options], dtype=float),
    )


def rng_plan(seed: int, n_paths: int, block_size: int = RNG_BLOCK_SIZE) -> RngPlan:
    n_blocks = -(-n_paths // block_size)
    seeds = np.array(
        [np.random.SeedSequence(seed, spawn_key=(b,)).generate_state(2, np.uint64) for b in range(n_blocks)],
        dtype=np.uint64,
    ).reshape(n_blocks, 2)
    return RngPlan(seed, n_paths, block_size, seeds)


def compile_scenario(scenario, *, n_paths: int | None = None, seed: int | None = None) -> CompiledScenario:
    """A scenario turned into the frozen arrays the kernels read.

    Parameters
    ----------
    scenario : Scenario or str or pathlib.Path
        A loaded scenario, or a scenario file or library name (loaded first).
    n_paths, seed : int, optional
        Override the scenario's own number of paths and seed.

    Returns
    -------
    CompiledScenario
        The timeline, the per-step drivers of every shock (``step(name)``), the parameters
        (``param(name)``), the position book, the options' open interest and the RNG plan.

    Raises
    ------
    InvalidParameterError
        A bad argument: ``n_paths`` below 1, a negative ``seed``, a scenario of another type.
    ScenarioError
        A file given by name that does not load.

    Examples
    --------
    >>> import engine
    >>> compiled = engine.compile_scenario("scenarios/ci/ci-calm.yaml", n_paths=256)
    >>> compiled.n_steps, compiled.n_paths
    (72, 256)
    >>> compiled.param("SPOT0")
    89300.0
    """
    from .._params import check_count, check_scenario, check_seed

    check_scenario("compile_scenario", "scenario", scenario)
    n_paths = check_count("compile_scenario", "n_paths", n_paths, optional=True)
    seed = check_seed("compile_scenario", "seed", seed)
    if isinstance(scenario, (str, Path)):
        from ..scenario.loader import load_scenario

        scenario = load_scenario(scenario)
    timeline = Timeline.of(scenario.horizon)
    venue_names = tuple(scenario.market.perpetuals.venues)
    option_oi: dict = {}
    for oi in scenario.market.options.open_interest:
        row = option_oi.setdefault((oi.kind, oi.strike_usd, oi.expiry), np.zeros(timeline.n_steps))
        row += oi.size_btc
    ctx = Context(scenario, timeline, _base_steps(scenario, timeline), _base_venues(scenario, timeline),
                  venue_names, option_oi)
    for index, shock in enumerate(scenario.shocks):
        APPLY[shock.type](shock, ctx, index)
    impact = scenario.market.impact
    inert = sorted({"sqrt_coefficient", "daily_volume_usd"} & impact.model_fields_set) if impact.model == "linear" else []
    if inert:
        ctx.notes.append(f"market.impact.{' and '.join(inert)} set but unused: the transient law is linear "
                         "(model: linear); they act under model: sqrt or both")
    clustering = scenario.market.volatility.clustering
    if clustering.vol_of_vol == 0:  # the half-life still times the liquidation feedback's decay
        unused = {"leverage"} if clustering.liquidation_feedback > 0 else {"half_life", "leverage"}
        inert = sorted(unused & clustering.model_fields_set)
        if inert:
            ctx.notes.append(f"market.volatility.clustering.{' and '.join(inert)} set but unused: vol_of_vol is 0 "
                             "(constant volatility); set vol_of_vol above 0 for them to act")
    perps = scenario.market.perpetuals
    if "position_size" in perps.model_fields_set and all(perps.schedule(v) is None for v in perps.venues):
        ctx.notes.append("market.perpetuals.position_size set but unused: every venue has a flat maintenance rate "
                         "(it splits the book by margin tier)")
    # the liquidation engine's base slippage is the book's at normal depth: it grows as depth thins
    # (exchange failures, a tightening's withdrawal), 1/DEPTH_MULT times the base
    ctx.venue_steps[Venue.LIQ_FILL_PENALTY] += scenario.market.perpetuals.liquidation.fill_slippage * (
        1.0 / ctx.steps[Step.DEPTH_MULT] - 1.0)[None, :]
    try:
        book = build_book(scenario.market)
    except ValueError as exc:
        raise ScenarioError(Problem(str(exc), path=("market", "perpetuals"))) from None
    outputs = scenario.outputs
    return CompiledScenario(
        name=scenario.name,
        timeline=timeline.times(),
        step_seconds=timeline.step_seconds,
        params=_params(scenario, timeline),
        steps=ctx.steps,
        venue_names=venue_names,
        venue_steps=ctx.venue_steps,
        book_bankruptcy_usd=book.bankruptcy_usd,
        book_long_btc=book.long_btc,
        book_short_btc=book.short_btc,
        book_long_entry_usd=book.long_entry_usd,
        book_short_entry_usd=book.short_entry_usd,
        book_rows=book.rows,
        new_leverage=np.array([new_leverage_nodes(d, layout.N_NEW_NODES) for d in (
            scenario.market.perpetuals.long.leverage, scenario.market.perpetuals.short.leverage,
            scenario.market.behaviour.momentum.leverage)]),
        options=_option_book(scenario, timeline, option_oi),
        portfolio=_portfolio(scenario, venue_names),
        rng=rng_plan(scenario.seed if seed is None else seed,
                     scenario.n_paths if n_paths is None else n_paths),
        outputs=OutputPlan(np.array(outputs.quantiles, dtype=float),
                           np.array(outputs.price_levels_usd, dtype=float), outputs.sample_paths,
                           outputs.report, outputs.figures),
        notes=tuple(ctx.notes),
    )
