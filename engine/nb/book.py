"""One path's position book: liquidation crossings, margin changes, new positions.

The book is ``long[r, c]`` and ``short[r, c]``: *unscaled* sizes (BTC) per row ``r`` (a venue's
size class, :data:`engine.compile.layout.ROW_FIELDS`) and cell ``c`` of the bankruptcy-price grid
``grid[c]`` (increasing, log-uniform; the array passed here carries two more values at its end:
``log(grid[0])`` and cells per unit of log price, see :func:`engine.simulate.prepare`). Three
lazy factors keep the per-step work O(1):

* ``scale_l`` / ``scale_s`` (kernel locals): long / short size multipliers (voluntary
  deleveraging and ADL shrink a whole side at once); a cell's size is ``long[v, c] * scale_l``.
* ``pb_mult``: funding payments shift every bankruptcy price by the factor ``(1 + f)``; a
  cell's bankruptcy price is ``grid[c] * pb_mult``.

``long_entry[r, c]`` / ``short_entry[r, c]`` hold the cells' entry notional (unscaled size x entry
price): a cell's average entry price is ``entry / size``, which ranks it for auto-deleveraging.

A long cell liquidates when the price falls to ``P_b/(1 - m)`` (``m`` the row's maintenance
rate), a short when it rises to ``P_b/(1 + m)`` (Binance USDT-M mark-price convention).
``top[r]`` is the highest long cell holding size in row ``r`` (-1 if none), ``bottom[r]`` the
lowest short cell (``n_cells`` if none): crossings are found by walking these pointers.
"""

from __future__ import annotations

import math

import numpy as np

from ..compile.layout import Row, Stress
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
def add_long_nb(long, entry, top, grid, v, log_bankruptcy, size, entry_usd):
    """Deposit ``size`` (unscaled BTC) with entry notional ``entry_usd`` at the grid log bankruptcy
    price in row ``v``: both split over the two neighbouring cells with the same weights."""
    lo, w = cell_of_nb(grid, log_bankruptcy)
    long[v, lo] += size * (1.0 - w)
    long[v, lo + 1] += size * w
    entry[v, lo] += entry_usd * (1.0 - w)
    entry[v, lo + 1] += entry_usd * w
    hi = lo + 1 if w > 0.0 else lo
    if hi > top[v]:
        top[v] = hi


@jit
def add_short_nb(short, entry, bottom, grid, v, log_bankruptcy, size, entry_usd):
    lo, w = cell_of_nb(grid, log_bankruptcy)
    short[v, lo] += size * (1.0 - w)
    short[v, lo + 1] += size * w
    entry[v, lo] += entry_usd * (1.0 - w)
    entry[v, lo + 1] += entry_usd * w
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
def enforce_initial_margin_nb(long, short, long_entry, short_entry, top, bottom, grid, price, pb_mult, max_leverage,
                              top_up, v):
    """An initial-margin hike: cells above ``max_leverage`` at ``price`` top up (share ``top_up``)
    or cut size; both end at the new maximum leverage. Returns (long BTC cut, short BTC cut), unscaled.

    A long at bankruptcy ``P_b`` has leverage ``S/(S - P_b)``; it is over the limit when
    ``P_b > S(1 - 1/L)``. Cutting at constant equity keeps ``size * L_max / l`` of it. Positions
    keep their entry prices (the kept share of each cell's entry notional moves with it).
    """
    n = grid.shape[0] - 2
    long_cut = 0.0
    target = price * (1.0 - 1.0 / max_leverage) / pb_mult
    moved = 0.0
    moved_entry = 0.0
    c = top[v]
    while c >= 0 and grid[c] > target:
        x = long[v, c]
        if x > 0.0:
            pb = grid[c] * pb_mult
            lev = price / max(price - pb, price * 1e-9)
            keep = top_up + (1.0 - top_up) * max_leverage / lev
            moved += x * keep
            moved_entry += long_entry[v, c] * keep
            long_cut += x * (1.0 - keep)
            long[v, c] = 0.0
            long_entry[v, c] = 0.0
        c -= 1
    top[v] = c
    while top[v] >= 0 and long[v, top[v]] <= 0.0:
        top[v] -= 1
    if moved > 0.0:
        add_long_nb(long, long_entry, top, grid, v, np.log(target), moved, moved_entry)

    short_cut = 0.0
    target = price * (1.0 + 1.0 / max_leverage) / pb_mult
    moved = 0.0
    moved_entry = 0.0
    c = bottom[v]
    while c < n and grid[c] < target:
        x = short[v, c]
        if x > 0.0:
            pb = grid[c] * pb_mult
            lev = price / max(pb - price, price * 1e-9)
            keep = top_up + (1.0 - top_up) * max_leverage / lev
            moved += x * keep
            moved_entry += short_entry[v, c] * keep
            short_cut += x * (1.0 - keep)
            short[v, c] = 0.0
            short_entry[v, c] = 0.0
        c += 1
    bottom[v] = c
    while bottom[v] < n and short[v, bottom[v]] <= 0.0:
        bottom[v] += 1
    if moved > 0.0:
        add_short_nb(short, short_entry, bottom, grid, v, np.log(target), moved, moved_entry)
    return long_cut, short_cut


@jit
def transient_nb(flow_state, sqrt_coef, linear_coef):
    """The transient price deviation (log) of the healing cumulative flow ``flow_state`` (USD):
    ``sqrt_coef * sign(J) * sqrt(|J|) + linear_coef * J`` (engine.compile.layout.Driver)."""
    return sqrt_coef * math.copysign(math.sqrt(abs(flow_state)), flow_state) + linear_coef * flow_state


@jit_norc
def liquidate_at_trigger_nb(cells, entry, ptr, grid, level, pb_mult, mmr, v, down, keep, scale, gap_price, penalty,
                            is_long):
    """Close, in whole or in part, every cell of row ``v`` on one side whose liquidation price the
    step's path reached.

    ``level`` is the step's lowest (longs) or highest (shorts) price so far. A long cell's trigger
    is ``T = P_b / (1 - m)``, crossed when ``T >= level``; a short's ``T = P_b / (1 + m)``, crossed
    when ``T <= level``. The mark is the trigger, or ``gap_price`` (the step's open) if the step
    opened beyond it; fills are at the mark less the venue's liquidation ``penalty`` (the engine's
    slippage, which grows as depth thins).

    In a row with a smaller class below (``down >= 0``), a crossed position is first cut down to
    it: the share ``1 - keep`` closes and the rest moves to row ``down`` with all the equity left,
    ``E = X*(M - P_b) - X*(1 - keep)*M*penalty`` (long; short mirrored), at the bankruptcy price
    ``P_b' = M - E/(X*keep)`` (further from the price: the smaller class's lower rate leaves it
    open). A position with no equity left, or in a venue's smallest class, closes whole.
    Returns (unscaled size closed, USD at the fills, surpluses, deficits, USD closed in part):
    equities ``X*(F - P_b)`` (long) or ``X*(P_b - F)`` (short) of the whole closes, never netted
    across cells.
    """
    n = grid.shape[0] - 2
    sign = 1.0 if is_long else -1.0  # longs walk down from the top cell, shorts up from the bottom one
    step = -1 if is_long else 1
    size = 0.0
    usd = 0.0
    pos = 0.0
    neg = 0.0
    partial = 0.0
    c = ptr[v]
    while 0 <= c < n:
        pb = grid[c] * pb_mult
        trigger = pb / (1.0 - sign * mmr[v])
        if sign * (trigger - level) < 0.0:  # not reached: nor is any cell beyond it
            break
        x = cells[v, c]
        if x > 0.0:
            btc = x * scale
            mark = min(trigger, gap_price) if is_long else max(trigger, gap_price)
            fill = mark * (1.0 - sign * penalty)
            left = sign * btc * (mark - pb) - btc * (1.0 - keep) * mark * penalty if down >= 0 else 0.0
            if left > 0.0:  # cut down to the class below
                closed = btc * (1.0 - keep)
                usd += closed * fill
                partial += closed * fill
                size += x * (1.0 - keep)
                ln_pb = np.log((mark - sign * left / (btc * keep)) / pb_mult)
                if is_long:
                    add_long_nb(cells, entry, ptr, grid, down, ln_pb, x * keep, entry[v, c] * keep)
                else:
                    add_short_nb(cells, entry, ptr, grid, down, ln_pb, x * keep, entry[v, c] * keep)
            else:
                e = sign * (btc * (fill - pb))
                if e >= 0.0:
                    pos += e
                else:
                    neg -= e
                size += x
                usd += btc * fill
            cells[v, c] = 0.0
            entry[v, c] = 0.0
        c += step
    while 0 <= c < n and cells[v, c] <= 0.0:
        c += step
    ptr[v] = c
    return size, usd, pos, neg, partial


@jit_norc
def adl_score_nb(x, entry_usd, pb, price, is_long):
    """A position's auto-deleveraging rank (Binance): profit on margin times effective leverage if
    in profit, divided by it if not. ``x`` unscaled size, ``entry_usd`` its entry notional."""
    e = entry_usd / x
    if is_long:
        pnl = price - e
        margin = e - pb
        equity = price - pb
    else:
        pnl = e - price
        margin = pb - e
        equity = pb - price
    tiny = 1e-12 * price
    roe = pnl / max(margin, tiny)
    lev = price / max(equity, tiny)
    return roe * lev if roe >= 0.0 else roe / lev


@jit_norc
def adl_ranked_nb(cells, entry, ptr, rows, v, usd, price, grid, pb_mult, scale, score, is_long):
    """Auto-deleverage ``usd`` of notional at ``price`` from one side's positions on venue ``v``
    (every row of the venue), highest rank first (:func:`adl_score_nb`, rounded to single precision:
    ranks equal to about 7 significant digits tie; ties: the first row, then the first cell). Each taken position closes whole while the amount lasts; the last one in part.
    ``score`` is scratch shaped like ``cells``. Returns the unscaled size removed."""
    n_rows, n_cells = cells.shape
    for r in range(n_rows):
        if int(rows[r, Row.VENUE]) != v:
            continue
        for c in range(n_cells):
            x = cells[r, c]
            # ranks compared in single precision: positions equal in exact arithmetic (the same cell and
            # entry mix in several classes) tie, whatever the last bits of their float64 scores
            score[r, c] = np.float32(adl_score_nb(x, entry[r, c], grid[c] * pb_mult, price, is_long)) if x > 0.0 \
                else -np.inf
    left = usd
    removed = 0.0
    while left > 0.0:
        best = -np.inf
        br = -1
        bc = -1
        for r in range(n_rows):
            if int(rows[r, Row.VENUE]) != v:
                continue
            for c in range(n_cells):
                if cells[r, c] > 0.0 and score[r, c] > best:
                    best = score[r, c]
                    br = r
                    bc = c
        if br < 0:
            break
        x = cells[br, bc]
        notional = x * scale * price
        if notional <= left:
            left -= notional
            removed += x
            cells[br, bc] = 0.0
            entry[br, bc] = 0.0
        else:
            kept = 1.0 - left / notional
            removed += x - x * kept
            cells[br, bc] = x * kept
            entry[br, bc] = entry[br, bc] * kept
            left = 0.0
    for r in range(n_rows):  # the pointers skip the cells ADL emptied
        if int(rows[r, Row.VENUE]) != v:
            continue
        if is_long:
            while ptr[r] >= 0 and cells[r, ptr[r]] <= 0.0:
                ptr[r] -= 1
        else:
            while ptr[r] < n_cells and cells[r, ptr[r]] <= 0.0:
                ptr[r] += 1
    return removed


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
