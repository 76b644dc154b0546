"""What the option rules (protective put, put spread, collar) share: their size and expiry
parameters, and how those become a leg's size and times."""

from __future__ import annotations

import math

from pydantic import Field, model_validator

from ..scenario.types import Amount, Duration, Rate, Timestamp

from ._base import Context, Rule, sweepable, years

__all__ = ["OptionLeg", "leg_terms", "one_strike", "ordered_strikes"]


class OptionLeg(Rule):
    size_btc: sweepable(Amount, gt=0) | None = Field(None, description="Contracts, in BTC.")
    hedge_ratio: sweepable(Rate, gt=0, le=5) | None = Field(None, description="Share of the book's BTC delta.")
    expiry: Timestamp | None = Field(None, description="Expiry date of the options.")
    tenor: sweepable(Duration) | None = Field(None, description="Tenor of each option bought (alternative to expiry).")
    roll_before_expiry: sweepable(Duration) | None = Field(None, description="Roll this long before expiry; null = hold.")

    @model_validator(mode="after")
    def _size_and_expiry(self):
        if (self.size_btc is None) == (self.hedge_ratio is None):
            raise ValueError("give exactly one of size_btc and hedge_ratio")
        if (self.expiry is None) == (self.tenor is None):
            raise ValueError("give exactly one of expiry and tenor")
        return self


def one_strike(model, prefix: str) -> None:
    usd, pct = getattr(model, f"{prefix}_usd"), getattr(model, f"{prefix}_pct_of_spot")
    if (usd is None) == (pct is None):
        raise ValueError(f"give exactly one of {prefix}_usd and {prefix}_pct_of_spot")


def leg_terms(params: OptionLeg, ctx: Context) -> tuple[float, float, float, float]:
    """``(size_btc, expiry, tenor, roll)`` of the rule's legs, times in years from the start
    (NaN where not given): the size is ``size_btc`` or ``hedge_ratio`` of the book's BTC delta."""
    size = params.size_btc if params.size_btc is not None else params.hedge_ratio * ctx.book_delta
    if params.expiry is not None and params.roll_before_expiry is not None:
        raise ValueError(f"strategies[{ctx.label}]: roll_before_expiry needs a tenor, not a fixed expiry")
    expiry = years(params.expiry - ctx.start) if params.expiry is not None else math.nan
    tenor = years(params.tenor) if params.tenor is not None else math.nan
    roll = years(params.roll_before_expiry) if params.roll_before_expiry is not None else math.nan
    return size, expiry, tenor, roll


def ordered_strikes(model, low: str, high: str, message: str) -> None:
    """``model.<high>`` must be above ``model.<low>`` when both are single values (a sweep's values
    are checked row by row when the grid is expanded); ``message`` says which to move."""
    lo, hi = getattr(model, low), getattr(model, high)
    if isinstance(lo, float) and isinstance(hi, float) and hi <= lo:
        raise ValueError(message)
