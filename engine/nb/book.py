"""One path's position book: liquidation crossings, margin changes, new positions.

The book is ``long[v, c]`` and ``short[v, c]``: *unscaled* sizes (BTC) per venue ``v`` and cell
``c`` of the bankruptcy-price grid ``grid[c]`` (increasing, log-uniform; the array passed here
carries two more values at its end: ``log(grid[0])`` and cells per unit of log price, see
:func:`engine.simulate.prepare`). Three lazy factors keep the
per-step work O(1):

* ``scale_l`` / ``scale_s`` (kernel locals): long / short size multipliers (voluntary
  deleveraging and ADL shrink a whole side at once); a cell's size is ``long[v, c] * scale_l``.
* ``pb_mult``: funding payments shift every bankruptcy price by the factor ``(1 + f)``; a
  cell's bankruptcy price is ``grid[c] * pb_mult``.

A long cell liquidates when the price falls to ``P_b/(1 - m)`` (``m`` the venue's maintenance
rate), a short when it rises to ``P_b/(1 + m)`` (Binance USDT-M mark-price convention).
``top[v]`` is the highest long cell holding size on venue ``v`` (-1 if none), ``bottom[v]`` the
lowest short cell (``n_cells`` if none): crossings are found by walking these pointers.
"""

from __future__ import annotations

import math

import numpy as np

from ..compile.layout import Stress
from .config import jit, jit_norc

NEAR_LIQUIDATION = 0.05  # stress_nb: notional whose liquidation price is within 5% of the price
HIGH_LEVERAGE = 4.0  # stress_nb: notional above 4x effective leverage


@jit
def cell_of_nb(grid, log_price):
    """Lower cell index and interpolation weight of a log price on the log-uniform grid (clamped).

    The grid is ``geomspace``: the cell follows from the log price in O(1), no search. ``grid``
    carries two extra trailing values: ``log(grid[0])`` and cells per unit of log price.
    """
    n = grid.shape[0] - 2
    x = (log_price - grid[n]) * grid[n + 1]
    if not x > 0.0:
        return 0, 0.0
    if x >= n - 1:
        return n - 2, 1.0
    lo = int(x)
    return lo, x - lo


@jit
def add_long_nb(long, top, grid, v, log_bankruptcy, size):
    """Deposit ``size`` (unscaled BTC) at the grid log bankruptcy price on venue ``v``."""
    lo, w = cell_of_nb(grid, log_bankruptcy)
    long[v, lo] += size * (1.0 - w)
    long[v, lo + 1] += size * w
    hi = lo + 1 if w > 0.0 else lo
    if hi > top[v]:
        top[v] = hi


@jit
def add_short_nb(short, bottom, grid, v, log_bankruptcy, size):
    lo, w = cell_of_nb(grid, log_bankruptcy)
    short[v, lo] += size * (1.0 - w)
    short[v, lo + 1] += size * w
    first = lo if w < 1.0 else lo + 1
    if first < bottom[v]:
        bottom[v] = first


@jit
def init_pointers_nb(long, short, top, bottom):
    n_venues, n_cells = long.shape
    for v in range(n_venues):
        top[v] = -1
        for c in range(n_cells - 1, -1, -1):
            if long[v, c] > 0.0:
                top[v] = c
                break
        bottom[v] = n_cells
        for c in range(n_cells):
            if short[v, c] > 0.0:
                bottom[v] = c
                break


@jit_norc
def enforce_initial_margin_nb(long, short, top, bottom, grid, price, pb_mult, max_leverage, top_up, v):
    """An initial-margin hike: cells above ``max_leverage`` at ``price`` top up (share ``top_up``)
    or cut size; both end at the new maximum leverage. Returns (long BTC cut, short BTC cut), unscaled.

    A long at bankruptcy ``P_b`` has leverage ``S/(S - P_b)``; it is over the limit when
    ``P_b > S(1 - 1/L)``. Cutting at constant equity keeps ``size * L_max / l`` of it.
    """
    n = grid.shape[0] - 2
    long_cut = 0.0
    target = price * (1.0 - 1.0 / max_leverage) / pb_mult
    moved = 0.0
    c = top[v]
    while c >= 0 and grid[c] > target:
        x = long[v, c]
        if x > 0.0:
            pb = grid[c] * pb_mult
            lev = price / max(price - pb, price * 1e-9)
            keep = top_up + (1.0 - top_up) * max_leverage / lev
            moved += x * keep
            long_cut += x * (1.0 - keep)
            long[v, c] = 0.0
        c -= 1
    top[v] = c
    while top[v] >= 0 and long[v, top[v]] <= 0.0:
        top[v] -= 1
    if moved > 0.0:
        add_long_nb(long, top, grid, v, np.log(target), moved)

    short_cut = 0.0
    target = price * (1.0 + 1.0 / max_leverage) / pb_mult
    moved = 0.0
    c = bottom[v]
    while c < n and grid[c] < target:
        x = short[v, c]
        if x > 0.0:
            pb = grid[c] * pb_mult
            lev = price / max(pb - price, price * 1e-9)
            keep = top_up + (1.0 - top_up) * max_leverage / lev
            moved += x * keep
            short_cut += x * (1.0 - keep)
            short[v, c] = 0.0
        c += 1
    bottom[v] = c
    while bottom[v] < n and short[v, bottom[v]] <= 0.0:
        bottom[v] += 1
    if moved > 0.0:
        add_short_nb(short, bottom, grid, v, np.log(target), moved)
    return long_cut, short_cut


@jit
def transient_nb(flow_state, sqrt_coef, linear_coef):
    """The transient price deviation (log) of the healing cumulative flow ``flow_state`` (USD):
    ``sqrt_coef * sign(J) * sqrt(|J|) + linear_coef * J`` (engine.compile.layout.Driver)."""
    return sqrt_coef * math.copysign(math.sqrt(abs(flow_state)), flow_state) + linear_coef * flow_state


@jit_norc
def liquidate_at_trigger_nb(cells, ptr, grid, level, pb_mult, mmr, v, scale, gap_price, penalty, is_long):
    """Close every cell of venue ``v`` on one side whose liquidation price the step's path reached.

    ``level`` is the step's lowest (longs) or highest (shorts) price so far. A long cell's trigger
    is ``T = P_b / (1 - m)``, crossed when ``T >= level``; a short's ``T = P_b / (1 + m)``, crossed
    when ``T <= level``. A crossed cell fills at its trigger, or at ``gap_price`` (the step's open)
    if the step opened beyond it, less the venue's liquidation ``penalty``
    (the engine's slippage, which grows as depth thins). Returns (unscaled size closed, USD
    liquidated at the fills, the surpluses, the deficits): equities ``X*(F - P_b)`` (long) or
    ``X*(P_b - F)`` (short), never netted across cells.
    """
    n = grid.shape[0] - 2
    sign = 1.0 if is_long else -1.0  # longs walk down from the top cell, shorts up from the bottom one
    step = -1 if is_long else 1
    size = 0.0
    usd = 0.0
    pos = 0.0
    neg = 0.0
    c = ptr[v]
    while 0 <= c < n:
        pb = grid[c] * pb_mult
        trigger = pb / (1.0 - sign * mmr[v])
        if sign * (trigger - level) < 0.0:  # not reached: nor is any cell beyond it
            break
        x = cells[v, c]
        if x > 0.0:
            btc = x * scale
            fill = (min(trigger, gap_price) if is_long else max(trigger, gap_price)) * (1.0 - sign * penalty)
            e = sign * (btc * (fill - pb))
            if e >= 0.0:
                pos += e
            else:
                neg -= e
            size += x
            usd += btc * fill
            cells[v, c] = 0.0
        c += step
    while 0 <= c < n and cells[v, c] <= 0.0:
        c += step
    ptr[v] = c
    return size, usd, pos, neg


@jit_norc
def shrink_venue_nb(cells, ptr, v, keep, empty):
    """Auto-deleveraging on venue ``v``: every cell of one side keeps the share ``keep``. Returns
    the unscaled size removed; a side taken to nothing is emptied (``ptr[v] = empty``)."""
    removed = 0.0
    for c in range(cells.shape[1]):
        x = cells[v, c]
        if x > 0.0:
            kept = x * keep
            removed += x - kept
            cells[v, c] = kept
    if keep <= 0.0:
        cells[v, :] = 0.0
        ptr[v] = empty
    return removed


@jit_norc
def venue_size_nb(cells, v):
    """Unscaled size of one side on venue ``v``."""
    out = 0.0
    for c in range(cells.shape[1]):
        out += cells[v, c]
    return out


@jit_norc
def stress_nb(long, short, top, bottom, grid, trig, pb_mult, scale_l, scale_s, price, out, row):
    """Margin stress of the book at ``price``, written to ``out[row, Stress.X]`` (USD):

    long and short notional ``size * price``; their equity ``size * (price - P_b)`` (long) or
    ``size * (P_b - price)`` (short), negative for a cell under water; the notional whose
    liquidation price is within ``NEAR_LIQUIDATION`` of the price (reached by a 5% move, or
    already crossed); the notional above ``HIGH_LEVERAGE`` effective leverage (``P_b`` beyond
    ``price * (1 -+ 1/4)``). ``trig[0|1, v]`` turns a grid price into a liquidation price
    (see ``engine.nb.kernel._triggers_nb``).
    """
    n = grid.shape[0] - 2
    long_usd = short_usd = long_eq = short_eq = long_near = short_near = long_high = short_high = 0.0
    near_long = price * (1.0 - NEAR_LIQUIDATION)
    near_short = price * (1.0 + NEAR_LIQUIDATION)
    high_long = price * (1.0 - 1.0 / HIGH_LEVERAGE)
    high_short = price * (1.0 + 1.0 / HIGH_LEVERAGE)
    for v in range(long.shape[0]):
        for c in range(top[v] + 1):
            x = long[v, c] * scale_l
            if x > 0.0:
                pb = grid[c] * pb_mult
                long_usd += x * price
                long_eq += x * (price - pb)
                if grid[c] * trig[0, v] >= near_long:
                    long_near += x * price
                if pb > high_long:
                    long_high += x * price
        for c in range(bottom[v], n):
            x = short[v, c] * scale_s
            if x > 0.0:
                pb = grid[c] * pb_mult
                short_usd += x * price
                short_eq += x * (pb - price)
                if grid[c] * trig[1, v] <= near_short:
                    short_near += x * price
                if pb < high_short:
                    short_high += x * price
    out[row, Stress.LONG_OPEN_INTEREST_USD] = long_usd
    out[row, Stress.SHORT_OPEN_INTEREST_USD] = short_usd
    out[row, Stress.LONG_EQUITY_USD] = long_eq
    out[row, Stress.SHORT_EQUITY_USD] = short_eq
    out[row, Stress.LONG_NEAR_LIQUIDATION_USD] = long_near
    out[row, Stress.SHORT_NEAR_LIQUIDATION_USD] = short_near
    out[row, Stress.LONG_OVER_4X_USD] = long_high
    out[row, Stress.SHORT_OVER_4X_USD] = short_high
