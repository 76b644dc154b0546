"""Hedging rules, one module each: its YAML schema (``Params``) and its translation to the
strategy kernel's inputs (``translate(params, ctx, variant)``, filling an
:class:`engine.portfolio.hedge.Variant` from the parameters and a :class:`Context`).

``RULES`` maps a rule name to its module; ``Strategy`` is the discriminated union on ``rule``
used by the scenario schema's ``strategies:`` list. Adding a rule is adding a module here and
naming it in both; :func:`engine.portfolio.hedge.variants` dispatches through ``RULES``. The YAML library
of ready-made hedging programmes that scenarios ``use:`` is the top-level ``strategies/`` folder
(:mod:`engine.scenario.strategy_files`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from . import collar, deleverage, perp_hedge, protective_put, put_spread, stop_loss
from ._base import Context

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

__all__ = ["RULES", "Strategy", "Context"]
