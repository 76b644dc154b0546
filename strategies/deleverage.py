"""Deleverage on trigger: cut the book's perp leverage to a target when a trigger fires."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from engine.scenario.types import Duration, Number, Rate

from ._base import Rule, sweepable


class Params(Rule):
    rule: Literal["deleverage"]
    target_leverage: sweepable(Number, ge=0, le=100) = Field(..., description="Leverage after the cut (0 = close).")
    drawdown_trigger: sweepable(Rate, gt=0, lt=1) | None = Field(None, description="Fire at this drawdown from the peak.")
    funding_trigger: sweepable(Rate) | None = Field(None, description="Fire when funding per interval falls below this.")
    volatility_trigger: sweepable(Rate, gt=0, le=10) | None = Field(None, description="Fire above this realised vol (annual).")
    volatility_window: Duration = Field("24h", description="Window of the realised volatility.")
    cooldown: Duration = Field("1d", description="Minimum time between two cuts.")

    @model_validator(mode="after")
    def _a_trigger(self):
        if self.drawdown_trigger is None and self.funding_trigger is None and self.volatility_trigger is None:
            raise ValueError("set at least one of drawdown_trigger, funding_trigger, volatility_trigger")
        return self
