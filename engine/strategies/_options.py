"""What the option rules (protective put, put spread, collar) share: their size and expiry
parameters, and how those become a leg's size and times."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, create_model, model_validator

from ..scenario.types import Amount, Duration, Rate, Timestamp

from ._base import Context, Rule, sweepable, years

__all__ = ["OptionLeg", "leg_terms", "one_strike", "two_legs", "two_strike_rule"]


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


def two_legs(params: OptionLeg, ctx: Context, *legs: tuple[int, float, float]) -> list[tuple]:
    """The kernel's legs of a two-option rule: each ``(kind, sign, strike)`` (kind 0 put, 1 call;
    sign +1 bought, -1 sold) at the rule's size, expiry, tenor and roll (:func:`leg_terms`)."""
    size, expiry, tenor, roll = leg_terms(params, ctx)
    return [(kind, sign * size, strike, math.nan, expiry, tenor, roll) for kind, sign, strike in legs]


def two_strike_rule(rule: str, first: tuple[str, str], second: tuple[str, str], legs: tuple, module: str, *,
                    low: str):
    """``(Params, translate)`` of a two-strike rule named ``rule`` (a put spread, a collar), for the
    rule's module ``module``.

    Its strikes ``first`` and ``second`` (``(key, description)``) are declared, in that order,
    before every other key so that they lead the rule's keys (in ``cascade show``, and as a sweep's
    first dimensions: the report's heatmaps are drawn over the first two), then come the option
    leg's (:class:`OptionLeg`). ``low`` names the strike that must be below the other (checked when
    both are single values: a sweep's values are checked row by row when the grid is expanded).
    ``translate`` writes ``legs``, each ``(kind, sign, strike key)`` (:func:`two_legs`)."""
    if low not in (first[0], second[0]):
        raise ValueError(f"{rule}: low must name one of the strikes {first[0]!r} and {second[0]!r}, got {low!r}")
    high = second[0] if low == first[0] else first[0]

    def _ordered(self):
        lo, hi = getattr(self, low), getattr(self, high)
        if isinstance(lo, float) and isinstance(hi, float) and hi <= lo:
            raise ValueError(f"{high} must be above {low}")
        return self

    strikes = create_model("_Strikes", __base__=Rule,
                           __validators__={"_ordered": model_validator(mode="after")(_ordered)},
                           **{key: (sweepable(Amount, gt=0), Field(..., description=text)) for key, text in (first, second)})
    params = create_model("Params", __base__=(OptionLeg, strikes), __module__=module, rule=(Literal[rule], ...))

    def translate(params: OptionLeg, ctx: Context, variant) -> None:
        variant.legs = two_legs(params, ctx, *((kind, sign, getattr(params, key)) for kind, sign, key in legs))

    translate.__module__ = module
    translate.__doc__ = "The legs " + ", ".join(f"{'bought' if sign > 0 else 'sold'}: the {('put', 'call')[kind]} "
                                                f"at {key}" for kind, sign, key in legs) + "; one size and expiry."
    return params, translate
