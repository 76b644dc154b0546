"""Collar: long a put, short a call; the call premium pays for (part of) the put."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from ..scenario.types import Amount

from ._base import Context, Rule, sweepable
from ._options import OptionLeg, leg_terms, ordered_strikes

__all__ = ["Params", "translate"]


class _Strikes(Rule):
    """The strikes, declared first so that they lead the rule's keys (in `cascade show` and as a
    sweep's first dimensions: the report's heatmaps are drawn over the first two)."""

    put_strike_usd: sweepable(Amount, gt=0) = Field(..., description="Strike of the put bought.")
    call_strike_usd: sweepable(Amount, gt=0) = Field(..., description="Strike of the call sold (higher).")

    @model_validator(mode="after")
    def _ordered(self):
        ordered_strikes(self, "put_strike_usd", "call_strike_usd", "call_strike_usd must be above put_strike_usd")
        return self


class Params(OptionLeg, _Strikes):
    rule: Literal["collar"]


def translate(params: Params, ctx: Context, variant) -> None:
    """A long put leg and a short call leg of the same size and expiry."""
    size, expiry, tenor, roll = leg_terms(params, ctx)
    variant.legs = [(0, size, params.put_strike_usd, math.nan, expiry, tenor, roll),
                    (1, -size, params.call_strike_usd, math.nan, expiry, tenor, roll)]
