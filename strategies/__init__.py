"""Hedging rules, one module each. Each module's ``Params`` is the rule's YAML schema.

``RULES`` maps a rule name to its module; ``Strategy`` is the discriminated union on ``rule``
used by the scenario schema's ``strategies:`` list.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from . import collar, deleverage, perp_hedge, protective_put, put_spread, stop_loss

RULES = {
    "protective_put": protective_put,
    "put_spread": put_spread,
    "collar": collar,
    "perp_hedge": perp_hedge,
    "deleverage": deleverage,
    "stop_loss": stop_loss,
}

Strategy = Annotated[
    protective_put.Params
    | put_spread.Params
    | collar.Params
    | perp_hedge.Params
    | deleverage.Params
    | stop_loss.Params,
    Field(discriminator="rule"),
]

__all__ = ["RULES", "Strategy"]
