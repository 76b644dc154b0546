"""Collar: long a put, short a call; the call premium pays for (part of) the put."""

from __future__ import annotations

from typing import Literal

from ._base import Context
from ._options import OptionLeg, strike_pair, two_legs

__all__ = ["Params", "translate"]


_Strikes = strike_pair(("put_strike_usd", "Strike of the put bought."),
                       ("call_strike_usd", "Strike of the call sold (higher)."),
                       low="put_strike_usd", high="call_strike_usd",
                       message="call_strike_usd must be above put_strike_usd")


class Params(OptionLeg, _Strikes):
    rule: Literal["collar"]


def translate(params: Params, ctx: Context, variant) -> None:
    """A long put leg and a short call leg of the same size and expiry."""
    variant.legs = two_legs(params, ctx, (0, 1.0, params.put_strike_usd), (1, -1.0, params.call_strike_usd))
