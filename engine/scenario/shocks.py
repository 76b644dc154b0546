"""The ``shocks:`` list: a discriminated union on ``type``.

Every shock has a ``start`` (absolute UTC time or ``+offset`` from the horizon start) and an
optional ``id`` (used by sweeps: ``shocks[etf_run].total_usd``). Regime-like shocks also have
``ramp`` (linear ramp-in), ``duration`` (full strength after the ramp; null = to the end of the
horizon) and ``ramp_out``. Shocks compose: multipliers multiply, additive terms add, flows add.
How each one is compiled into per-step arrays is documented in :mod:`engine.compile.shocks`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Literal

from pydantic import Field, model_validator

from .types import Amount, Duration, Flag, Integer, Name, Number, Rate, Sensitivity, StrictModel, When
from .market import ExecutionWindow, OptionOpenInterest

__all__ = ["Shock", "SHOCK_TYPES"]


class _Shock(StrictModel):
    id: Name | None = Field(None, description="Name for sweeps and reports (unique).")
    start: When = Field(..., description="When the shock begins: UTC time or +offset from horizon.start.")


class _Regime(_Shock):
    ramp: Duration = Field("0s", description="Linear ramp-in to full strength.")
    duration: Duration | None = Field(None, description="Full-strength period after the ramp; null = to the end.")
    ramp_out: Duration = Field("0s", description="Linear ramp-out after the full-strength period.")


# --------------------------------------------------------------------------- margin hike
_IM_RATE = "New initial margin, share of notional (1/rate is the max leverage)."
_IM_USD = "New initial margin, USD per contract (converted to a rate at the price when it applies)."
_MM_RATE = "New maintenance margin, share of notional."
_MM_USD = "New maintenance margin, USD per contract (converted like the initial margin)."


class MarginStep(StrictModel):
    """One change of a margin schedule; each requirement as a rate or as USD per contract."""

    at: When | None = Field(None, description="When this step applies; null = the shock's start.")
    initial_margin_rate: Rate | None = Field(None, gt=0, le=1, description=_IM_RATE)
    initial_margin_usd_per_contract: Amount | None = Field(None, gt=0, description=_IM_USD)
    maintenance_margin_rate: Rate | None = Field(None, gt=0, lt=1, description=_MM_RATE)
    maintenance_margin_usd_per_contract: Amount | None = Field(None, gt=0, description=_MM_USD)

    @model_validator(mode="after")
    def _one_form_each(self):
        for which in ("initial", "maintenance"):
            if (
                getattr(self, f"{which}_margin_rate") is not None
                and getattr(self, f"{which}_margin_usd_per_contract") is not None
            ):
                raise ValueError(f"give {which} margin as a rate or as USD per contract, not both")
        if all(
            getattr(self, k) is None
            for k in (
                "initial_margin_rate",
                "initial_margin_usd_per_contract",
                "maintenance_margin_rate",
                "maintenance_margin_usd_per_contract",
            )
        ):
            raise ValueError("a margin step must set an initial or a maintenance margin")
        return self


class MarginHike(_Shock):
    """Exchange raises margins: maintenance shifts liquidation prices; initial forces top-ups or cuts.

    Either the requirement fields directly (one step at ``start``) or a ``schedule`` of steps,
    e.g. CME's 20k -> 25k -> 32.5k USD per contract, then 11% -> 15%. USD-per-contract
    requirements are converted to a rate at the price of the step they take effect.
    """

    type: Literal["margin_hike"]
    initial_margin_rate: Rate | None = Field(None, gt=0, le=1, description=_IM_RATE)
    initial_margin_usd_per_contract: Amount | None = Field(None, gt=0, description=_IM_USD)
    maintenance_margin_rate: Rate | None = Field(None, gt=0, lt=1, description=_MM_RATE)
    maintenance_margin_usd_per_contract: Amount | None = Field(None, gt=0, description=_MM_USD)
    schedule: list[MarginStep] = Field(default_factory=list, description="Step schedule.")
    contract_size_btc: Number | None = Field(
        None, gt=0, le=1e6, description="BTC per contract for *_usd_per_contract requirements; null = 5 (CME)."
    )
    venues: list[Name] | None = Field(None, description="Venues it applies to; null = every venue.")
    top_up_fraction: Rate = Field(
        0.5, ge=0, le=1, description="Share of over-levered positions that add margin; the rest cut size."
    )
    duration: Duration | None = Field(None, description="Null = permanent; else margins revert after it.")

    @model_validator(mode="after")
    def _steps(self):
        direct = any(
            getattr(self, k) is not None
            for k in (
                "initial_margin_rate",
                "initial_margin_usd_per_contract",
                "maintenance_margin_rate",
                "maintenance_margin_usd_per_contract",
            )
        )
        if direct and self.schedule:
            raise ValueError("give the margin fields directly or a schedule, not both")
        if not direct and not self.schedule:
            raise ValueError(
                "a margin_hike needs initial_margin_rate, maintenance_margin_rate, "
                "*_usd_per_contract or a schedule"
            )
        in_usd = any(
            getattr(step, f"{w}_margin_usd_per_contract") is not None
            for step in self.steps()
            for w in ("initial", "maintenance")
        )
        if self.contract_size_btc is not None and not in_usd:
            raise ValueError(
                "contract_size_btc converts *_usd_per_contract requirements; this hike has none, "
                "so remove it"
            )
        return self

    @property
    def btc_per_contract(self) -> float:
        """BTC per contract that converts USD-per-contract requirements (CME's 5 unless given)."""
        return 5.0 if self.contract_size_btc is None else float(self.contract_size_btc)

    def steps(self) -> list[MarginStep]:
        """The schedule, with the direct form as a single step at ``start``."""
        if self.schedule:
            return list(self.schedule)
        return [
            MarginStep(
                initial_margin_rate=self.initial_margin_rate,
                initial_margin_usd_per_contract=self.initial_margin_usd_per_contract,
                maintenance_margin_rate=self.maintenance_margin_rate,
                maintenance_margin_usd_per_contract=self.maintenance_margin_usd_per_contract,
            )
        ]


# --------------------------------------------------------------------------- ETF flows
class ReflexivityOverride(StrictModel):
    """New reflexive-redemption sensitivities from the shock's start (the lookback stays the market's)."""

    loss_sensitivity: Sensitivity = Field(..., description="Share of holdings per day per 100% loss.")
    below_cost_basis_sensitivity: Sensitivity = Field(..., description="Share of holdings per day per 100% below cost basis.")


class GeneratedRun(StrictModel):
    """A run of daily flows drawn once at compile time (the same on every path)."""

    days: Integer = Field(..., ge=1, le=3650, description="Number of US trading days (weekends skipped).")
    total_usd: Amount | None = Field(None, description="Total over the run (sign: outflow < 0).")
    mean_per_day_usd: Amount | None = Field(None, description="Mean daily flow (alternative to total).")
    dispersion: Rate = Field(0.5, ge=0, le=10, description="Day-to-day coefficient of variation.")
    seed: Integer | None = Field(None, ge=0, description="Seed of the draw; null = derived from the scenario seed.")

    @model_validator(mode="after")
    def _one_size(self):
        if (self.total_usd is None) == (self.mean_per_day_usd is None):
            raise ValueError("give exactly one of total_usd and mean_per_day_usd")
        return self


class EtfFlows(_Shock):
    """Spot-ETF creations (+) and redemptions (-) executed over the US session."""

    type: Literal["etf_flows"]
    daily_flows_usd: dict[date, Amount] | None = Field(
        None, description="Explicit net flow per date, e.g. {2026-01-29: -817.8M}."
    )
    generated: GeneratedRun | None = Field(None, description="A generated run starting at `start`.")
    execution_window: ExecutionWindow | None = Field(None, description="Overrides market.etf.execution_window.")
    reflexivity: ReflexivityOverride | None = Field(None, description="Overrides market.etf.reflexivity from start.")
    reflexivity_multiplier: Number = Field(1.0, ge=0, le=100, description="Scales reflexive redemptions from start.")

    def generated_days(self, start: datetime) -> list[datetime]:
        """The US trading days (weekdays, UTC midnight) of the generated run from ``start``."""
        days, day = [], datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
        while len(days) < self.generated.days:
            if day.weekday() < 5:
                days.append(day)
            day += timedelta(days=1)
        return days

    @model_validator(mode="after")
    def _one_source(self):
        if self.daily_flows_usd is None and self.generated is None and self.reflexivity is None \
                and self.reflexivity_multiplier == 1.0:
            raise ValueError("an etf_flows shock needs daily_flows_usd, generated, or a reflexivity change")
        if self.daily_flows_usd is not None and self.generated is not None:
            raise ValueError("give daily_flows_usd or generated, not both")
        return self


# --------------------------------------------------------------------------- regimes
class AnnouncementJump(StrictModel):
    size: Rate = Field(..., ge=-0.9, le=2, description="Log-return jump on the announcement.")
    at: When | None = Field(None, description="Null = the shock's start.")


class BalanceSheetTightening(_Regime):
    """A Warsh-style regime: thinner books, lower drift, more vol, higher beta, jumpier ETF holders."""

    type: Literal["balance_sheet_tightening"]
    depth_multiplier: Number = Field(0.7, gt=0, le=10, description="Depth scale at full strength.")
    drift_annual: Rate = Field(0.0, ge=-50, le=50, description="Added annualised drift.")
    vol_multiplier: Number = Field(1.2, gt=0, le=20, description="Volatility scale at full strength.")
    macro_beta: Number | None = Field(None, ge=-10, le=10, description="BTC beta to the macro factor at full strength.")
    etf_reflexivity_multiplier: Number = Field(1.5, ge=0, le=100, description="Scales reflexive ETF redemptions.")
    announcement_jump: AnnouncementJump | None = Field(
        None, description="A one-off jump when the regime is announced."
    )


class CrossAssetMove(StrictModel):
    asset: Name = Field(..., description="nasdaq, sox, silver, gold, dollar, ... (a label).")
    move: Rate = Field(..., gt=-1, le=10, description="Total move over the window (-34%).")
    btc_beta: Number | None = Field(
        None, ge=-10, le=10,
        description="BTC beta to this asset; null only for the macro factor itself (market.macro).",
    )
    is_macro_factor: Flag = Field(
        False, description="True if this is the macro factor (its move scales with the live beta)."
    )

    @model_validator(mode="after")
    def _beta(self):
        if self.btc_beta is None and not self.is_macro_factor:
            raise ValueError(f"btc_beta is required for {self.asset!r} (or set is_macro_factor: true)")
        if self.btc_beta is not None and self.is_macro_factor:
            raise ValueError(
                "the macro factor's beta is market.macro.btc_beta (or a tightening's macro_beta); "
                "remove btc_beta here"
            )
        return self


class CrossAssetShock(_Shock):
    """Moves of other assets over a window, transmitted to BTC by betas, plus forced selling."""

    type: Literal["cross_asset_shock"]
    duration: Duration = Field(..., description="Window over which the moves happen.")
    moves: list[CrossAssetMove] = Field(..., min_length=1, description="The assets that move, with their betas.")
    macro_vol_multiplier: Number = Field(1.0, gt=0, le=20, description="Macro factor vol scale in the window.")
    forced_selling_usd: Amount = Field(
        0.0, le=0, description="BTC sold by cross-margined funds over the window (negative, USD)."
    )


class ExchangeFailure(_Regime):
    """A venue's matching/liquidation engine fails: depth collapses, market makers leave, fills worsen."""

    type: Literal["exchange_failure"]
    depth_fraction: Rate = Field(0.2, gt=0, le=1, description="Depth left at full strength.")
    market_makers_gone: Flag = Field(True, description="Impact stops healing while it lasts.")
    liquidation_fill_penalty: Rate = Field(0.02, ge=0, le=0.9, description="Extra cost of liquidation fills.")
    venues: list[Name] | None = Field(None, description="Venues hit; null = every venue.")
    circuit_breaker_move: Rate | None = Field(
        None, gt=0, le=1, description="What-if: pause liquidations after a move of this size within a step."
    )
    circuit_breaker_pause: Duration = Field("15m", description="How long the breaker pauses liquidations.")


class MinerCapitulation(_Regime):
    type: Literal["miner_capitulation"]
    breakeven_multiplier: Number = Field(1.2, gt=0, le=10, description="Scales the breakeven hash price.")
    reserve_sale_fraction: Rate = Field(
        0.1, ge=0, le=1, description="Share of reserves dumped over the shock (on top of the rule)."
    )
    hashrate_change: Rate = Field(-0.1, gt=-1, le=1, description="Hashrate change (miners switching off).")


class ReliefRally(_Regime):
    """A short squeeze: fresh shorts (the fuel), a positive macro move and momentum buying."""

    type: Literal["relief_rally"]
    new_short_notional_usd: Amount = Field(0.0, ge=0, description="Shorts opened at start (squeeze fuel).")
    short_leverage: Number = Field(20.0, gt=1, le=200, description="Leverage of those shorts.")
    macro_move: Rate = Field(0.02, gt=-1, le=10, description="Macro factor move over the shock.")
    momentum_buying_usd: Amount = Field(0.0, ge=0, description="Spot buying spread over the shock.")


class PriceJump(_Shock):
    type: Literal["price_jump"]
    size: Rate = Field(..., ge=-0.9, le=2, description="Log-return jump at start.")
    spread: Rate = Field(0.0, ge=0, le=1, description="Cross-path standard deviation of the size.")


class OptionsPositioning(_Regime):
    """Changes of option open interest and of the vol surface."""

    type: Literal["options_positioning"]
    open_interest_changes: list[OptionOpenInterest] = Field(
        default_factory=list, description="OI added (size_btc) at start, by kind/strike/expiry."
    )
    open_interest_removed: list[OptionOpenInterest] = Field(default_factory=list, description="OI closed at start.")
    atm_iv: Rate | None = Field(None, gt=0, le=5, description="ATM implied vol at full strength.")
    risk_reversal_25d: Rate | None = Field(None, ge=-1, le=1, description="25d risk reversal at full strength.")
    term_structure_slope: Rate | None = Field(None, ge=-2, le=2, description="Slope at full strength.")
    dealer_short_share: Rate | None = Field(
        None, ge=0, le=1, description="Dealers' short share of the OI at full strength."
    )


Shock = Annotated[
    MarginHike
    | EtfFlows
    | BalanceSheetTightening
    | CrossAssetShock
    | ExchangeFailure
    | MinerCapitulation
    | ReliefRally
    | PriceJump
    | OptionsPositioning,
    Field(discriminator="type"),
]

SHOCK_TYPES: dict[str, type[_Shock]] = {
    cls.model_fields["type"].annotation.__args__[0]: cls
    for cls in (
        MarginHike,
        EtfFlows,
        BalanceSheetTightening,
        CrossAssetShock,
        ExchangeFailure,
        MinerCapitulation,
        ReliefRally,
        PriceJump,
        OptionsPositioning,
    )
}
