"""Collar: long a put, short a call; the call premium pays for (part of) the put."""

from __future__ import annotations

from ._options import two_strike_rule

Params, translate = two_strike_rule("collar", ("put_strike_usd", "Strike of the put bought."),
                                    ("call_strike_usd", "Strike of the call sold (higher)."),
                                    ((0, 1.0, "put_strike_usd"), (1, -1.0, "call_strike_usd")), __name__,
                                    low="put_strike_usd")
