"""The ``market:`` section: the state of the market at ``horizon.start`` and how it behaves.

Defaults describe a large, liquid BTC market of early 2026 (depth ~14M USD per 1%, ~20B daily
spot volume, ~55% annual volatility); the shipped scenarios set what their facts say.
Every parameter here reaches the compiled scenario (:mod:`engine.compile`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from ..options.vrp import DEFAULT_VRP
from .types import (MAX_PRICE_USD, Amount, Duration, Integer, Name, Number, PositiveDuration, Rate,
                    Sensitivity, StrictModel, TimeOfDay, Timestamp, When)

__all__ = ["Market"]

FLAT_MMR = 0.005  # a flat venue's rates when only one of the two is given
FLAT_IMR = 0.01


class Jumps(StrictModel):
    """Compound-Poisson jumps in the exogenous log return."""

    intensity_per_day: Number = Field(0.05, ge=0, le=24, description="Expected jumps per day.")
    mean: Rate = Field(-0.01, ge=-0.9, le=0.9, description="Mean jump log-size (e.g. -1%).")
    stdev: Rate = Field(0.03, ge=0, le=1, description="Standard deviation of the jump log-size.")


def _gaussian(value):
    """``tail_dof: gaussian`` is the spelling that survives ``extends`` (where null means "unset")."""
    return None if isinstance(value, str) and value.strip().lower() in ("gaussian", "normal") else value


class Clustering(StrictModel):
    """Volatility that clusters: the diffusion's variance is ``m^2`` times the scenario's, with
    ``m = exp(h/2 - s^2/4)`` and ``h`` a log-variance deviation that reverts to 0 with
    ``half_life`` (an Ornstein-Uhlenbeck process, whose step transition is exact at any
    ``horizon.step``), its stationary standard deviation ``vol_of_vol`` (``s``) and its shocks
    correlated with the return's by ``leverage``. ``E[m^2] = 1``: ``annual`` stays the long-run vol.
    Each path starts in a regime drawn from ``h``'s stationary law. ``liquidation_feedback`` adds
    self-excitation: a step's liquidations raise ``h`` in proportion to the share of open interest
    they took (per unit of flow, so the same at every step)."""

    vol_of_vol: Number = Field(
        0.0, ge=0, le=3,
        description="Stationary standard deviation of the log variance (0: constant volatility; 1 means the "
        "variance is typically within a factor e of its average).",
    )
    half_life: PositiveDuration = Field("2d", description="Half-life of a deviation of the log variance.")
    leverage: Number = Field(
        0.0, ge=-0.99, le=0.99,
        description="Correlation of the log variance's shocks with the return's (negative: vol rises as the price falls).",
    )
    liquidation_feedback: Number = Field(
        0.0, ge=0, le=100,
        description="Self-excitation: the log variance rises by this times the share of open interest liquidated "
        "in a step (0: liquidations do not feed volatility; 10: liquidating 1% of open interest raises the "
        "log variance by 0.1, the vol by about 5%), then reverts with half_life.",
    )


class Volatility(StrictModel):
    annual: Rate = Field(0.55, gt=0, le=5, description="Annualised volatility of the diffusive part (55%).")
    tail_dof: Annotated[Number | None, BeforeValidator(_gaussian)] = Field(
        4.0, gt=2, le=1000,
        description="Degrees of freedom of the Student-t innovations (scaled to unit variance); "
        "'gaussian' (or null) for normal innovations.",
    )
    jumps: Jumps = Field(default_factory=Jumps, description="Jump component.")
    clustering: Clustering = Field(default_factory=Clustering, description="Conditional volatility (clustering).")


class Macro(StrictModel):
    """The macro factor (a Nasdaq proxy) whose return enters BTC's with a beta."""

    annual_vol: Rate = Field(0.22, ge=0, le=3, description="Annualised volatility of the factor.")
    drift_annual: Rate = Field(0.0, ge=-5, le=5, description="Annualised drift of the factor.")
    btc_beta: Number = Field(1.0, ge=-10, le=10, description="BTC log-return beta to the factor.")


class Impact(StrictModel):
    """How net flow moves the price: a transient part that heals and a permanent part.

    Flows enter a decaying cumulative flow ``J`` (USD), which heals with ``resilience_half_life``;
    the price deviates from its fundamental by ``I(J)``: ``sign(J)*Y*sigma_day*sqrt(|J|/(V_day*d))``
    under the square-root law (a metaorder ``Q`` executed faster than the healing moves the price
    by ``Y*sigma_day*sqrt(Q/V_day)``), ``J/(depth*d*100)`` under the linear law. A share of the
    book's linear impact, ``permanent_fraction*q/(depth*s*100)``, never heals (linear in the net
    flow, so no round trip earns money). ``d`` is the shocks' liquidity multiplier: the transient
    part reads it as it is, the permanent part reads its slow version ``s``, ``d`` relaxed with
    the time constant ``depth_memory`` (a vacuum of minutes makes a wick that heals; books thin
    for days move the price for good).
    """

    model: Literal["sqrt", "linear", "both"] = Field(
        "sqrt",
        description="Transient law: sqrt: I = Y*sigma_day*sqrt(|J|/(V_day*d)); linear: I = J/(depth*d*100); "
        "both: their sum. J is the healing cumulative flow; d the shocks' liquidity multiplier. The linear law "
        "at a 1% depth of 14M moves the log price by 1 per 1.4B of unhealed flow, far more than the square-root "
        "law: give it a depth that matches.",
    )
    sqrt_coefficient: Number = Field(0.7, gt=0, le=5, description="Y of the square-root law (0.5-1).")
    daily_volume_usd: Amount = Field(
        20e9, gt=0, description="Daily traded volume V_day, USD: the scale of the square-root law's transient impact."
    )
    depth_usd_per_pct: Amount = Field(
        14e6, gt=0,
        description="Order-book depth within 1% of mid, USD: the scale of the permanent impact (and of the "
        "linear transient law).",
    )
    resilience_half_life: PositiveDuration = Field(
        "30m", description="Half-life of the transient flow state J: how fast the book heals (Obizhaeva-Wang)."
    )
    permanent_fraction: Rate = Field(
        0.005, ge=0, le=1,
        description="Share of the linear depth impact q/(depth*100) that is permanent: the price moves for good "
        "by permanent_fraction percent per depth_usd_per_pct of net flow.",
    )

    depth_memory: Duration | None = Field(
        "1d",
        description="How long a change of the book's depth takes to reach the permanent impact (the time "
        "constant of the slow depth it reads): a vacuum of quotes much shorter than it makes a wick that "
        "heals; a regime of thin books much longer than it moves the price for good. 0s: the permanent part "
        "follows the momentary depth; null: it never reads the depth.",
    )


class LognormalLeverage(StrictModel):
    distribution: Literal["lognormal"]
    median: Number = Field(10.0, gt=1, le=200, description="Median leverage.")
    dispersion: Number = Field(0.6, gt=0, le=3, description="Standard deviation of log-leverage.")
    min: Number = Field(1.5, ge=1, le=200, description="Lowest leverage held.")
    max: Number = Field(100.0, gt=1, le=200, description="Highest leverage held.")

    @model_validator(mode="after")
    def _ordered(self):
        if not self.min < self.median < self.max:
            raise ValueError(
                f"leverage must satisfy min < median < max, got {self.min} < {self.median} < {self.max}"
            )
        return self


class TableLeverage(StrictModel):
    distribution: Literal["table"]
    weights: dict[Number, Rate] = Field(
        ..., min_length=1, description="Leverage -> share of notional, e.g. {3: 20%, 10: 50%, 25: 30%}."
    )

    @model_validator(mode="after")
    def _valid(self):
        if any(lev < 1 or lev > 200 for lev in self.weights):
            raise ValueError("leverage keys must be between 1 and 200")
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ValueError("weights must be non-negative with a positive sum")
        return self


Leverage = Annotated[LognormalLeverage | TableLeverage, Field(discriminator="distribution")]


class UniformEntry(StrictModel):
    distribution: Literal["uniform"]
    low_usd: Amount = Field(..., gt=0, le=MAX_PRICE_USD, description="Lowest entry price.")
    high_usd: Amount = Field(..., gt=0, le=MAX_PRICE_USD, description="Highest entry price.")

    @model_validator(mode="after")
    def _ordered(self):
        if not self.low_usd < self.high_usd:
            raise ValueError(f"low_usd must be below high_usd, got {self.low_usd} >= {self.high_usd}")
        return self


class LognormalEntry(StrictModel):
    distribution: Literal["lognormal"]
    center_usd: Amount | None = Field(None, gt=0, le=MAX_PRICE_USD, description="Median entry price; null = spot.")
    dispersion: Rate = Field(0.05, gt=0, le=2, description="Standard deviation of log entry price.")


class TableEntry(StrictModel):
    distribution: Literal["table"]
    weights: dict[Amount, Rate] = Field(..., min_length=1, description="Entry price -> share of notional.")

    @model_validator(mode="after")
    def _valid(self):
        if any(p <= 0 for p in self.weights) or any(w < 0 for w in self.weights.values()):
            raise ValueError("prices must be positive and weights non-negative")
        if sum(self.weights.values()) <= 0:
            raise ValueError("weights must have a positive sum")
        return self


EntryPrice = Annotated[UniformEntry | LognormalEntry | TableEntry, Field(discriminator="distribution")]


class BookSide(StrictModel):
    """One side (long or short) of the leveraged perpetuals book."""

    notional_usd: Amount = Field(..., ge=0, description="Open notional at spot, USD.")
    leverage: Leverage = Field(
        default_factory=lambda: LognormalLeverage(distribution="lognormal"), description="Leverage distribution."
    )
    entry_price: EntryPrice = Field(
        default_factory=lambda: LognormalEntry(distribution="lognormal"),
        description="Entry-price distribution (default: lognormal around spot, 5%).",
    )


class Funding(StrictModel):
    interval: PositiveDuration = Field("8h", description="Funding interval.")
    base_rate: Rate = Field(0.0001, ge=-0.01, le=0.01, description="Rate per interval with a balanced book.")
    imbalance_sensitivity: Rate = Field(
        0.0005, ge=0, le=0.05,
        description="Added rate per interval per unit of (long-short)/(long+short) imbalance.",
    )
    cap: Rate = Field(0.003, gt=0, le=0.05, description="Absolute cap per interval (Binance clamps 0.3%).")


class Liquidation(StrictModel):
    fill_slippage: Rate = Field(
        0.001, ge=0, le=0.5,
        description="The liquidation engine's slippage below (long) or above (short) the trigger at normal depth; "
        "divided by the shocks' liquidity multiplier, so it grows as the book thins.",
    )
    max_cascade_rounds: Integer = Field(50, ge=1, le=10_000, description="Cap on cascade rounds per step.")


class MarginTier(StrictModel):
    """One bracket of a venue's margin schedule by position notional (Binance "leverage and margin tiers")."""

    up_to_usd: Amount | None = Field(
        ..., gt=0, description="Upper bound of the bracket's position notional (USD); null on the last = no bound."
    )
    maintenance_margin_rate: Rate = Field(..., gt=0, lt=1, description="Maintenance margin in the bracket.")
    max_leverage: Number = Field(..., ge=1, le=200, description="Highest leverage a position in the bracket may open.")


# Binance USDT-M BTCUSDT perpetual, leverage and margin tiers as published in 2024-2025 (the exchange
# revises them; override with `margin_tiers:`). The maintenance amounts ("cum") follow from continuity
# of the requirement at each bound, as Binance defines them: cum_k = cum_(k-1) + bound_(k-1) * (m_k - m_(k-1)).
BINANCE_BTCUSDT_TIERS = (
    (300_000, 0.004, 125),
    (800_000, 0.005, 100),
    (3_000_000, 0.0065, 75),
    (12_000_000, 0.01, 50),
    (70_000_000, 0.02, 25),
    (100_000_000, 0.025, 20),
    (230_000_000, 0.05, 10),
    (480_000_000, 0.10, 5),
    (600_000_000, 0.125, 4),
    (800_000_000, 0.15, 3),
    (1_200_000_000, 0.25, 2),
    (1_800_000_000, 0.50, 1),
)
TIER_SCHEDULES = {"binance-btcusdt": BINANCE_BTCUSDT_TIERS}


def _tiers(value):
    if isinstance(value, str):
        if value not in TIER_SCHEDULES:
            raise ValueError(f"unknown tier schedule {value!r}; known: {', '.join(TIER_SCHEDULES)}, or a list of tiers")
        return [{"up_to_usd": up, "maintenance_margin_rate": m, "max_leverage": lev}
                for up, m, lev in TIER_SCHEDULES[value]]
    return value


def _check_tiers(tiers: list[MarginTier]) -> list[MarginTier]:
    for i, tier in enumerate(tiers):
        if tier.up_to_usd is None and i != len(tiers) - 1:
            raise ValueError(f"tier {i + 1}: only the last tier may have no up_to_usd")
        if 1 / tier.max_leverage <= tier.maintenance_margin_rate:
            raise ValueError(f"tier {i + 1}: 1/max_leverage ({1 / tier.max_leverage:.4g}) must exceed its "
                             f"maintenance_margin_rate ({tier.maintenance_margin_rate:g})")
        if i:
            prev = tiers[i - 1]
            if tier.up_to_usd is not None and tier.up_to_usd <= prev.up_to_usd:
                raise ValueError(f"tier {i + 1}: up_to_usd must increase, got {tier.up_to_usd:g} after {prev.up_to_usd:g}")
            if tier.maintenance_margin_rate < prev.maintenance_margin_rate:
                raise ValueError(f"tier {i + 1}: maintenance_margin_rate must not decrease")
            if tier.max_leverage > prev.max_leverage:
                raise ValueError(f"tier {i + 1}: max_leverage must not increase")
    return tiers


# a schedule's name ("binance-btcusdt") or its tiers; the JSON Schema accepts both, as the validator does
MarginTiers = Annotated[
    list[MarginTier],
    BeforeValidator(_tiers, json_schema_input_type=Literal["binance-btcusdt"] | list[MarginTier]),
    AfterValidator(_check_tiers),
    Field(min_length=1, max_length=40),
]


class PositionSize(StrictModel):
    """How open interest is spread over position sizes: a lognormal of position notional weighted by
    notional (the share of open interest held in positions of each size). It decides each margin
    tier's share of the book, and so which positions are liquidated in part."""

    median_usd: Amount = Field(2e6, gt=0, description="Notional-weighted median position (USD).")
    dispersion: Number = Field(2.0, gt=0, le=6, description="Standard deviation of log position notional.")


def _flat_maintenance_rate(description: str):
    """The bounds of a flat maintenance rate, the same for the book and for a venue."""
    return Field(None, gt=0, lt=0.5, description=description)


def _flat_initial_rate(description: str):
    """The bounds of the initial rate that goes with a flat maintenance rate."""
    return Field(None, gt=0, le=1, description=description)


class VenueSpec(StrictModel):
    """A venue's share of the book and, optionally, its own margin rates (CME is not Binance)."""

    share: Rate = Field(..., gt=0, le=1, description="Share of both sides of the book on this venue.")
    maintenance_margin_rate: Rate | None = _flat_maintenance_rate(
        "A flat maintenance rate for the venue (no tiers, no partial liquidation), as on CME; null = the book's "
        "schedule.")
    initial_margin_rate: Rate | None = _flat_initial_rate(
        "With a flat maintenance rate: the initial rate (positions above 1/rate leverage are not held here); "
        "null = the book's.")
    margin_tiers: MarginTiers | None = Field(
        None, description="The venue's own tier schedule (a name or a list of tiers); null = the book's.",
    )
    insurance_fund_usd: Amount | None = Field(
        None, ge=0,
        description="The venue's own insurance fund; null = its share of the book's insurance_fund_usd.",
    )


def _venue(value):
    return value if isinstance(value, (dict, VenueSpec)) else {"share": value}


# the JSON Schema (editors) accepts both spellings, as the validator does
VenueEntry = Annotated[VenueSpec, BeforeValidator(_venue, json_schema_input_type=Rate | VenueSpec)]


class Perpetuals(StrictModel):
    long: BookSide = Field(..., description="Leveraged longs.")
    short: BookSide = Field(..., description="Leveraged shorts.")
    margin_tiers: MarginTiers = Field(
        "binance-btcusdt",
        description="Maintenance margin and maximum leverage by position notional: a schedule's name or a list of "
        "{up_to_usd, maintenance_margin_rate, max_leverage}. A position above the first tier is liquidated in part, "
        "down to the tier below, before it is liquidated whole.",
    )
    position_size: PositionSize = Field(
        default_factory=PositionSize, description="Open interest by position size: each tier's share of the book."
    )
    maintenance_margin_rate: Rate | None = _flat_maintenance_rate(
        "A flat maintenance rate for every venue instead of the tiers (one rate, no partial liquidation); "
        "null = the tiers.")
    initial_margin_rate: Rate | None = _flat_initial_rate(
        "With a flat maintenance rate: the initial rate, 1/rate the max leverage (default 1%).")
    venues: dict[Name, VenueEntry] = Field(
        default_factory=lambda: {"all": 1.0},
        description="Venue -> share of the book (sums to 1), or {share, maintenance_margin_rate, "
        "initial_margin_rate}; margin hikes and failures target venues.",
    )
    funding: Funding = Field(default_factory=Funding, description="Funding payments between longs and shorts.")
    insurance_fund_usd: Amount = Field(
        1e9, ge=0,
        description="Insurance funds of all venues, split by share unless a venue sets its own; a venue's fund "
        "absorbs its bad debt before auto-deleveraging on that venue.",
    )
    liquidation: Liquidation = Field(default_factory=Liquidation, description="How liquidations fill.")
    book_cells: Integer = Field(200, ge=16, le=5000, description="Cells of the log grid of bankruptcy prices.")
    grid_span: Number = Field(
        10.0, gt=1.5, le=1000, description="Grid covers spot/span .. spot*span (log-spaced)."
    )

    def insurance_fund(self, venue: str) -> float:
        """A venue's insurance fund at the start, USD."""
        spec = self.venues[venue]
        return spec.insurance_fund_usd if spec.insurance_fund_usd is not None else self.insurance_fund_usd * spec.share

    def schedule(self, venue: str) -> list[MarginTier] | None:
        """A venue's tier schedule, or None if the venue has a flat rate (its own, or the book's)."""
        spec = self.venues[venue]
        if spec.margin_tiers is not None:
            return spec.margin_tiers
        if spec.maintenance_margin_rate is not None or spec.initial_margin_rate is not None:
            return None
        if "margin_tiers" not in self.model_fields_set and (
                self.maintenance_margin_rate is not None or self.initial_margin_rate is not None):
            return None
        return self.margin_tiers

    def margin_rates(self, venue: str) -> tuple[float, float]:
        """(maintenance, initial) margin rates of a venue at the start: its flat rates, or its first tier's
        (the floors a margin hike raises: every tier's rate is at least the venue's)."""
        tiers = self.schedule(venue)
        if tiers is not None:
            return tiers[0].maintenance_margin_rate, 1.0 / tiers[0].max_leverage
        spec = self.venues[venue]
        mmr = next(x for x in (spec.maintenance_margin_rate, self.maintenance_margin_rate, FLAT_MMR) if x is not None)
        imr = next(x for x in (spec.initial_margin_rate, self.initial_margin_rate, FLAT_IMR) if x is not None)
        return mmr, imr

    @model_validator(mode="after")
    def _consistent(self):
        flat = self.maintenance_margin_rate is not None or self.initial_margin_rate is not None
        if flat and "margin_tiers" in self.model_fields_set:
            raise ValueError("give margin_tiers or a flat maintenance_margin_rate/initial_margin_rate, not both")
        mmr, imr = (self.maintenance_margin_rate or FLAT_MMR), (self.initial_margin_rate or FLAT_IMR)
        if flat and imr <= mmr:
            raise ValueError(f"initial_margin_rate ({imr:g}) must exceed maintenance_margin_rate ({mmr:g})")
        for name, venue in self.venues.items():
            if venue.margin_tiers is not None:
                if venue.maintenance_margin_rate is not None or venue.initial_margin_rate is not None:
                    raise ValueError(f"venue {name!r}: give margin_tiers or flat margin rates, not both")
        total = sum(v.share for v in self.venues.values())
        if abs(total - 1) > 1e-6:
            raise ValueError(f"venue shares must sum to 100%, got {total:.6g}")
        for name, venue in self.venues.items():
            if self.margin_rates(name)[1] <= self.margin_rates(name)[0]:
                raise ValueError(f"venue {name!r}: initial margin rate must exceed its maintenance margin rate")
        return self


class EtfReflexivity(StrictModel):
    lookback: Duration = Field("5d", description="Window of the trailing loss.")
    loss_sensitivity: Sensitivity = Field(0.01, description="Share of holdings redeemed per day per 100% trailing loss.")
    below_cost_basis_sensitivity: Sensitivity = Field(
        0.005, description="Share of holdings redeemed per day per 100% of price below cost basis."
    )


class ExecutionWindow(StrictModel):
    start: TimeOfDay = Field("14:30", description="UTC start (US cash open).")
    end: TimeOfDay = Field("21:00", description="UTC end (US close).")

    @model_validator(mode="after")
    def _ordered(self):
        if self.end <= self.start:
            raise ValueError("execution window end must be after its start (same UTC day)")
        return self


class Etf(StrictModel):
    holdings_btc: Amount = Field(1.28e6, ge=0, description="BTC held by spot ETFs.")
    cost_basis_usd: Amount = Field(81_600, gt=0, le=MAX_PRICE_USD, description="Holders' average cost basis.")
    reflexivity: EtfReflexivity = Field(
        default_factory=EtfReflexivity, description="Redemptions driven by losses and by price below cost basis."
    )
    execution_window: ExecutionWindow = Field(
        default_factory=ExecutionWindow, description="When creations/redemptions hit the market."
    )


class OptionOpenInterest(StrictModel):
    kind: Literal["put", "call"] = Field(..., description="Option type.")
    strike_usd: Amount = Field(..., gt=0, le=MAX_PRICE_USD, description="Strike price.")
    expiry: Timestamp = Field(..., description="Expiry (UTC).")
    size_btc: Amount = Field(..., ge=0, description="Open interest, BTC.")


class Options(StrictModel):
    open_interest: list[OptionOpenInterest] = Field(default_factory=list, description="OI by strike and expiry.")
    dealer_short_share: Rate = Field(
        0.6, ge=0, le=1, description="Share of the OI dealers are short (they hedge its delta)."
    )
    atm_iv: Rate = Field(
        0.55, gt=0, le=5,
        description="At-the-money implied volatility (30d) at the start; along a path it relaxes over the 30-day "
        "tenor toward the path's expected volatility times (1 + variance_risk_premium).",
    )
    variance_risk_premium: Number = Field(
        DEFAULT_VRP, ge=-0.5, le=5,
        description="ATM implied vol over the realised vol expected over the option's tenor, minus 1 (default "
        "measured from the Deribit chains in ../shared/data: engine.options.vrp).",
    )
    risk_reversal_25d: Rate = Field(-0.03, ge=-1, le=1, description="25-delta call IV minus put IV.")
    term_structure_slope: Rate = Field(
        0.05, ge=-2, le=2, description="ATM IV change per year of tenor (negative = inverted)."
    )
    butterfly_25d: Rate = Field(
        0.0, ge=-0.5, le=1, description="Average of the 25-delta call and put IVs minus ATM (smile curvature)."
    )
    spot_vol_beta: Number = Field(
        0.5, ge=-5, le=5,
        description="ATM IV added per unit of log return lost since the start: vol rises as the price falls.",
    )
    skew_beta: Number = Field(
        0.2, ge=-5, le=5,
        description="Risk reversal change per unit of log return: the put skew steepens as the price falls.",
    )


class Miners(StrictModel):
    hashrate_eh_per_s: Number = Field(1000.0, gt=0, le=1e6, description="Network hashrate, EH/s.")
    breakeven_hash_price_usd_per_ph_day: Amount = Field(40.0, gt=0, description="All-in breakeven.")
    reserves_btc: Amount = Field(90_000, ge=0, description="Miners' sellable reserves, BTC.")
    block_subsidy_btc: Number = Field(3.125, ge=0, le=50, description="Block subsidy.")
    fee_share: Rate = Field(0.01, ge=0, le=1, description="Fees as a share of the subsidy.")
    next_difficulty_adjustment: When | None = Field(
        None, description="Next retarget (absolute or +offset); null = one period after the start."
    )
    difficulty_period: Duration = Field("14d", description="Time between retargets.")
    sell_sensitivity: Sensitivity = Field(
        0.05, description="Share of reserves sold per day per 100% shortfall below breakeven."
    )
    hashrate_sensitivity: Sensitivity = Field(0.5, description="Hashrate lost per 100% shortfall, applied at each retarget.")


class Deleveraging(StrictModel):
    """Traders who unwind: every position has a holding time, stress shortens it.

    Per day, longs close at ``base + drawdown_sensitivity*loss + take_profit_sensitivity*gain +
    volatility_sensitivity*max(0, vol - reference_volatility) + funding_sensitivity*max(0,
    funding)*intervals per day``, ``loss`` and ``gain`` the side's against its average entry (the
    price's average over the holding time); shorts mirror it (their loss is the longs' gain,
    negative funding). Closing longs sell, shorts buy. New positions replace what the base hazard
    closes: each side opens ``base`` times its starting size per day, at the current price and its
    leverage distribution, so with no stress the book keeps its size and the market has no drift.
    """

    base_hazard_per_day: Number = Field(
        0.15, ge=0, le=10,
        description="Holding-time hazard: share of a side closed per day when calm (1 / the mean holding time in "
        "days), replaced by new positions at the side's starting size times this rate.",
    )
    drawdown_sensitivity: Number = Field(
        0.1, ge=0, le=100,
        description="Stop-loss: added daily hazard per 100% loss of a side against its average entry.",
    )
    take_profit_sensitivity: Number = Field(
        0.0, ge=0, le=100,
        description="Take-profit: added daily hazard per 100% gain of a side against its average entry.",
    )
    volatility_sensitivity: Number = Field(
        0.05, ge=0, le=100, description="Added daily hazard per unit of annualised realised vol above the reference."
    )
    reference_volatility: Rate = Field(0.5, ge=0, le=5, description="Realised vol (annual) above which the hazard rises.")
    funding_sensitivity: Number = Field(
        2.0, ge=0, le=1000, description="Added daily hazard per unit of daily funding paid by the side."
    )
    volatility_half_life: Duration = Field("1d", description="Half-life of the realised-vol estimate (EWMA).")


class Momentum(StrictModel):
    """Momentum traders hold a position along the lookback return (short in a fall, long in a rise):
    the fuel of squeezes. Their capital is finite: their position relaxes toward a target that
    grows with the move beyond the threshold, over ``holding_time``, and they close it again as the
    move fades. Their positions are part of their side (liquidated and unwound like any other)."""

    lookback: Duration = Field("6h", description="Window of the return they follow.")
    open_rate: Number = Field(
        0.5, ge=0, le=100,
        description="Share of the starting open interest opened per day per 100% return over the lookback beyond "
        "the threshold, from flat: their target position is open_rate x holding_time (days) x that excess, "
        "up to their capital.",
    )
    capital: Rate = Field(
        0.25, gt=0, le=10,
        description="Their capital: the largest position they hold, as a share of the book's starting size; "
        "their target stops growing there, however far the price runs.",
    )
    holding_time: PositiveDuration = Field(
        "1d",
        description="Time over which their position relaxes toward its target (the gap shrinks by e per "
        "holding_time): they close as the move that opened it fades.",
    )
    threshold: Rate = Field(
        0.0, ge=0, le=1,
        description="Lookback return they ignore: they open in proportion to the move beyond it (a breakout), "
        "so small moves of a calm market do not trend it.",
    )
    leverage: Number | Leverage = Field(
        default_factory=lambda: LognormalLeverage(distribution="lognormal", median=10.0, dispersion=0.5, min=2.0,
                                                  max=100.0),
        description="Leverage of the positions they open: a number, or a distribution like the book's.",
    )


class Behaviour(StrictModel):
    deleveraging: Deleveraging = Field(default_factory=Deleveraging, description="Voluntary deleveraging.")
    momentum: Momentum = Field(default_factory=Momentum, description="Positions opened by momentum traders.")


class Market(StrictModel):
    spot_usd: Amount = Field(..., gt=0, le=MAX_PRICE_USD, description="BTC price at horizon.start.")
    drift_annual: Rate = Field(0.0, ge=-50, le=50, description="Annualised drift of the log price.")
    volatility: Volatility = Field(default_factory=Volatility, description="Exogenous volatility and jumps.")
    macro: Macro = Field(default_factory=Macro, description="The macro factor (a Nasdaq proxy).")
    impact: Impact = Field(default_factory=Impact, description="Price impact of net flow.")
    perpetuals: Perpetuals = Field(..., description="The leveraged perpetuals book, margins and funding.")
    etf: Etf = Field(default_factory=Etf, description="Spot ETF holders.")
    options: Options = Field(default_factory=Options, description="Option open interest and the vol surface.")
    miners: Miners = Field(default_factory=Miners, description="Miner economics and reserves.")
    behaviour: Behaviour = Field(default_factory=Behaviour, description="Voluntary deleveraging and momentum.")
