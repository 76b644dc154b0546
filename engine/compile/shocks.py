"""How each shock type changes the compiled arrays. One function per type, applied in list order.

Conventions (``w`` is the shock's envelope averaged over each step, see :mod:`.timeline`):

* multipliers compose by product: ``DEPTH_MULT *= 1 + w*(m - 1)``;
* targets move the current value toward the shock's: ``MACRO_BETA += w*(target - MACRO_BETA)``;
* additive terms add: drifts (``w * drift * dt``), log-return moves spread over the window;
* amounts (USD or BTC) are spread over the window in proportion to the envelope's mass.

==========================  ===========================================================================
shock                       arrays it writes
==========================  ===========================================================================
margin_hike                 venue MMR/IMR or MM/IM_USD_PER_BTC from each schedule step (reverting after
                            ``duration``), MARGIN_CHANGE and TOP_UP_FRACTION at the change steps
etf_flows                   ETF_FLOW_USD (each day's flow over its execution window; generated runs drawn
                            once from their seed), ETF_LOSS_SENS/ETF_BASIS_SENS (overrides) and
                            ETF_REFLEX_MULT from ``start``
balance_sheet_tightening    DEPTH_MULT, VOL, DRIFT, MACRO_BETA, ETF_REFLEX_MULT; SCHEDULED_JUMP
cross_asset_shock           MACRO_DRIFT (the macro factor's own move), CROSS_ASSET_RETURN (beta * log move
                            of other assets), MACRO_VOL, FORCED_FLOW_USD
exchange_failure            DEPTH_MULT, RESILIENCE_MULT (market makers gone), venue LIQ_FILL_PENALTY,
                            CIRCUIT_BREAKER_MOVE/STEPS
miner_capitulation          MINER_BREAKEVEN, MINER_HASHRATE_MULT, MINER_FORCED_SALE_BTC
relief_rally                NEW_SHORT_NOTIONAL_USD/LEVERAGE at start, MACRO_DRIFT, FORCED_FLOW_USD (buying)
price_jump                  SCHEDULED_JUMP, SCHEDULED_JUMP_SPREAD
options_positioning         option OI from start, ATM_IV, RISK_REVERSAL_25D, TERM_SLOPE, DEALER_SHORT_SHARE
==========================  ===========================================================================
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np

from .layout import Step, Venue
from .timeline import Envelope, Timeline

__all__ = ["Context", "APPLY"]


@dataclass
class Context:
    """Mutable working state while compiling; frozen into a ``CompiledScenario`` at the end."""

    scenario: object
    timeline: Timeline
    steps: np.ndarray
    venue_steps: np.ndarray
    venue_names: tuple[str, ...]
    option_oi: dict  # (kind, strike, expiry datetime) -> (n_steps,) OI in BTC
    notes: list[str] = field(default_factory=list)

    def when(self, value) -> datetime:
        return self.scenario.horizon.resolve(value)

    def first_tier_rate(self, v: int) -> float | None:
        """Venue ``v``'s lowest tier maintenance rate, or None for a flat venue (a hike's rates are
        floors under the tiers, so one below this changes nothing there)."""
        tiers = self.scenario.market.perpetuals.schedule(self.venue_names[v])
        return None if tiers is None else tiers[0].maintenance_margin_rate

    def envelope(self, shock) -> np.ndarray:
        return self.timeline.average(
            Envelope.of(self.when(shock.start), getattr(shock, "ramp", None),
                        getattr(shock, "duration", None), getattr(shock, "ramp_out", None))
        )

    def mass(self, shock) -> np.ndarray:
        """Share of the shock's total envelope area in each step (for spreading amounts)."""
        return self.timeline.share_of(
            Envelope.of(self.when(shock.start), getattr(shock, "ramp", None),
                        getattr(shock, "duration", None), getattr(shock, "ramp_out", None))
        )

    def from_step(self, when: datetime) -> np.ndarray:
        """Indicator of the steps from the one containing ``when`` onward."""
        out = np.zeros(self.timeline.n_steps)
        i = self.timeline.index(when)
        out[max(i, 0):] = 1.0
        return out

    def venue_index(self, venues) -> list[int]:
        if venues is None:
            return list(range(len(self.venue_names)))
        return [self.venue_names.index(v) for v in venues]


def _scale(row: np.ndarray, w: np.ndarray, multiplier: float) -> None:
    row *= 1.0 + w * (multiplier - 1.0)


def _toward(row: np.ndarray, w: np.ndarray, target: float | None) -> None:
    if target is not None:
        row += w * (target - row)


# ----------------------------------------------------------------------------- margin hike
def margin_hike(shock, ctx: Context) -> None:
    vs = ctx.venue_steps
    n = ctx.timeline.n_steps
    start = ctx.when(shock.start)
    end_index = n if shock.duration is None else ctx.timeline.index(start + shock.duration)
    for v in ctx.venue_index(shock.venues):
        before = vs[:, v, :].copy()
        for step in shock.steps():
            i = ctx.timeline.index(ctx.when(step.at or shock.start))
            if i >= n:
                continue
            i = max(i, 0)
            for which, rate_row, usd_row in (("initial", Venue.IMR, Venue.IM_USD_PER_BTC),
                                             ("maintenance", Venue.MMR, Venue.MM_USD_PER_BTC)):
                rate = getattr(step, f"{which}_margin_rate")
                usd = getattr(step, f"{which}_margin_usd_per_contract")
                if rate is not None:
                    floor = ctx.first_tier_rate(v)
                    if which == "maintenance" and floor is not None and rate < floor:
                        ctx.notes.append(f"margin_hike: maintenance_margin_rate {rate:.4g} is below venue "
                                         f"{ctx.venue_names[v]!r}'s first margin tier ({floor:.4g}): tiers are "
                                         "floors a hike raises, so it changes nothing there")
                    vs[rate_row, v, i:end_index] = rate
                    vs[usd_row, v, i:end_index] = 0.0
                elif usd is not None:
                    vs[usd_row, v, i:end_index] = usd / shock.btc_per_contract
            vs[Venue.MARGIN_CHANGE, v, i] = 1.0
            vs[Venue.TOP_UP_FRACTION, v, i] = shock.top_up_fraction
        if end_index < n:  # revert to what held before the hike
            for row in (Venue.IMR, Venue.MMR, Venue.IM_USD_PER_BTC, Venue.MM_USD_PER_BTC):
                vs[row, v, end_index:] = before[row, end_index:]
            vs[Venue.MARGIN_CHANGE, v, end_index] = 1.0


# ----------------------------------------------------------------------------- ETF flows
def generated_flows(shock, start: datetime, scenario_seed: int, index: int) -> dict[datetime, float]:
    """The daily flows of a generated run from ``start``: drawn once, identical on every path.

    Day ``k`` gets ``mean * (1 + dispersion * z_k)`` with ``z_k`` standard normal; when a total is
    given, the draws are shifted equally so they add up to it exactly.
    """
    g = shock.generated
    # without its own seed, a run is keyed by the scenario seed and its id (or position), so
    # adding another shock does not redraw it
    key = zlib.crc32(shock.id.encode()) if shock.id else index
    entropy = g.seed if g.seed is not None else [scenario_seed, 0xE7F, key]
    rng = np.random.default_rng(np.random.SeedSequence(entropy))
    mean = g.total_usd / g.days if g.total_usd is not None else g.mean_per_day_usd
    flows = mean * (1.0 + g.dispersion * rng.standard_normal(g.days))
    if g.total_usd is not None:
        flows += (g.total_usd - flows.sum()) / g.days
    return dict(zip(shock.generated_days(start), flows.tolist()))


def etf_flows(shock, ctx: Context, index: int) -> None:
    s = ctx.steps
    window = shock.execution_window or ctx.scenario.market.etf.execution_window
    if shock.daily_flows_usd is not None:
        days = {datetime(d.year, d.month, d.day, tzinfo=timezone.utc): f for d, f in shock.daily_flows_usd.items()}
    elif shock.generated is not None:
        days = generated_flows(shock, ctx.when(shock.start), ctx.scenario.seed, index)
    else:
        days = {}
    for day, flow in days.items():
        share = ctx.timeline.window_share(day + timedelta(minutes=window.start), day + timedelta(minutes=window.end))
        s[Step.ETF_FLOW_USD] += flow * share
    on = ctx.from_step(ctx.when(shock.start))
    if shock.reflexivity is not None:
        s[Step.ETF_LOSS_SENS] = np.where(on > 0, shock.reflexivity.loss_sensitivity, s[Step.ETF_LOSS_SENS])
        s[Step.ETF_BASIS_SENS] = np.where(on > 0, shock.reflexivity.below_cost_basis_sensitivity,
                                          s[Step.ETF_BASIS_SENS])
    _scale(s[Step.ETF_REFLEX_MULT], on, shock.reflexivity_multiplier)


# ----------------------------------------------------------------------------- regimes
def balance_sheet_tightening(shock, ctx: Context) -> None:
    s, w = ctx.steps, ctx.envelope(shock)
    _scale(s[Step.DEPTH_MULT], w, shock.depth_multiplier)
    _scale(s[Step.VOL], w, shock.vol_multiplier)
    s[Step.DRIFT] += w * shock.drift_annual * ctx.timeline.dt_years
    _toward(s[Step.MACRO_BETA], w, shock.macro_beta)
    _scale(s[Step.ETF_REFLEX_MULT], w, shock.etf_reflexivity_multiplier)
    if shock.announcement_jump is not None:
        i = ctx.timeline.index(ctx.when(shock.announcement_jump.at or shock.start))
        if 0 <= i < ctx.timeline.n_steps:
            s[Step.SCHEDULED_JUMP, i] += shock.announcement_jump.size


def cross_asset_shock(shock, ctx: Context) -> None:
    s = ctx.steps
    start = ctx.when(shock.start)
    share = ctx.timeline.window_share(start, start + shock.duration)
    for move in shock.moves:
        log_move = math.log1p(move.move)
        if move.is_macro_factor:
            s[Step.MACRO_DRIFT] += log_move * share
        else:
            s[Step.CROSS_ASSET_RETURN] += move.btc_beta * log_move * share
    inside = ctx.timeline.average(Envelope.of(start, None, shock.duration))
    _scale(s[Step.MACRO_VOL], inside, shock.macro_vol_multiplier)
    s[Step.FORCED_FLOW_USD] += shock.forced_selling_usd * share


def exchange_failure(shock, ctx: Context) -> None:
    """Depth and healing are market-wide: a failure of venues holding share ``h`` of the book takes
    ``h*(1 - depth_fraction)`` of the depth away and stops ``h`` of the healing."""
    s, w = ctx.steps, ctx.envelope(shock)
    venues = ctx.scenario.market.perpetuals.venues
    hit = sum(venues[ctx.venue_names[v]].share for v in ctx.venue_index(shock.venues))
    _scale(s[Step.DEPTH_MULT], w * hit, shock.depth_fraction)
    if shock.market_makers_gone:
        s[Step.RESILIENCE_MULT] *= 1.0 - w * hit
    for v in ctx.venue_index(shock.venues):
        ctx.venue_steps[Venue.LIQ_FILL_PENALTY, v] += w * shock.liquidation_fill_penalty
    if shock.circuit_breaker_move is not None:
        active = w > 0
        current = s[Step.CIRCUIT_BREAKER_MOVE]
        tighter = np.where(current > 0, np.minimum(current, shock.circuit_breaker_move), shock.circuit_breaker_move)
        s[Step.CIRCUIT_BREAKER_MOVE] = np.where(active, tighter, current)
        pause = math.ceil(shock.circuit_breaker_pause.total_seconds() / ctx.timeline.step_seconds)
        s[Step.CIRCUIT_BREAKER_STEPS] = np.where(active, np.maximum(s[Step.CIRCUIT_BREAKER_STEPS], pause),
                                                 s[Step.CIRCUIT_BREAKER_STEPS])


def miner_capitulation(shock, ctx: Context) -> None:
    s, w = ctx.steps, ctx.envelope(shock)
    _scale(s[Step.MINER_BREAKEVEN], w, shock.breakeven_multiplier)
    _scale(s[Step.MINER_HASHRATE_MULT], w, 1.0 + shock.hashrate_change)
    reserves = ctx.scenario.market.miners.reserves_btc
    s[Step.MINER_FORCED_SALE_BTC] += reserves * shock.reserve_sale_fraction * ctx.mass(shock)


def relief_rally(shock, ctx: Context) -> None:
    s = ctx.steps
    i = ctx.timeline.index(ctx.when(shock.start))
    if 0 <= i < ctx.timeline.n_steps and shock.new_short_notional_usd > 0:
        old = s[Step.NEW_SHORT_NOTIONAL_USD, i]
        new = old + shock.new_short_notional_usd
        s[Step.NEW_SHORT_LEVERAGE, i] = (s[Step.NEW_SHORT_LEVERAGE, i] * old
                                        + shock.short_leverage * shock.new_short_notional_usd) / new
        s[Step.NEW_SHORT_NOTIONAL_USD, i] = new
    mass = ctx.mass(shock)
    s[Step.MACRO_DRIFT] += math.log1p(shock.macro_move) * mass
    s[Step.FORCED_FLOW_USD] += shock.momentum_buying_usd * mass


def price_jump(shock, ctx: Context) -> None:
    i = ctx.timeline.index(ctx.when(shock.start))
    if 0 <= i < ctx.timeline.n_steps:
        s = ctx.steps
        s[Step.SCHEDULED_JUMP, i] += shock.size
        s[Step.SCHEDULED_JUMP_SPREAD, i] = math.hypot(s[Step.SCHEDULED_JUMP_SPREAD, i], shock.spread)


def options_positioning(shock, ctx: Context) -> None:
    s, w = ctx.steps, ctx.envelope(shock)
    on = ctx.from_step(ctx.when(shock.start))
    n = ctx.timeline.n_steps
    for sign, key in ((1.0, "open_interest_changes"), (-1.0, "open_interest_removed")):
        for oi in getattr(shock, key):
            k = (oi.kind, oi.strike_usd, oi.expiry)
            row = ctx.option_oi.setdefault(k, np.zeros(n))
            row += sign * oi.size_btc * on
            if (row < -1e-9).any():
                ctx.notes.append(f"{shock.id or 'options_positioning'}: removing more {oi.kind} OI at "
                                 f"{oi.strike_usd:,.0f} than exists; floored at 0")
            np.maximum(row, 0.0, out=row)
    _toward(s[Step.ATM_IV], w, shock.atm_iv)
    _toward(s[Step.RISK_REVERSAL_25D], w, shock.risk_reversal_25d)
    _toward(s[Step.TERM_SLOPE], w, shock.term_structure_slope)
    _toward(s[Step.DEALER_SHORT_SHARE], w, shock.dealer_short_share)


APPLY = {
    "margin_hike": lambda shock, ctx, i: margin_hike(shock, ctx),
    "etf_flows": etf_flows,
    "balance_sheet_tightening": lambda shock, ctx, i: balance_sheet_tightening(shock, ctx),
    "cross_asset_shock": lambda shock, ctx, i: cross_asset_shock(shock, ctx),
    "exchange_failure": lambda shock, ctx, i: exchange_failure(shock, ctx),
    "miner_capitulation": lambda shock, ctx, i: miner_capitulation(shock, ctx),
    "relief_rally": lambda shock, ctx, i: relief_rally(shock, ctx),
    "price_jump": lambda shock, ctx, i: price_jump(shock, ctx),
    "options_positioning": lambda shock, ctx, i: options_positioning(shock, ctx),
}
