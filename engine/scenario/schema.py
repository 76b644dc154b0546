"""The scenario schema: the top level and its small sections.

``Scenario`` is what :func:`engine.load_scenario` returns: immutable, validated, with every
friendly value already converted (amounts to floats, durations to ``timedelta``, times to aware
UTC ``datetime``). Field descriptions are the schema reference (``docs/scenario-reference.md``
is generated from them, and a test keeps it in sync).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, StringConstraints, WithJsonSchema, field_validator, model_validator

from ..strategies import Strategy
from . import units
from .market import Market
from .shocks import Shock
from .sweep import SweepSpec
from .types import Amount, Duration, Flag, Integer, Name, Number, Rate, StrictModel, Timestamp

__all__ = ["Scenario", "Horizon", "Portfolio", "Outputs", "Sweep", "Regression", "Limit", "MAX_STEPS"]

MAX_STEPS = 1_000_000


class Horizon(StrictModel):
    start: Timestamp = Field(..., description="First instant simulated (UTC).")
    duration: Duration = Field(..., description="Length of the simulation, e.g. 14d.")
    step: Duration = Field("1h", description="Time step, from 1m to 1d.")

    @model_validator(mode="after")
    def _steps(self):
        step = self.step.total_seconds()
        if not 60 <= step <= 86400:
            raise ValueError(f"step must be between 1m and 1d, got {self.step}")
        if step % 60:
            raise ValueError("step must be a whole number of minutes")
        total = self.duration.total_seconds()
        if total <= 0:
            raise ValueError("duration must be positive")
        if total % step:
            raise ValueError(f"duration {self.duration} is not a whole number of {self.step} steps")
        if total / step > MAX_STEPS:
            raise ValueError(f"horizon has {total / step:,.0f} steps, more than {MAX_STEPS:,}")
        return self

    @property
    def end(self) -> datetime:
        return self.start + self.duration

    @property
    def n_steps(self) -> int:
        return int(self.duration.total_seconds() // self.step.total_seconds())

    def resolve(self, when: datetime | timedelta) -> datetime:
        """An absolute time for a ``When`` value (offsets count from ``start``)."""
        return self.start + when if isinstance(when, timedelta) else when


class PerpPosition(StrictModel):
    size_btc: Amount = Field(..., description="Signed size: long > 0, short < 0.")
    leverage: Number = Field(..., ge=1, le=200, description="Leverage at entry.")
    entry_price_usd: Amount | None = Field(None, gt=0, description="Null = market.spot_usd.")
    venue: Name | None = Field(None, description="Venue (for its margin schedule); null = the first venue.")


class HeldOption(StrictModel):
    kind: Literal["put", "call"] = Field(..., description="Option type.")
    strike_usd: Amount = Field(..., gt=0, description="Strike price.")
    expiry: Timestamp = Field(..., description="Expiry (UTC).")
    size_btc: Amount = Field(..., description="Signed: bought > 0, sold < 0.")


class Portfolio(StrictModel):
    """The book under stress: spot, cash, a perp position and options already held, typed here or
    read from a positions CSV (``positions_csv``, docs/book.md)."""

    spot_btc: Amount = Field(0.0, ge=0, description="BTC held spot.")
    cash_usd: Amount = Field(0.0, description="Cash, USD (may be negative for borrowing).")
    perp: PerpPosition | None = Field(None, description="A perpetual position (optional).")
    options: list[HeldOption] = Field(default_factory=list, description="Options held.")
    positions_csv: str | None = Field(
        None, exclude=True, description="A positions CSV (path relative to this file) giving spot, perp and options instead of "
                          "the keys above; cash_usd may stay beside it. Read when the scenario loads: the resolved "
                          "scenario holds the parsed book (docs/book.md).")

    @model_validator(mode="after")
    def _read_by_the_loader(self):
        if self.positions_csv is not None:
            raise ValueError("positions_csv is read by engine.load_scenario (a file path needs the scenario's "
                             "folder); load the scenario from its file")
        return self


class Sweep(StrictModel):
    mode: Literal["product", "zip"] = Field("product", description="How swept parameters combine.")
    parameters: dict[str, SweepSpec | list] = Field(
        default_factory=dict,
        description="Key path -> values, e.g. {'shocks[etf_run].generated.total_usd': [-1B, -3B]}.",
    )


Percentile = Annotated[
    Number, Field(gt=0, lt=100), WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 100})
]


class PriceBand(StrictModel):
    low_usd: Amount = Field(..., gt=0, description="Lower edge of the band (USD).")
    high_usd: Amount = Field(..., gt=0, description="Upper edge of the band (USD).")
    label: str = Field("", max_length=80, description="What the band is, shown on the charts.")

    @model_validator(mode="after")
    def _ordered(self):
        if self.high_usd <= self.low_usd:
            raise ValueError("high_usd must be above low_usd")
        return self


DEFAULT_LEVELS = (0.9, 0.8, 0.7)
"""``outputs.price_levels_usd`` when a scenario gives none: these fractions of the spot."""
DEFAULT_LEVEL_STEP = 100.0


class Outputs(StrictModel):
    quantiles: list[Percentile] = Field(
        default_factory=lambda: [5.0, 25.0, 50.0, 75.0, 95.0], min_length=1, description="Fan percentiles."
    )
    price_levels_usd: list[Amount] | None = Field(
        None,
        description="Levels whose touch probability is reported (and drawn on the price charts). Default: "
        "10%, 20% and 30% below market.spot_usd, to the nearest 100 USD (an event's own levels belong in its "
        "scenario: the flagship sets February 2026's).",
    )
    price_bands: list[PriceBand] = Field(
        default_factory=list,
        description="Price zones shaded on the price charts, e.g. a support cluster (none by default).",
    )
    sample_paths: Integer = Field(10, ge=0, le=10_000, description="Full paths kept for plots.")
    report: Flag = Field(True, description="Write the HTML report.")
    figures: Flag = Field(True, description="Write PNG figures.")

    @model_validator(mode="after")
    def _sorted(self):
        if list(self.quantiles) != sorted(set(self.quantiles)):
            raise ValueError("quantiles must be increasing and distinct")
        if any(level <= 0 for level in self.price_levels_usd or ()):
            raise ValueError("price levels must be positive")
        return self


class Tolerance(StrictModel):
    abs: Number | None = Field(None, ge=0, description="Absolute tolerance: a floor under n_se standard errors.")
    rel: Rate | None = Field(None, ge=0, description="Relative tolerance, times the baseline value, added on top.")
    n_se: Number | None = Field(None, gt=0, description="Tolerance in Monte Carlo standard errors (of the difference).")

    @model_validator(mode="after")
    def _some(self):
        if self.abs is None and self.rel is None and self.n_se is None:
            raise ValueError("give at least one of abs, rel, n_se")
        return self


MetricName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.]*$")]


class Regression(StrictModel):
    metrics: dict[MetricName, Tolerance] = Field(
        default_factory=dict, description="Metric (as `cascade check --verbose` names it) -> tolerance.")
    default_n_se: Number = Field(4.0, gt=0, description="Tolerance, in standard errors, of unlisted metrics.")


def _bound(value):
    from .sweep import parse_value

    number = parse_value(value)
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
        raise ValueError(f"must be a number like 400k, 5% or 0.05, got {value!r}")
    return float(number)


Bound = Annotated[float, BeforeValidator(_bound), WithJsonSchema({"anyOf": [
    {"type": "number"}, {"type": "string", "pattern": units.AMOUNT_PATTERN, "examples": ["400k"]},
    {"type": "string", "pattern": units.RATE_PATTERN, "examples": ["5%"]}]})]
"""A limit's bound: a plain number, an amount (``400k``) or a rate (``5%``)."""

_LIMIT_METRIC = r"^(market\.[a-z0-9_]+(\.(p05|p50|p95|mean))?|strategies\.[a-z0-9_]+\.[a-z0-9_]+)$"


class Limit(StrictModel):
    """A bound on one of the run's metrics, checked by ``cascade run`` after its tables: breached when
    the value is above ``max`` (below ``min``); give exactly one of the two. An unknown metric name
    is refused when the run has been simulated, with the closest names."""

    metric: Annotated[str, WithJsonSchema({"type": "string", "pattern": _LIMIT_METRIC})] = Field(
        ..., description="As `cascade check --verbose` names it: strategies.put_55k.es99, market.prob_touch_50000, "
                         "market.min_price.p50, ...")
    max: Bound | None = Field(None, description="Breached when the metric is above it, e.g. 400k or 5%.")
    min: Bound | None = Field(None, description="Breached when the metric is below it, e.g. 60k.")

    @field_validator("metric")
    @classmethod
    def _metric_name(cls, value: str) -> str:
        if not re.match(_LIMIT_METRIC, value):
            raise ValueError("expected a metric named as `cascade check --verbose` names them: "
                             "market.<metric>.<p05|p50|p95|mean>, market.prob_touch_<level>, market.prob_adl, "
                             f"market.prob_bad_debt or strategies.<row>.<metric>; got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_bound(self):
        if (self.max is None) == (self.min is None):
            raise ValueError("give exactly one of max and min")
        return self


_NAME = r"^[a-z0-9][a-z0-9._-]*$"


class Scenario(StrictModel):
    """A stress scenario: a market, its shocks, and optionally a book and hedges to test."""

    name: Annotated[str, StringConstraints(pattern=_NAME, max_length=80)] = Field(
        ..., description="Identifier (lower case, digits, . _ -); names the results folder."
    )
    description: str = Field("", description="One line shown by `cascade list`, then details.")
    seed: Integer = Field(0, ge=0, lt=2**63, description="Root of every random stream.")
    n_paths: Integer = Field(10_000, ge=1, le=1_000_000, description="Monte Carlo paths.")
    horizon: Horizon = Field(..., description="The simulated period and its time step.")
    market: Market = Field(..., description="The market at horizon.start and how it behaves.")
    shocks: list[Shock] = Field(default_factory=list, description="Shocks, applied in order.")
    portfolio: Portfolio | None = Field(None, description="The book to stress (optional).")
    strategies: list[Strategy] = Field(
        default_factory=list, description="Hedging rules to compare; `use:` items take a strategy file's rules.")
    sweep: Sweep | None = Field(None, description="Grid of parameter values.")
    outputs: Outputs = Field(default_factory=Outputs, description="What a run records and writes.")
    regression: Regression | None = Field(None, description="Tolerances for `cascade check`.")
    limits: list[Limit] = Field(default_factory=list, description="Bounds on the run's metrics, each checked by "
                                "`cascade run` (`--fail-on-breach`: exit 1 if any is breached).")

    @model_validator(mode="after")
    def _default_levels(self):
        """``outputs.price_levels_usd`` left out: 10%, 20% and 30% below the spot, stated in the
        resolved scenario (``cascade show``) like any other value."""
        if self.outputs.price_levels_usd is None:
            levels = [DEFAULT_LEVEL_STEP * round(self.market.spot_usd * f / DEFAULT_LEVEL_STEP) for f in DEFAULT_LEVELS]
            # the models are frozen: a new Outputs in its place (this validator is the model's own build)
            object.__setattr__(self, "outputs", self.outputs.model_copy(update={"price_levels_usd": levels}))
        return self

    def shock_by_id(self, key: str):
        for shock in self.shocks:
            if shock.id == key:
                return shock
        raise KeyError(key)

    @property
    def summary_line(self) -> str:
        return re.split(r"(?<=[.!?])\s", self.description.strip(), maxsplit=1)[0] if self.description else ""

