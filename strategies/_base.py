"""What every hedging rule shares: its name in results and its trading costs."""

from __future__ import annotations

from pydantic import Field

from engine.scenario.sweep import sweepable
from engine.scenario.types import Name, Rate, StrictModel

__all__ = ["Rule", "Costs", "sweepable"]


class Costs(StrictModel):
    bid_ask_spread: sweepable(Rate, ge=0, le=1) = Field(
        0.02, description="Option bid-ask spread as a share of the premium (half paid per trade)."
    )
    fee_rate: sweepable(Rate, ge=0, le=0.1) = Field(
        0.0003, description="Fee per trade, share of the underlying's notional (options: at most 12.5% of their price)."
    )


class Rule(StrictModel):
    name: Name | None = Field(None, description="Label in results; defaults to the rule name (must be unique).")
    costs: Costs = Field(default_factory=Costs, description="Trading costs of the rule.")

    @property
    def label(self) -> str:
        return self.name or self.rule  # type: ignore[attr-defined]
