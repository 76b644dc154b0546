"""Collar: long a put, short a call; the call premium pays for (part of) the put."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from engine.scenario.types import Amount

from ._base import sweepable
from .protective_put import _OptionLeg


class Params(_OptionLeg):
    rule: Literal["collar"]
    put_strike_usd: sweepable(Amount, gt=0) = Field(..., description="Strike of the put bought.")
    call_strike_usd: sweepable(Amount, gt=0) = Field(..., description="Strike of the call sold (higher).")

    @model_validator(mode="after")
    def _ordered(self):
        if isinstance(self.put_strike_usd, float) and isinstance(self.call_strike_usd, float):
            if self.call_strike_usd <= self.put_strike_usd:
                raise ValueError("call_strike_usd must be above put_strike_usd")
        return self
