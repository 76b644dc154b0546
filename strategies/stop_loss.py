"""Stop-loss: sell a share of the BTC book when price or drawdown crosses a level."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from engine.scenario.types import Amount, Rate

from ._base import Rule, sweepable


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
