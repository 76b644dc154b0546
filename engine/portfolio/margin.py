"""Exchange margin conventions: bankruptcy and liquidation prices of a single position.

The book (:mod:`engine.compile.book`, :mod:`engine.nb.book`) stores positions by bankruptcy
price and liquidates with the *mark-price* convention of Binance USDT-M: maintenance margin is
a share ``m`` of the position's value at the liquidation price, so

* long:  ``P_liq = P_b / (1 - m)``, with ``P_b = E * (1 - 1/L)``
* short: ``P_liq = P_b / (1 + m)``, with ``P_b = E * (1 + 1/L)``

Bybit's help pages compute maintenance on the *entry* value instead
(``P_liq = E - (IM - MM)/size``): ``E*(1 - 1/L + m)`` long, ``E*(1 + 1/L - m)`` short. Both are
here so the worked examples in ``../shared/data/reference/liquidation_price_worked_examples.csv``
can be reproduced (rows 1 and 3); the two differ by ``m*(E - P_liq)``, under 0.01% of the price
at the usual 0.5% maintenance rate.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["bankruptcy_price", "liquidation_price"]

Side = Literal["long", "short"]


def bankruptcy_price(entry: float, leverage: float, side: Side) -> float:
    """The price at which the position's margin is exactly used up (fees ignored)."""
    if leverage < 1:
        raise ValueError(f"leverage must be at least 1, got {leverage}")
    return entry * (1 - 1 / leverage) if side == "long" else entry * (1 + 1 / leverage)


def liquidation_price(entry: float, leverage: float, maintenance_margin_rate: float, side: Side,
                      convention: Literal["mark", "entry"] = "mark") -> float:
    """Liquidation price of an isolated position (or a cross position whose wallet is its margin)."""
    m = maintenance_margin_rate
    if convention == "entry":
        return entry * (1 - 1 / leverage + m) if side == "long" else entry * (1 + 1 / leverage - m)
    pb = bankruptcy_price(entry, leverage, side)
    return pb / (1 - m) if side == "long" else pb / (1 + m)
