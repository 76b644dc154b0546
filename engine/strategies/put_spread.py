"""Put spread: long a higher-strike put, short a lower-strike put (e.g. long 60k / short 50k)."""

from __future__ import annotations

from typing import Literal

from ._base import Context
from ._options import OptionLeg, strike_pair, two_legs

__all__ = ["Params", "translate"]


_Strikes = strike_pair(("long_strike_usd", "Strike of the put bought."),
                       ("short_strike_usd", "Strike of the put sold (lower)."),
                       low="short_strike_usd", high="long_strike_usd",
                       message="short_strike_usd must be below long_strike_usd")


class Params(OptionLeg, _Strikes):
    rule: Literal["put_spread"]


def translate(params: Params, ctx: Context, variant) -> None:
    """Two put legs of the same size and expiry: long the higher strike, short the lower."""
    variant.legs = two_legs(params, ctx, (0, 1.0, params.long_strike_usd), (0, -1.0, params.short_strike_usd))
