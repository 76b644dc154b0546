"""The cascade kernel: many paths of the leveraged market, path-major, tasks of paths in ``prange``.

Contract
--------
Inputs are the compiled arrays of :mod:`engine.compile.layout`, transposed so that one step's
drivers sit side by side in memory (``steps[t, Step.X]``, ``venue_steps[t, v, Venue.X]``), plus
the tables :mod:`engine.simulate` builds once per scenario (dealer hedge by step x log price, the
Student-t scale table, the per-step ``drivers``). Paths ``[first_path, first_path + n_paths)`` are
simulated; ``first_path`` is a multiple of ``block_size`` (the RNG block), and threads take tasks
of ``task_paths`` paths (a divisor of it) whose flow sums the caller adds per block in task order,
so any chunking or thread count reproduces the same numbers. Outputs are preallocated by the caller.

Speed: the step loop is bound by instruction throughput (same-process A/B, see bench/README.md),
so work is moved out of it where the numbers allow: per-step drivers are tabulated, rare events sit
behind one flag, records a step does not have are skipped, and the path function runs without
numba's reference counting (:data:`engine.nb.config.jit_norc`).

One step ``t`` of one path (``S`` the price at the start of the step)
------------------------------------------------------------------
Six uniforms are drawn in this order (three 64-bit draws, two 32-bit uniforms each): ``u0``
diffusion, ``u1`` jump size, ``u2`` macro factor, ``u3`` jump occurrence, ``u4`` the step's low,
``u5`` its high; when volatility clusters (``Param.CLUSTER_STDEV`` > 0) a fourth draw gives
``u6``, the log variance's own shock (``u7`` unused); on the steps with a scheduled jump (the same
on every path) another draw gives ``u8``, its spread (``u9`` unused). When volatility clusters, one
draw before the first step gives the path's starting regime (``u10``; ``u11`` unused).

Conditional volatility: the log-variance deviation ``h`` is an Ornstein-Uhlenbeck process whose
one-step transition is exact, ``h <- CLUSTER_PERSIST*h + CLUSTER_SHOCK*(rho*x + sqrt(1 -
rho^2)*Phi^-1(u6))`` after the step's return (``x = Phi^-1(u0)``, the diffusion's normal score:
the leverage effect), started from its stationary law ``N(0, s^2)``; the step's diffusion (and its
bridge variance) is scaled by ``m = exp(h/2 - s^2/4)``, so ``E[m^2] = 1``. With
``Param.LIQ_FEEDBACK`` (eta) > 0 the step's liquidations ``L`` raise it after the cascade, ``h <-
min(h + eta*L/OI, LIQ_FEEDBACK_H_MAX)`` (``OI`` the open interest at the step's open).

The price is ``exp(ln_f + I(J))``: ``ln_f`` the fundamental log price (exogenous moves and
permanent impact), ``J`` the healing cumulative flow (USD) and ``I(J) = SQRT_COEF*sign(J)*sqrt(|J|)
+ LINEAR_COEF*J`` the transient deviation (``Driver.X`` columns of ``drivers``, per step).

1. The transient flow state heals: ``J *= DECAY``.
2. Exogenous log return ``r = DRIFT + m*MACRO_VOL*x + m*VOL*z (+ JUMP_MEAN + JUMP_STDEV*Phi^-1(u1) if
   u3 < JUMP_PROB) (+ SCHEDULED_JUMP + SPREAD*Phi^-1(u8))``, ``z`` the unit-variance Student-t
   quantile of ``u0`` (``Phi^-1(u0)`` if Gaussian), ``x = Phi^-1(u2)``; ``ln_f += r``.
3. Margin changes (venue rows with MARGIN_CHANGE): new maintenance/initial rates (USD-per-BTC
   requirements converted at ``S``); a higher initial rate makes over-levered cells top up or cut
   (cuts are forced flow).
4. Flows in USD at ``S`` (sell < 0): scheduled ETF flow; reflexive ETF redemptions
   ``holdings*S*(LOSS_SENS*loss + BASIS_SENS*below_basis)*ETF_WINDOW*ETF_REFLEX_MULT``; miner
   sales (rule below breakeven hash price + forced); dealer re-hedging toward the tabulated hedge;
   traders who unwind: each side closes ``min(1, h*dt)`` of itself, the hazard ``h`` the
   holding-time hazard ``DELEV_BASE`` plus stop-loss and take-profit terms in the price's return
   against the book's average entry ``e`` (the price's exponential average at rate
   ``DELEV_BASE``, ``ENTRY_EMA_DECAY`` per step), realised vol and funding; new positions replace
   the holding-time closes: ``DELEV_BASE*dt`` of each side's starting size opens at the side's
   leverage nodes (``new_leverage[0|1]``), cycling through them by volume: each node takes the
   next ``NODE_CYCLE_SHARE/N_NEW_NODES`` of the side's starting size opened, then the next node,
   so how the flow is cut into steps never changes which leverage a BTC gets;
   momentum traders (finite capital) move their net position ``M`` toward the target
   ``sign(ret)*min(MOMENTUM_RATE*MOMENTUM_HOLD_DAYS*excess, MOMENTUM_CAPITAL)*X0`` (``excess`` the
   lookback return's size beyond ``MOMENTUM_THRESHOLD``, ``X0`` the book's starting size: sized on
   the current book, their positions would compound into a runaway), keeping
   ``exp(-dt/MOMENTUM_HOLD_DAYS)`` of the gap: what they open in a step is split equally over all
   their leverage nodes (``new_leverage[2]``), so a burst of any length gets the whole
   distribution; they close pro rata across their side,
   and what they hold shrinks with the side at every other close (margin cuts, the hazards,
   liquidations); relief-rally shorts; forced flows; margin cuts.
5. Impact of the net flow ``q``, executed evenly over the step: ``ln_f += PERMANENT_COEF*q`` and
   ``J += GAIN*q``; the close is ``c = ln_f + I(J)``, kept within ``log(spot) +- LOG_FLOOR``.
6. Funding payments (FUNDING_EVENTS): every bankruptcy price moves by ``(1 + f)`` per payment.
7. Liquidations at their trigger, unless a circuit breaker pauses them. The path from ``log S`` to
   ``c`` is a Brownian bridge of variance ``2/BRIDGE``; its low ``m`` and high ``M`` are the exact
   quantiles ``u4``, ``u5`` of the bridge's extremes, drawn only when a trigger or the path's
   running extreme lies within ``REACH`` of the step (beyond, no draw could cross it). The book
   has a row per venue and margin tier (``rows[r, Row.X]``), each with its own rates. A long cell
   whose trigger ``P_b/(1 - mmr[r])`` is at or above ``exp(m)`` is closed at ``min(trigger, S)*(1 -
   LIQ_FILL_PENALTY)``, a short whose trigger ``P_b/(1 + mmr[r])`` is at or below ``exp(M)`` at
   ``max(trigger, S)*(1 + LIQ_FILL_PENALTY)``; in a row above its venue's smallest class only the
   share ``1 - KEEP`` closes and the rest moves to the class below with its equity (a partial
   liquidation, :func:`engine.nb.book.liquidate_at_trigger_nb`). Per row and side, surpluses feed
   the venue's insurance fund and deficits (bad debt) draw on it; what it cannot pay is
   auto-deleveraged from the other side's positions on that venue, the highest ranked by profit x
   leverage first (:func:`engine.nb.book.adl_ranked_nb`). A round's net liquidation flow ``f`` moves
   ``ln_f += PERMANENT_COEF*f`` and ``J += f`` at once, and shifts the close, ``m`` and ``M`` by the
   price change; rounds repeat until nothing crosses (or the cap).
8. Records: price, open interest, liquidations; the path's lowest and highest price (intra-step
   lows and highs included), drawdown from the closes, realised vol; the average entry follows
   the close ``P``: ``e <- w*e + (1 - w)*P``.

Phases
------
:func:`_path_nb` holds a path's state as locals and calls one helper per phase: the start
(:func:`_start_book_nb`), 2 (:func:`_exogenous_return_nb`), 3 (:func:`_margin_changes_nb`), 4
(:func:`_etf_flow_nb`, :func:`_miner_sales_nb`, :func:`_deleveraging_nb`,
:func:`_deposit_momentum_nb`, :func:`_fresh_shorts_nb`), 7 (:func:`_step_extremes_nb`,
:func:`_cascade_nb`) and the summary (:func:`_write_summary_nb`). Those that run at every step
are inlined (:data:`engine.nb.config.jit_inline`: numba inlines a call of at most 30 arguments,
so state goes in and out as tuples); those behind the rare-event flag, or once per path, are
calls. Every input and output index is a namedtuple of :mod:`engine.compile.layout`.

Replay (:mod:`engine.history.replay`): with a non-empty ``replay`` array the log price at the end of step
``t`` is ``replay[t]`` instead of step 2's move (the draws are made and unused), and the caller has
zeroed the impact coefficients and set BRIDGE to infinity, so steps 5 and 7 move nothing and the
step's low and high are its two closes: liquidations take every crossed cell in one round, each at
its trigger. One branch per step, where the price is formed; the book's
margin stress at each close goes to ``stress`` (:func:`engine.nb.book.stress_nb`).
"""

from __future__ import annotations

import math

import numpy as np
import numba

from ..compile.layout import (IV_FLOOR, IV_LEVEL_INV, IV_LEVEL_LO, IV_TENOR, N_IV_LEVELS, N_NEW_NODES,
                              NODE_CYCLE_SHARE, STRESS_FIELDS, SUMMARY_FIELDS, BookEvent, Driver, Flow, Param, Row,
                              Step, Summary, Venue)
from . import book as bk
from .config import jit, jit_inline, jit_norc, pjit
from .rng import next_pair_nb, norm_table_ppf_nb, seed_path_nb, t_table_ppf_nb

# the outputs' columns and their indices live in the ABI module (engine.compile.layout); re-exported
# here for the modules that read the kernel's outputs
N_SUMMARY = len(SUMMARY_FIELDS)
N_STRESS = len(STRESS_FIELDS)

_PAD = 16  # 8-byte words (128 bytes: two cache lines, the adjacent-line prefetcher's pair) of padding
_WORK_ROWS = 5  # per-row scratch rows: fuel offsets, new log prices, triggers (2), funds
_NEW_KINDS = 4  # new positions' log-bankruptcy offsets per (node, row): new longs, new shorts, momentum long, short

LOG_FLOOR = 20.0  # the price stays within spot * exp(+-20): a level, the same at every step size
CLOSE_ALL_SLACK = 1e-9  # momentum traders closing all but this share of their side empty it: a residue
# of 1e-12 BTC (running sums against cells) would swing the funding imbalance of a side holding nothing else
MOMENTUM_RETURN_CAP = 1.0  # momentum traders react to at most a 100% lookback return
BRIDGE_REACH = 23.0  # > -ln of the smallest uniform, 0.5 / 2**32 (22.87): the bridge's widest draw
# liquidations feed volatility back only up to a tenfold vol (h = 2 ln 10): without a cap a cascade
# that raises the vol that liquidates more runs to infinity in a few steps
LIQ_FEEDBACK_H_MAX = 4.605170185988092
_IV_LN_LO = math.log(IV_LEVEL_LO)  # the dealer table's ATM levels: exp(_IV_LN_LO + k / IV_LEVEL_INV)


@jit_inline
def _row_read_nb(table, t, k, x):
    """Row ``table[t, k]`` read linearly at grid position ``x`` (flat beyond its ends)."""
    n = table.shape[2]
    if x <= 0.0:
        return table[t, k, 0]
    if x >= n - 1:
        return table[t, k, n - 1]
    j = int(x)
    w = x - j
    return table[t, k, j] + w * (table[t, k, j + 1] - table[t, k, j])


@jit_inline
def dealer_hedge_nb(table, t, log_price, lo, inv_step, iv):
    """Dealers' hedge (BTC) at step ``t``, ``log_price`` and ATM implied vol ``iv``: the tabulated
    grid read linearly in log price on the two ATM levels around ``iv`` (log-spaced, clamped to the
    ends), then linearly between them (inlined: it runs at every step)."""
    x = (log_price - lo) * inv_step
    y = (math.log(iv) - _IV_LN_LO) * IV_LEVEL_INV
    y = min(max(y, 0.0), N_IV_LEVELS - 1.0)
    k = min(int(y), N_IV_LEVELS - 2)
    w = y - k
    a = _row_read_nb(table, t, k, x)
    return a + w * (_row_read_nb(table, t, k + 1, x) - a)


@jit_inline
def model_iv_nb(drivers, t, premium, iv_table, h, h_lo, h_inv):
    """The model's ATM vol at step ``t`` for the log-variance deviation ``h``: ``premium`` (1 + VRP)
    times the square root of the step's diffusive variance times ``F(h)`` plus its jumps' (per year)."""
    return premium * math.sqrt(drivers[t, Driver.IV_DIFFUSION_VAR] * forward_variance_nb(iv_table, h, h_lo, h_inv)
                               + drivers[t, Driver.IV_JUMP_VAR])


@jit_inline
def forward_variance_nb(iv_table, h, h_lo, h_inv):
    """The forward-variance factor ``F(h)`` (:func:`engine.simulate.iv_forward_table`), read linearly,
    clamped to the table's ends."""
    n = iv_table.shape[0]
    x = (h - h_lo) * h_inv
    if x <= 0.0:
        return iv_table[0]
    if x >= n - 1:
        return iv_table[n - 1]
    j = int(x)
    return iv_table[j] + (x - j) * (iv_table[j + 1] - iv_table[j])


@jit
def _settle_nb(fund, v, surplus, deficit):
    """One venue's batch of liquidations: surpluses feed its insurance fund, deficits draw on it;
    returns what the fund could not pay (auto-deleveraged on that venue)."""
    fund[v] += surplus
    fund[v] -= deficit
    if fund[v] >= 0.0:
        return 0.0
    adl = -fund[v]
    fund[v] = 0.0
    return adl


@jit
def _bridge_extreme_nb(a, c, u, bridge, sign):
    """The lowest (``sign = -1``) or highest (``+1``) log price of a Brownian bridge from ``a`` to
    ``c`` with variance ``2 / bridge``, at the uniform ``u`` (exact inverse of its distribution).
    With no variance (``bridge`` infinite: a replay, a step without diffusion) the path is the
    straight line, and its extreme the open or the close exactly."""
    if bridge == np.inf:
        return min(a, c) if sign < 0.0 else max(a, c)
    d = a - c
    return 0.5 * (a + c + sign * math.sqrt(d * d - 4.0 * math.log(u) / bridge))


@jit_inline
def _step_extremes_nb(ln_open, ln_close, open_price, close_price, u_low, u_high, bridge, reach, watch_low, watch_high,
                      ln_floor, ln_ceiling):
    """Step 7's low and high: the extremes of the Brownian bridge from the step's open to its
    close (variance ``2 / bridge``), drawn from ``u_low`` and ``u_high``, each only when
    something watches it within the bridge's widest reach (``reach``, the factor no draw goes
    beyond): ``watch_low`` is the highest price that matters below (the nearest long trigger, or
    the path's low so far), ``watch_high`` the lowest above. An extreme not drawn is returned as
    beyond every price (log low ``inf``, low ``inf``; log high ``-inf``, high 0). Returns (log
    low, log high, low, high)."""
    ln_low = np.inf
    ln_high = -np.inf
    low_px = np.inf
    high_px = 0.0
    if watch_low >= min(open_price, close_price) * reach:
        ln_low = max(_bridge_extreme_nb(ln_open, ln_close, u_low, bridge, -1.0), ln_floor)
        low_px = np.exp(ln_low)
    if watch_high * reach <= max(open_price, close_price):
        ln_high = min(_bridge_extreme_nb(ln_open, ln_close, u_high, bridge, 1.0), ln_ceiling)
        high_px = np.exp(ln_high)
    return ln_low, ln_high, low_px, high_px


@jit_inline
def _liquidate_side_nb(cells, entry, ptr, other, other_entry, other_ptr, rows, score, grid, level, pb_mult, mmr, r, v,
                       scale, other_scale, open_price, price, penalty, fund, is_long):
    """One row's side in a cascade round: close (in whole or in part) the cells the step's ``level``
    crossed (:func:`engine.nb.book.liquidate_at_trigger_nb`), settle them against venue ``v``'s
    insurance fund, and auto-deleverage what the fund cannot pay from the other side on that venue,
    highest ranked first, at ``price`` (:func:`engine.nb.book.adl_ranked_nb`). Returns (unscaled
    size closed, USD at the fills, surpluses, deficits, ADL USD, unscaled size the ADL removed from
    the other side, USD closed in part)."""
    size, usd, pos, neg, partial = bk.liquidate_at_trigger_nb(cells, entry, ptr, grid, level, pb_mult, mmr, r,
                                                              int(rows[r, Row.DOWN]), rows[r, Row.KEEP], scale,
                                                              open_price, penalty, is_long)
    adl_now = 0.0
    removed = 0.0
    if size > 0.0:
        adl_now = _settle_nb(fund, v, pos, neg)
        if adl_now > 0.0:
            removed = bk.adl_ranked_nb(other, other_entry, other_ptr, rows, v, adl_now, price, grid, pb_mult,
                                       other_scale, score, not is_long)
    return size, usd, pos, neg, adl_now, removed, partial


@jit_norc
def _margin_changes_nb(venue_steps, rows, grid, t, long, short, long_entry, short_entry, top, bottom, mmr, imr, price,
                       pb_mult, scale_l, scale_s, long_size, short_size):
    """Step 3: the venues whose margin requirement changes at step ``t`` (a hike or its revert).

    Each of their rows takes the venue's new floors where they are above its tier's own rates
    (``mmr``, ``imr`` updated in place); a raised initial rate makes over-levered cells top up or
    cut (:func:`engine.nb.book.enforce_initial_margin_nb`), at ``price`` (the step's open). Returns
    (whether any venue changed, the cuts' signed flow in USD, the long and short unscaled sizes
    after the cuts)."""
    cut_usd = 0.0
    changed = False
    for r in range(long.shape[0]):
        v = int(rows[r, Row.VENUE])
        if venue_steps[t, v, Venue.MARGIN_CHANGE] != 0.0:
            changed = True
            mm_usd = venue_steps[t, v, Venue.MM_USD_PER_BTC]
            im_usd = venue_steps[t, v, Venue.IM_USD_PER_BTC]
            mmr[r] = max(rows[r, Row.MMR], mm_usd / price if mm_usd > 0.0 else venue_steps[t, v, Venue.MMR])
            new_imr = max(rows[r, Row.IMR], im_usd / price if im_usd > 0.0 else venue_steps[t, v, Venue.IMR])
            new_imr = min(max(new_imr, mmr[r] * 1.0001), 1.0)
            if new_imr > imr[r]:
                lc, sc = bk.enforce_initial_margin_nb(long, short, long_entry, short_entry, top, bottom, grid, price,
                                                      pb_mult, 1.0 / new_imr, venue_steps[t, v, Venue.TOP_UP_FRACTION],
                                                      r)
                long_size -= lc
                short_size -= sc
                cut_usd += (sc * scale_s - lc * scale_l) * price
            imr[r] = new_imr
    return changed, cut_usd, long_size, short_size


@jit_inline
def _cascade_nb(steps, venue_steps, rows, grid, t, book, rates, pb_mult, scales, step_open, max_rounds, impact, sizes,
                prices, extremes, triggers, totals, paused_until):
    """Step 7's liquidation cascade, in rounds until no trigger is crossed (or ``max_rounds``).

    Each round walks every row and side whose nearest trigger the step's low (longs) or high
    (shorts) reached (:func:`_liquidate_side_nb`), then applies the round's net flow: permanently,
    and at once on the transient state; the rest of the step's path (its low, its high, its close)
    moves with it. A move beyond the step's circuit breaker pauses liquidations.

    The state goes in and comes out in groups (an inlined call takes at most 30 arguments):
    ``book = (long, short, long_entry, short_entry, top, bottom, score)``, ``rates = (trig, mmr,
    fund)``, ``scales = (scale_l, scale_s)``, ``step_open = (price, log price)`` at the step's open,
    ``impact = (permanent, sqrt, linear coefficients, log floor, log ceiling)``, ``sizes = (long,
    short unscaled size)``, ``prices = (ln_f, flow state, log price, price)``, ``extremes = (log
    low, log high, low, high)``, ``triggers = (nearest long, nearest short)``, ``totals = (the
    path's surpluses, deficits)``.

    Returns (rounds with a liquidation, long USD, short USD, ADL USD, USD closed in part, sizes,
    prices, (low, high), triggers, totals, paused-until step): the groups updated.
    """
    long, short, long_entry, short_entry, top, bottom, score = book
    trig, mmr, fund = rates
    scale_l, scale_s = scales
    open_price, ln_open = step_open
    permanent_coef, sqrt_coef, linear_coef, ln_floor, ln_ceiling = impact
    long_size, short_size = sizes
    ln_f, flow_state, ln_price, price = prices
    ln_low, ln_high, low_px, high_px = extremes
    long_trigger, short_trigger = triggers
    surplus, bad_debt = totals
    n_rows, n_cells = long.shape
    rounds = 0
    liq_l_usd = 0.0
    liq_s_usd = 0.0
    adl_step = 0.0
    partial_step = 0.0
    while rounds < max_rounds:
        size_l = 0.0
        size_s = 0.0
        usd_l = 0.0
        usd_s = 0.0
        for r in range(n_rows):
            v = int(rows[r, Row.VENUE])
            penalty = venue_steps[t, v, Venue.LIQ_FILL_PENALTY]
            # a row and side whose first cell is not reached is not walked
            if top[r] >= 0 and grid[top[r]] * trig[0, r] >= low_px:
                xl, usd, pos, neg, adl_now, removed, part = _liquidate_side_nb(
                    long, long_entry, top, short, short_entry, bottom, rows, score, grid, low_px, pb_mult, mmr,
                    r, v, scale_l, scale_s, open_price, price, penalty, fund, True)
                long_size -= xl
                usd_l += usd
                size_l += xl
                surplus += pos
                bad_debt += neg
                adl_step += adl_now
                partial_step += part
                short_size -= removed
            if bottom[r] < n_cells and grid[bottom[r]] * trig[1, r] <= high_px:
                xs, usd, pos, neg, adl_now, removed, part = _liquidate_side_nb(
                    short, short_entry, bottom, long, long_entry, top, rows, score, grid, high_px, pb_mult,
                    mmr, r, v, scale_s, scale_l, open_price, price, penalty, fund, False)
                short_size -= xs
                usd_s += usd
                size_s += xs
                surplus += pos
                bad_debt += neg
                adl_step += adl_now
                partial_step += part
                long_size -= removed
        if size_l == 0.0 and size_s == 0.0:
            break
        rounds += 1
        liq_l_usd += usd_l
        liq_s_usd += usd_s
        net = usd_s - usd_l
        ln_f += permanent_coef * net
        flow_state += net
        ln_next = min(max(ln_f + bk.transient_nb(flow_state, sqrt_coef, linear_coef), ln_floor), ln_ceiling)
        shift = ln_next - ln_price
        ln_price = ln_next
        price = np.exp(ln_price)
        ln_low = max(ln_low + shift, ln_floor)
        ln_high = min(ln_high + shift, ln_ceiling)
        low_px = np.exp(ln_low)
        high_px = np.exp(ln_high)
        move = steps[t, Step.CIRCUIT_BREAKER_MOVE]
        if move > 0.0 and abs(ln_price - ln_open) > move:
            paused_until = t + 1 + int(steps[t, Step.CIRCUIT_BREAKER_STEPS])
            break

    if rounds > 0:  # the book moved
        any_long = False
        any_short = False
        for r in range(n_rows):
            any_long = any_long or top[r] >= 0
            any_short = any_short or bottom[r] < n_cells
        if not any_long:
            long_size = 0.0  # no cell left: drop the rounding residual of the running sum
        if not any_short:
            short_size = 0.0
        long_trigger, short_trigger = _pointer_triggers_nb(grid, top, bottom, trig)
    return (rounds, liq_l_usd, liq_s_usd, adl_step, partial_step, (long_size, short_size),
            (ln_f, flow_state, ln_price, price), (low_px, high_px), (long_trigger, short_trigger), (surplus, bad_debt),
            paused_until)


@jit_inline
def _etf_flow_nb(steps, t, price, inv_lookback_price, holdings, inv_basis, inv_price):
    """The ETF's flow in the step: the scheduled creations/redemptions plus, in the US session,
    reflexive redemptions from the trailing loss and the price below the holders' cost basis.
    Returns (flow USD, its reflexive part, holdings BTC after it)."""
    reflex = 0.0
    if steps[t, Step.ETF_WINDOW] != 0.0:  # ETFs trade in the US session only
        loss = max(0.0, 1.0 - price * inv_lookback_price)
        below = max(0.0, 1.0 - price * inv_basis)
        reflex = -holdings * price * (steps[t, Step.ETF_LOSS_SENS] * loss + steps[t, Step.ETF_BASIS_SENS] * below) \
            * steps[t, Step.ETF_WINDOW] * steps[t, Step.ETF_REFLEX_MULT]
    etf = steps[t, Step.ETF_FLOW_USD] + reflex
    return etf, reflex, max(0.0, holdings + etf * inv_price)


@jit_inline
def _deleveraging_nb(var_step, funding, g, base, stop_loss, take_profit, volatility, vol_reference, funding_sens,
                     dt_years, inv_dt_years, intervals_per_day, dt_days):
    """Traders who unwind: the share of each side closed in the step, ``min(1, hazard*dt)``, the
    hazard per day the holding-time hazard ``base`` plus the side's stop-loss and take-profit
    (``g`` the price's return against the book's average entry: longs lose ``max(0, -g)`` and gain
    ``max(0, g)``, shorts the reverse), realised vol above the reference and the funding it pays."""
    vol_excess = 0.0
    if var_step > vol_reference * vol_reference * dt_years:  # realised vol above the reference
        vol_excess = np.sqrt(var_step * inv_dt_years) - vol_reference
    fund_day = funding * intervals_per_day
    loss = max(0.0, -g)  # the longs' loss, the shorts' gain
    gain = max(0.0, g)
    h_long = (base + stop_loss * loss + take_profit * gain + volatility * vol_excess
              + funding_sens * max(0.0, fund_day))
    h_short = (base + stop_loss * gain + take_profit * loss + volatility * vol_excess
               + funding_sens * max(0.0, -fund_day))
    return min(1.0, h_long * dt_days), min(1.0, h_short * dt_days)


@jit_inline
def _exogenous_return_nb(steps, drivers, t, u0, u1, u2, u3, m, state, tail_table, tail_power, tail_scale,
                         normal_table, dof, jump_mean, jump_stdev, rare):
    """The step's exogenous log return: drift and cross-asset moves, the macro factor, the
    diffusion (a unit-variance Student-t in one table read, or a normal), both scaled by the
    path's conditional vol multiplier ``m`` (1 without clustering), a random jump, and on the
    steps that have one the scheduled jump, whose spread takes another draw from ``state`` (the
    same steps on every path). Returns (the return, the diffusion's draw ``z``)."""
    z = t_table_ppf_nb(u0, tail_table, tail_power, tail_scale) if dof > 0.0 else norm_table_ppf_nb(u0, normal_table)
    # DRIFT + MACRO_BETA*MACRO_DRIFT + CROSS_ASSET_RETURN and MACRO_BETA*MACRO_VOL, tabulated
    r = drivers[t, Driver.DRIFT] + (m * drivers[t, Driver.MACRO_VOL]) * norm_table_ppf_nb(u2, normal_table) \
        + (m * steps[t, Step.VOL]) * z
    if u3 < steps[t, Step.JUMP_PROB]:
        r += jump_mean + jump_stdev * norm_table_ppf_nb(u1, normal_table)
    if rare and (steps[t, Step.SCHEDULED_JUMP] != 0.0 or steps[t, Step.SCHEDULED_JUMP_SPREAD] != 0.0):
        u8, _ = next_pair_nb(state)
        r += steps[t, Step.SCHEDULED_JUMP] + steps[t, Step.SCHEDULED_JUMP_SPREAD] * norm_table_ppf_nb(u8, normal_table)
    return r, z


@jit_inline
def _split_nb(cells, entry, n_cells, r, x, size, usd):
    """``size`` BTC entered for ``usd`` at grid position ``x`` (cells from the grid's start, clamped
    to the grid) of row ``r``, split linearly over the two neighbouring cells
    (:func:`engine.nb.book.cell_of_nb`, written out: this runs at every step). Returns (the lower
    cell, the upper cell's weight)."""
    x = min(max(x, 0.0), n_cells - 1.0)
    lo = min(int(x), n_cells - 2)
    w = x - lo
    cells[r, lo] += size * (1.0 - w)
    cells[r, lo + 1] += size * w
    entry[r, lo] += usd * (1.0 - w)
    entry[r, lo + 1] += usd * w
    return lo, w


@jit_inline
def _deposit_new_nb(cells, entry, ptr, grid, trig, rows, share_rows, offsets, kind, node, at, grid_per_log, btc,
                    entry_price, side_size, trigger, is_long):
    """New positions on one side (turnover arrivals or momentum): ``btc`` (unscaled) spread over
    rows by their ``Row.SHARE`` (each venue's smallest class), each at the log bankruptcy price
    ``at + offsets[kind, node, r]`` from the grid's start (leverage node ``node`` of the kind's
    distribution, capped by the row), entered at ``entry_price``, split over the two neighbouring
    cells (:func:`engine.nb.book.cell_of_nb`, written out: this runs at every step). Returns (the
    side's unscaled size, its nearest trigger, moved if a new cell is nearer). ``share_rows``: the
    rows whose share is positive, ascending (a loop over every row costs more than the deposits)."""
    n_cells = cells.shape[1]
    for j in range(share_rows.shape[0]):
        r = share_rows[j]
        size = btc * rows[r, Row.SHARE]
        if size <= 0.0:
            continue
        lo, w = _split_nb(cells, entry, n_cells, r, (at + offsets[kind, node, r]) * grid_per_log, size,
                          size * entry_price)
        if is_long:
            hi = lo + 1 if w > 0.0 else lo
            if hi > ptr[r]:
                ptr[r] = hi
                trigger = max(trigger, grid[hi] * trig[0, r])
        else:
            first = lo if w < 1.0 else lo + 1
            if first < ptr[r]:
                ptr[r] = first
                trigger = min(trigger, grid[first] * trig[1, r])
        side_size += size
    return side_size, trigger


@jit_norc
def _deposit_spread_nb(cells, entry, ptr, grid, trig, rows, share_rows, offsets, kind, at, grid_per_log, btc,
                       entry_price, side_size, trigger, is_long):
    """:func:`_deposit_new_nb` over the whole leverage distribution of ``kind``: ``btc`` split
    equally over its ``N_NEW_NODES`` nodes, each node's share at its own log bankruptcy price (the
    same two-cell split). A flow that opens in one step gets every leverage of its distribution,
    whatever the step: a node per step would give a burst shorter than ``N_NEW_NODES`` steps only
    part of it, and which part would depend on the step."""
    n_cells = cells.shape[1]
    n_nodes = offsets.shape[1]
    for j in range(share_rows.shape[0]):
        r = share_rows[j]
        size = btc * rows[r, Row.SHARE] / n_nodes
        if size <= 0.0:
            continue
        usd = size * entry_price
        edge = ptr[r]
        for k in range(n_nodes):
            lo, w = _split_nb(cells, entry, n_cells, r, (at + offsets[kind, k, r]) * grid_per_log, size, usd)
            if is_long:
                hi = lo + 1 if w > 0.0 else lo
                if hi > edge:
                    edge = hi
            else:
                first = lo if w < 1.0 else lo + 1
                if first < edge:
                    edge = first
        if edge != ptr[r]:
            ptr[r] = edge
            if is_long:
                trigger = max(trigger, grid[edge] * trig[0, r])
            else:
                trigger = min(trigger, grid[edge] * trig[1, r])
        side_size += size * n_nodes
    return side_size, trigger


@jit_inline
def _deposit_cycle_nb(cells, entry, ptr, grid, trig, rows, share_rows, offsets, kind, at, grid_per_log, btc, scale,
                      quantum, node, room, entry_price, side_size, trigger, is_long):
    """New positions of ``kind`` (``btc`` real BTC, ``scale`` the side's scale factor) through the
    kind's leverage nodes by volume: node ``node`` takes the next ``room`` BTC, each node after it
    the next ``quantum``, cycling over the ``N_NEW_NODES`` nodes; whole cycles go to every node
    equally (:func:`_deposit_spread_nb`), which leaves the cycle where it was. Which leverage a BTC
    gets depends only on the volume the kind opened before it, not on how the flow is cut into
    steps. Returns (the side's unscaled size, its nearest trigger, the node, its room left)."""
    n_nodes = offsets.shape[1]
    left = btc
    if left <= 0.0:
        return side_size, trigger, node, room
    cycle = quantum * n_nodes
    # whole cycles (everything, for a side with no quantum: it started empty, so the caller opens
    # nothing there, and the walk below could not end)
    spread = left if cycle <= 0.0 else math.floor(left / cycle) * cycle
    if spread > 0.0:
        side_size, trigger = _deposit_spread_nb(cells, entry, ptr, grid, trig, rows, share_rows, offsets, kind, at,
                                                grid_per_log, spread / scale, entry_price, side_size, trigger, is_long)
        left = max(0.0, left - spread)
    while left > 0.0:
        seg = min(left, room)
        side_size, trigger = _deposit_new_nb(cells, entry, ptr, grid, trig, rows, share_rows, offsets, kind, node, at,
                                             grid_per_log, seg / scale, entry_price, side_size, trigger, is_long)
        left -= seg
        room -= seg
        if room <= 0.0:
            node = node + 1 if node + 1 < n_nodes else 0
            room = quantum
    return side_size, trigger, node, room


@jit_inline
def _miner_sales_nb(steps, t, price, reserves, hashrate, revenue, sell_dt, hashrate0, hashrate_sensitivity, rare):
    """Miners sell reserves in proportion to the hash price's shortfall below breakeven (plus forced
    sales); at a difficulty retarget the hashrate follows the shortfall. Returns (flow USD, reserves,
    hashrate)."""
    # hash price / breakeven = price * hp_coef: one division, which does not wait for the price
    hp_coef = revenue / (max(hashrate * steps[t, Step.MINER_HASHRATE_MULT], 1e-9) * steps[t, Step.MINER_BREAKEVEN])
    shortfall = max(0.0, 1.0 - price * hp_coef)  # hash price below breakeven
    sold = min(reserves, reserves * sell_dt * shortfall + steps[t, Step.MINER_FORCED_SALE_BTC])
    reserves -= sold
    if rare and steps[t, Step.DIFFICULTY_ADJUST] != 0.0:
        hashrate = hashrate0 * max(0.05, 1.0 - hashrate_sensitivity * shortfall)
    return -sold * price, reserves, hashrate


@jit
def _triggers_nb(grid, top, bottom, mmr, pb_mult, trig):
    """The highest price at which a long liquidates and the lowest at which a short does.

    Also refreshes ``trig``: per venue, the factors ``pb_mult/(1 -+ m)`` that turn a cell's grid
    price into its liquidation price. Between book changes the cascade check is two comparisons.
    """
    for v in range(top.shape[0]):
        trig[0, v] = pb_mult / (1.0 - mmr[v])
        trig[1, v] = pb_mult / (1.0 + mmr[v])
    return _pointer_triggers_nb(grid, top, bottom, trig)


@jit
def _pointer_triggers_nb(grid, top, bottom, trig):
    """:func:`_triggers_nb` when only the book moved (``trig`` is current): after a cascade."""
    n = grid.shape[0] - 2
    long_trigger = 0.0
    short_trigger = np.inf
    for v in range(top.shape[0]):
        if top[v] >= 0:
            long_trigger = max(long_trigger, grid[top[v]] * trig[0, v])
        if bottom[v] < n:
            short_trigger = min(short_trigger, grid[bottom[v]] * trig[1, v])
    return long_trigger, short_trigger


@jit
def _open_nb(cells, entry, pointer, grid, rows, ln_bankrupt, scale, notional_btc, entry_price, is_long):
    """Open ``notional_btc`` of new positions at ``entry_price``, spread over rows by their
    ``Row.SHARE``, each at the log bankruptcy price ``ln_bankrupt[r]``; returns the unscaled size added."""
    added = 0.0
    for r in range(cells.shape[0]):
        size = notional_btc * rows[r, Row.SHARE] / scale
        if size <= 0.0:
            continue
        if is_long:
            bk.add_long_nb(cells, entry, pointer, grid, r, ln_bankrupt[r], size, size * entry_price)
        else:
            bk.add_short_nb(cells, entry, pointer, grid, r, ln_bankrupt[r], size, size * entry_price)
        added += size
    return added


@jit
def _wipe_nb(cells, entry, pointer, empty):
    """A side whose scale factor reached 0 holds nothing: empty its cells; (size, scale) = (0, 1)."""
    cells[:, :] = 0.0
    entry[:, :] = 0.0
    pointer[:] = empty
    return 0.0, 1.0


@jit
def _leverage_offsets_nb(out_long, out_short, imr, long_leverage, short_leverage):
    """``log(1 - 1/L)`` (longs at ``long_leverage``) and ``log(1 + 1/L)`` (shorts at
    ``short_leverage``) per row, L capped at the row's maximum leverage: new positions' log
    bankruptcy price is the log price plus this offset."""
    for v in range(imr.shape[0]):
        lev = min(long_leverage, 0.999 / imr[v])
        out_long[v] = np.log1p(-1.0 / lev) if lev > 1.0 else -np.inf
        out_short[v] = np.log1p(1.0 / min(short_leverage, 0.999 / imr[v]))


@jit
def _node_offsets_nb(offsets, imr, new_leverage):
    """``offsets[kind, k, r]``: the log-bankruptcy offsets of new positions at leverage node ``k``
    (:func:`_leverage_offsets_nb` per node): kinds 0/1 new longs/shorts at their side's nodes
    (``new_leverage[0|1]``), 2/3 momentum longs/shorts at the momentum nodes (``new_leverage[2]``)."""
    for k in range(offsets.shape[1]):
        _leverage_offsets_nb(offsets[0, k], offsets[1, k], imr, new_leverage[0, k], new_leverage[1, k])
        _leverage_offsets_nb(offsets[2, k], offsets[3, k], imr, new_leverage[2, k], new_leverage[2, k])


@jit_norc
def _fresh_shorts_nb(short, short_entry, top, bottom, grid, rows, trig, imr, ln_new, offsets, notional_usd, leverage,
                     price, ln_price, ln_pb, scale_s, short_size, long_trigger, short_trigger):
    """Step 4's scheduled new shorts (a relief rally's fuel): ``notional_usd`` opened at ``price``
    and ``leverage`` (capped at each row's maximum), spread over rows by ``Row.SHARE``, at the
    log bankruptcy price ``ln_price`` + offset less the funding shift ``ln_pb``; ``ln_new`` and
    ``offsets`` are per-row scratch. Returns (the short side's unscaled size, the nearest long and
    short triggers)."""
    n_cells = short.shape[1]
    _leverage_offsets_nb(ln_new, offsets, imr, leverage, leverage)
    for r in range(short.shape[0]):
        ln_new[r] = ln_price + offsets[r] - ln_pb
    short_size += _open_nb(short, short_entry, bottom, grid, rows, ln_new, scale_s, notional_usd / price, price, False)
    # new positions can only bring a trigger closer
    for r in range(short.shape[0]):
        if top[r] >= 0:
            long_trigger = max(long_trigger, grid[top[r]] * trig[0, r])
        if bottom[r] < n_cells:
            short_trigger = min(short_trigger, grid[bottom[r]] * trig[1, r])
    return short_size, long_trigger, short_trigger


@jit_norc
def _start_book_nb(long0, short0, long_entry0, short_entry0, long, short, long_entry, short_entry, top, bottom, rows,
                   venue_steps, mmr, imr, fund):
    """A path's start: the compiled book copied into the thread's scratch, its pointers, each
    row's margin rates (its tier's, or its venue's where higher: a flat venue's row has 0) and each
    venue's insurance fund (the first ``n_venues`` entries of ``fund``)."""
    n_rows, n_cells = long.shape
    for r in range(n_rows):
        for c in range(n_cells):
            long[r, c] = long0[r, c]
            short[r, c] = short0[r, c]
            long_entry[r, c] = long_entry0[r, c]
            short_entry[r, c] = short_entry0[r, c]
    bk.init_pointers_nb(long, short, top, bottom)
    for r in range(n_rows):
        v = int(rows[r, Row.VENUE])
        mmr[r] = max(rows[r, Row.MMR], venue_steps[0, v, Venue.MMR])
        imr[r] = max(rows[r, Row.IMR], venue_steps[0, v, Venue.IMR])
    for v in range(venue_steps.shape[1]):
        fund[v] = venue_steps[0, v, Venue.INSURANCE_FUND_USD]


@jit_norc
def _write_summary_nb(summary, fund, n_venues, prices, liquidations, open_interest, flows, funding):
    """A path's summary row (``engine.compile.layout.SUMMARY_FIELDS``): ``prices = (low, high,
    terminal, max drawdown, trough step)``, ``liquidations = (long USD, short USD, peak step USD,
    most cascade rounds, bad debt, ADL, surplus, USD closed in part)``, ``open_interest = (start,
    end)``, ``flows`` (the path's ETF, reflexive ETF, miner, dealer, deleveraging, momentum,
    new-position, margin-cut and forced totals), ``funding = (lowest rate, highest rate, paused steps)``; the
    insurance funds left are summed over venues."""
    low, high, price, max_dd, low_step = prices
    liq_long, liq_short, peak_liq, max_rounds_seen, bad_debt, adl, surplus, partial = liquidations
    etf, etf_reflex, miners, dealers, delev, momentum, new_positions, cuts, forced = flows
    min_f, max_f, paused_steps = funding
    summary[Summary.MIN_PRICE] = low
    summary[Summary.MAX_PRICE] = high
    summary[Summary.TERMINAL_PRICE] = price
    summary[Summary.MAX_DRAWDOWN] = max_dd
    summary[Summary.TROUGH_STEP] = low_step
    summary[Summary.LONG_LIQUIDATIONS_USD] = liq_long
    summary[Summary.SHORT_LIQUIDATIONS_USD] = liq_short
    summary[Summary.PEAK_STEP_LIQUIDATIONS_USD] = peak_liq
    summary[Summary.MAX_CASCADE_ROUNDS] = max_rounds_seen
    summary[Summary.OPEN_INTEREST_START_USD] = open_interest[0]
    summary[Summary.OPEN_INTEREST_END_USD] = open_interest[1]
    summary[Summary.ETF_FLOW_USD] = etf
    summary[Summary.ETF_REFLEXIVE_USD] = etf_reflex
    summary[Summary.MINER_SALES_USD] = miners
    summary[Summary.DEALER_FLOW_USD] = dealers
    summary[Summary.DELEVERAGING_FLOW_USD] = delev
    summary[Summary.MOMENTUM_FLOW_USD] = momentum
    summary[Summary.NEW_POSITIONS_FLOW_USD] = new_positions
    summary[Summary.MARGIN_CUT_USD] = cuts
    summary[Summary.FORCED_FLOW_USD] = forced
    summary[Summary.BAD_DEBT_USD] = bad_debt
    summary[Summary.ADL_USD] = adl
    fund_total = 0.0
    for v in range(n_venues):
        fund_total += fund[v]
    summary[Summary.INSURANCE_FUND_END_USD] = fund_total
    summary[Summary.LIQUIDATION_SURPLUS_USD] = surplus
    summary[Summary.MIN_FUNDING_RATE] = min_f
    summary[Summary.MAX_FUNDING_RATE] = max_f
    summary[Summary.PAUSED_STEPS] = paused_steps
    summary[Summary.PARTIAL_LIQUIDATIONS_USD] = partial


@jit_norc
def _path_nb(steps, venue_steps, params, grid, long0, short0, long_entry0, short_entry0, rows, share_rows, new_leverage,
             dealer_table, dealer_lo, dealer_inv, iv_fwd, tail_table, tail_power, tail_scale, normal_table, drivers,
             scratch, outputs, i, row, b, keep_steps, replay, sizes0):
    """One path (row ``i`` of the summaries, row ``row`` of the per-step outputs, block ``b`` of the
    flow sums). Compiled without the runtime: no reference counting in the step loop, so it
    takes whole arrays and indices rather than views, and scratch space rather than allocating.

    ``scratch = (state, long, short, long_entry, short_entry, score, top, bottom, mmr, imr, ring,
    work, offsets)``: the thread's RNG state, book (sizes and entry notionals per row and cell, ADL
    scores), pointers and margin rates per row, trailing prices, per-row work rows and new
    positions' offsets per (kind, leverage node, row) (:func:`simulate_nb`).
    ``iv_fwd = (table, h_lo, h_inv)``: the forward-variance factor (:func:`forward_variance_nb`).
    ``outputs = (summary, price, open_interest, liq_long, liq_short, funding, atm_iv, flows, stress)``:
    the caller's output arrays. ``replay`` (empty, or the log price at the end of every step) and
    ``stress``: see :func:`simulate_nb`."""
    state, long, short, long_entry, short_entry, score, top, bottom, mmr, imr, ring, work, offsets = scratch
    summary_all, price_all, oi_all, liq_long_all, liq_short_all, funding_all, atm_all, flows_all, stress = outputs
    iv_table, iv_h_lo, iv_h_inv = iv_fwd
    summary = summary_all[i]
    price_out = price_all[row]
    oi_out = oi_all[row]
    liq_long_out = liq_long_all[row]
    liq_short_out = liq_short_all[row]
    funding_out = funding_all[row]
    atm_out = atm_all[row]
    flows = flows_all[b]
    n_steps = steps.shape[0]
    n_rows, n_cells = long.shape  # a row per venue and size class (engine.compile.layout.ROW_FIELDS)
    n_venues = venue_steps.shape[1]
    spot = params[Param.SPOT0]
    dt_days = params[Param.DT_YEARS] * 365.25
    dof = params[Param.TAIL_DOF]
    max_rounds = int(params[Param.MAX_CASCADE_ROUNDS])
    ring_n = ring.shape[0]
    etf_lb = int(params[Param.ETF_LOOKBACK_STEPS])
    mom_lb = int(params[Param.MOMENTUM_LOOKBACK_STEPS])
    ewma = params[Param.VOL_EWMA_DECAY]
    ln_floor = np.log(spot) - LOG_FLOOR
    ln_ceiling = np.log(spot) + LOG_FLOOR
    grid_log0 = grid[n_cells]  # the grid's log start and cells per unit log price (see book.py)
    grid_per_log = grid[n_cells + 1]

    long_size, short_size = sizes0  # the book's sums, added once per task (a serial chain of adds)
    long0_btc, short0_btc = sizes0  # each side's starting size (BTC): turnover keeps it when calm
    total0_btc = long0_btc + short0_btc  # momentum traders' capital: a share of the starting book
    fuel_short = work[0]
    ln_new = work[1]
    trig = work[2:4]
    fund = work[4]  # each venue's insurance fund (the first n_venues entries)
    _start_book_nb(long0, short0, long_entry0, short_entry0, long, short, long_entry, short_entry, top, bottom, rows,
                   venue_steps, mmr, imr, fund)
    _node_offsets_nb(offsets, imr, new_leverage)
    scale_l = 1.0
    scale_s = 1.0
    pb_mult = 1.0
    ln_pb = 0.0
    long_trigger, short_trigger = _triggers_nb(grid, top, bottom, mmr, pb_mult, trig)
    ln_f = np.log(spot)
    flow_state = 0.0  # J: the healing cumulative flow (USD) behind the transient impact
    price = spot
    ln_price = ln_f
    peak = spot
    inv_peak = 1.0 / spot
    low = spot  # the lowest price the path reached, intra-step lows included (and the highest)
    high = spot
    low_step = 0
    inv_s = 1.0 / spot
    var_step = steps[0, Step.VOL] ** 2
    holdings = params[Param.ETF_HOLDINGS_BTC]
    inv_basis = 1.0 / params[Param.ETF_COST_BASIS_USD]
    reserves = params[Param.MINER_RESERVES_BTC]
    hashrate = params[Param.MINER_HASHRATE_PH]
    revenue = params[Param.MINER_REVENUE_BTC_PER_DAY]
    paused_until = -1
    for k in range(ring_n):
        ring[k] = 1.0 / spot  # ring[k % n]: 1 / the price at the start of step k

    max_dd = 0.0
    liq_long_total = 0.0
    liq_short_total = 0.0
    peak_liq = 0.0
    max_rounds_seen = 0
    oi0 = (long_size + short_size) * spot
    etf_total = 0.0
    etf_reflex_total = 0.0
    miners_total = 0.0
    dealers_total = 0.0
    delev_total = 0.0
    mom_total = 0.0
    new_total = 0.0
    cuts_total = 0.0
    forced_total = 0.0
    bad_debt = 0.0
    adl = 0.0
    partial_total = 0.0
    surplus = 0.0
    min_f = 1e300
    max_f = -1e300
    paused_steps = 0

    # parameters as locals: the compiler cannot keep array reads in registers across stores
    p_delev_base = params[Param.DELEV_BASE]
    p_delev_drawdown = params[Param.DELEV_DRAWDOWN]
    p_delev_take_profit = params[Param.DELEV_TAKE_PROFIT]
    turnover_dt = p_delev_base * dt_days  # share of each side's starting size opened per step
    ema_w = params[Param.ENTRY_EMA_DECAY]
    entry_avg = spot  # the book's average entry: the price's average over the holding time
    p_delev_funding = params[Param.DELEV_FUNDING]
    p_delev_volatility = params[Param.DELEV_VOLATILITY]
    p_delev_vol_reference = params[Param.DELEV_VOL_REFERENCE]
    p_dt_years = params[Param.DT_YEARS]
    inv_dt_years = 1.0 / p_dt_years
    p_funding_base = params[Param.FUNDING_BASE]
    p_funding_cap = params[Param.FUNDING_CAP]
    p_funding_intervals_per_day = params[Param.FUNDING_INTERVALS_PER_DAY]
    p_funding_sensitivity = params[Param.FUNDING_SENSITIVITY]
    p_jump_mean = params[Param.JUMP_MEAN]
    p_jump_stdev = params[Param.JUMP_STDEV]
    p_miner_hashrate_ph = params[Param.MINER_HASHRATE_PH]
    p_miner_hashrate_sensitivity = params[Param.MINER_HASHRATE_SENSITIVITY]
    miner_sell_dt = params[Param.MINER_SELL_SENSITIVITY] * dt_days
    momentum_threshold = params[Param.MOMENTUM_THRESHOLD]
    # momentum traders' finite capital: their net position relaxes toward a target proportional to
    # the breakout, keeping mom_keep of its gap per step; mom_long / mom_short (BTC) are what they
    # hold inside each side (at most one is non-zero), shrunk with the side by every other close
    mom_hold = params[Param.MOMENTUM_HOLD_DAYS]
    mom_keep = math.exp(-dt_days / mom_hold)
    mom_target_coef = params[Param.MOMENTUM_RATE] * mom_hold * total0_btc
    mom_capital = params[Param.MOMENTUM_CAPITAL] * total0_btc  # the largest target they hold
    mom_long = 0.0
    mom_short = 0.0
    replaying = replay.shape[0] != 0
    # conditional volatility: the log-variance deviation h, an Ornstein-Uhlenbeck process sampled
    # exactly at the steps; the diffusion's vol is m = exp(h/2 - s^2/4) times the step's (E[m^2] = 1)
    cl_stdev = params[Param.CLUSTER_STDEV]
    liq_feedback = params[Param.LIQ_FEEDBACK]  # self-excitation: h += liq_feedback * liquidated / open interest
    clustering = cl_stdev > 0.0 or liq_feedback > 0.0
    cl_persist = params[Param.CLUSTER_PERSIST]
    cl_shock = params[Param.CLUSTER_SHOCK]
    cl_rho = params[Param.CLUSTER_RHO]
    cl_rho_c = math.sqrt(1.0 - cl_rho * cl_rho)
    cl_shift = -0.25 * cl_stdev * cl_stdev
    h = 0.0
    if clustering:  # the path starts in a regime drawn from h's stationary law N(0, s^2)
        a, _ = next_pair_nb(state)
        h = cl_stdev * norm_table_ppf_nb(a, normal_table)
    m = 1.0
    # the path's ATM implied vol: the quoted level at the start, relaxing over the tenor toward
    # (1 + VRP) * the path's expected vol over the next IV_TENOR years (forward_variance_nb) plus the
    # scheduled surface's moves and the spot-vol beta on the return since the start
    iv_premium = 1.0 + params[Param.IV_VRP]
    iv_decay = math.exp(-p_dt_years / IV_TENOR)
    spot_vol_beta = params[Param.SURFACE_SPOT_VOL_BETA]
    ln_spot = math.log(spot)
    iv = steps[0, Step.ATM_IV]
    iv_gap = iv - model_iv_nb(drivers, 0, iv_premium, iv_table, h, iv_h_lo, iv_h_inv)
    hedge = dealer_hedge_nb(dealer_table, 0, ln_price, dealer_lo, dealer_inv, iv)
    slot = 0  # ring slot of the current step: t % ring_n
    # turnover arrivals cycle through their side's leverage nodes by volume (_deposit_cycle_nb): a
    # cycle per NODE_CYCLE_SHARE of the side's starting size; each side's node and the room left in
    # it (BTC)
    quantum_l = NODE_CYCLE_SHARE * long0_btc / N_NEW_NODES
    quantum_s = NODE_CYCLE_SHARE * short0_btc / N_NEW_NODES
    node_l = 0
    node_s = 0
    room_l = quantum_l
    room_s = quantum_s
    for t in range(n_steps):
        u0, u1 = next_pair_nb(state)
        u2, u3 = next_pair_nb(state)
        u4, u5 = next_pair_nb(state)
        if clustering:
            u6, _ = next_pair_nb(state)
            m = np.exp(0.5 * h + cl_shift)
        s_prev = price
        ln_prev = ln_price

        # 1-2. the transient flow state heals; the exogenous return (jumps included)
        flow_state *= drivers[t, Driver.DECAY]
        rare = drivers[t, Driver.RARE] != 0.0  # one test for the events most steps do not have
        r, z = _exogenous_return_nb(steps, drivers, t, u0, u1, u2, u3, m, state, tail_table, tail_power,
                                    tail_scale, normal_table, dof, p_jump_mean, p_jump_stdev, rare)
        ln_f += r
        if clustering:  # h moves on, its shock correlated with the diffusion's (the leverage effect)
            x = norm_table_ppf_nb(u0, normal_table) if dof > 0.0 else z
            h = cl_persist * h + cl_shock * (cl_rho * x + cl_rho_c * norm_table_ppf_nb(u6, normal_table))
        if replaying:  # an observed path: its close replaces the move (the caller turned impact off)
            ln_f = replay[t]
            if t > 0:  # the book as the previous step left it, at its close
                bk.stress_nb(long, short, top, bottom, grid, trig, pb_mult, scale_l, scale_s, s_prev, stress, t - 1)

        # 3. margin changes
        cut_usd = 0.0
        if rare:
            size_l_before = long_size
            size_s_before = short_size
            margins_changed, cut_usd, long_size, short_size = _margin_changes_nb(
                venue_steps, rows, grid, t, long, short, long_entry, short_entry, top, bottom, mmr, imr, s_prev,
                pb_mult, scale_l, scale_s, long_size, short_size)
            if mom_long > 0.0 and size_l_before > 0.0:
                mom_long = max(0.0, mom_long * (long_size / size_l_before))  # never below 0
            if mom_short > 0.0 and size_s_before > 0.0:
                mom_short = max(0.0, mom_short * (short_size / size_s_before))  # never below 0
            if margins_changed:  # once for all rows: new positions' leverage caps and every trigger
                _node_offsets_nb(offsets, imr, new_leverage)
                long_trigger, short_trigger = _triggers_nb(grid, top, bottom, mmr, pb_mult, trig)

        # 4. flows
        etf, reflex, holdings = _etf_flow_nb(steps, t, s_prev, ring[slot - etf_lb + (ring_n if slot < etf_lb else 0)],
                                             holdings, inv_basis, inv_s)

        miners, reserves, hashrate = _miner_sales_nb(steps, t, s_prev, reserves, hashrate, revenue, miner_sell_dt,
                                                     p_miner_hashrate_ph, p_miner_hashrate_sensitivity, rare)

        target = dealer_hedge_nb(dealer_table, t, ln_prev, dealer_lo, dealer_inv, iv)
        dealers = (target - hedge) * s_prev
        hedge = target

        long_btc = long_size * scale_l
        short_btc = short_size * scale_s
        total_btc = long_btc + short_btc
        imbalance = (long_btc - short_btc) / total_btc if total_btc > 0.0 else 0.0  # waits for no price
        long_notional = long_btc * s_prev
        short_notional = short_btc * s_prev
        cap = p_funding_cap
        funding = min(cap, max(-cap, p_funding_base + p_funding_sensitivity * imbalance))
        min_f = min(min_f, funding)
        max_f = max(max_f, funding)

        close_l, close_s = _deleveraging_nb(var_step, funding, s_prev / entry_avg - 1.0, p_delev_base,
                                            p_delev_drawdown, p_delev_take_profit, p_delev_volatility,
                                            p_delev_vol_reference, p_delev_funding, p_dt_years, inv_dt_years,
                                            p_funding_intervals_per_day, dt_days)
        delev = (close_s * short_notional - close_l * long_notional)
        scale_l *= 1.0 - close_l
        scale_s *= 1.0 - close_s
        mom_long *= 1.0 - close_l
        mom_short *= 1.0 - close_s
        if scale_l == 0.0:
            long_size, scale_l = _wipe_nb(long, long_entry, top, -1)
        if scale_s == 0.0:
            short_size, scale_s = _wipe_nb(short, short_entry, bottom, n_cells)

        # new positions replace what the holding-time hazard closed: each side opens its starting
        # size times the hazard, at the step's leverage node of its distribution
        at = ln_prev - ln_pb - grid_log0  # the price's log distance from the grid start
        new_flow = 0.0
        if turnover_dt > 0.0:
            new_l = turnover_dt * long0_btc
            new_s = turnover_dt * short0_btc
            long_size, long_trigger, node_l, room_l = _deposit_cycle_nb(
                long, long_entry, top, grid, trig, rows, share_rows, offsets, 0, at, grid_per_log, new_l, scale_l,
                quantum_l, node_l, room_l, s_prev, long_size, long_trigger, True)
            short_size, short_trigger, node_s, room_s = _deposit_cycle_nb(
                short, short_entry, bottom, grid, trig, rows, share_rows, offsets, 1, at, grid_per_log, new_s, scale_s,
                quantum_s, node_s, room_s, s_prev, short_size, short_trigger, False)
            new_flow = (new_l - new_s) * s_prev

        # momentum traders move their net position toward the breakout's target: they open along
        # the move, close pro rata across their side as it fades, and flip through flat
        momentum = 0.0
        ret = s_prev * ring[slot - mom_lb + (ring_n if slot < mom_lb else 0)] - 1.0
        mom_target = min(mom_target_coef * max(0.0, min(abs(ret), MOMENTUM_RETURN_CAP) - momentum_threshold),
                         mom_capital)
        if ret < 0.0:
            mom_target = -mom_target
        mom_net = mom_long - mom_short
        mom_new = mom_target + (mom_net - mom_target) * mom_keep
        if mom_new != mom_net:
            open_l = 0.0
            open_s = 0.0
            shut_l = 0.0
            shut_s = 0.0
            if mom_short == 0.0:  # flat or long
                if mom_new >= mom_long:
                    open_l = mom_new - mom_long
                elif mom_new >= 0.0:
                    shut_l = mom_long - mom_new
                else:
                    shut_l = mom_long
                    open_s = -mom_new
            elif mom_new <= -mom_short:  # short
                open_s = -mom_new - mom_short
            elif mom_new <= 0.0:
                shut_s = mom_short + mom_new
            else:
                shut_s = mom_short
                open_l = mom_new
            if shut_l > 0.0:
                share = shut_l / (long_size * scale_l)
                if share >= 1.0 - CLOSE_ALL_SLACK:
                    long_size, scale_l = _wipe_nb(long, long_entry, top, -1)
                else:
                    scale_l *= 1.0 - share
            if shut_s > 0.0:
                share = shut_s / (short_size * scale_s)
                if share >= 1.0 - CLOSE_ALL_SLACK:
                    short_size, scale_s = _wipe_nb(short, short_entry, bottom, n_cells)
                else:
                    scale_s *= 1.0 - share
            if open_l > 0.0:
                long_size, long_trigger = _deposit_spread_nb(long, long_entry, top, grid, trig, rows, share_rows,
                                                             offsets, 2, at, grid_per_log, open_l / scale_l, s_prev,
                                                             long_size, long_trigger, True)
            if open_s > 0.0:
                short_size, short_trigger = _deposit_spread_nb(short, short_entry, bottom, grid, trig, rows,
                                                               share_rows, offsets, 3, at, grid_per_log,
                                                               open_s / scale_s, s_prev, short_size, short_trigger,
                                                               False)
            mom_long = mom_new if mom_new > 0.0 else 0.0
            mom_short = -mom_new if mom_new < 0.0 else 0.0
            momentum = (mom_new - mom_net) * s_prev
        fuel = steps[t, Step.NEW_SHORT_NOTIONAL_USD] if rare else 0.0
        if fuel > 0.0:
            short_size, long_trigger, short_trigger = _fresh_shorts_nb(
                short, short_entry, top, bottom, grid, rows, trig, imr, ln_new, fuel_short, fuel,
                steps[t, Step.NEW_SHORT_LEVERAGE], s_prev, ln_prev, ln_pb, scale_s, short_size, long_trigger,
                short_trigger)
            momentum -= fuel
        forced = steps[t, Step.FORCED_FLOW_USD]

        q = ((etf + miners) + (dealers + delev)) + ((momentum + new_flow) + (forced + cut_usd))  # a tree: shorter chain

        # 5. impact of the step's flow, executed evenly over the step: permanent and transient
        sqrt_coef = drivers[t, Driver.SQRT_COEF]
        linear_coef = drivers[t, Driver.LINEAR_COEF]
        permanent_coef = drivers[t, Driver.PERMANENT_COEF]
        ln_f += permanent_coef * q
        flow_state += drivers[t, Driver.GAIN] * q
        ln_price = min(max(ln_f + bk.transient_nb(flow_state, sqrt_coef, linear_coef), ln_floor), ln_ceiling)
        price = np.exp(ln_price)

        # 6. funding payments move every bankruptcy price
        events = steps[t, Step.FUNDING_EVENTS]
        if events != 0.0:
            pb_mult *= (1.0 + funding) if events == 1.0 else (1.0 + funding) ** events  # x**1 is x: no pow call
            ln_pb = np.log(pb_mult)
            long_trigger, short_trigger = _triggers_nb(grid, top, bottom, mmr, pb_mult, trig)

        # 7. liquidations at their trigger. The step's path from its open to its close is a Brownian
        # bridge; its low and high (u4, u5) are drawn only when a trigger or the path's running
        # extreme is within the bridge's widest reach (the draw would be wasted otherwise)
        rounds = 0
        liq_l_usd = 0.0
        liq_s_usd = 0.0
        adl_step = 0.0
        partial_step = 0.0
        bridge = drivers[t, Driver.BRIDGE]  # the step's variance is m^2 times the compiled one
        reach = drivers[t, Driver.REACH]
        if clustering:
            bridge /= m * m
            reach = np.exp(m * drivers[t, Driver.REACH_LOG])
        ln_low, ln_high, low_px, high_px = _step_extremes_nb(
            ln_prev, ln_price, s_prev, price, u4, u5, bridge, reach,
            max(long_trigger, low), min(short_trigger, high), ln_floor, ln_ceiling)
        if t < paused_until:
            paused_steps += 1
        elif long_trigger >= low_px or short_trigger <= high_px:
            size_l_before = long_size
            size_s_before = short_size
            (rounds, liq_l_usd, liq_s_usd, adl_step, partial_step, (long_size, short_size),
             (ln_f, flow_state, ln_price, price), (low_px, high_px), (long_trigger, short_trigger), (surplus, bad_debt),
             paused_until) = _cascade_nb(
                steps, venue_steps, rows, grid, t, (long, short, long_entry, short_entry, top, bottom, score),
                (trig, mmr, fund), pb_mult, (scale_l, scale_s), (s_prev, ln_prev), max_rounds,
                (permanent_coef, sqrt_coef, linear_coef, ln_floor, ln_ceiling), (long_size, short_size),
                (ln_f, flow_state, ln_price, price), (ln_low, ln_high, low_px, high_px), (long_trigger, short_trigger),
                (surplus, bad_debt), paused_until)
            if mom_long > 0.0 and size_l_before > 0.0:  # the momentum traders lose their share of the side
                mom_long = max(0.0, mom_long * (long_size / size_l_before))  # never below 0
            if mom_short > 0.0 and size_s_before > 0.0:
                mom_short = max(0.0, mom_short * (short_size / size_s_before))  # never below 0
            # liquidations feed volatility back: h rises with the share of open interest they took
            oi_open = long_notional + short_notional
            if liq_feedback > 0.0 and oi_open > 0.0 and h < LIQ_FEEDBACK_H_MAX:
                h = min(h + liq_feedback * (liq_l_usd + liq_s_usd) / oi_open, LIQ_FEEDBACK_H_MAX)
        if low_px < low:  # the intra-step low and high (after the cascade's moves)
            low = low_px
            low_step = t
        if high_px > high:
            high = high_px

        # 8. records
        r_total = ln_price - ln_prev
        var_step = ewma * var_step + (1.0 - ewma) * r_total * r_total
        inv_s = 1.0 / price
        slot = slot + 1 if slot + 1 < ring_n else 0  # t % ring_n without an integer division
        ring[slot] = inv_s
        if price > peak:
            peak = price
            inv_peak = inv_s
        entry_avg = ema_w * entry_avg + (1.0 - ema_w) * price
        iv_gap *= iv_decay
        iv = max(model_iv_nb(drivers, t, iv_premium, iv_table, h, iv_h_lo, iv_h_inv) + iv_gap
                 + drivers[t, Driver.IV_SHIFT] - spot_vol_beta * (ln_price - ln_spot), IV_FLOOR)
        dd = 1.0 - price * inv_peak
        if dd > max_dd:
            max_dd = dd
        etf_total += etf
        etf_reflex_total += reflex
        miners_total += miners
        dealers_total += dealers
        delev_total += delev
        mom_total += momentum
        new_total += new_flow
        if keep_steps:
            price_out[t] = price
            oi_out[t] = (long_size * scale_l + short_size * scale_s) * price
            liq_long_out[t] = liq_l_usd
            liq_short_out[t] = liq_s_usd
            funding_out[t] = funding  # the rate per funding interval the book set this step
            atm_out[t] = iv
        flows[t, Flow.ETF] += etf
        flows[t, Flow.DELEVERAGING] += delev
        flows[t, Flow.DEALERS] += dealers
        flows[t, Flow.MINERS] += miners
        flows[t, Flow.MOMENTUM] += momentum
        flows[t, Flow.NEW_POSITIONS] += new_flow
        # the flows most steps do not have (adding 0.0 changes no sum, so skipping it is exact)
        if rounds > 0:
            liq_long_total += liq_l_usd
            liq_short_total += liq_s_usd
            if liq_l_usd + liq_s_usd > peak_liq:
                peak_liq = liq_l_usd + liq_s_usd
            if rounds > max_rounds_seen:
                max_rounds_seen = rounds
            flows[t, Flow.LONG_LIQUIDATIONS] -= liq_l_usd
            flows[t, Flow.SHORT_LIQUIDATIONS] += liq_s_usd
            if adl_step != 0.0:
                adl += adl_step
                flows[t, BookEvent.ADL] += adl_step
            if partial_step != 0.0:
                partial_total += partial_step
                flows[t, BookEvent.PARTIAL_LIQUIDATIONS] += partial_step
        if forced != 0.0:
            forced_total += forced
            flows[t, Flow.FORCED] += forced
        if rare:  # margin cuts
            cuts_total += cut_usd
            flows[t, Flow.MARGIN_CUTS] += cut_usd

    if replaying:
        bk.stress_nb(long, short, top, bottom, grid, trig, pb_mult, scale_l, scale_s, price, stress, n_steps - 1)
    _write_summary_nb(summary, fund, n_venues, (low, high, price, max_dd, low_step),
                      (liq_long_total, liq_short_total, peak_liq, max_rounds_seen, bad_debt, adl, surplus, partial_total),
                      (oi0, (long_size * scale_l + short_size * scale_s) * price),
                      (etf_total, etf_reflex_total, miners_total, dealers_total, delev_total, mom_total, new_total,
                       cuts_total, forced_total), (min_f, max_f, paused_steps))


@pjit
def simulate_nb(steps, venue_steps, params, grid, long0, short0, long_entry0, short_entry0, rows, new_leverage,
                dealer_table, dealer_lo, dealer_inv, iv_table, iv_h_lo, iv_h_inv,
                tail_table, tail_power, tail_scale, normal_table, drivers, block_seeds, block_size, task_paths,
                first_path, summary, price_out, oi_out, liq_long_out, liq_short_out, funding_out, atm_out, flows,
                keep_steps, replay, stress):
    """Simulate ``summary.shape[0]`` paths from ``first_path`` (a multiple of ``block_size``).

    Threads take tasks of ``task_paths`` paths (a divisor of ``block_size``): small enough that no
    thread idles long at the end of a run. ``flows[k]`` is task ``k``'s sum: the caller adds the
    tasks of a block in order, so the sums never depend on which thread ran what.

    ``replay`` is empty for a simulation. Replaying an observed path (:mod:`engine.history.replay`), it
    holds the log price at the end of every step: that price replaces the step's exogenous move
    (the draws are made and unused), and the caller has set the impact coefficients
    (``Driver.SQRT_COEF``, ``LINEAR_COEF``, ``PERMANENT_COEF``) to 0 and ``BRIDGE`` to infinity, so
    flows and liquidations are recorded but do not move the price. Everything else runs as simulated. ``stress``
    ``(n_steps, N_STRESS)`` then receives the book's margin stress at the end of every step
    (:func:`engine.nb.book.stress_nb`); every path writes the same rows, so replay one path.
    """
    n_paths = summary.shape[0]
    n_rows, n_cells = long0.shape
    n_tasks = (n_paths + task_paths - 1) // task_paths
    ring_n = int(max(params[Param.ETF_LOOKBACK_STEPS], params[Param.MOMENTUM_LOOKBACK_STEPS])) + 2
    long_size0 = 0.0  # the initial book's unscaled sizes, in the order a path would add them
    short_size0 = 0.0
    for r in range(n_rows):
        for c in range(n_cells):
            long_size0 += long0[r, c]
            short_size0 += short0[r, c]
    n_share = 0  # the rows new positions open in (Row.SHARE > 0), ascending
    for r in range(n_rows):
        if rows[r, Row.SHARE] > 0.0:
            n_share += 1
    share_rows = np.empty(n_share, dtype=np.int64)
    n_share = 0
    for r in range(n_rows):
        if rows[r, Row.SHARE] > 0.0:
            share_rows[n_share] = r
            n_share += 1
    for k in numba.prange(n_tasks):
        # a thread's scratch, each array PAD bytes away from anything another thread may write:
        # small arrays from malloc can share a cache line, and false sharing costs ~10% at 2 threads
        ints = np.empty(2 * _PAD + 4 + 2 * n_rows, dtype=np.uint64)
        state = ints[_PAD:_PAD + 4]
        pointers = ints[_PAD + 4:_PAD + 4 + 2 * n_rows].view(np.int64)
        top = pointers[:n_rows]
        bottom = pointers[n_rows:]
        book = n_rows * n_cells
        n_offsets = _NEW_KINDS * N_NEW_NODES * n_rows
        floats = np.empty(2 * _PAD + 5 * book + (2 + _WORK_ROWS) * n_rows + ring_n + n_offsets)
        long = floats[_PAD:_PAD + book].reshape((n_rows, n_cells))
        o = _PAD + book
        short = floats[o:o + book].reshape((n_rows, n_cells))
        o += book
        long_entry = floats[o:o + book].reshape((n_rows, n_cells))
        o += book
        short_entry = floats[o:o + book].reshape((n_rows, n_cells))
        o += book
        score = floats[o:o + book].reshape((n_rows, n_cells))
        o += book
        mmr = floats[o:o + n_rows]
        imr = floats[o + n_rows:o + 2 * n_rows]
        o2 = o + (2 + _WORK_ROWS) * n_rows
        work = floats[o + 2 * n_rows:o2].reshape((_WORK_ROWS, n_rows))
        ring = floats[o2:o2 + ring_n]
        offsets = floats[o2 + ring_n:o2 + ring_n + n_offsets].reshape((_NEW_KINDS, N_NEW_NODES, n_rows))
        for i in range(k * task_paths, min((k + 1) * task_paths, n_paths)):
            global_block = (first_path + i) // block_size
            seed_path_nb(state, block_seeds[global_block, 0], block_seeds[global_block, 1], (first_path + i) % block_size)
            row = i if keep_steps else 0
            _path_nb(steps, venue_steps, params, grid, long0, short0, long_entry0, short_entry0, rows, share_rows,
                     new_leverage, dealer_table, dealer_lo, dealer_inv, (iv_table, iv_h_lo, iv_h_inv), tail_table,
                     tail_power, tail_scale, normal_table, drivers,
                     (state, long, short, long_entry, short_entry, score, top, bottom, mmr, imr, ring, work, offsets),
                     (summary, price_out, oi_out, liq_long_out, liq_short_out, funding_out, atm_out, flows, stress),
                     i, row, k, keep_steps, replay, (long_size0, short_size0))


@pjit
def gbm_floor_nb(n_paths, n_steps, sigma, seed):
    """The floor of this machine: one normal, one ``exp`` and a running minimum per path-step.

    Uses numba's own per-thread generator; for ``bench/`` only (it is not chunk-invariant).
    """
    out = np.empty(n_paths)
    for p in numba.prange(n_paths):
        np.random.seed(seed + p)
        s = 1.0
        low = 1.0
        for t in range(n_steps):
            s *= np.exp(sigma * np.random.standard_normal())
            if s < low:
                low = s
        out[p] = low
    return out

