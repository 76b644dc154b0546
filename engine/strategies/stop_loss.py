"""Stop-loss: sell a share of the BTC book when price or drawdown crosses a level."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from ..scenario.types import Amount, Rate

from ._base import Context, Rule, sweepable

__all__ = ["Params", "translate"]


class Params(Rule):
    rule: Literal["stop_loss"]
    stop_price_usd: sweepable(Amount, gt=0) | None = Field(None, description="Sell below this price.")
    drawdown: sweepable(Rate, gt=0, lt=1) | None = Field(None, description="Or: sell at this drawdown from the peak.")
    sell_fraction: sweepable(Rate, gt=0, le=1) = Field(1.0, description="Share of the BTC sold.")

    @model_validator(mode="after")
    def _one_trigger(self):
        if (self.stop_price_usd is None) == (self.drawdown is None):
            raise ValueError("give exactly one of stop_price_usd and drawdown")
        return self


def translate(params: Params, ctx: Context, variant) -> None:
    """The kernel's stop columns: a price level (else -inf) or a drawdown (else +inf), and the share sold."""
    variant.stop_price = params.stop_price_usd if params.stop_price_usd is not None else -math.inf
    variant.stop_drawdown = params.drawdown if params.drawdown is not None else math.inf
    variant.stop_fraction = params.sell_fraction
