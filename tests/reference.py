"""A slow, plain-Python reference of the cascade model: one path, written to be read.

Stumpy keeps a ``tests/naive.py`` beside every fast kernel; this is ours for
:mod:`engine.nb.kernel`. It simulates one path of the model (v8) stated in the kernel's docstring from
the same inputs (a :class:`engine.simulate.Prepared`) and the same innovations (the path's
uniforms, ``engine.nb.rng.draw_uniforms_nb``), and returns what the kernel returns for that path:
the summary (``SUMMARY_FIELDS``), the per-step price, open interest, liquidations and ATM implied
vol (model v6), the per-step flow decomposition (``FLOW_FIELDS``) and the per-step book events
(``BOOK_EVENT_FIELDS``: ADL and partial liquidations, USD).

The price, impact and liquidations (model v2):

* Twelve uniform slots per step: ``u0`` diffusion, ``u1`` jump size, ``u2`` macro factor, ``u3``
  jump occurrence, ``u4``/``u5`` the step's bridge low/high; ``u6`` the log variance's own shock
  when volatility clusters (``u6``, ``u7`` NaN otherwise; ``u7`` unused); ``u8`` the
  scheduled-jump spread on the steps that have one (``u8``, ``u9`` NaN elsewhere; ``u9`` unused);
  ``u10`` at ``t = 0`` only, when volatility clusters, the path's starting regime (``u11``
  unused).
* A fundamental log price ``ln_f`` (exogenous returns and permanent impact) and a transient flow
  state ``J`` (USD, a decaying cumulative net flow). The price is ``ln_f + I_t(J)``, with
  ``I_t(J) = c_t*sign(J)*sqrt(|J|) + l_t*J``, clamped to ``spot * exp(+-LOG_FLOOR)``. Each step
  ``J`` heals by ``decay_t``; the step's net flow ``q`` (executed evenly over the step) adds
  ``gain_t*q`` to ``J`` and ``lam_t*q`` to ``ln_f`` (permanent, linear in every impact model).
* Between the step's open ``ln_prev`` and its close ``c`` the path is a Brownian bridge of
  variance ``v_t`` (times the conditional variance when volatility clusters: model v4 below;
  jumps are part of the step's move); its low ``m`` and high ``M`` are sampled from ``u4``/``u5``
  (the straight line in a replay: ``m = min(ln_prev, c)``, ``M = max(ln_prev, c)``) and kept
  within the clamp, like the close.
* Liquidations at the trigger: a long with bankruptcy price ``P_b`` in row ``r`` has trigger
  ``T = P_b/(1 - mmr[r])`` and is crossed iff ``T >= exp(m)`` (shorts: ``P_b/(1 + mmr[r]) <=
  exp(M)``). It is marked at ``mark = min(T, S)`` (``S`` the step's open: a step that opens beyond
  the trigger fills there) and fills at the mark less the venue's penalty (shorts: ``max(T, S)``
  plus it). Each round's liquidation flow ``f`` moves ``ln_f`` by ``lam_t*f`` and ``J`` by ``f``; the
  close ``c`` and the bridge's ``m`` and ``M`` shift by the price's move (``m`` and ``M`` clamped
  again), which may cross more cells in the next round.
* Insurance funds per venue: every batch (one side of one row in one round) adds its surpluses
  and subtracts its deficits; a fund below 0 is reset to 0 and the shortfall is auto-deleveraged
  on the same venue's other side, at the round's start price.
* ``min_price``/``max_price`` include the intra-step lows/highs (``exp(m)``, ``exp(M)`` after the
  cascade's shifts); ``trough_step`` is the step where ``min_price`` was reached. Drawdown (from
  the running peak), the average entry of the unwinding hazard (model v5) and realised vol use
  step-end prices.

The book (model v3: margin tiers, partial liquidation, ranked ADL; ``/work/spec-tiers.md``):

* Rows: one per (venue, size class), a venue's classes its margin tiers, smallest first
  (``compiled.book_rows``; a flat venue has one row). Each row has its own maintenance and initial
  rates: the tier's floors, raised to the venue's rates (``max`` of the two), at the start and at
  every margin change; a row whose initial rate rises enforces it on its own positions (top-up or
  cut, the kept share keeping its share of the entry notional). New positions (turnover arrivals,
  momentum, relief-rally fuel) open in each venue's smallest class, at leverage capped by that row.
* Entry tracking: every cell holds its size (BTC) and its positions' entry notional (USD, size
  times entry price; the reference keeps the average entry price), which new positions add to (at
  the step's open) and every shrink or move carries along.
* Partial liquidation: a crossed position of ``x`` BTC in a row with a smaller class below it
  closes only the share ``1 - keep`` (at the fill) if the equity left ``E = sign*x*(mark - P_b) -
  x*(1 - keep)*mark*pen`` is positive (``sign`` +1 long, -1 short); the rest moves down a class at
  the bankruptcy price that keeps ``E`` (``mark - sign*E/(x*keep)``), where it can be reached in
  the next round. It has no surplus or deficit; its USD counts in the side's liquidations and in
  ``partial_liquidations_usd``. Else the position is closed whole, as in v2.
* Ranked ADL: the shortfall is taken from the other side's positions on every row of the venue in
  decreasing profit-times-leverage score (:func:`adl_score`), each closed whole while the amount
  left covers its notional, the last one in part. The per-step ``adl`` event, like ``adl_usd``,
  is the shortfall.

  Scores are compared rounded to single precision, and equal ones go to the first row, then the
  first cell: the same positions in several classes (one cell, the same entry mix) tie in exact
  arithmetic, but their float64 scores differ in the last bits, differently here and in the
  kernel (its partial ADLs rescale a cell's entry notional and size, moving their ratio by an
  ulp). Compared at full precision, which of them went first was rounding, and a few paths in a
  hundred of ``ranked-adl`` parted from the kernel.

Conditional volatility (model v4: clustering; ``/work/spec-sv.md``):

* A per-path state ``h``, the deviation of the log variance from its long-run level;
  ``s = CLUSTER_STDEV`` (``vol_of_vol``) is its stationary standard deviation. ``s = 0`` is
  constant volatility: ``h`` stays 0, no extra uniforms are drawn, the path is model v3's exactly.
* The path starts in a regime drawn from ``h``'s stationary law: ``h = s*Phi^-1(u10)`` at ``t = 0``.
* Each step reads ``h`` at its start: ``m = exp(h/2 - s^2/4)`` (the spec's name, not the bridge's
  low above), so that ``E[m^2] = 1`` under the stationary law and the scenario's vol stays the
  long-run average. The diffusive part of the exogenous return (the macro factor's term and the
  BTC diffusion term) is ``m`` times model v3's; the drift, cross-asset moves and the random and
  scheduled jumps are not scaled. The step's bridge variance is ``m^2 * v_t``.
* Then ``h`` moves on by an Ornstein-Uhlenbeck step sampled exactly: ``h <- CLUSTER_PERSIST*h +
  CLUSTER_SHOCK*(rho*x + sqrt(1 - rho^2)*w)``, ``rho = CLUSTER_RHO``, ``x = Phi^-1(u0)`` (the
  normal score of the diffusion's uniform, even when the diffusion is Student-t) and ``w =
  Phi^-1(u6)``: ``rho < 0`` raises the vol after a fall (the leverage effect).
* In a replay ``h`` evolves just the same (the draws are made; the move is the observed one). The
  realised-vol EWMA of voluntary deleveraging reads the realised returns, as before.

Liquidations feed volatility back (model v11: self-excitation; ``/work/spec-liq-feedback.md``):

* ``eta = LIQ_FEEDBACK`` (``liquidation_feedback``, >= 0). ``h``'s process (the start draw ``u10``,
  the ``u6`` draw, ``m``) runs when ``CLUSTER_STDEV > 0`` *or* ``eta > 0``: with a feedback and no
  vol of vol, ``s = 0``, so ``h`` starts at 0 (``u10`` drawn all the same), its shock is 0 and ``m =
  exp(h/2)``.
* After the step's cascade (all its rounds), ``L`` the step's liquidations, long plus short (USD, the
  amounts recorded), and ``OI`` the book's open interest at the step's open (USD: both sides' sizes,
  as the funding imbalance reads them, times the step's open price): if ``eta > 0``, ``L > 0`` and
  ``OI > 0``, ``h += eta*L/OI``, but never above ``H_MAX = 2 ln 10`` (a tenfold vol: without a cap a
  cascade that raises the vol that liquidates more runs away): ``h = min(h + eta*L/OI, H_MAX)`` when
  ``h < H_MAX``; an ``h`` the Ornstein-Uhlenbeck move already took to ``H_MAX`` or above is left as it
  is. It comes after the step's Ornstein-Uhlenbeck move and before the step's records (the ATM
  implied vol at the step's end reads it); the next step's ``m`` does. The same in a replay (``h``
  only sets ``m``, which a replay's price does not read).

Turnover (model v5: traders who unwind; ``/work/spec-turnover.md``), in place of the drawdown hazard
and the momentum traders' single leverage:

* Every position has a holding time: each side closes at a hazard of ``lam = DELEV_BASE`` per day
  in calm, and new positions replace them, ``lam*dt_days`` times the side's *starting* size (``L0``,
  ``S0``: the initial book's BTC, summed row by row, cell by cell) at every step, whatever the side's
  size now. Closing ``lam*dt*side*S`` and arriving ``lam*dt*side0*S`` cancel while the book keeps
  its starting size, so turnover alone gives the market no drift.
* Stress shortens the holding time. Against ``e``, the *average entry* (one for both sides), the
  gain ``g = S/e - 1`` at the step's open ``S`` adds ``DELEV_DRAWDOWN*max(0, -g)`` (stop-loss) and
  ``DELEV_TAKE_PROFIT*max(0, g)`` (take-profit) to the longs' hazard, the mirror image to the
  shorts'; realised vol above the reference and the funding a side pays add to it as before. The
  running peak and trough no longer enter it.
* ``e`` starts at spot and, once the step is over (after the cascade), moves toward the step's
  close ``P``: ``e <- w*e + (1 - w)*P``, ``w = ENTRY_EMA_DECAY = exp(-lam*dt_days)``: the positions'
  ages are exponential at rate ``lam``, so the size-weighted entry of those still open is the
  price's exponential average at that rate.
* New positions open at the ``N_NEW_NODES`` equal-mass leverage nodes of the prepared
  ``new_leverage`` (row 0 the longs' distribution, row 1 the shorts', row 2 the momentum traders'),
  capped by each row as every new position is. Within the step: the closes (flow
  ``deleveraging``), the arrivals, longs then shorts (flow ``new_positions``), the momentum traders'
  trade (model v7 below; flow ``momentum``), then the relief-rally shorts (the same flow, as
  before). Which nodes open is model v8's (below).

Leverage nodes by volume, not by step (model v8; ``/work/spec-nodes.md``), in place of the node
``t mod N_NEW_NODES`` every new position of step ``t`` opened at:

* Why: a node per step tied the leverage mix to the step length and the clock. A momentum burst of
  six hourly steps got six of the sixteen leverages (which six depended on the hour it began), the
  same burst at 5-minute steps all of them, and the flagship's median short liquidations went from
  31M at 1h to 60M at 5m. The rule below reads no step index.
* Momentum traders: whatever they open in a step (longs or shorts, the part opened after crossing 0
  included) is split equally over all ``N_NEW_NODES`` nodes of ``new_leverage[2]``: each node gets
  ``opened/N_NEW_NODES`` at its own leverage. Closing is unchanged (pro rata).
* Turnover arrivals cycle through their side's nodes by volume. Each side keeps a per-path cycle
  state, the current node ``k`` (0 at the start) and the room left in it (``q`` at the start), the
  quantum ``q = NODE_CYCLE_SHARE*X0/N_NEW_NODES`` (``X0`` the side's starting size, ``L0`` or
  ``S0``). The step's volume ``V`` is walked node by node: ``min(V, room)`` opens at node ``k``;
  a room used up moves the side on to node ``(k + 1) mod N_NEW_NODES`` with a room of ``q``; and
  so on until ``V`` is spent. Node ``k`` thus takes exactly the volume between the side's
  cumulative arrivals ``(16m + k)*q`` and ``(16m + k + 1)*q`` (``N_NEW_NODES = 16``), however the
  flow is cut into steps. A side with ``X0 = 0`` opens nothing. The pieces open in the order
  walked, longs' then shorts'.

Momentum traders with finite capital (model v7; ``/work/spec-momentum.md``), in place of model v5's
momentum opening (``MOMENTUM_RATE*dt*excess*(L0 + S0)`` every step, never closed but by the side's
hazards):

* Per-path state ``M_long``, ``M_short`` >= 0 (BTC, actual): the momentum traders' positions inside
  each side of the book, both 0 at the start, at most one non-zero; ``M = M_long - M_short``.
* The trade, where model v5 opened: ``ret = S/price(t - lookback) - 1``, ``excess = max(0,
  min(|ret|, 1) - MOMENTUM_THRESHOLD)``, the target ``T = sign(ret)*min(MOMENTUM_RATE*
  MOMENTUM_HOLD_DAYS*excess, MOMENTUM_CAPITAL)*(L0 + S0)`` (their capital caps it), and
  ``M_new = T + (M - T)*k``, ``k = exp(-dt_days/MOMENTUM_HOLD_DAYS)`` (the share of the gap to
  the target kept over the step). Long (or flat): a rise of ``M`` opens longs,
  spread over the momentum nodes (model v8), a fall closes longs pro rata (the side shrinks by the
  share ``C/size(long)``: the book does not tag a momentum cell; a share of 1 empties the side); past
  0, all ``M_long`` closes, then shorts open for ``-M_new``. Short: the mirror image. The flow is
  ``(M_new - M)*S``.
* Everything else that shrinks a side shrinks its momentum traders in proportion: the margin
  changes (``M_side *= after/before``, the side's size around them), voluntary deleveraging
  (``M_side *= 1 - close_side``) and the whole cascade, ADL included (``after/before`` again). The
  arrivals and the relief-rally shorts do not change ``M``.

Option vols that follow the path (model v6: the dealers' implied vol; ``/work/spec-iv.md``):

* The ATM implied vol (30-day tenor ``T = IV_TENOR``) is a per-path state ``iv``, starting at the
  quoted ``ATM_IV_0`` on every path. The model's level is ``sigma(h, t) = (1 + VRP)*sqrt(D_t*F(h)
  + J_t)``, ``VRP`` the variance risk premium (``IV_VRP``): ``D_t = (VOL_t^2 +
  (MACRO_BETA_t*MACRO_VOL_t)^2)/DT_YEARS`` the step's diffusive variance per year, ``J_t =
  JUMP_PROB_t*(JUMP_MEAN^2 + JUMP_STDEV^2)/DT_YEARS`` the random jumps', and ``F(h)`` the diffusion's
  variance multiplier ``m^2 = exp(h - s^2/2)`` expected over the next ``T`` given today's ``h``
  (``(1/T)*int_0^T exp(h*e^{-k u} - s^2 e^{-2 k u}/2) du``, ``k = -ln(CLUSTER_PERSIST)/DT_YEARS``;
  1 without clustering), read linearly in the prepared ``prep.iv_table`` (clamped to its ends).
* Once the starting regime ``h0`` is drawn (``h0 = 0`` without clustering), the gap ``g =
  ATM_IV_0 - sigma(h0, 0)``. At the end of every step ``t`` (after the cascade, ``h`` already moved
  on by the step's update): ``g <- IV_DECAY*g``, ``IV_DECAY = exp(-DT_YEARS/T)`` (the gap rolls
  off with the tenor), and ``iv = max(sigma(h, t) + g + IV_SHIFT_t - SURFACE_SPOT_VOL_BETA*(ln P_t -
  ln SPOT0), IV_FLOOR)``: the path's expected vol over the tenor with its premium, the gap left of
  the quote, the scheduled surface's moves (``IV_SHIFT_t = ATM_IV_t - ATM_IV_0``: shocks) and the
  spot-vol beta on the return since the start. It is recorded per step (``atm_iv``). In a replay
  ``iv`` evolves just the same (the scenario's ``D_t``; the observed closes).
* The dealers' hedge reads it: the prepared table is now ``(step, ATM level, log price)``, levels
  ``exp(IV_LEVEL_LO + k/IV_LEVEL_INV)``, ``k < N_IV_LEVELS`` (``0.05`` to ``4``: the step's surface with
  that ATM, the skew moved by the return at the grid price, no spot-vol beta: it is in ``iv``). Step
  ``t``'s target is read at its open, at the ``iv`` the previous step left (``ATM_IV_0`` at the first
  step and for the starting hedge): linear in log price on the two levels around ``ln iv``, then
  linear in ``ln iv`` between them (:func:`dealer_hedge`).

Replay (:mod:`engine.history.replay`): given the log price at the end of every step, the path follows it
instead of its exogenous moves, and flows and liquidations have no impact (``c_t = l_t = lam_t =
0``: the observed price already holds their effect) and the path between two closes is the
straight line; the rest of the step is unchanged. The reference then also records the book's
margin stress at every step's close (``STRESS_FIELDS``), from its plain cells.

It is deliberately *not* the kernel's algorithm:

* the book holds each cell's actual size in BTC and average entry price in plain lists, one per
  row; voluntary deleveraging, auto-deleveraging and partial liquidations change the cells
  themselves (the kernel keeps unscaled sizes and entry notionals and lazy scale factors per side);
* liquidations scan every cell of every row for a crossing, each round, against the bridge
  low/high sampled at every step (the kernel walks pointers from the best cell, gates the cascade
  with cached trigger prices and computes the bridge extremes only when a trigger or the running
  extreme may be crossed);
* ADL scores every open position of the venue's other side and sorts them once (Python's stable
  sort by descending score: the model's "first maximum in (row, cell) order" reached by a sort),
  then takes them in that order;
* each row's rates are the plain ``max`` of its floors and its venue's rates, kept in a list and
  used as they are (the kernel caches trigger factors);
* the impact coefficients and the bridge variance (times ``m^2`` when volatility clusters), and
  model v6's ``D_t``, ``J_t`` and ``IV_SHIFT_t``, are recomputed from the compiled params and steps
  at every step (the kernel reads them from ``prep.drivers``, which the reference never reads: it
  checks that table too);
* totals (open interest, side sizes) are summed from the cells when needed (the kernel keeps
  running sums);
* the trailing prices are a plain list of step-start prices (the kernel keeps a ring buffer).

What it shares with the kernel is the model's own numerics: ``Phi^-1`` is the engine's (linear in
the prepared normal quantile table, Acklam's approximation, written out again below, in its end
cells), the Student-t scale, the dealers' hedge and the forward-variance factor ``F(h)`` are read
from the tables :func:`engine.simulate.prepare` builds, and new sizes are spread over the two
neighbouring grid cells linearly in log price, clamped at the grid's ends.

Points where the kernel once differed from the model (the tests at the end of
``tests/test_reference.py`` pin them):

* bad debt and liquidation surplus are counted per position: a batch's surplus is the sum of its
  positive equities and its deficit the sum of its negative ones, never netted;
* an ADL shrinks the positions still open, at the moment it happens (those closed earlier in the
  round are gone);
* a side that ADL or a full voluntary deleveraging wipes out is simply empty (until new positions
  arrive), and an empty book has no imbalance;
* a long at 1x leverage or less (new positions under a 100% initial margin) cannot go bankrupt
  and sits in the lowest cell (the kernel once computed ``log1p(-1/L)`` = NaN there).
"""

from __future__ import annotations

import math
import dataclasses
from dataclasses import dataclass

import numpy as np

from engine.compile.layout import (BOOK_EVENT_FIELDS, IMPACT_BOTH, IMPACT_LINEAR, IMPACT_SQRT, N_NEW_NODES,
                                   NODE_CYCLE_SHARE, PARAM_FIELDS, STEP_FIELDS, VENUE_FIELDS, Row)
from engine.compile.layout import FLOW_FIELDS, STRESS_FIELDS, SUMMARY_FIELDS
from engine.nb.rng import draw_uniforms_nb

__all__ = ["PathResult", "Book", "BookRow", "book_rows", "simulate_path", "path_uniforms", "standard_normal",
           "inverse_normal_cdf", "adl_score", "dealer_hedge", "forward_variance_factor", "LOG_FLOOR", "IV_TENOR",
           "IV_FLOOR", "N_IV_LEVELS", "IV_LEVEL_LO", "IV_LEVEL_INV", "clusters",
           "LIQ_FEEDBACK_H_MAX"]

LOG_FLOOR = 20.0  # the price stays within spot * exp(+-20)
CLOSE_ALL_SLACK = 1e-9  # a pro-rata close of all but this share of a side empties it (model v7)
MOMENTUM_RETURN_CAP = 1.0  # momentum traders react to at most a 100% return
NEAR_LIQUIDATION = 0.05  # stress: notional a 5% move would liquidate
HIGH_LEVERAGE = 4.0  # stress: notional above 4x effective leverage
LONG, SHORT = "long", "short"
# model v6 (/work/spec-iv.md), written out again from the spec
IV_TENOR = 30.0 / 365.25  # years: the surface's reference tenor, over which the ATM vol's gap rolls off
IV_FLOOR = 0.05  # the ATM implied vol never goes below it
N_IV_LEVELS = 16  # ATM levels of the dealers' hedge table: exp(IV_LEVEL_LO + k/IV_LEVEL_INV), 0.05 to 4
IV_LEVEL_LO = math.log(0.05)  # the lowest level, in log (the spec's iv_lo; engine.compile.layout keeps the level)
IV_LEVEL_INV = (N_IV_LEVELS - 1) / math.log(4.0 / 0.05)
# model v11 (/work/spec-liq-feedback.md, its addendum): the feedback never takes h above a tenfold vol
LIQ_FEEDBACK_H_MAX = 2.0 * math.log(10.0)


# ----------------------------------------------------------------------------- draws
_ACKLAM_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
             1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_ACKLAM_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
             6.680131188771972e01, -1.328068155288572e01)
_ACKLAM_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
             -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
_ACKLAM_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
_ACKLAM_TAIL = 0.02425


def _horner(coefficients, x):
    out = 0.0
    for c in coefficients:
        out = out * x + c
    return out


def inverse_normal_cdf(p: float) -> float:
    """``Phi^-1(p)`` by Acklam's rational approximation (relative error < 1.2e-9)."""
    if p < _ACKLAM_TAIL:
        q = math.sqrt(-2.0 * math.log(p))
        return _horner(_ACKLAM_C, q) / (_horner(_ACKLAM_D, q) * q + 1.0)
    if p > 1.0 - _ACKLAM_TAIL:
        q = math.sqrt(-2.0 * math.log(1.0 - p))
        return -_horner(_ACKLAM_C, q) / (_horner(_ACKLAM_D, q) * q + 1.0)
    q = p - 0.5
    r = q * q
    return _horner(_ACKLAM_A, r) * q / (_horner(_ACKLAM_B, r) * r + 1.0)


def standard_normal(prep, u: float) -> float:
    """``Phi^-1(u)`` as the engine computes it: linear in the prepared quantile table
    (``prep.normal_table``, quantiles at ``k/(n-1)``), Acklam's approximation in its end cells."""
    table = prep.normal_table
    n = len(table)
    x = u * (n - 1)
    k = int(x)
    if k == 0 or k >= n - 2:
        return inverse_normal_cdf(u)
    return float(table[k] + (x - k) * (table[k + 1] - table[k]))


def student_t(prep, u: float) -> float:
    """The unit-variance Student-t at quantile ``u``: linear in the prepared quantile table, exact
    power laws ``-+tail_scale * u^-tail_power`` (from the nearer end) in its first and last cells."""
    table = prep.tail_table
    n = len(table)
    x = u * (n - 1)
    k = int(x)
    if k == 0:
        return float(-prep.tail_scale * u ** (-prep.tail_power))
    if k >= n - 2:
        return float(prep.tail_scale * (1.0 - u) ** (-prep.tail_power))
    return float(table[k] + (x - k) * (table[k + 1] - table[k]))


def _linear_in_log_price(prep, row, log_price: float) -> float:
    """One row of the dealers' hedge table (a step and an ATM level), linear in log price, flat beyond it."""
    x = (log_price - prep.dealer_lo) * prep.dealer_inv
    if x <= 0.0:
        return float(row[0])
    if x >= len(row) - 1:
        return float(row[-1])
    k = int(x)
    return float(row[k] + (x - k) * (row[k + 1] - row[k]))


def dealer_hedge(prep, t: int, log_price: float, iv: float) -> float:
    """Dealers' hedge (BTC) at step ``t``, ``log_price`` and ATM implied vol ``iv`` (model v6): the
    prepared ``(step, ATM level, log price)`` table, each of the two levels around ``ln iv`` read
    linearly in log price, then the two linearly in ``ln iv`` (clamped to the levels' range)."""
    levels = prep.dealer_table[t]
    y = min(max((math.log(iv) - IV_LEVEL_LO) * IV_LEVEL_INV, 0.0), N_IV_LEVELS - 1.0)
    k = min(int(y), N_IV_LEVELS - 2)
    w = y - k
    a = _linear_in_log_price(prep, levels[k], log_price)
    b = _linear_in_log_price(prep, levels[k + 1], log_price)
    return a + w * (b - a)


def forward_variance_factor(prep, h: float) -> float:
    """``F(h)``: the diffusion's variance multiplier ``m^2`` expected over the next ``IV_TENOR`` given
    today's ``h`` (model v6), linear in the prepared table (``prep.iv_table`` at ``h = iv_h_lo +
    i/iv_h_inv``), clamped to its ends."""
    table = prep.iv_table
    n = len(table)
    x = (h - prep.iv_h_lo) * prep.iv_h_inv
    if x <= 0.0:
        return float(table[0])
    if x >= n - 1:
        return float(table[n - 1])
    k = int(x)
    return float(table[k] + (x - k) * (table[k + 1] - table[k]))


def clusters(vol_of_vol: float, liquidation_feedback: float) -> bool:
    """Model v11: the log variance's process ``h`` (its start draw, its ``u6`` draw, ``m``) runs when
    it has a vol of vol (``CLUSTER_STDEV`` > 0) or liquidations feed it (``LIQ_FEEDBACK`` > 0)."""
    return vol_of_vol > 0.0 or liquidation_feedback > 0.0


def path_uniforms(compiled, path: int) -> np.ndarray:
    """The ``(n_steps, 12)`` uniforms the kernel draws for ``path`` (same streams, same order): three
    pairs at every step, a fourth when volatility clusters, a fifth on the steps with a scheduled
    jump, and the starting regime's pair at ``t = 0`` when volatility clusters (NaN where none is
    drawn; ``engine.nb.rng.draw_uniforms_nb``). It clusters with a vol of vol or a liquidation
    feedback (model v11: :func:`clusters`)."""
    rng = compiled.rng
    extra = (compiled.step("SCHEDULED_JUMP") != 0.0) | (compiled.step("SCHEDULED_JUMP_SPREAD") != 0.0)
    clustering = clusters(compiled.param("CLUSTER_STDEV"), compiled.param("LIQ_FEEDBACK"))
    return draw_uniforms_nb(rng.block_seeds, rng.block_size, path, 1, compiled.n_steps, extra, clustering)[0]


# ----------------------------------------------------------------------------- the book
@dataclass(frozen=True)
class BookRow:
    """One row of the book: the positions of one size class (margin tier) on one venue."""

    venue: int
    mmr: float  # the class's own maintenance-rate floor (0 on a flat venue)
    imr: float  # its own initial-rate floor, 1 / the tier's max leverage (0 on a flat venue)
    share: float  # share of new positions opened in the row (the venue's share on its smallest class)
    down: int  # the row a partial liquidation leaves the rest of a position in; -1: none (smallest class)
    keep: float  # share of a position a partial liquidation leaves open (0 where down is -1)


def book_rows(prep) -> list[BookRow]:
    """The scenario's rows (``compiled.book_rows``, columns ``engine.compile.layout.Row``). New
    positions go to each venue's smallest class, at the venue's share of the book
    (``prep.venue_share``): the model's ``Row.SHARE``, set here from that definition."""
    rows = []
    for x in np.asarray(prep.compiled.book_rows):
        venue, down = int(x[Row.VENUE]), int(x[Row.DOWN])
        share = float(prep.venue_share[venue]) if down < 0 else 0.0
        rows.append(BookRow(venue, float(x[Row.MMR]), float(x[Row.IMR]), share, down, float(x[Row.KEEP])))
    return rows


class Book:
    """Leveraged positions on the bankruptcy-price grid, one row per (venue, size class), as plain
    lists: each cell's size in BTC and the average entry price of the positions it holds (the
    model's entry notional, size times entry price, is ``size * entry_price``).

    An average price does not move when the cell shrinks (voluntary deleveraging, a partial ADL),
    and it starts as the compiled ``entry_usd / size``, the ratio the kernel reads: cells holding
    the same positions in several classes (the compiler gives a cell the same entry mix in every
    class whose leverage cap does not bind there) have entry prices equal to within rounding, and
    shrinking a notional and a size at every step would add rounding of its own to their ADL
    ranking (see the module docstring on such near-ties).

    Cell ``c`` holds positions whose bankruptcy price is ``grid[c] * funding_shift``: funding
    payments move every bankruptcy price by the same factor. A long's trigger is ``P_b / (1 - m)``
    (it liquidates when the step's low reaches it), a short's ``P_b / (1 + m)`` (the step's high),
    ``m`` the row's maintenance rate.
    """

    def __init__(self, grid, rows, long_btc, short_btc, long_entry_usd, short_entry_usd):
        self.grid = [float(g) for g in grid]
        self.rows = list(rows)
        self.cells = {LONG: [[float(x) for x in row] for row in long_btc],
                      SHORT: [[float(x) for x in row] for row in short_btc]}
        self.entry_price = {side: [[float(e) / float(x) if x > 0.0 else 0.0 for x, e in zip(sizes, entries)]
                                   for sizes, entries in zip(btc, entry_usd)]
                            for side, btc, entry_usd in ((LONG, long_btc, long_entry_usd),
                                                         (SHORT, short_btc, short_entry_usd))}
        self.funding_shift = 1.0
        n = len(self.grid)
        self.log_grid0 = math.log(self.grid[0])
        self.cells_per_log = (n - 1) / math.log(self.grid[-1] / self.grid[0])

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    def rows_of(self, venue: int) -> list[int]:
        """The rows of a venue, smallest class first."""
        return [r for r, row in enumerate(self.rows) if row.venue == venue]

    def bankruptcy(self, c: int) -> float:
        return self.grid[c] * self.funding_shift

    def size(self, side: str) -> float:
        return sum(sum(row) for row in self.cells[side])

    def open_interest_btc(self) -> float:
        return self.size(LONG) + self.size(SHORT)

    def shrink(self, side: str, keep: float) -> None:
        """Every position of a side keeps the share ``keep`` (voluntary deleveraging); entry prices
        are unchanged."""
        for sizes in self.cells[side]:
            for c in range(len(sizes)):
                sizes[c] *= keep

    def take(self, side: str, r: int, c: int) -> tuple[float, float]:
        """Empty cell ``c`` of row ``r``: returns its (size, entry notional)."""
        size, entry_price = self.cells[side][r][c], self.entry_price[side][r][c]
        self.cells[side][r][c] = 0.0
        self.entry_price[side][r][c] = 0.0
        return size, size * entry_price

    def trigger(self, side: str, c: int, mmr: float) -> float:
        """The liquidation price of cell ``c``: ``P_b / (1 - m)`` for a long, ``P_b / (1 + m)`` for a short."""
        return self.bankruptcy(c) / (1.0 - mmr) if side == LONG else self.bankruptcy(c) / (1.0 + mmr)

    def deposit(self, side: str, r: int, log_bankruptcy: float, size: float, entry_usd: float) -> None:
        """Add ``size`` BTC of entry notional ``entry_usd`` to row ``r`` at a bankruptcy price: both
        split over the two neighbouring cells linearly in log price (prices beyond the grid go to
        its end cells); each cell's entry price becomes the size-weighted average."""
        sizes, prices = self.cells[side][r], self.entry_price[side][r]
        n = len(sizes)
        x = (log_bankruptcy - math.log(self.funding_shift) - self.log_grid0) * self.cells_per_log
        if x <= 0.0:
            lo, w = 0, 0.0
        elif x >= n - 1:
            lo, w = n - 2, 1.0
        else:
            lo = int(x)
            w = x - lo
        for c, share in ((lo, 1.0 - w), (lo + 1, w)):
            added = size * share
            if added > 0.0:
                total = sizes[c] + added
                prices[c] = (sizes[c] * prices[c] + entry_usd * share) / total
                sizes[c] = total

    def crossed(self, side: str, r: int, price: float, mmr: float) -> list[int]:
        """Cells of row ``r`` whose trigger the ``price`` has reached (full scan): longs with
        ``trigger >= price`` (the step's low), shorts with ``trigger <= price`` (its high)."""
        sizes = self.cells[side][r]
        if side == LONG:
            return [c for c in range(len(sizes)) if sizes[c] > 0.0 and self.trigger(LONG, c, mmr) >= price]
        return [c for c in range(len(sizes)) if sizes[c] > 0.0 and self.trigger(SHORT, c, mmr) <= price]

    def over_levered(self, side: str, r: int, price: float, max_leverage: float) -> list[int]:
        """Cells of row ``r`` above ``max_leverage`` at ``price``: a long at ``P_b`` has leverage
        ``S/(S - P_b)``, a short ``S/(P_b - S)``."""
        sizes = self.cells[side][r]
        if side == LONG:
            limit = price * (1.0 - 1.0 / max_leverage)
            return [c for c in range(len(sizes)) if sizes[c] > 0.0 and self.bankruptcy(c) > limit]
        limit = price * (1.0 + 1.0 / max_leverage)
        return [c for c in range(len(sizes)) if sizes[c] > 0.0 and self.bankruptcy(c) < limit]


def log_bankruptcy(log_price: float, sign: float, leverage: float) -> float:
    """Log bankruptcy price of a position opened at ``leverage``: ``log(S * (1 + sign/L))``, sign -1
    for a long, +1 for a short. A long at 1x or less can never go bankrupt: ``-inf``, which
    :meth:`Book.deposit` puts in the grid's lowest cell."""
    ratio = sign / leverage
    return log_price + math.log1p(ratio) if ratio > -1.0 else -math.inf


def enforce_initial_margin(book: Book, r: int, price: float, max_leverage: float, top_up: float) -> dict:
    """A higher initial margin on row ``r``: every over-levered position ends at ``max_leverage``.
    The share ``top_up`` adds margin (keeps its size); the rest cuts size at constant equity,
    keeping ``max_leverage / leverage`` of it. What is kept keeps its share of the entry notional
    (the cut share's goes with it). Returns the BTC cut per side (sold or bought at market)."""
    cut = {}
    for side, sign in ((LONG, -1.0), (SHORT, 1.0)):
        kept = kept_entry = 0.0
        cut[side] = 0.0
        for c in book.over_levered(side, r, price, max_leverage):
            distance = max(sign * (book.bankruptcy(c) - price), price * 1e-9)
            leverage = price / distance
            keep = top_up + (1.0 - top_up) * max_leverage / leverage
            size, entry = book.take(side, r, c)
            kept += size * keep
            kept_entry += entry * keep
            cut[side] += size * (1.0 - keep)
        if kept > 0.0:
            book.deposit(side, r, log_bankruptcy(math.log(price), sign, max_leverage), kept, kept_entry)
    return cut


def adl_score(side: str, price: float, entry_price: float, bankruptcy: float) -> float:
    """A position's rank in the ADL queue: its profit (return on margin) times its effective
    leverage, or the return divided by the leverage when the position is at a loss."""
    if side == LONG:
        pnl, margin, equity = price - entry_price, entry_price - bankruptcy, price - bankruptcy
    else:
        pnl, margin, equity = entry_price - price, bankruptcy - entry_price, bankruptcy - price
    tiny = 1e-12 * price
    roe = pnl / max(margin, tiny)
    lev = price / max(equity, tiny)
    return roe * lev if roe >= 0.0 else roe / lev


# ----------------------------------------------------------------------------- one path
def slow_depth_averages(depth_mult, a: float) -> list:
    """Model v10: the book's slow depth ``s``, the momentary depth multiplier ``d`` relaxed with
    time constant ``tau`` (``a = DEPTH_MEMORY_DECAY = exp(-dt/tau)``), from ``s_0 = 1`` (the normal
    depth before the horizon), ``d_t`` constant within step ``t``. Returns ``sbar_t``, the exact
    average of ``s`` over each step:

        g      = (1 - a)/(-ln a)  for 0 < a < 1;  0 when a == 0 (s jumps to d: model v8);
                                                  1 when a == 1 (s never moves: model v9)
        sbar_t = d_t + (s_t - d_t)*g
        s_t+1  = d_t + (s_t - d_t)*a
    """
    a = float(a)
    if a == 0.0:
        g = 0.0
    elif a == 1.0:
        g = 1.0
    else:
        g = (1.0 - a) / -math.log(a)
    s = 1.0
    out = []
    for x in depth_mult:
        d = float(x)
        out.append(d + (s - d) * g)
        s = d + (s - d) * a
    return out


@dataclass
class PathResult:
    summary: dict  # SUMMARY_FIELDS -> float
    price: list  # per step, at the end of the step
    open_interest: list  # USD
    liq_long: list  # USD liquidated per step
    liq_short: list
    flows: dict  # FLOW_FIELDS -> per-step list, USD, sell < 0
    rounds: list  # liquidation rounds per step
    low: list = dataclasses.field(default_factory=list)  # the step's lowest price (its low or its close)
    book_events: dict = dataclasses.field(default_factory=dict)  # BOOK_EVENT_FIELDS -> per-step list, USD
    stress: list = dataclasses.field(default_factory=list)  # replay only: STRESS_FIELDS -> value, per step
    vol_multiplier: list = dataclasses.field(default_factory=list)  # per step, m (1 without clustering)
    atm_iv: list = dataclasses.field(default_factory=list)  # per step, the ATM implied vol at its end (model v6)


@dataclass(frozen=True)
class Impact:
    """One step's impact coefficients and the variance of its diffusive log move."""

    sqrt_coef: float  # c_t: the square-root law's transient coefficient (0: not that law)
    linear_coef: float  # l_t: the linear law's transient coefficient (0: not that law)
    permanent_coef: float  # lam_t: permanent log impact per USD of net flow
    decay: float  # share of the transient flow state J kept over the step
    gain: float  # share of a flow spread evenly over the step still unhealed at its end
    variance: float  # of the Brownian bridge between the open and the close (m^2 * v_t); 0: the straight line

    def transient(self, flow_state: float) -> float:
        """The price's transient deviation (log) from the fundamental: ``c*sign(J)*sqrt(|J|) + l*J``."""
        return math.copysign(self.sqrt_coef * math.sqrt(abs(flow_state)), flow_state) + self.linear_coef * flow_state


class _Path:
    """The state of one path, and one method per mechanism of a step (kernel docstring, 1-8).

    The state: the fundamental log price and the transient flow state ``J`` (hence the price), the
    book (cells, entry prices, funding shift) with each row's rates, the insurance funds, the ETF's
    holdings, the miners' reserves and hashrate, the dealers' hedge, the realised-variance EWMA, the
    trailing step-start prices, the running peak, the average entry ``e`` (model v5) and the
    initial book's side sizes ``L0``, ``S0`` (BTC), a circuit breaker's pause, ``h``, the log
    variance's deviation (model v4; 0 and unused without clustering), and the ATM implied vol ``iv``
    with its gap to the model's level (model v6), the momentum traders' positions inside each
    side, ``M_long`` and ``M_short`` (model v7), and each side's turnover node cycle, the node and
    the room left in it (model v8)."""

    def __init__(self, prep, replay=None):
        c = prep.compiled
        self.prep = prep
        self.replay = None if replay is None else [float(x) for x in replay]  # log closes, or None
        self.p = {name: c.param(name) for name in PARAM_FIELDS}
        self.drv = {name: c.step(name).tolist() for name in STEP_FIELDS}
        self.venue = [{name: c.venue(name, v).tolist() for name in VENUE_FIELDS} for v in range(c.n_venues)]
        self.n_steps = c.n_steps
        self.dt_days = self.p["DT_YEARS"] * 365.25
        # model v10: the book's slow depth, averaged over each step (deterministic: same on every path)
        self.slow_depth = slow_depth_averages(self.drv["DEPTH_MULT"], self.p["DEPTH_MEMORY_DECAY"])
        self.book = Book(c.book_bankruptcy_usd, book_rows(prep), c.book_long_btc, c.book_short_btc,
                         c.book_long_entry_usd, c.book_short_entry_usd)
        # per row: the row's own floors, raised to its venue's rates
        self.mmr = [max(row.mmr, self.venue[row.venue]["MMR"][0]) for row in self.book.rows]
        self.imr = [max(row.imr, self.venue[row.venue]["IMR"][0]) for row in self.book.rows]

        spot = self.p["SPOT0"]
        self.ln_floor = math.log(spot) - LOG_FLOOR
        self.ln_ceiling = math.log(spot) + LOG_FLOOR
        self.ln_fundamental = math.log(spot)  # exogenous returns + permanent impact
        self.flow_state = 0.0  # J: the transient flow state, USD (a decaying cumulative net flow)
        self.ln_price = math.log(spot)
        self.price = spot
        self.start_price, self.start_ln_price = spot, self.ln_price  # the current step's start
        self.start_prices = [spot]  # start_prices[t]: the price at the start of step t
        self.peak = spot  # the highest close (drawdown)
        self.entry = spot  # e: the average entry, the closes' exponential average (model v5)
        # L0, S0: the initial book's sides (BTC), added row by row, cell by cell
        self.long0 = self.short0 = 0.0
        for row in c.book_long_btc:
            for x in row:
                self.long0 += float(x)
        for row in c.book_short_btc:
            for x in row:
                self.short0 += float(x)
        self.realised_var = self.drv["VOL"][0] ** 2  # EWMA of squared step log returns
        self.fund = [self.venue[v]["INSURANCE_FUND_USD"][0] for v in range(c.n_venues)]  # per venue, USD
        self.etf_holdings = self.p["ETF_HOLDINGS_BTC"]
        self.miner_reserves = self.p["MINER_RESERVES_BTC"]
        self.hashrate = self.p["MINER_HASHRATE_PH"]
        self.paused_until = -1
        self.h = 0.0  # the log variance's deviation from its long-run level (set at t = 0 from u10)
        self.clustering = clusters(self.p["CLUSTER_STDEV"], self.p["LIQ_FEEDBACK"])  # model v11
        # model v6: the ATM implied vol, at the quote at the start; its gap to the model's level is set
        # once the starting regime is drawn (t = 0)
        self.iv = self.drv["ATM_IV"][0]
        self.iv_gap = 0.0
        self.iv_decay = math.exp(-self.p["DT_YEARS"] / IV_TENOR)
        self.hedge = dealer_hedge(prep, 0, self.ln_price, self.iv)
        # model v7: the momentum traders' positions (BTC) inside each side, and the share of their gap
        # to the target they keep over a step
        self.momentum_long = self.momentum_short = 0.0
        self.momentum_keep = math.exp(-self.dt_days / self.p["MOMENTUM_HOLD_DAYS"])
        # model v8: each side's turnover cycle through its leverage nodes: the quantum a node takes
        # (NODE_CYCLE_SHARE of the side's starting size over the nodes), the node now and its room left
        self.node_quantum = {LONG: NODE_CYCLE_SHARE * self.long0 / N_NEW_NODES,
                             SHORT: NODE_CYCLE_SHARE * self.short0 / N_NEW_NODES}
        self.node = {LONG: 0, SHORT: 0}
        self.node_room = dict(self.node_quantum)

        self.totals = dict.fromkeys(SUMMARY_FIELDS, 0.0)
        self.totals.update(min_price=spot, max_price=spot, min_funding_rate=math.inf, max_funding_rate=-math.inf,
                           insurance_fund_end_usd=sum(self.fund),
                           open_interest_start_usd=self.book.open_interest_btc() * spot)
        self.out = PathResult({}, [], [], [], [], {k: [] for k in FLOW_FIELDS}, [], [],
                              {k: [] for k in BOOK_EVENT_FIELDS})
        self.events = dict.fromkeys(BOOK_EVENT_FIELDS, 0.0)  # the current step's book events

    # -- helpers
    def lookback_price(self, t: int, steps: float) -> float:
        """The price at the start of step ``t - steps`` (spot before the horizon)."""
        k = t - int(steps)
        return self.start_prices[k] if k >= 0 else self.start_prices[0]

    def side_sizes(self) -> dict:
        """Each side's size now (BTC), summed from the cells."""
        return {LONG: self.book.size(LONG), SHORT: self.book.size(SHORT)}

    def momentum_follow(self, before: dict) -> None:
        """Model v7: a side that something other than the momentum trade shrank (or grew) from
        ``before`` (BTC) to its size now keeps the momentum traders' share of it: ``M_side *=
        after/before`` (a side that was empty has no momentum traders)."""
        if before[LONG] > 0.0:  # never below 0 (a rounding residue of an emptied side)
            self.momentum_long = max(0.0, self.momentum_long * (self.book.size(LONG) / before[LONG]))
        if before[SHORT] > 0.0:
            self.momentum_short = max(0.0, self.momentum_short * (self.book.size(SHORT) / before[SHORT]))

    def impact(self, t: int) -> Impact:
        """Step ``t``'s coefficients, from the compiled params and steps (``d`` the depth multiplier):
        ``c = Y*sigma_day/sqrt(V_day*d)`` (square-root law), ``l = 1/(depth*d*100)`` (linear law),
        ``lam = permanent_fraction/(depth*100*sbar)`` (every law, at the book's slow depth ``sbar``, its
        average over the step: model v10, :func:`slow_depth_averages`), ``decay = RESILIENCE_DECAY **
        RESILIENCE_MULT``, ``gain = (1 - decay)/(-ln decay)`` (1 when nothing heals), ``v = VOL^2 +
        (MACRO_BETA*MACRO_VOL)^2`` times ``m^2`` (:meth:`vol_multiplier`, 1 without clustering). In a
        replay flows move nothing (the observed price already holds them) and the path between two
        closes is the straight line."""
        p, d = self.p, self.drv
        decay = p["RESILIENCE_DECAY"] ** d["RESILIENCE_MULT"][t]
        if decay == 1.0:
            gain = 1.0
        elif decay == 0.0:  # heals at once: the limit of (1 - decay) / -ln(decay)
            gain = 0.0
        else:
            gain = (1.0 - decay) / -math.log(decay)
        if self.replay is not None:
            return Impact(0.0, 0.0, 0.0, decay, gain, 0.0)
        model = int(p["IMPACT_MODEL"])
        liquidity = d["DEPTH_MULT"][t]
        depth = p["DEPTH_USD_PER_PCT"] * liquidity * 100.0
        sqrt_coef = 0.0
        if model in (IMPACT_SQRT, IMPACT_BOTH):
            sqrt_coef = p["SQRT_COEFFICIENT"] * p["SIGMA_DAY"] / math.sqrt(p["DAILY_VOLUME_USD"] * liquidity)
        linear_coef = 1.0 / depth if model in (IMPACT_LINEAR, IMPACT_BOTH) else 0.0
        variance = (d["VOL"][t] ** 2 + (d["MACRO_BETA"][t] * d["MACRO_VOL"][t]) ** 2) * self.vol_multiplier() ** 2
        # model v10: at the slow depth's average over the step
        permanent = p["PERMANENT_FRACTION"] / (100.0 * p["DEPTH_USD_PER_PCT"] * self.slow_depth[t])
        return Impact(sqrt_coef, linear_coef, permanent, decay, gain, variance)

    def set_price(self, k: Impact) -> None:
        """The log price: the fundamental plus the transient deviation, within spot * exp(+-LOG_FLOOR)."""
        self.ln_price = min(max(self.ln_fundamental + k.transient(self.flow_state), self.ln_floor), self.ln_ceiling)
        self.price = math.exp(self.ln_price)

    # -- conditional volatility (model v4)
    def start_regime(self, u10: float) -> None:
        """The path's starting regime, from ``h``'s stationary law ``N(0, s^2)``: ``h = s*Phi^-1(u10)``
        (nothing without clustering: ``u10`` is then NaN; a feedback without a vol of vol draws it
        all the same and starts at ``h = 0``, model v11)."""
        s = self.p["CLUSTER_STDEV"]
        self.h = s * standard_normal(self.prep, u10) if self.clustering else 0.0

    def vol_multiplier(self) -> float:
        """``m = exp(h/2 - s^2/4)``, the diffusion's scale this step (its variance ``m^2``, of mean 1
        under ``h``'s stationary law; ``exp(h/2)`` with a feedback and no vol of vol); 1 without
        clustering."""
        s = self.p["CLUSTER_STDEV"]
        return math.exp(self.h / 2.0 - s * s / 4.0) if self.clustering else 1.0

    def evolve_volatility(self, u) -> None:
        """``h``'s exact Ornstein-Uhlenbeck step: ``h <- phi*h + shock*(rho*x + sqrt(1 - rho^2)*w)``,
        ``x = Phi^-1(u0)`` (the diffusion's own uniform, as a normal score whatever its law: the
        leverage effect) and ``w = Phi^-1(u6)``. Nothing without clustering."""
        p = self.p
        if not self.clustering:
            return
        rho = p["CLUSTER_RHO"]
        x = standard_normal(self.prep, u[0])
        w = standard_normal(self.prep, u[6])
        self.h = p["CLUSTER_PERSIST"] * self.h + p["CLUSTER_SHOCK"] * (rho * x + math.sqrt(1.0 - rho * rho) * w)

    def liquidation_feedback(self, liquidated: float, open_interest: float) -> None:
        """Model v11: the step's liquidations (``liquidated``, long plus short, USD, all rounds)
        raise ``h`` by ``eta`` times the share of the step's opening open interest (USD) they took,
        ``eta = LIQ_FEEDBACK``, but never above ``LIQ_FEEDBACK_H_MAX`` (a tenfold vol); an ``h``
        already there (the Ornstein-Uhlenbeck move can take it there) is left as it is. After the
        step's Ornstein-Uhlenbeck move, so the next step's ``m`` reads it. Nothing without
        liquidations or without open interest."""
        eta = self.p["LIQ_FEEDBACK"]
        if eta > 0.0 and liquidated > 0.0 and open_interest > 0.0 and self.h < LIQ_FEEDBACK_H_MAX:
            self.h = min(self.h + eta * liquidated / open_interest, LIQ_FEEDBACK_H_MAX)

    # -- the ATM implied vol (model v6)
    def model_iv(self, t: int) -> float:
        """``sigma(h, t) = (1 + VRP)*sqrt(D_t*F(h) + J_t)``: the vol expected over the tenor, from step
        ``t``'s diffusive variance per year ``D_t``, scaled by ``F(h)`` (the conditional variance's
        expected multiplier), and the random jumps' ``J_t``, with the variance risk premium."""
        p, d = self.p, self.drv
        dt = p["DT_YEARS"]
        diffusion = (d["VOL"][t] ** 2 + (d["MACRO_BETA"][t] * d["MACRO_VOL"][t]) ** 2) / dt
        jumps = d["JUMP_PROB"][t] * (p["JUMP_MEAN"] ** 2 + p["JUMP_STDEV"] ** 2) / dt
        return (1.0 + p["IV_VRP"]) * math.sqrt(diffusion * forward_variance_factor(self.prep, self.h) + jumps)

    def start_implied_vol(self) -> None:
        """Once the starting regime is drawn: the gap between the quote and the model's level."""
        self.iv_gap = self.drv["ATM_IV"][0] - self.model_iv(0)

    def follow_implied_vol(self, t: int) -> None:
        """At the end of step ``t`` (``h`` moved on, the close final): the gap rolls off, and ``iv`` is
        the model's level plus the gap, the scheduled surface's move since the start and the spot-vol
        beta on the return since the start, floored."""
        d = self.drv
        self.iv_gap *= self.iv_decay
        shift = d["ATM_IV"][t] - d["ATM_IV"][0]
        spot_vol = self.p["SURFACE_SPOT_VOL_BETA"] * (self.ln_price - math.log(self.p["SPOT0"]))
        self.iv = max(self.model_iv(t) + self.iv_gap + shift - spot_vol, IV_FLOOR)

    # -- 1-2
    def heal(self, k: Impact) -> None:
        """The transient flow state decays toward 0."""
        self.flow_state *= k.decay

    def exogenous_return(self, t: int, u) -> float:
        """Drift, the macro factor, cross-asset moves, fat-tailed diffusion and jumps (log); the macro
        factor's and the diffusion's terms scaled by the conditional vol ``m`` (model v4)."""
        d = self.drv
        z = student_t(self.prep, u[0]) if self.p["TAIL_DOF"] > 0.0 else standard_normal(self.prep, u[0])
        x = standard_normal(self.prep, u[2])
        drift = d["DRIFT"][t] + d["MACRO_BETA"][t] * d["MACRO_DRIFT"][t] + d["CROSS_ASSET_RETURN"][t]
        r = drift + self.vol_multiplier() * (d["MACRO_BETA"][t] * d["MACRO_VOL"][t] * x + d["VOL"][t] * z)
        if u[3] < d["JUMP_PROB"][t]:
            r += self.p["JUMP_MEAN"] + self.p["JUMP_STDEV"] * standard_normal(self.prep, u[1])
        if d["SCHEDULED_JUMP"][t] != 0.0 or d["SCHEDULED_JUMP_SPREAD"][t] != 0.0:
            r += d["SCHEDULED_JUMP"][t] + d["SCHEDULED_JUMP_SPREAD"][t] * standard_normal(self.prep, u[8])
        return r

    # -- 3
    def margin_changes(self, t: int, s: float) -> float:
        """New margin rates at their change steps (USD-per-BTC requirements converted at ``s``): a
        venue's new rates are floors under each of its rows' own; a row whose initial rate rises
        makes its over-levered positions top up or cut; where a change happens, the momentum traders
        keep their share of each side (model v7). Returns the cut flow."""
        cut_usd = 0.0
        before = self.side_sizes()
        changed = False
        for v, venue in enumerate(self.venue):
            if venue["MARGIN_CHANGE"][t] == 0.0:
                continue
            changed = True
            mm_usd, im_usd = venue["MM_USD_PER_BTC"][t], venue["IM_USD_PER_BTC"][t]
            venue_mmr = mm_usd / s if mm_usd > 0.0 else venue["MMR"][t]
            venue_imr = im_usd / s if im_usd > 0.0 else venue["IMR"][t]
            for r in self.book.rows_of(v):
                row = self.book.rows[r]
                self.mmr[r] = max(row.mmr, venue_mmr)
                imr = min(max(row.imr, venue_imr, self.mmr[r] * 1.0001), 1.0)
                if imr > self.imr[r]:
                    cut = enforce_initial_margin(self.book, r, s, 1.0 / imr, venue["TOP_UP_FRACTION"][t])
                    cut_usd += (cut[SHORT] - cut[LONG]) * s
                self.imr[r] = imr
        if changed:
            self.momentum_follow(before)
        return cut_usd

    # -- 4
    def etf_flow(self, t: int, s: float) -> tuple[float, float]:
        """Scheduled ETF flow plus reflexive redemptions (trailing loss, price below cost basis)."""
        d = self.drv
        loss = max(0.0, 1.0 - s / self.lookback_price(t, self.p["ETF_LOOKBACK_STEPS"]))
        below_basis = max(0.0, 1.0 - s / self.p["ETF_COST_BASIS_USD"])
        reflexive = -self.etf_holdings * s * (d["ETF_LOSS_SENS"][t] * loss + d["ETF_BASIS_SENS"][t] * below_basis) \
            * d["ETF_WINDOW"][t] * d["ETF_REFLEX_MULT"][t]
        etf = d["ETF_FLOW_USD"][t] + reflexive
        self.etf_holdings = max(0.0, self.etf_holdings + etf / s)
        return etf, reflexive

    def miner_sales(self, t: int, s: float) -> float:
        """Miners sell reserves when the hash price is below breakeven, plus forced sales."""
        d = self.drv
        network = max(self.hashrate * d["MINER_HASHRATE_MULT"][t], 1e-9)
        hash_price = self.p["MINER_REVENUE_BTC_PER_DAY"] * s / network
        shortfall = max(0.0, 1.0 - hash_price / d["MINER_BREAKEVEN"][t])
        sold = min(self.miner_reserves,
                   self.miner_reserves * self.p["MINER_SELL_SENSITIVITY"] * shortfall * self.dt_days
                   + d["MINER_FORCED_SALE_BTC"][t])
        self.miner_reserves -= sold
        if d["DIFFICULTY_ADJUST"][t] != 0.0:
            drop = self.p["MINER_HASHRATE_SENSITIVITY"] * shortfall
            self.hashrate = self.p["MINER_HASHRATE_PH"] * max(0.05, 1.0 - drop)
        return -sold * s

    def dealer_rehedge(self, t: int) -> float:
        """Dealers trade toward the tabulated hedge at the step-start price and the ATM implied vol
        the previous step left (model v6)."""
        target = dealer_hedge(self.prep, t, self.start_ln_price, self.iv)
        flow = (target - self.hedge) * self.start_price
        self.hedge = target
        return flow

    def funding_rate(self, s: float) -> float:
        """Base rate plus a share of the book's long/short imbalance, capped (per interval)."""
        longs, shorts = self.book.size(LONG) * s, self.book.size(SHORT) * s
        imbalance = (longs - shorts) / (longs + shorts) if longs + shorts > 0.0 else 0.0
        cap = self.p["FUNDING_CAP"]
        return min(cap, max(-cap, self.p["FUNDING_BASE"] + self.p["FUNDING_SENSITIVITY"] * imbalance))

    def voluntary_deleveraging(self, s: float, funding: float) -> float:
        """Each side closes a share ``hazard * dt`` of itself (model v5): the holding-time hazard
        ``lam``, plus the stop-loss and take-profit terms on the gain ``g = s/e - 1`` against the
        average entry ``e`` (a long loses when ``g < 0``, a short when ``g > 0``), realised vol above
        the reference and the funding the side pays. Returns the flow (longs sell, shorts buy), from
        the sides' sizes before the close."""
        p = self.p
        vol_annual = math.sqrt(self.realised_var / p["DT_YEARS"])
        vol_excess = max(0.0, vol_annual - p["DELEV_VOL_REFERENCE"])
        funding_day = funding * p["FUNDING_INTERVALS_PER_DAY"]
        lam, stop_loss, take_profit = p["DELEV_BASE"], p["DELEV_DRAWDOWN"], p["DELEV_TAKE_PROFIT"]
        vol, fund = p["DELEV_VOLATILITY"], p["DELEV_FUNDING"]
        g = s / self.entry - 1.0
        hazard_long = (lam + stop_loss * max(0.0, -g) + take_profit * max(0.0, g) + vol * vol_excess
                       + fund * max(0.0, funding_day))
        hazard_short = (lam + stop_loss * max(0.0, g) + take_profit * max(0.0, -g) + vol * vol_excess
                        + fund * max(0.0, -funding_day))
        close_long = min(1.0, hazard_long * self.dt_days)
        close_short = min(1.0, hazard_short * self.dt_days)
        flow = close_short * self.book.size(SHORT) * s - close_long * self.book.size(LONG) * s
        self.book.shrink(LONG, 1.0 - close_long)
        self.book.shrink(SHORT, 1.0 - close_short)
        self.momentum_long *= 1.0 - close_long  # model v7: the momentum traders close their share too
        self.momentum_short *= 1.0 - close_short
        return flow

    def new_leverage(self, which: int, node: int) -> float:
        """The leverage of node ``node`` of the prepared equal-mass nodes, row ``which`` (0 new
        longs, 1 new shorts, 2 momentum traders)."""
        return float(self.prep.new_leverage[which][node])

    def open_positions(self, side: str, btc: float, leverage: float) -> None:
        """``btc`` of new positions at ``leverage`` (capped by each row's initial margin) at the
        step-start price (their entry price), spread over the rows by their share of new positions
        (each venue's share, in its smallest class)."""
        sign = -1.0 if side == LONG else 1.0
        for r, row in enumerate(self.book.rows):
            size = btc * row.share
            if size <= 0.0:
                continue
            lev = min(leverage, 0.999 / self.imr[r])
            self.book.deposit(side, r, log_bankruptcy(self.start_ln_price, sign, lev), size, size * self.start_price)

    def open_cycling(self, side: str, which: int, btc: float) -> None:
        """Model v8: ``btc`` of a side's arrivals, walked through its leverage nodes by volume: the
        node now takes what its room allows, a full node hands on to the next with a fresh quantum,
        until ``btc`` is spent (nothing when the side started empty: no quantum)."""
        quantum = self.node_quantum[side]
        if quantum <= 0.0:
            return
        left = btc
        while left > 0.0:
            piece = min(left, self.node_room[side])
            self.open_positions(side, piece, self.new_leverage(which, self.node[side]))
            left -= piece
            self.node_room[side] -= piece
            if self.node_room[side] <= 0.0:
                self.node[side] = (self.node[side] + 1) % N_NEW_NODES
                self.node_room[side] = quantum

    def new_positions(self, t: int, s: float) -> float:
        """Turnover arrivals (model v5): each side opens ``lam*dt`` times its starting size (``L0``,
        ``S0``), longs then shorts, cycling through the nodes of their leverage distributions by
        volume (model v8, :meth:`open_cycling`). Returns the flow (new longs buy, new shorts sell)."""
        rate = self.p["DELEV_BASE"] * self.dt_days
        new_long, new_short = rate * self.long0, rate * self.short0
        if new_long > 0.0:
            self.open_cycling(LONG, 0, new_long)
        if new_short > 0.0:
            self.open_cycling(SHORT, 1, new_short)
        return (new_long - new_short) * s

    def close_pro_rata(self, side: str, btc: float) -> None:
        """Close ``btc`` of a side pro rata: every cell keeps ``1 - btc/size(side)`` (a voluntary
        close, :meth:`Book.shrink`); a share within 1e-9 of 1 (or, by rounding, above it) empties
        the side: the kernel's running sums and the cells differ in the last bits, and a residue of
        1e-12 BTC would swing the funding imbalance of a side holding nothing else."""
        share = btc / self.book.size(side)
        self.book.shrink(side, 1.0 - share if share < 1.0 - CLOSE_ALL_SLACK else 0.0)

    def open_momentum(self, side: str, btc: float) -> None:
        """Model v8: the momentum traders' ``btc`` of a side, an equal share at every node of their
        leverage distribution (row 2)."""
        for node in range(N_NEW_NODES):
            self.open_positions(side, btc / N_NEW_NODES, self.new_leverage(2, node))

    def momentum_and_fuel(self, t: int, s: float) -> float:
        """Momentum traders (model v7) trade toward their target ``T = sign(ret)*min(MOMENTUM_RATE*
        MOMENTUM_HOLD_DAYS*excess, MOMENTUM_CAPITAL)*(L0 + S0)`` (BTC, ``excess`` the lookback return's size beyond
        the threshold): their net position ``M = M_long - M_short`` moves to ``M_new = T + (M - T)*k``.
        Up to 0 from the side they hold they close pro rata (:meth:`close_pro_rata`); beyond it they
        open, split equally over all the nodes of their leverage distribution (model v8,
        :meth:`open_momentum`; crossing 0: close all, then open the other side). Then the
        relief-rally shorts. Returns the flow ``(M_new - M)*s`` less the fuel."""
        ret = s / self.lookback_price(t, self.p["MOMENTUM_LOOKBACK_STEPS"]) - 1.0
        excess = max(0.0, min(abs(ret), MOMENTUM_RETURN_CAP) - self.p["MOMENTUM_THRESHOLD"])  # a breakout's size
        target = 0.0
        if ret != 0.0:
            size = min(self.p["MOMENTUM_RATE"] * self.p["MOMENTUM_HOLD_DAYS"] * excess, self.p["MOMENTUM_CAPITAL"])
            target = math.copysign(1.0, ret) * size * (self.long0 + self.short0)
        held = self.momentum_long - self.momentum_short
        new = target + (held - target) * self.momentum_keep
        if self.momentum_short == 0.0:  # flat or long
            if new >= self.momentum_long:
                opened = new - self.momentum_long
                if opened > 0.0:
                    self.open_momentum(LONG, opened)
                    self.momentum_long += opened
            elif new >= 0.0:
                self.close_pro_rata(LONG, self.momentum_long - new)
                self.momentum_long = new
            else:
                if self.momentum_long > 0.0:
                    self.close_pro_rata(LONG, self.momentum_long)
                self.momentum_long = 0.0
                self.open_momentum(SHORT, -new)
                self.momentum_short = -new
        else:  # short (then M_long is 0)
            if new <= -self.momentum_short:
                opened = -new - self.momentum_short
                if opened > 0.0:
                    self.open_momentum(SHORT, opened)
                    self.momentum_short += opened
            elif new <= 0.0:
                self.close_pro_rata(SHORT, self.momentum_short + new)
                self.momentum_short = -new
            else:
                self.close_pro_rata(SHORT, self.momentum_short)
                self.momentum_short = 0.0
                self.open_momentum(LONG, new)
                self.momentum_long = new
        flow = (new - held) * s
        fuel = self.drv["NEW_SHORT_NOTIONAL_USD"][t]
        if fuel > 0.0:
            self.open_positions(SHORT, fuel / s, self.drv["NEW_SHORT_LEVERAGE"][t])
            flow -= fuel
        return flow

    def follow_entry(self) -> None:
        """The average entry after the step: ``e <- w*e + (1 - w)*P``, ``P`` the step's close."""
        w = self.p["ENTRY_EMA_DECAY"]
        self.entry = w * self.entry + (1.0 - w) * self.price

    # -- 5
    def flow_impact(self, q: float, k: Impact) -> None:
        """The step's net flow ``q`` (USD), executed evenly over the step: ``lam*q`` moves the
        fundamental for good, ``gain*q`` (what is still unhealed at the step's end) enters ``J``."""
        self.ln_fundamental += k.permanent_coef * q
        self.flow_state += k.gain * q
        self.set_price(k)

    # -- 6
    def pay_funding(self, t: int, funding: float) -> None:
        """Longs pay ``funding`` per interval to shorts out of margin: every bankruptcy price moves
        by ``1 + f`` per payment (compounded for several in one step)."""
        events = self.drv["FUNDING_EVENTS"][t]
        if events != 0.0:
            self.book.funding_shift *= (1.0 + funding) ** events


    # -- 7
    def bridge_extremes(self, u_low: float, u_high: float, k: Impact) -> tuple[float, float]:
        """The step's lowest and highest log price: the path from the open ``a`` to the close ``c``
        is a Brownian bridge of variance ``v``, whose extremes are, from uniforms,
        ``(a + c -+ sqrt((a - c)^2 - 2 v ln u)) / 2`` (the straight line when ``v = 0``); within the
        clamp, like the close."""
        a, c = self.start_ln_price, self.ln_price
        if k.variance == 0.0:
            low, high = min(a, c), max(a, c)
        else:
            low = (a + c - math.sqrt((a - c) ** 2 - 2.0 * k.variance * math.log(u_low))) / 2.0
            high = (a + c + math.sqrt((a - c) ** 2 - 2.0 * k.variance * math.log(u_high))) / 2.0
        return max(low, self.ln_floor), min(high, self.ln_ceiling)

    def settle(self, venue: int, surplus: float, deficit: float) -> float:
        """Settle one batch of liquidations (one side of one venue in one round) against the venue's
        insurance fund: the equity left in the positions closed above their bankruptcy price feeds
        it, then the losses beyond margin of those closed below it (bad debt) draw on it; what it
        cannot pay is left to ADL. Returns the ADL amount (USD)."""
        tot = self.totals
        tot["liquidation_surplus_usd"] += surplus
        tot["bad_debt_usd"] += deficit
        self.fund[venue] += surplus
        self.fund[venue] -= deficit
        if self.fund[venue] >= 0.0:
            return 0.0
        adl = -self.fund[venue]
        self.fund[venue] = 0.0
        tot["adl_usd"] += adl
        self.events["adl"] += adl
        return adl

    def auto_deleverage(self, side: str, venue: int, usd: float) -> None:
        """Ranked ADL: ``usd`` of notional, at the current price (the round's start: the price moves
        only between rounds), is taken from the open positions of ``side`` on every row of
        ``venue``, the highest :func:`adl_score` first, compared in single precision (ties: the first
        row, then the first cell);
        each is closed whole while the amount left covers it, the last one in part."""
        price, book = self.price, self.book
        queue = []
        for r in book.rows_of(venue):
            for c, size in enumerate(book.cells[side][r]):
                if size > 0.0:
                    # single precision: equal ranks (to ~7 digits) tie whatever their float64 last bits
                    score = float(np.float32(adl_score(side, price, book.entry_price[side][r][c],
                                                       book.bankruptcy(c))))
                    queue.append((score, r, c))
        left = usd
        for _, r, c in sorted(queue, key=lambda item: -item[0]):  # stable: ties stay in (row, cell) order
            notional = book.cells[side][r][c] * price
            if notional <= left:
                book.take(side, r, c)
                left -= notional
            else:
                book.cells[side][r][c] *= 1.0 - left / notional  # its entry price stays
                break

    def liquidate(self, side: str, r: int, t: int, extreme: float) -> tuple[float, int]:
        """Close every cell of ``side`` in row ``r`` whose trigger ``T`` the step's low (longs) or
        high (shorts) ``extreme`` has crossed, marked at ``T``, or at the step's open ``S`` if the
        step opened beyond it (``M``), and filled at ``M`` less the venue's penalty (``F``).

        A row with a smaller class below it liquidates a position in part when it can: the share
        ``1 - keep`` is closed at ``F``, and if the equity left (``E``, at ``M`` after the closed
        share's penalty) is positive, the rest moves down a class at the bankruptcy price that keeps
        ``E``; no surplus, no deficit. Otherwise the position closes whole and its equity at ``F`` is
        a surplus or (below 0) a deficit; the batch's are settled against the venue's fund (ADL onto
        the venue's other side). Returns (USD closed, cells closed)."""
        row = self.book.rows[r]
        mmr, penalty = self.mmr[r], self.venue[row.venue]["LIQ_FILL_PENALTY"][t]
        sign = 1.0 if side == LONG else -1.0
        crossed = self.book.crossed(side, r, math.exp(extreme), mmr)
        closed_usd = surplus = deficit = 0.0
        for c in crossed:
            bankruptcy, trigger = self.book.bankruptcy(c), self.book.trigger(side, c, mmr)
            size, entry = self.book.take(side, r, c)
            mark = min(trigger, self.start_price) if side == LONG else max(trigger, self.start_price)
            fill = mark * (1.0 - sign * penalty)
            if row.down >= 0:
                keep = row.keep
                left = sign * size * (mark - bankruptcy) - size * (1.0 - keep) * mark * penalty
                if left > 0.0:  # a partial liquidation: the rest moves down a class
                    usd = size * (1.0 - keep) * fill
                    closed_usd += usd
                    self.totals["partial_liquidations_usd"] += usd
                    self.events["partial_liquidations"] += usd
                    new_bankruptcy = mark - sign * left / (size * keep)
                    at = math.log(new_bankruptcy) if new_bankruptcy > 0.0 else -math.inf
                    self.book.deposit(side, row.down, at, size * keep, entry * keep)
                    continue
            equity = sign * size * (fill - bankruptcy)
            if equity >= 0.0:
                surplus += equity
            else:
                deficit += -equity
            closed_usd += size * fill
        if crossed:
            adl = self.settle(row.venue, surplus, deficit)
            if adl > 0.0:
                self.auto_deleverage(SHORT if side == LONG else LONG, row.venue, adl)
        return closed_usd, len(crossed)

    def cascade(self, t: int, low: float, high: float, k: Impact) -> tuple[float, float, int, float, float]:
        """Rounds of liquidations: in each, row by row (venue by venue, the smallest class first),
        the row's crossed longs then its crossed shorts close, whole or in part. Their flow ``f``
        (USD, buys of shorts less sales of longs) moves the fundamental by ``lam*f`` and ``J`` by
        ``f``; the step's low, high and close shift by the price's move (within the clamp), which
        may cross more, and what partial liquidations moved down a class may be crossed there:
        repeated until nothing crosses or the round cap. A circuit breaker (a move beyond
        CIRCUIT_BREAKER_MOVE since the step's start) stops it and pauses the next
        CIRCUIT_BREAKER_STEPS steps. Returns (long USD, short USD, rounds, low, high)."""
        liq_long = liq_short = 0.0
        rounds = 0
        for _ in range(int(self.p["MAX_CASCADE_ROUNDS"])):
            closed_usd = {LONG: 0.0, SHORT: 0.0}
            closed_cells = 0
            for r in range(self.book.n_rows):
                for side, extreme in ((LONG, low), (SHORT, high)):
                    usd, cells = self.liquidate(side, r, t, extreme)
                    closed_usd[side] += usd
                    closed_cells += cells
            if closed_cells == 0:
                break
            rounds += 1
            liq_long += closed_usd[LONG]
            liq_short += closed_usd[SHORT]
            flow = closed_usd[SHORT] - closed_usd[LONG]
            before = self.ln_price
            self.ln_fundamental += k.permanent_coef * flow
            self.flow_state += flow
            self.set_price(k)
            shift = self.ln_price - before
            low = max(low + shift, self.ln_floor)
            high = min(high + shift, self.ln_ceiling)
            breaker = self.drv["CIRCUIT_BREAKER_MOVE"][t]
            if breaker > 0.0 and abs(self.ln_price - self.start_ln_price) > breaker:
                self.paused_until = t + 1 + int(self.drv["CIRCUIT_BREAKER_STEPS"][t])
                break
        return liq_long, liq_short, rounds, low, high

    # -- one step
    def step(self, t: int, u) -> None:
        s = self.start_price = self.price
        self.start_ln_price = self.ln_price
        self.events = dict.fromkeys(BOOK_EVENT_FIELDS, 0.0)
        if t == 0:
            self.start_regime(u[10])
            self.start_implied_vol()
        self.out.vol_multiplier.append(self.vol_multiplier())
        k = self.impact(t)

        # 1-2. the transient flow state heals; exogenous return (m from h at the step's start), then h moves on
        self.heal(k)
        self.ln_fundamental += self.exogenous_return(t, u)
        self.evolve_volatility(u)
        if self.replay is not None:  # the observed close instead (h has moved on all the same)
            self.ln_fundamental = self.replay[t]

        # 3. margin changes; 4. flows, at the step-start price
        cuts = self.margin_changes(t, s)
        etf, reflexive = self.etf_flow(t, s)
        miners = self.miner_sales(t, s)
        dealers = self.dealer_rehedge(t)
        # the book's open interest at the step's open (USD), the sides the funding imbalance reads (model v11)
        open_interest = (self.book.size(LONG) + self.book.size(SHORT)) * s
        funding = self.funding_rate(s)
        delev = self.voluntary_deleveraging(s, funding)  # model v5: closes, then arrivals, then momentum (v7)
        arrivals = self.new_positions(t, s)
        momentum = self.momentum_and_fuel(t, s)
        forced = self.drv["FORCED_FLOW_USD"][t]
        q = etf + miners + dealers + delev + arrivals + momentum + forced + cuts

        # 5. impact of the net flow; 6. funding payments
        self.flow_impact(q, k)
        self.pay_funding(t, funding)

        # 7. the step's low and high; liquidations at their trigger, unless a circuit breaker pauses them
        low, high = self.bridge_extremes(u[4], u[5], k)
        if t < self.paused_until:
            self.totals["paused_steps"] += 1
            liq_long = liq_short = 0.0
            rounds = 0
        else:
            before = self.side_sizes()
            liq_long, liq_short, rounds, low, high = self.cascade(t, low, high, k)
            self.momentum_follow(before)  # model v7: over the whole cascade, ADL included
        # model v11: the step's liquidations feed the log variance (after its OU move, before the records)
        self.liquidation_feedback(liq_long + liq_short, open_interest)

        # 8. the ATM implied vol at the step's end; records; the average entry moves toward the step's close
        self.follow_implied_vol(t)
        self.record(t, liq_long, liq_short, rounds, funding, low, high,
                    dict(etf=etf, long_liquidations=-liq_long, short_liquidations=liq_short, deleveraging=delev,
                         dealers=dealers, miners=miners, momentum=momentum, new_positions=arrivals, forced=forced,
                         margin_cuts=cuts),
                    reflexive)
        self.follow_entry()

    def record(self, t, liq_long, liq_short, rounds, funding, low, high, flows, reflexive) -> None:
        """Step-end records: price path statistics (the extremes with the step's low and high
        ``exp(low)``, ``exp(high)``; drawdown and realised vol from step-end prices), totals, per-step values."""
        price, tot, out = self.price, self.totals, self.out
        step_return = self.ln_price - self.start_ln_price
        ewma = self.p["VOL_EWMA_DECAY"]
        self.realised_var = ewma * self.realised_var + (1.0 - ewma) * step_return ** 2
        self.start_prices.append(price)
        self.peak = max(self.peak, price)
        lowest = min(math.exp(low), price)
        out.low.append(lowest)
        if lowest < tot["min_price"]:
            tot["min_price"], tot["trough_step"] = lowest, float(t)
        tot["max_price"] = max(tot["max_price"], math.exp(high), price)
        tot["max_drawdown"] = max(tot["max_drawdown"], 1.0 - price / self.peak)
        tot["long_liquidations_usd"] += liq_long
        tot["short_liquidations_usd"] += liq_short
        tot["peak_step_liquidations_usd"] = max(tot["peak_step_liquidations_usd"], liq_long + liq_short)
        tot["max_cascade_rounds"] = max(tot["max_cascade_rounds"], float(rounds))
        tot["min_funding_rate"] = min(tot["min_funding_rate"], funding)
        tot["max_funding_rate"] = max(tot["max_funding_rate"], funding)
        for field, key in (("etf_flow_usd", "etf"), ("miner_sales_usd", "miners"), ("dealer_flow_usd", "dealers"),
                           ("deleveraging_flow_usd", "deleveraging"), ("momentum_flow_usd", "momentum"),
                           ("new_positions_flow_usd", "new_positions"),
                           ("margin_cut_usd", "margin_cuts"), ("forced_flow_usd", "forced")):
            tot[field] += flows[key]
        tot["etf_reflexive_usd"] += reflexive
        out.price.append(price)
        out.open_interest.append(self.book.open_interest_btc() * price)
        out.liq_long.append(liq_long)
        out.liq_short.append(liq_short)
        out.rounds.append(rounds)
        out.atm_iv.append(self.iv)
        for key in FLOW_FIELDS:
            out.flows[key].append(flows[key])
        for key in BOOK_EVENT_FIELDS:
            out.book_events[key].append(self.events[key])
        if self.replay is not None:
            out.stress.append(self.stress(price))

    def stress(self, price: float) -> dict:
        """Margin stress of the book at ``price``: each side's notional and equity (size times the
        distance from the price to the bankruptcy price), the notional a 5% move would liquidate (or
        already crossed, at the row's maintenance rate), and the notional above 4x effective leverage."""
        out = dict.fromkeys(STRESS_FIELDS, 0.0)
        book = self.book
        for r in range(book.n_rows):
            for side, sign in ((LONG, -1.0), (SHORT, 1.0)):
                for c, size in enumerate(book.cells[side][r]):
                    if size <= 0.0:
                        continue
                    pb = book.bankruptcy(c)
                    notional = size * price
                    out[f"{side}_open_interest_usd"] += notional
                    out[f"{side}_equity_usd"] += size * sign * (pb - price)
                    if side == LONG:
                        near = pb / (1.0 - self.mmr[r]) >= price * (1.0 - NEAR_LIQUIDATION)
                        high = pb > price * (1.0 - 1.0 / HIGH_LEVERAGE)
                    else:
                        near = pb / (1.0 + self.mmr[r]) <= price * (1.0 + NEAR_LIQUIDATION)
                        high = pb < price * (1.0 + 1.0 / HIGH_LEVERAGE)
                    out[f"{side}_near_liquidation_usd"] += notional if near else 0.0
                    out[f"{side}_over_4x_usd"] += notional if high else 0.0
        return out

    def finish(self) -> PathResult:
        tot = self.totals
        tot["terminal_price"] = self.price
        tot["open_interest_end_usd"] = self.book.open_interest_btc() * self.price
        tot["insurance_fund_end_usd"] = sum(self.fund)
        self.out.summary = {k: float(tot[k]) for k in SUMMARY_FIELDS}
        return self.out


def simulate_path(prep, uniforms, replay=None) -> PathResult:
    """One path of the model from the prepared scenario and the path's ``(n_steps, 12)`` uniforms
    (:func:`path_uniforms`: ``u0`` diffusion, ``u1`` jump size, ``u2`` macro factor, ``u3`` jump
    occurrence, ``u4`` and ``u5`` the step's bridge low and high, ``u6`` the log variance's shock,
    ``u8`` the scheduled-jump spread, ``u10`` the starting regime; NaN where not drawn).
    ``replay``: the log price at the end of every step, to replay an observed path (then the
    uniforms are drawn on and unused, as in the kernel, and ``h`` still evolves)."""
    path = _Path(prep, replay)
    for t in range(path.n_steps):
        path.step(t, [float(x) for x in uniforms[t]])
    return path.finish()
