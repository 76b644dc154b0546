"""Perp hedge: a short perpetual against the book, static or re-balanced to a delta target."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..scenario.types import Duration, Number, Rate

from ._base import Context, Rule, sweepable

__all__ = ["Params", "translate"]


class Params(Rule):
    rule: Literal["perp_hedge"]
    mode: Literal["static", "dynamic"] = Field("static", description="static: fixed short; dynamic: rebalance.")
    hedge_ratio: sweepable(Rate, ge=0, le=5) = Field(0.5, description="Short as a share of the book's BTC delta.")
    delta_target: sweepable(Rate, ge=-5, le=5) | None = Field(None, description="Dynamic: target net delta share.")
    rebalance_band: sweepable(Rate, ge=0, le=1) = Field(0.05, description="Dynamic: trade when off target by this.")
    rebalance_every: Duration = Field("1h", description="Dynamic: how often the band is checked.")
    leverage: sweepable(Number, ge=1, le=100) = Field(3.0, description="Leverage of the hedge perp.")

    @model_validator(mode="after")
    def _dynamic(self):
        if self.mode == "static" and self.delta_target is not None:
            raise ValueError("delta_target applies to mode: dynamic only")
        return self


def translate(params: Params, ctx: Context, variant) -> None:
    """Static: a short of ``hedge_ratio`` times the book's delta. Dynamic: a short that leaves
    ``delta_target`` of it, rebalanced every ``rebalance_every`` when off by more than the band."""
    variant.hedge_leverage = params.leverage
    if params.mode == "static":
        variant.hedge_size = -params.hedge_ratio * ctx.book_delta
        return
    target = params.delta_target if params.delta_target is not None else 0.0
    variant.hedge_size = -(1.0 - target) * ctx.book_delta
    variant.controls = {"DYNAMIC": 1.0, "DELTA_TARGET": target, "BAND": params.rebalance_band,
                        "EVERY": max(1, round(ctx.steps(params.rebalance_every)))}
