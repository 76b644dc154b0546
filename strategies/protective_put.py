"""Protective put: long puts against the book's BTC, held to expiry or rolled.

Parameters (YAML ``strategies: - rule: protective_put``): ``strike_usd`` or
``strike_pct_of_spot``; ``size_btc`` or ``hedge_ratio`` (of the portfolio's BTC delta);
``expiry`` (date) or ``tenor``; ``roll_before_expiry`` (null = hold to expiry).
Evaluation on simulated paths and on history is the strategy layer's (issue 4).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from engine.scenario.types import Amount, Duration, Rate, Timestamp

from ._base import Rule, sweepable


class _OptionLeg(Rule):
    size_btc: sweepable(Amount, gt=0) | None = Field(None, description="Contracts, in BTC.")
    hedge_ratio: sweepable(Rate, gt=0, le=5) | None = Field(None, description="Share of the book's BTC delta.")
    expiry: Timestamp | None = Field(None, description="Expiry date of the options.")
    tenor: Duration | None = Field(None, description="Tenor of each option bought (alternative to expiry).")
    roll_before_expiry: Duration | None = Field(None, description="Roll this long before expiry; null = hold.")

    @model_validator(mode="after")
    def _size_and_expiry(self):
        if (self.size_btc is None) == (self.hedge_ratio is None):
            raise ValueError("give exactly one of size_btc and hedge_ratio")
        if (self.expiry is None) == (self.tenor is None):
            raise ValueError("give exactly one of expiry and tenor")
        return self


def _one_strike(model, prefix: str) -> None:
    usd, pct = getattr(model, f"{prefix}_usd"), getattr(model, f"{prefix}_pct_of_spot")
    if (usd is None) == (pct is None):
        raise ValueError(f"give exactly one of {prefix}_usd and {prefix}_pct_of_spot")


class Params(_OptionLeg):
    rule: Literal["protective_put"]
    strike_usd: sweepable(Amount, gt=0) | None = Field(None, description="Absolute strike, e.g. 60k.")
    strike_pct_of_spot: sweepable(Rate, gt=0, le=5) | None = Field(None, description="Strike as % of spot, e.g. 85%.")

    @model_validator(mode="after")
    def _strike(self):
        _one_strike(self, "strike")
        return self
