"""Protective put: long puts against the book's BTC, held to expiry or rolled.

Parameters (YAML ``strategies: - rule: protective_put``): ``strike_usd`` or
``strike_pct_of_spot``; ``size_btc`` or ``hedge_ratio`` (of the portfolio's BTC delta);
``expiry`` (date) or ``tenor``; ``roll_before_expiry`` (null = hold to expiry). On the
kernel's side it is one put leg (:func:`translate`).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from ..scenario.types import Amount, Rate

from ._base import Context, Rule, sweepable
from ._options import OptionLeg, leg_terms, one_strike

__all__ = ["Params", "translate"]


class _Strikes(Rule):
    """The strikes, declared first so that they lead the rule's keys (in `cascade show` and as a
    sweep's first dimensions: the report's heatmaps are drawn over the first two)."""

    strike_usd: sweepable(Amount, gt=0) | None = Field(None, description="Absolute strike, e.g. 60k.")
    strike_pct_of_spot: sweepable(Rate, gt=0, le=5) | None = Field(None, description="Strike as % of spot, e.g. 85%.")

    @model_validator(mode="after")
    def _strike(self):
        one_strike(self, "strike")
        return self


class Params(OptionLeg, _Strikes):
    rule: Literal["protective_put"]


def translate(params: Params, ctx: Context, variant) -> None:
    """One long put leg, its strike absolute or a share of the price when bought."""
    size, expiry, tenor, roll = leg_terms(params, ctx)
    variant.legs = [(0, size, params.strike_usd or math.nan, params.strike_pct_of_spot or math.nan,
                     expiry, tenor, roll)]
