"""Deleverage on trigger: cut the book's perp leverage to a target when a trigger fires."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from ..scenario.types import Duration, Number, Rate

from ._base import Context, Rule, sweepable

__all__ = ["Params", "translate"]


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


def _or_nan(value) -> float:
    return value if value is not None else math.nan


def translate(params: Params, ctx: Context, variant) -> None:
    """The kernel's ``DELEV_*`` controls (an unset trigger is NaN: never fires); the book must hold a perp."""
    portfolio = ctx.compiled.portfolio
    if portfolio is None or portfolio.perp_size_btc == 0.0:
        raise ValueError(f"strategies[{ctx.label}]: deleverage cuts the portfolio's perp, "
                         "and the portfolio holds none (add portfolio.perp)")
    variant.controls = {"DELEV_TARGET": params.target_leverage,
                        "DELEV_DRAWDOWN": _or_nan(params.drawdown_trigger),
                        "DELEV_VOL": _or_nan(params.volatility_trigger),
                        "DELEV_WINDOW": max(2, round(ctx.steps(params.volatility_window))),
                        "DELEV_COOLDOWN": round(ctx.steps(params.cooldown)),
                        "DELEV_FUNDING": _or_nan(params.funding_trigger)}
