"""What every hedging rule shares: its name in results, its trading costs, and the context its
translation to kernel inputs reads (:class:`Context`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from ..scenario.sweep import sweepable
from ..scenario.types import Name, Rate, StrictModel

__all__ = ["Rule", "Costs", "Context", "sweepable"]


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


@dataclass(frozen=True)
class Context:
    """What a rule's ``translate`` needs besides its parameters: the book's BTC delta at the
    start, the horizon's start and step, the compiled scenario, and the strategy's label (for
    error messages)."""

    book_delta: float
    start: datetime
    step_seconds: float
    compiled: Any  # engine.compile.compiler.CompiledScenario
    label: str

    def steps(self, duration: timedelta) -> float:
        """``duration`` in time steps (not rounded)."""
        return duration.total_seconds() / self.step_seconds


def years(td: timedelta) -> float:
    """A duration in years of 365.25 days."""
    return td.total_seconds() / (365.25 * 86400)
