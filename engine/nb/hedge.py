"""Hedged portfolios marked along price paths: the strategy kernel.

Contract
--------
``prices[p, t]`` is the price at the end of step ``t`` of path ``p`` (time ``(t + 1) * dt``; the
start, time 0, is ``spot0``). Every variant ``v`` (a strategy with one parameter set) holds the
same base portfolio (spot BTC, cash, an optional perp, options already held) plus its own legs:

* option legs ``j`` (columns ``Leg.X``): ``leg_kind`` (0 put, 1 call), signed ``leg_size`` (BTC;
  bought > 0; 0 = no leg), ``leg_strike`` (USD, or ``NaN`` for a strike set as ``leg_strike_pct``
  of the price when bought), ``leg_expiry`` (years from the start, or ``NaN`` for ``leg_tenor``
  years after each purchase) and ``leg_roll`` (tenor legs only: sell and buy a new one with the
  same tenor and strike rule this long before expiry; ``NaN`` = hold to expiry and settle, no new
  leg after it);
* a perp hedge ``hedge_size`` (signed BTC, short < 0) at ``hedge_leverage``;
* a stop: sell ``stop_fraction`` of the spot BTC, once, when the price falls to ``stop_price``
  or the drawdown from the running peak reaches ``stop_drawdown`` (``NaN`` = no such trigger).

Options are valued with Black-Scholes (no rates) on the path's vol surface: its ATM level
``atm_paths[p, t]`` at the end of step ``t`` (the market kernel's ``atm_iv``, which follows the path's
conditional variance; on history, the scheduled level moved by the spot-vol beta), at time 0
``surface[0, Surface.ATM_IV]``; the step's RISK_REVERSAL_25D (moved by ``skew_beta`` times the log
return since the start), TERM_SLOPE and the butterfly ``bf25``, see :mod:`engine.options.surface`. Trades pay half the
bid-ask ``spread`` (a share of the option's value) and ``fee`` (a share of the notional ``|size|*S``;
for options capped at ``FEE_CAP`` = 12.5% of the option's price, as Deribit caps it).
Expired options settle at intrinsic value in cash. Perps (the book's and the hedge) post
``|size| * entry / leverage`` of cash as collateral, pay or receive funding (``funding[p, t]``, the
path's rate per interval, times ``events[t]`` payments in the step, per
unit notional, longs pay), and are liquidated when their equity falls to ``|size| * S * mmr``:
the position is closed and what equity is left is lost (to the exchange's insurance fund).

Outputs per (variant, path): the option legs' payoff (what they paid: settlements at intrinsic
value, the value of a leg sold back at a roll, and the last marks of the legs alive at the end:
its mean over paths is the model's fair value of the legs, no rates so no discounting),
final value minus the unhedged portfolio's initial value (USD),
the maximum drawdown of the marked value (share of its running peak, from the value right after
the opening trades), whether a perp of the
portfolio was liquidated, and the option premium paid (USD): what opening legs cost, net of the
premium received for the legs sold (a collar's call), plus every trade's costs; the value of a leg
sold back at a roll is not premium.

Two kernels compute these outputs. :func:`evaluate_nb` takes every rule, one (variant, path) per
task, and can trace one of them (:func:`engine.portfolio.hedge.to_vectorbt`). :func:`evaluate_fixed_nb`
takes the rows that hold only fixed contracts (a fixed strike, no roll; ``leg_table`` numbers
them) without a dynamic hedge or a deleverage rule, the rows of a typical sweep: it prices their
opening trades once (they are the same on every path), marks each distinct contract once per (path, step) and
lets each row add only its own sizes and cash flows. Both run the same floating-point operations
in the same order on each row, so they agree bit for bit (``tests/test_hedge.py``); a row's
numbers never depend on the other rows evaluated with it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..compile.layout import N_LEGS, N_OPENING_FIELDS, Control, HedgeOut, Leg, Opening, Order, Surface, Trace
from .bs import black_delta_nb, black_price_delta_nb, black_price_nb, smile_vol_nb
from .config import jit, jit_inline, jit_norc, pjit


FEE_CAP = 0.125  # an option trade's fee is capped at this share of its price (Deribit's rule)


@jit
def _order_nb(orders, n_orders, row, col, size, price, fixed_fee):
    """Record one trade of the traced (variant, path): ``orders[k, Order.X]``, (row, column, size,
    price, fixed fee)."""
    k = n_orders[0]
    if k < orders.shape[0]:
        orders[k, Order.ROW] = row
        orders[k, Order.COLUMN] = col
        orders[k, Order.SIZE] = size
        orders[k, Order.PRICE] = price
        orders[k, Order.FIXED_FEE] = fixed_fee
    n_orders[0] = k + 1


@jit
def _smile_nb(k, s, tau, atm, rr25, bf25, slope, ref_tenor, floor):
    """``(ln(K/S), sqrt(tau), vol)``: the vol surface (:func:`engine.nb.bs.smile_vol_nb`) at one
    strike, the forward being the spot, with the two quantities Black-Scholes reuses."""
    sqt = math.sqrt(tau)
    lks = math.log(k / s)
    return lks, sqt, smile_vol_nb(lks, tau, sqt, atm, rr25, bf25, slope, ref_tenor, floor)


@jit
def _option_delta_nb(kind, k, s, tau, atm, rr25, bf25, slope, ref_tenor, floor):
    """Black-Scholes delta (no rates) on the surface; at expiry 0 or +-1."""
    if tau <= 0.0:
        if kind == 1:
            return 1.0 if s > k else 0.0
        return -1.0 if s < k else 0.0
    lks, sqt, vol = _smile_nb(k, s, tau, atm, rr25, bf25, slope, ref_tenor, floor)
    return black_delta_nb(kind == 1, lks, tau, vol * sqt, vol)


@jit
def _option_value_nb(kind, k, s, tau, atm, rr25, bf25, slope, ref_tenor, floor):
    """Black-Scholes value (no rates: Black on the spot) on the surface; at expiry intrinsic."""
    if tau <= 0.0:
        return max(s - k, 0.0) if kind == 1 else max(k - s, 0.0)
    lks, sqt, vol = _smile_nb(k, s, tau, atm, rr25, bf25, slope, ref_tenor, floor)
    return black_price_nb(kind == 1, s, k, lks, tau, vol * sqt, vol)


@jit
def _option_value_delta_nb(kind, k, s, tau, atm, rr25, bf25, slope, ref_tenor, floor):
    """``(_option_value_nb, _option_delta_nb)`` with the smile and ``d1`` computed once: the same
    operations, so the same bits."""
    if tau <= 0.0:
        if kind == 1:
            return max(s - k, 0.0), 1.0 if s > k else 0.0
        return max(k - s, 0.0), -1.0 if s < k else 0.0
    lks, sqt, vol = _smile_nb(k, s, tau, atm, rr25, bf25, slope, ref_tenor, floor)
    return black_price_delta_nb(kind == 1, s, k, lks, tau, vol * sqt, vol)


@jit_inline
def _perp_liquidated_nb(collateral, size, entry, s, mmr):
    """Whether a perp of ``size`` BTC entered at ``entry`` on ``collateral`` is liquidated at the
    price ``s``: its equity at or below the maintenance margin ``mmr`` of its notional."""
    return collateral + size * (s - entry) <= abs(size) * s * mmr


@jit_inline
def _path_surface_nb(surface, atm_paths, p, t, s, spot0, skew_beta):
    """Path ``p``'s surface at the end of step ``t``, the price at ``s``: ``(ATM level, risk
    reversal moved by skew_beta times the log return since the start, term slope)``."""
    return (atm_paths[p, t], surface[t, Surface.RISK_REVERSAL_25D] + skew_beta * math.log(s / spot0),
            surface[t, Surface.TERM_SLOPE])


@pjit
def evaluate_nb(prices, atm_paths, spot0, dt, surface, bf25, skew_beta, ref_tenor, floor, funding, events,
                spot_btc, cash0, perp_size, perp_leverage, perp_entry, perp_mmr,
                held_kind, held_strike, held_expiry, held_size,
                leg_kind, leg_size, leg_strike, leg_strike_pct, leg_expiry, leg_tenor, leg_roll,
                hedge_size, hedge_leverage, stop_price, stop_drawdown, stop_fraction, spread, fee, controls, out,
                trace_v, trace_p, marks, orders, n_orders):
    n_paths, n_steps = prices.shape
    n_var, n_legs = leg_kind.shape
    n_held = held_kind.shape[0]
    max_window = 1
    for v in range(n_var):
        if not math.isnan(controls[v, Control.DELEV_VOL]):
            max_window = max(max_window, int(controls[v, Control.DELEV_WINDOW]))
    for task in numba.prange(n_var * n_paths):
        v = task // n_paths
        p = task % n_paths
        strike = np.empty(n_legs)
        expiry = np.empty(n_legs)
        tracing = v == trace_v and p == trace_p  # record marks and trades (engine.portfolio.hedge.to_vectorbt)
        rolls = np.zeros(n_legs, dtype=np.int64)  # a leg's contracts alternate between two columns
        leg_col0 = Trace.HEDGE + 1 + n_held
        per_leg = max(1, (marks.shape[1] - leg_col0) // max(n_legs, 1))  # columns (contracts) per traced leg
        alive = np.zeros(n_legs, dtype=np.bool_)
        s = spot0
        atm, rr = surface[0, Surface.ATM_IV], surface[0, Surface.RISK_REVERSAL_25D]
        slope = surface[0, Surface.TERM_SLOPE]
        # the base portfolio at time 0
        cash = cash0
        book_collateral = abs(perp_size) * perp_entry / perp_leverage if perp_size != 0.0 else 0.0
        cash -= book_collateral
        book_size = perp_size
        book_entry = perp_entry
        sq_returns = np.zeros(max_window)  # the vol window's squared log returns (a ring)
        sum_sq = 0.0
        last_cut = -(1 << 40)
        value0 = cash0 + spot_btc * s + perp_size * (s - perp_entry)
        for h in range(n_held):
            mark = _option_value_nb(held_kind[h], held_strike[h], s, held_expiry[h], atm, rr, bf25, slope, ref_tenor, floor)
            value0 += held_size[h] * mark
            if tracing:
                marks[0, Trace.HEDGE + 1 + h] = mark
                _order_nb(orders, n_orders, 0, Trace.HEDGE + 1 + h, held_size[h], mark, 0.0)
        if tracing:
            marks[0, Trace.SPOT] = s
            marks[0, Trace.BOOK] = s
            marks[0, Trace.HEDGE] = s
            if spot_btc != 0.0:
                _order_nb(orders, n_orders, 0, Trace.SPOT, spot_btc, s, 0.0)
            if perp_size != 0.0:
                _order_nb(orders, n_orders, 0, Trace.BOOK, perp_size, s, 0.0)
        # the variant's trades at time 0
        premium = 0.0
        for j in range(n_legs):
            if leg_size[v, j] == 0.0:
                continue
            strike[j] = leg_strike[v, j] if not math.isnan(leg_strike[v, j]) else leg_strike_pct[v, j] * s
            expiry[j] = leg_expiry[v, j] if not math.isnan(leg_expiry[v, j]) else leg_tenor[v, j]
            mid = _option_value_nb(leg_kind[v, j], strike[j], s, expiry[j], atm, rr, bf25, slope, ref_tenor, floor)
            paid = leg_size[v, j] * mid + abs(leg_size[v, j]) * (0.5 * spread[v] * mid
                                                                 + min(fee[v] * s, FEE_CAP * mid))
            cash -= paid
            premium += paid
            alive[j] = True
            if tracing:
                marks[0, leg_col0 + per_leg * j] = mid
                _order_nb(orders, n_orders, 0, leg_col0 + per_leg * j, leg_size[v, j],
                          mid * (1.0 + math.copysign(0.5 * spread[v], leg_size[v, j])),
                          abs(leg_size[v, j]) * min(fee[v] * s, FEE_CAP * mid))
        h_size = hedge_size[v]
        h_entry = s
        h_collateral = abs(h_size) * s / hedge_leverage[v] if h_size != 0.0 else 0.0
        cash -= h_collateral + abs(h_size) * fee[v] * s
        if tracing and h_size != 0.0:
            _order_nb(orders, n_orders, 0, Trace.HEDGE, h_size, s, abs(h_size) * fee[v] * s)
        spot_held = spot_btc
        stopped = False
        liquidated = 0.0
        # drawdowns count from the value right after the opening trades (costs paid)
        peak_value = cash + spot_held * s + h_collateral
        if book_size != 0.0:
            peak_value += book_collateral + book_size * (s - book_entry)
        for h in range(n_held):
            peak_value += held_size[h] * _option_value_nb(held_kind[h], held_strike[h], s, held_expiry[h], atm, rr, bf25,
                                                          slope, ref_tenor, floor)
        for j in range(n_legs):
            if alive[j]:
                peak_value += leg_size[v, j] * _option_value_nb(leg_kind[v, j], strike[j], s, expiry[j], atm, rr, bf25,
                                                                slope, ref_tenor, floor)
        max_dd = 0.0
        peak_price = s
        value = value0
        payoff = 0.0  # what the option legs paid: settlements, sales at rolls, and their marks at the end
        legs_value = 0.0
        for t in range(n_steps):
            s = prices[p, t]
            now = (t + 1) * dt
            atm, rr, slope = _path_surface_nb(surface, atm_paths, p, t, s, spot0, skew_beta)
            # funding (the path's rate per interval, times the payments in the step), then
            # liquidations, of the book's perp and the hedge
            rate = funding[min(p, funding.shape[0] - 1), t]
            if events[t] != 0.0:
                cash -= (book_size + h_size) * s * rate * events[t]
            if book_size != 0.0 and _perp_liquidated_nb(book_collateral, book_size, book_entry, s, perp_mmr):
                book_size = 0.0  # what equity was left goes to the exchange
                book_collateral = 0.0
                liquidated = 1.0
            if h_size != 0.0 and _perp_liquidated_nb(h_collateral, h_size, h_entry, s, perp_mmr):
                h_size = 0.0
                h_collateral = 0.0
                liquidated = 1.0
            # the stop
            if s > peak_price:
                peak_price = s
            if not stopped and spot_held > 0.0 and (s <= stop_price[v] or 1.0 - s / peak_price >= stop_drawdown[v]):
                sold = spot_held * stop_fraction[v]
                cash += sold * s * (1.0 - fee[v])
                spot_held -= sold
                if tracing:
                    _order_nb(orders, n_orders, t + 1, Trace.SPOT, -sold, s, sold * s * fee[v])
                stopped = True
            # deleveraging: cut the book's perp to the target leverage when a trigger fires
            s_prev = prices[p, t - 1] if t > 0 else spot0
            if not math.isnan(controls[v, Control.DELEV_VOL]):
                w = int(controls[v, Control.DELEV_WINDOW])
                lr = math.log(s / s_prev)
                sum_sq += lr * lr - sq_returns[t % w]
                sq_returns[t % w] = lr * lr
            target_lev = controls[v, Control.DELEV_TARGET]
            if (book_size != 0.0 and not math.isnan(target_lev)
                    and t - last_cut >= controls[v, Control.DELEV_COOLDOWN]):
                fire = 1.0 - s / peak_price >= controls[v, Control.DELEV_DRAWDOWN]  # False when NaN
                fire = fire or rate <= controls[v, Control.DELEV_FUNDING]
                if not math.isnan(controls[v, Control.DELEV_VOL]) and t + 1 >= controls[v, Control.DELEV_WINDOW]:
                    vol_now = math.sqrt(max(sum_sq, 0.0) / controls[v, Control.DELEV_WINDOW] / dt)
                    fire = fire or vol_now >= controls[v, Control.DELEV_VOL]
                equity = book_collateral + book_size * (s - book_entry)
                if fire and equity > 0.0:
                    new_abs = min(abs(book_size), target_lev * equity / s)
                    cost = (abs(book_size) - new_abs) * s * fee[v]
                    if tracing:
                        _order_nb(orders, n_orders, t + 1, Trace.BOOK, math.copysign(new_abs, book_size) - book_size, s, cost)
                    book_collateral = equity - cost  # PnL realised into the collateral
                    book_entry = s
                    book_size = new_abs if book_size > 0.0 else -new_abs
                    if book_size == 0.0:
                        cash += book_collateral
                        book_collateral = 0.0
                    last_cut = t
            # the dynamic perp hedge: back to its delta target when off by more than the band
            if controls[v, Control.DYNAMIC] != 0.0 and t % int(controls[v, Control.EVERY]) == 0:
                unhedged = spot_held + book_size
                for h in range(n_held):
                    unhedged += held_size[h] * _option_delta_nb(held_kind[h], held_strike[h], s, held_expiry[h] - now,
                                                                atm, rr, bf25, slope, ref_tenor, floor)
                target = -(1.0 - controls[v, Control.DELTA_TARGET]) * unhedged
                if abs(h_size - target) > controls[v, Control.BAND] * abs(unhedged):
                    if h_size != 0.0:  # realise the hedge and post collateral for the new size
                        cash += h_collateral + h_size * (s - h_entry)
                    cash -= abs(target - h_size) * s * fee[v]
                    if tracing:
                        _order_nb(orders, n_orders, t + 1, Trace.HEDGE, target - h_size, s, abs(target - h_size) * s * fee[v])
                    h_collateral = abs(target) * s / hedge_leverage[v]
                    cash -= h_collateral
                    h_size = target
                    h_entry = s
            # option legs: rolls (tenor legs with a roll rule), then expiries
            for j in range(n_legs):
                if not alive[j]:
                    continue
                tau = expiry[j] - now
                # a tenor leg with a roll rule rolls inside its window (1e-9 years of slack for
                # rounding), or at expiry when the window is shorter than a step
                rolling = not math.isnan(leg_roll[v, j]) and tau <= leg_roll[v, j] + 1e-9
                col = leg_col0 + per_leg * j + min(rolls[j], per_leg - 1)
                if tau <= 1e-12:  # expired: settles at intrinsic value
                    intrinsic = max(s - strike[j], 0.0) if leg_kind[v, j] == 1 else max(strike[j] - s, 0.0)
                    cash += leg_size[v, j] * intrinsic
                    payoff += leg_size[v, j] * intrinsic
                    if tracing:
                        marks[t + 1, col] = intrinsic
                        if intrinsic > 0.0:
                            _order_nb(orders, n_orders, t + 1, col, -leg_size[v, j], intrinsic, 0.0)
                    if not rolling:
                        alive[j] = False
                        continue
                elif rolling:  # sold back at its mid, less half the spread and the fee
                    mid = _option_value_nb(leg_kind[v, j], strike[j], s, tau, atm, rr, bf25, slope, ref_tenor, floor)
                    cost = abs(leg_size[v, j]) * (0.5 * spread[v] * mid + min(fee[v] * s, FEE_CAP * mid))
                    cash += leg_size[v, j] * mid - cost
                    payoff += leg_size[v, j] * mid
                    premium += cost  # closing a leg: its costs count as premium, its value does not
                    if tracing:
                        marks[t + 1, col] = mid
                        _order_nb(orders, n_orders, t + 1, col, -leg_size[v, j],
                                  mid * (1.0 - math.copysign(0.5 * spread[v], leg_size[v, j])),
                                  abs(leg_size[v, j]) * min(fee[v] * s, FEE_CAP * mid))
                else:
                    continue
                # the next contract: same tenor and strike rule, in the leg's other column
                rolls[j] += 1
                strike[j] = leg_strike[v, j] if not math.isnan(leg_strike[v, j]) else leg_strike_pct[v, j] * s
                expiry[j] = now + leg_tenor[v, j]
                mid = _option_value_nb(leg_kind[v, j], strike[j], s, leg_tenor[v, j], atm, rr, bf25, slope,
                                       ref_tenor, floor)
                paid = leg_size[v, j] * mid + abs(leg_size[v, j]) * (0.5 * spread[v] * mid
                                                                     + min(fee[v] * s, FEE_CAP * mid))
                cash -= paid
                premium += paid
                if tracing:
                    _order_nb(orders, n_orders, t + 1, leg_col0 + per_leg * j + min(rolls[j], per_leg - 1), leg_size[v, j],
                              mid * (1.0 + math.copysign(0.5 * spread[v], leg_size[v, j])),
                              abs(leg_size[v, j]) * min(fee[v] * s, FEE_CAP * mid))
            # the marked value
            value = cash + spot_held * s
            if book_size != 0.0:
                value += book_collateral + book_size * (s - book_entry)
            if h_size != 0.0:
                value += h_collateral + h_size * (s - h_entry)
            for h in range(n_held):
                mark = _option_value_nb(held_kind[h], held_strike[h], s, held_expiry[h] - now, atm, rr, bf25, slope,
                                        ref_tenor, floor)
                value += held_size[h] * mark
                if tracing:
                    marks[t + 1, Trace.HEDGE + 1 + h] = mark
            legs_value = 0.0
            for j in range(n_legs):
                if alive[j]:
                    mark = _option_value_nb(leg_kind[v, j], strike[j], s, expiry[j] - now, atm, rr, bf25, slope,
                                            ref_tenor, floor)
                    value += leg_size[v, j] * mark
                    legs_value += leg_size[v, j] * mark
                    if tracing:
                        marks[t + 1, leg_col0 + per_leg * j + min(rolls[j], per_leg - 1)] = mark
            if tracing:
                marks[t + 1, Trace.SPOT] = s
                marks[t + 1, Trace.BOOK] = s
                marks[t + 1, Trace.HEDGE] = s
            if value > peak_value:
                peak_value = value
            if peak_value > 0.0:
                dd = (peak_value - value) / peak_value
                if dd > max_dd:
                    max_dd = dd
        out[v, p, HedgeOut.PNL] = value - value0
        out[v, p, HedgeOut.MAX_DRAWDOWN] = max_dd
        out[v, p, HedgeOut.LIQUIDATED] = liquidated
        out[v, p, HedgeOut.PREMIUM] = premium
        out[v, p, HedgeOut.FINAL_VALUE] = value
        out[v, p, HedgeOut.PAYOFF] = payoff + legs_value


# ----------------------------------------------------------------------------- rows of fixed contracts
PATH_BLOCK = 256  # paths per task of evaluate_fixed_nb: their scratch is allocated once per task, and their marks
# are computed together (_block_marks_nb; of 16, 64, 128, 256, 512 and 1,024 paths, 256 was the quickest)


@jit
def _expiry_step_nb(expiry, dt, n_steps):
    """The step at whose end a leg expiring at ``expiry`` (years) settles: the first ``t`` with
    ``expiry - (t + 1) * dt <= 1e-12``, as :func:`evaluate_nb` tests it; ``n_steps`` if none."""
    for t in range(n_steps):
        if expiry - (t + 1) * dt <= 1e-12:
            return t
    return n_steps


@jit
def _open_nb(v, spot0, surface, bf25, ref_tenor, floor, spot_btc, cash0, perp_size, perp_leverage, perp_entry,
             held_kind, held_strike, held_expiry, held_size, leg_kind, leg_size, leg_strike, leg_strike_pct, leg_expiry,
             leg_tenor, hedge_size, hedge_leverage, spread, fee):
    """Variant ``v``'s trades at time 0, the same on every path, in :func:`evaluate_nb`'s order of
    operations: ``(cash after them, premium, hedge collateral, the value drawdowns start from)``."""
    s = spot0
    atm, rr, slope = surface[0, Surface.ATM_IV], surface[0, Surface.RISK_REVERSAL_25D], surface[0, Surface.TERM_SLOPE]
    cash = cash0
    book_collateral = abs(perp_size) * perp_entry / perp_leverage if perp_size != 0.0 else 0.0
    cash -= book_collateral
    premium = 0.0
    for j in range(leg_kind.shape[1]):
        if leg_size[v, j] == 0.0:
            continue
        strike = leg_strike[v, j] if not math.isnan(leg_strike[v, j]) else leg_strike_pct[v, j] * s
        expiry = leg_expiry[v, j] if not math.isnan(leg_expiry[v, j]) else leg_tenor[v, j]
        mid = _option_value_nb(leg_kind[v, j], strike, s, expiry, atm, rr, bf25, slope, ref_tenor, floor)
        paid = leg_size[v, j] * mid + abs(leg_size[v, j]) * (0.5 * spread[v] * mid + min(fee[v] * s, FEE_CAP * mid))
        cash -= paid
        premium += paid
    h_size = hedge_size[v]
    h_collateral = abs(h_size) * s / hedge_leverage[v] if h_size != 0.0 else 0.0
    cash -= h_collateral + abs(h_size) * fee[v] * s
    peak_value = cash + spot_btc * s + h_collateral
    if perp_size != 0.0:
        peak_value += book_collateral + perp_size * (s - perp_entry)
    for h in range(held_kind.shape[0]):
        peak_value += held_size[h] * _option_value_nb(held_kind[h], held_strike[h], s, held_expiry[h], atm, rr, bf25,
                                                      slope, ref_tenor, floor)
    for j in range(leg_kind.shape[1]):
        if leg_size[v, j] != 0.0:
            strike = leg_strike[v, j] if not math.isnan(leg_strike[v, j]) else leg_strike_pct[v, j] * s
            expiry = leg_expiry[v, j] if not math.isnan(leg_expiry[v, j]) else leg_tenor[v, j]
            peak_value += leg_size[v, j] * _option_value_nb(leg_kind[v, j], strike, s, expiry, atm, rr, bf25, slope,
                                                            ref_tenor, floor)
    return cash, premium, h_collateral, peak_value


@jit_norc
def _block_marks_nb(p0, prices, atm_paths, spot0, dt, surface, bf25, skew_beta, ref_tenor, floor, c_kind, c_strike,
                    c_expiry, marks_until, marks):
    """The contracts' marks on paths ``p0 <= p < p0 + marks.shape[0]``: ``marks[j, c, t]`` (path
    ``p0 + j``) for ``t < marks_until[c]``, Black-Scholes on the path's surface at the end of step
    ``t``, in :func:`evaluate_nb`'s operations (the same bits). Each distinct contract is marked
    once per (path, step), whatever the number of rows holding it."""
    n_steps = prices.shape[1]
    n_block = min(marks.shape[0], prices.shape[0] - p0)
    for j in range(n_block):
        p = p0 + j
        for t in range(n_steps):
            s = prices[p, t]
            now = (t + 1) * dt
            atm, rr, slope = _path_surface_nb(surface, atm_paths, p, t, s, spot0, skew_beta)
            for c in range(marks_until.shape[0]):
                if t < marks_until[c]:
                    marks[j, c, t] = _option_value_nb(c_kind[c], c_strike[c], s, c_expiry[c] - now, atm, rr, bf25,
                                                      slope, ref_tenor, floor)


@jit_norc
def _path_scratch_nb(p, prices, atm_paths, spot0, dt, surface, bf25, skew_beta, ref_tenor, floor, perp_size,
                     perp_leverage, perp_entry, perp_mmr, held_kind, held_strike, held_expiry, held_size, held_terms,
                     book_terms, drops):
    """What every row of path ``p`` shares, step by step, but for the contracts' marks
    (:func:`_block_marks_nb`): the options held (``held_terms[h, t]``, size times mark), the book
    perp's value (``book_terms[t]``) and the drop from the price's running peak (``drops[t]``).
    Returns the step the book perp is liquidated at (``n_steps``: never)."""
    n_steps = prices.shape[1]
    book_collateral = abs(perp_size) * perp_entry / perp_leverage if perp_size != 0.0 else 0.0
    book_size = perp_size
    liquidated_at = n_steps
    peak_price = spot0
    for t in range(n_steps):
        s = prices[p, t]
        if book_size != 0.0:
            if _perp_liquidated_nb(book_collateral, book_size, perp_entry, s, perp_mmr):
                book_size = 0.0
                book_collateral = 0.0
                liquidated_at = t
            book_terms[t] = book_collateral + book_size * (s - perp_entry)
        if s > peak_price:
            peak_price = s
        drops[t] = 1.0 - s / peak_price
        if held_kind.shape[0]:
            now = (t + 1) * dt
            atm, rr, slope = _path_surface_nb(surface, atm_paths, p, t, s, spot0, skew_beta)
            for h in range(held_kind.shape[0]):
                held_terms[h, t] = held_size[h] * _option_value_nb(held_kind[h], held_strike[h], s, held_expiry[h] - now,
                                                                   atm, rr, bf25, slope, ref_tenor, floor)
    return liquidated_at


@jit_inline
def _drawdown_step_nb(value, peak_value, trough, max_dd):
    """One step of the running maximum drawdown, ``(peak_value, trough, max_dd)`` after the marked
    value ``value``: :func:`evaluate_nb` takes the drawdown at every step; for a fixed peak it grows
    as the value falls, so only a new low since the peak (``trough``) can raise it (the same
    maximum, bit for bit)."""
    if value > peak_value:
        peak_value = value
        trough = value
    elif value < trough:
        trough = value
        if peak_value > 0.0:
            dd = (peak_value - value) / peak_value
            if dd > max_dd:
                max_dd = dd
    return peak_value, trough, max_dd


@jit
def _fixed_payoff_nb(v, p, prices, leg_kind, leg_size, leg_strike, leg_table, settles, marks):
    """What a row's two fixed legs paid on path ``p``: each settled leg's intrinsic value at its
    settlement step, plus the last marks of those alive at the end (``marks[c, t]``, the path's),
    as :func:`evaluate_nb` sums them (two terms at most, so the order of the sums cannot change a bit)."""
    n_steps = prices.shape[1]
    settled = 0.0
    alive = 0.0
    for j in range(N_LEGS):
        t = settles[v, j]
        if t < 0:
            continue
        if t < n_steps:
            s = prices[p, t]
            k = leg_strike[v, j]
            settled += leg_size[v, j] * (max(s - k, 0.0) if leg_kind[v, j] == 1 else max(k - s, 0.0))
        elif n_steps > 0:
            alive += leg_size[v, j] * marks[leg_table[v, j], n_steps - 1]
    return settled + alive


@jit_norc
def _fixed_row_nb(v, p, prices, funding_row, events, spot0, spot_btc, perp_size, perp_mmr, liquidated_at, book_until,
                  leg_kind, leg_size, leg_strike, leg_table, settles, hedge_size, stop_price, stop_drawdown,
                  stop_fraction, fee, cash, h_collateral, peak_value, value0, marks, held_terms, book_terms, drops, out):
    """One (variant, path) of a row holding fixed contracts (two leg columns), from the path's
    shared scratch: the operations of :func:`evaluate_nb`, in its order, on what varies by row.
    Writes ``out[v, p]`` but for the PnL and the premium; returns the final value."""
    n_steps = prices.shape[1]
    spot_held = spot_btc
    stopped = False
    liquidated = 1.0 if liquidated_at < n_steps else 0.0
    h_size = hedge_size[v]
    h_entry = spot0
    max_dd = 0.0
    trough = peak_value  # the lowest value since the peak: a drawdown can only deepen below it
    value = value0
    size0, size1 = leg_size[v, Leg.FIRST], leg_size[v, Leg.SECOND]
    settle0, settle1 = settles[v, Leg.FIRST], settles[v, Leg.SECOND]  # -1: no leg
    marks0 = marks[max(leg_table[v, Leg.FIRST], 0)]
    marks1 = marks[max(leg_table[v, Leg.SECOND], 0)]
    strike0, strike1 = leg_strike[v, Leg.FIRST], leg_strike[v, Leg.SECOND]
    call0, call1 = leg_kind[v, Leg.FIRST] == 1, leg_kind[v, Leg.SECOND] == 1
    stop_at, stop_dd = stop_price[v], stop_drawdown[v]
    n_held = held_terms.shape[0]
    for t in range(n_steps):
        s = prices[p, t]
        if events[t] != 0.0:
            book_size = perp_size if t <= liquidated_at else 0.0
            cash -= (book_size + h_size) * s * funding_row[t] * events[t]
        if h_size != 0.0 and _perp_liquidated_nb(h_collateral, h_size, h_entry, s, perp_mmr):
            h_size = 0.0
            h_collateral = 0.0
            liquidated = 1.0
        if not stopped and spot_held > 0.0 and (s <= stop_at or drops[t] >= stop_dd):
            sold = spot_held * stop_fraction[v]
            cash += sold * s * (1.0 - fee[v])
            spot_held -= sold
            stopped = True
        if t == settle0:
            cash += size0 * (max(s - strike0, 0.0) if call0 else max(strike0 - s, 0.0))
        if t == settle1:
            cash += size1 * (max(s - strike1, 0.0) if call1 else max(strike1 - s, 0.0))
        value = cash + spot_held * s
        if t < book_until:
            value += book_terms[t]
        if h_size != 0.0:
            value += h_collateral + h_size * (s - h_entry)
        for h in range(n_held):
            value += held_terms[h, t]
        if t < settle0:
            value += size0 * marks0[t]
        if t < settle1:
            value += size1 * marks1[t]
        peak_value, trough, max_dd = _drawdown_step_nb(value, peak_value, trough, max_dd)
    out[v, p, HedgeOut.MAX_DRAWDOWN] = max_dd
    out[v, p, HedgeOut.LIQUIDATED] = liquidated
    out[v, p, HedgeOut.FINAL_VALUE] = value
    out[v, p, HedgeOut.PAYOFF] = _fixed_payoff_nb(v, p, prices, leg_kind, leg_size, leg_strike, leg_table, settles,
                                                   marks)
    return value


@jit_inline
def _stretch_nb(prices, p, t0, t1, cash, spot_held, book_on, book_terms, held_terms, alive0, size0, marks0, alive1,
                size1, marks1, peak_value, trough, max_dd):
    """Steps ``t0 <= t < t1`` of a row on which nothing but marks moves (no trade, no funding, the
    same legs alive): the marked value and its drawdown, in :func:`evaluate_nb`'s order of
    operations. For a fixed peak the drawdown grows as the value falls, so only a new low since
    the peak (``trough``) can raise it: the same maximum, bit for bit, as at every step."""
    value = 0.0
    for t in range(t0, t1):
        value = cash + spot_held * prices[p, t]
        if book_on:
            value += book_terms[t]
        for h in range(held_terms.shape[0]):
            value += held_terms[h, t]
        if alive0:
            value += size0 * marks0[t]
        if alive1:
            value += size1 * marks1[t]
        peak_value, trough, max_dd = _drawdown_step_nb(value, peak_value, trough, max_dd)
    return value, peak_value, trough, max_dd


@jit_norc
def _plain_row_nb(v, p, prices, funding_row, events, next_funding, spot_btc, perp_size, liquidated_at, book_until,
                  leg_kind, leg_size, leg_strike, leg_table, settles, h_size, cash, peak_value, value0, marks, held_terms,
                  book_terms, out):
    """:func:`_fixed_row_nb` for a row without a hedge perp or a stop that can fire: between the
    steps where its cash moves (funding, a leg settling) and where the book perp stops counting,
    only marks move, and those stretches run in :func:`_stretch_nb`."""
    n_steps = prices.shape[1]
    size0, size1 = leg_size[v, Leg.FIRST], leg_size[v, Leg.SECOND]
    settle0, settle1 = settles[v, Leg.FIRST], settles[v, Leg.SECOND]  # -1: no leg
    marks0 = marks[max(leg_table[v, Leg.FIRST], 0)]
    marks1 = marks[max(leg_table[v, Leg.SECOND], 0)]
    max_dd = 0.0
    trough = peak_value
    value = value0
    t = 0
    while t < n_steps:
        s = prices[p, t]
        # funding moves the cash unless nothing is exposed to it (then it subtracts a zero,
        # which changes nothing but a -0.0)
        funded = perp_size != 0.0 or cash == 0.0
        if funded and events[t] != 0.0:
            book_size = perp_size if t <= liquidated_at else 0.0
            cash -= (book_size + h_size) * s * funding_row[t] * events[t]
        if t == settle0:
            cash += size0 * (max(s - leg_strike[v, Leg.FIRST], 0.0) if leg_kind[v, Leg.FIRST] == 1
                             else max(leg_strike[v, Leg.FIRST] - s, 0.0))
        if t == settle1:
            cash += size1 * (max(s - leg_strike[v, Leg.SECOND], 0.0) if leg_kind[v, Leg.SECOND] == 1
                             else max(leg_strike[v, Leg.SECOND] - s, 0.0))
        end = next_funding[t] if funded else n_steps
        for boundary in (settle0, settle1, book_until):
            if t < boundary < end:
                end = boundary
        value, peak_value, trough, max_dd = _stretch_nb(prices, p, t, end, cash, spot_btc, t < book_until, book_terms,
                                                        held_terms, t < settle0, size0, marks0, t < settle1, size1,
                                                        marks1, peak_value, trough, max_dd)
        t = end
    out[v, p, HedgeOut.MAX_DRAWDOWN] = max_dd
    out[v, p, HedgeOut.LIQUIDATED] = 1.0 if liquidated_at < n_steps else 0.0
    out[v, p, HedgeOut.FINAL_VALUE] = value
    out[v, p, HedgeOut.PAYOFF] = _fixed_payoff_nb(v, p, prices, leg_kind, leg_size, leg_strike, leg_table, settles,
                                                   marks)
    return value


@jit
def _fixed_setup_nb(prices, spot0, dt, surface, bf25, ref_tenor, floor, events, spot_btc, cash0, perp_size,
                    perp_leverage, perp_entry, held_kind, held_strike, held_expiry, held_size, leg_kind, leg_size,
                    leg_strike, leg_strike_pct, leg_expiry, leg_tenor, hedge_size, hedge_leverage, stop_price,
                    stop_drawdown, spread, fee, controls, out, leg_table):
    """What :func:`evaluate_fixed_nb` computes once, not per path (a plain function: code outside
    ``prange`` in a parallel one is compiled into parallel loops too, and slowly): the rows'
    opening trades (the premium written to ``out``), the steps their legs settle at, which rows
    are plain (no hedge perp, no stop that can fire: prices are positive), the next funding step
    after each step, how long each contract's marks are needed, and the book's start value."""
    n_steps = prices.shape[1]
    n_var, n_legs = leg_kind.shape
    if n_legs != N_LEGS:
        raise ValueError("evaluate_fixed_nb takes two leg columns")
    for v in range(n_var):
        if controls[v, Control.DYNAMIC] != 0.0 or not math.isnan(controls[v, Control.DELEV_TARGET]):
            raise ValueError("evaluate_fixed_nb takes no dynamic hedge and no deleverage rule")
        for j in range(n_legs):
            if leg_size[v, j] != 0.0 and leg_table[v, j] < 0:
                raise ValueError("evaluate_fixed_nb takes fixed-contract legs only (leg_table >= 0)")
    n_contracts = 0
    for v in range(n_var):
        for j in range(n_legs):
            n_contracts = max(n_contracts, leg_table[v, j] + 1)
    opening = np.empty((n_var, N_OPENING_FIELDS))  # Opening.X: cash after the opening trades, hedge collateral, ...
    settles = np.empty((n_var, n_legs), dtype=np.int64)  # the step a leg settles at (-1: no leg)
    marks_until = np.zeros(n_contracts, dtype=np.int64)  # marks needed before this step
    plain = np.empty(n_var, dtype=np.bool_)
    next_funding = np.empty(n_steps, dtype=np.int64)
    following = n_steps
    for t in range(n_steps - 1, -1, -1):
        next_funding[t] = following
        if events[t] != 0.0:
            following = t
    for v in range(n_var):
        cash, premium, h_collateral, peak_value = _open_nb(
            v, spot0, surface, bf25, ref_tenor, floor, spot_btc, cash0, perp_size, perp_leverage, perp_entry,
            held_kind, held_strike, held_expiry, held_size, leg_kind, leg_size, leg_strike, leg_strike_pct, leg_expiry,
            leg_tenor, hedge_size, hedge_leverage, spread, fee)
        opening[v, Opening.CASH], opening[v, Opening.HEDGE_COLLATERAL] = cash, h_collateral
        opening[v, Opening.PEAK_VALUE] = peak_value
        for p in range(out.shape[1]):
            out[v, p, HedgeOut.PREMIUM] = premium
        stop_live = spot_btc > 0.0 and (stop_price[v] >= 0.0 or stop_drawdown[v] <= 1.0)
        plain[v] = hedge_size[v] == 0.0 and not stop_live
        for j in range(n_legs):
            settles[v, j] = -1
            if leg_size[v, j] != 0.0:
                expiry = leg_expiry[v, j] if not math.isnan(leg_expiry[v, j]) else leg_tenor[v, j]
                settles[v, j] = _expiry_step_nb(expiry, dt, n_steps)
                marks_until[leg_table[v, j]] = max(marks_until[leg_table[v, j]], settles[v, j])
    value0 = cash0 + spot_btc * spot0 + perp_size * (spot0 - perp_entry)
    for h in range(held_kind.shape[0]):
        value0 += held_size[h] * _option_value_nb(held_kind[h], held_strike[h], spot0, held_expiry[h],
                                                  surface[0, Surface.ATM_IV], surface[0, Surface.RISK_REVERSAL_25D],
                                                  bf25, surface[0, Surface.TERM_SLOPE], ref_tenor, floor)
    return opening, settles, marks_until, plain, next_funding, value0


@pjit
def evaluate_fixed_nb(prices, atm_paths, spot0, dt, surface, bf25, skew_beta, ref_tenor, floor, funding, events,
                      spot_btc, cash0, perp_size, perp_leverage, perp_entry, perp_mmr,
                      held_kind, held_strike, held_expiry, held_size, leg_table, c_kind, c_strike, c_expiry,
                      leg_kind, leg_size, leg_strike, leg_strike_pct, leg_expiry, leg_tenor,
                      hedge_size, hedge_leverage, stop_price, stop_drawdown, stop_fraction, spread, fee, controls,
                      out, n_threads):
    """:func:`evaluate_nb` for rows whose option legs are all fixed contracts
    (``leg_table >= 0``: a fixed strike, no roll; two leg columns) and that have no dynamic hedge
    and no deleverage rule: the same numbers, bit for bit, for a fraction of the work. It takes
    neither ``leg_roll`` (a fixed contract is never rolled) nor the trace arguments (tracing is
    :func:`evaluate_nb`'s); ``leg_table[v, j]`` is the column of row ``v``'s leg ``j`` among the
    distinct contracts ``c_kind``, ``c_strike``, ``c_expiry``.

    The opening trades are the same on every path, so they are priced once per row
    (:func:`_fixed_setup_nb`). Then, by tasks of ``PATH_BLOCK`` paths, what every row shares is
    computed once: the contracts' marks on the task's paths (:func:`_block_marks_nb`), then path
    by path the options held, the book perp and the price's drop from its peak
    (:func:`_path_scratch_nb`); each row only adds its own sizes, cash flows, hedge, stop and
    drawdown (:func:`_plain_row_nb`, :func:`_fixed_row_nb`)."""
    n_paths, n_steps = prices.shape
    n_var = leg_kind.shape[0]
    n_held = held_kind.shape[0]
    opening, settles, marks_until, plain, next_funding, value0 = _fixed_setup_nb(
        prices, spot0, dt, surface, bf25, ref_tenor, floor, events, spot_btc, cash0, perp_size, perp_leverage,
        perp_entry, held_kind, held_strike, held_expiry, held_size, leg_kind, leg_size, leg_strike, leg_strike_pct,
        leg_expiry, leg_tenor, hedge_size, hedge_leverage, stop_price, stop_drawdown, spread, fee, controls, out,
        leg_table)
    n_contracts = marks_until.shape[0]
    n_tasks = (n_paths + PATH_BLOCK - 1) // PATH_BLOCK
    # scratch per worker, not per task: tens of MB allocated 40 times a call came from fresh pages
    # whenever malloc returned them to the system at each free (as under Dask's workers, which set
    # MALLOC_TRIM_THRESHOLD_), and their page faults made a sweep's chunks 25% slower there. One
    # prange iteration per thread (``n_threads``: numba.get_num_threads() of the caller), each
    # taking every n-th block of paths (numba's get_thread_id and get_num_threads would do it
    # here, but a kernel calling them cannot be cached)
    n_workers = max(1, min(n_threads, n_tasks))
    for worker in numba.prange(n_workers):
        block_marks = np.empty((PATH_BLOCK, max(n_contracts, 1), n_steps))
        held_terms = np.empty((n_held, n_steps))
        book_terms = np.empty(n_steps)
        drops = np.empty(n_steps)
        for task in range(worker, n_tasks, n_workers):
            p0 = task * PATH_BLOCK
            if n_contracts:
                _block_marks_nb(p0, prices, atm_paths, spot0, dt, surface, bf25, skew_beta, ref_tenor, floor, c_kind,
                                c_strike, c_expiry, marks_until, block_marks)
            for p in range(p0, min(n_paths, p0 + PATH_BLOCK)):
                marks = block_marks[p - p0]
                liquidated_at = _path_scratch_nb(p, prices, atm_paths, spot0, dt, surface, bf25, skew_beta,
                                                 ref_tenor, floor, perp_size, perp_leverage, perp_entry, perp_mmr,
                                                 held_kind, held_strike, held_expiry, held_size, held_terms,
                                                 book_terms, drops)
                book_until = liquidated_at if perp_size != 0.0 else 0
                funding_row = funding[min(p, funding.shape[0] - 1)]
                for v in range(n_var):
                    if plain[v]:
                        final = _plain_row_nb(v, p, prices, funding_row, events, next_funding, spot_btc,
                                              perp_size, liquidated_at, book_until, leg_kind, leg_size, leg_strike,
                                              leg_table, settles, hedge_size[v], opening[v, Opening.CASH],
                                              opening[v, Opening.PEAK_VALUE], value0, marks, held_terms, book_terms, out)
                    else:
                        final = _fixed_row_nb(v, p, prices, funding_row, events, spot0, spot_btc, perp_size,
                                              perp_mmr, liquidated_at, book_until, leg_kind, leg_size, leg_strike,
                                              leg_table, settles, hedge_size, stop_price, stop_drawdown, stop_fraction,
                                              fee, opening[v, Opening.CASH], opening[v, Opening.HEDGE_COLLATERAL],
                                              opening[v, Opening.PEAK_VALUE], value0, marks,
                                              held_terms, book_terms, drops, out)
                    out[v, p, HedgeOut.PNL] = final - value0
