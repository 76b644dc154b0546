"""Put spread: long a higher-strike put, short a lower-strike put (e.g. long 60k / short 50k)."""

from __future__ import annotations

from ._options import two_strike_rule

Params, translate = two_strike_rule("put_spread", ("long_strike_usd", "Strike of the put bought."),
                                    ("short_strike_usd", "Strike of the put sold (lower)."),
                                    ((0, 1.0, "long_strike_usd"), (0, -1.0, "short_strike_usd")), __name__,
                                    low="short_strike_usd")
