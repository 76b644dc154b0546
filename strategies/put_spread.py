"""Put spread: long a higher-strike put, short a lower-strike put (e.g. long 60k / short 50k)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from engine.scenario.types import Amount

from ._base import sweepable
from .protective_put import _OptionLeg


class Params(_OptionLeg):
    rule: Literal["put_spread"]
    long_strike_usd: sweepable(Amount, gt=0) = Field(..., description="Strike of the put bought.")
    short_strike_usd: sweepable(Amount, gt=0) = Field(..., description="Strike of the put sold (lower).")

    @model_validator(mode="after")
    def _ordered(self):
        if isinstance(self.long_strike_usd, float) and isinstance(self.short_strike_usd, float):
            if self.short_strike_usd >= self.long_strike_usd:
                raise ValueError("short_strike_usd must be below long_strike_usd")
        return self
