"""Put spread: long a higher-strike put, short a lower-strike put (e.g. long 60k / short 50k)."""

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

    long_strike_usd: sweepable(Amount, gt=0) = Field(..., description="Strike of the put bought.")
    short_strike_usd: sweepable(Amount, gt=0) = Field(..., description="Strike of the put sold (lower).")

    @model_validator(mode="after")
    def _ordered(self):
        ordered_strikes(self, "short_strike_usd", "long_strike_usd", "short_strike_usd must be below long_strike_usd")
        return self


class Params(OptionLeg, _Strikes):
    rule: Literal["put_spread"]


def translate(params: Params, ctx: Context, variant) -> None:
    """Two put legs of the same size and expiry: long the higher strike, short the lower."""
    size, expiry, tenor, roll = leg_terms(params, ctx)
    variant.legs = [(0, size, params.long_strike_usd, math.nan, expiry, tenor, roll),
                    (0, -size, params.short_strike_usd, math.nan, expiry, tenor, roll)]
