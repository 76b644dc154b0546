"""Black-Scholes-Merton prices, greeks and implied vol as scalar numba functions, for kernels.

Conventions (those of Haug 1998 and QuantLib): ``s`` spot, ``k`` strike, ``t`` years, ``r`` the
continuously compounded rate, ``q`` the dividend yield (the foreign rate for FX; 0 for BTC
options quoted on spot with USD rates), ``vol`` per 1.00 a year. Greeks are per unit of their
variable: delta per 1 of spot, gamma per 1 of spot squared, vega per 1.00 of vol, theta per year
(the price's change as calendar time passes, so usually negative), rho per 1.00 of rate,
``dividend_rho`` per 1.00 of ``q``. :mod:`engine.options.black_scholes` wraps these for arrays and
converts to the other conventions (vega per vol point, theta per day, rho per 1%).

At ``t <= 0`` or ``vol <= 0`` an option is worth its discounted intrinsic value on the forward
(``t <= 0``: plain intrinsic) and its greeks are those of that limit (delta 0 or +-1, the others 0).
The normal CDF is ``erfc`` based, accurate to about 1e-16 relative in both tails.

This module is the engine's one pricing source. Black-Scholes-Merton is the Black (1976) formula
on the forward ``F = S exp((r - q) t)``, discounted (:func:`black_price_nb`, ``ln(K/F)`` and
``vol sqrt(t)`` passed in so a caller that already has them does not recompute them), and the
implied-vol smile of :mod:`engine.options.surface` is :func:`smile_vol_nb`. The strategy kernels
(:mod:`engine.nb.hedge`: no rates, the forward is the spot), the dealers' hedge table
(:func:`dealer_delta_table_nb`), the surface's :meth:`~engine.options.surface.VolSurface.vol` and
the array functions of :mod:`engine.options.black_scholes` all call these, so a vol or a price is
the same number wherever it is computed.
"""

from __future__ import annotations

import math

from .config import jit

SQRT2 = math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
Z25 = 0.6744897501960817  # Phi^-1(0.75): the standardised moneyness |x| of a 25-delta option


@jit
def norm_cdf_nb(x):
    return 0.5 * math.erfc(-x / SQRT2)


@jit
def norm_pdf_nb(x):
    return INV_SQRT_2PI * math.exp(-0.5 * x * x)


@jit
def smile_vol_nb(lkf, t, sqt, atm, rr25, bf25, term_slope, ref_tenor, floor):
    """The implied vol of the surface (:mod:`engine.options.surface`) at log-moneyness ``lkf =
    ln(K/F)`` and tenor ``t`` years (``sqt = sqrt(t)``): with ``a = max(atm + term_slope * (t -
    ref_tenor), floor)`` and ``x = lkf / (a sqt)``, ``max(a + rr25 / (2 Z25) x + bf25 / Z25^2 x^2,
    floor)``."""
    a = max(atm + term_slope * (t - ref_tenor), floor)
    x = lkf / (a * sqt)
    return max(a + rr25 / (2.0 * Z25) * x + bf25 / (Z25 * Z25) * x * x, floor)


@jit
def smile_vols_nb(lkf, t, atm, rr25, bf25, term_slope, ref_tenor, floor, out):
    """:func:`smile_vol_nb` over 1-d arrays of equal length (``t > 0``) into ``out``."""
    for i in range(out.size):
        out[i] = smile_vol_nb(lkf[i], t[i], math.sqrt(t[i]), atm[i], rr25[i], bf25[i], term_slope[i],
                              ref_tenor[i], floor[i])


@jit
def black_d1_nb(lkf, t, sq, vol):
    """``d1 = (-ln(K/F) + vol^2 t / 2) / (vol sqrt(t))``, ``sq = vol sqrt(t)``."""
    return (-lkf + 0.5 * vol * vol * t) / sq


@jit
def black_price_nb(is_call, f, k, lkf, t, sq, vol):
    """The undiscounted Black (1976) price on the forward ``f`` (``t > 0``, ``vol > 0``; ``lkf =
    ln(k/f)``, ``sq = vol sqrt(t)``)."""
    d1 = black_d1_nb(lkf, t, sq, vol)
    d2 = d1 - sq
    if is_call:
        return f * norm_cdf_nb(d1) - k * norm_cdf_nb(d2)
    return k * norm_cdf_nb(-d2) - f * norm_cdf_nb(-d1)


@jit
def black_delta_nb(is_call, lkf, t, sq, vol):
    """The forward delta of :func:`black_price_nb`: ``N(d1)`` for a call, ``-N(-d1)`` for a put
    (not ``N(d1) - 1``, which loses a far out-of-the-money put's digits)."""
    d1 = black_d1_nb(lkf, t, sq, vol)
    return norm_cdf_nb(d1) if is_call else -norm_cdf_nb(-d1)


@jit
def black_price_delta_nb(is_call, f, k, lkf, t, sq, vol):
    """``(black_price_nb, black_delta_nb)`` with ``d1`` computed once: the same operations, so the
    same bits."""
    d1 = black_d1_nb(lkf, t, sq, vol)
    d2 = d1 - sq
    if is_call:
        n_d1 = norm_cdf_nb(d1)
        return f * n_d1 - k * norm_cdf_nb(d2), n_d1
    n_minus_d1 = norm_cdf_nb(-d1)
    return k * norm_cdf_nb(-d2) - f * n_minus_d1, -n_minus_d1


@jit
def dealer_delta_table_nb(log_s, log_spot, strike, is_call, expiry, weight, years, rr25, term_slope, levels, bf25,
                          skew_beta, ref_tenor, floor, out):
    """``out[t, j, g] = sum_o weight[t, o] * delta_o``: the summed Black deltas of options ``o``
    (``strike``, ``is_call``, ``expiry`` years) at step ``t`` (time ``years[t]``), on the surface
    with ATM level ``levels[j]``, the step's ``rr25[t]`` moved by ``skew_beta`` times the log return
    ``log_s[g] - log_spot`` and its ``term_slope[t]``, at the price ``exp(log_s[g])`` taken as the
    forward. An expired option (``expiry <= years[t]``) counts 0."""
    n_steps, n_levels, n_grid = out.shape
    for t in range(n_steps):
        for j in range(n_levels):
            atm = levels[j]
            for g in range(n_grid):
                rr = rr25[t] + skew_beta * (log_s[g] - log_spot)
                total = 0.0
                for o in range(strike.size):
                    tau = expiry[o] - years[t]
                    if tau <= 0.0:
                        continue
                    sqt = math.sqrt(tau)
                    lkf = math.log(strike[o]) - log_s[g]
                    vol = smile_vol_nb(lkf, tau, sqt, atm, rr, bf25, term_slope[t], ref_tenor, floor)
                    total += weight[t, o] * black_delta_nb(is_call[o], lkf, tau, vol * sqt, vol)
                out[t, j, g] = total


@jit
def bs_price_nb(is_call, s, k, t, r, q, vol):
    """Price of a European call (``is_call``) or put: :func:`black_price_nb` on the forward
    ``s exp((r - q) t)``, discounted at ``r``."""
    if t <= 0.0:
        return max(s - k, 0.0) if is_call else max(k - s, 0.0)
    df_r = math.exp(-r * t)
    df_q = math.exp(-q * t)
    if vol <= 0.0:  # deterministic forward
        fwd = s * df_q - k * df_r
        return max(fwd, 0.0) if is_call else max(-fwd, 0.0)
    f = s * math.exp((r - q) * t)
    return df_r * black_price_nb(is_call, f, k, math.log(k / f), t, vol * math.sqrt(t), vol)


@jit
def bs_greeks_nb(is_call, s, k, t, r, q, vol):
    """``(price, delta, gamma, vega, theta, rho, dividend_rho)`` in the module's units."""
    price = bs_price_nb(is_call, s, k, t, r, q, vol)
    if t <= 0.0 or vol <= 0.0:
        itm = (s > k) if is_call else (s < k)
        if t > 0.0:  # vol 0: in the money on the forward
            itm = (s * math.exp(-q * t) > k * math.exp(-r * t)) if is_call else (s * math.exp(-q * t) < k * math.exp(-r * t))
        sign = 1.0 if is_call else -1.0
        delta = sign * math.exp(-q * max(t, 0.0)) if itm else 0.0
        return price, delta, 0.0, 0.0, 0.0, 0.0, 0.0
    df_r = math.exp(-r * t)
    df_q = math.exp(-q * t)
    sqt = math.sqrt(t)
    sq = vol * sqt
    d1 = black_d1_nb(math.log(k / (s * math.exp((r - q) * t))), t, sq, vol)
    d2 = d1 - sq
    pdf = norm_pdf_nb(d1)
    gamma = df_q * pdf / (s * sq)
    vega = s * df_q * pdf * sqt
    decay = -s * df_q * pdf * vol / (2.0 * sqt)
    if is_call:
        nd1 = norm_cdf_nb(d1)
        nd2 = norm_cdf_nb(d2)
        delta = df_q * nd1
        theta = decay - r * k * df_r * nd2 + q * s * df_q * nd1
        rho = k * t * df_r * nd2
        dividend_rho = -s * t * df_q * nd1
    else:
        nd1 = norm_cdf_nb(-d1)
        nd2 = norm_cdf_nb(-d2)
        delta = -df_q * nd1
        theta = decay + r * k * df_r * nd2 - q * s * df_q * nd1
        rho = -k * t * df_r * nd2
        dividend_rho = s * t * df_q * nd1
    return price, delta, gamma, vega, theta, rho, dividend_rho


@jit
def black76_price_nb(is_call, f, k, t, r, vol):
    """Black (1976) price on a forward ``f``, discounted at ``r``: BSM with ``s = f`` and ``q = r``."""
    return bs_price_nb(is_call, f, k, t, r, r, vol)


@jit
def implied_vol_nb(is_call, price, s, k, t, r, q, tol=1e-12, max_iter=100):
    """The vol at which :func:`bs_price_nb` equals ``price``; NaN outside the no-arbitrage bounds.

    Newton's method on vol, safeguarded by a bracket that every step keeps (a step that leaves it
    bisects instead), so it converges from any start; ``tol`` is relative to the price (a deep
    out-of-the-money price of 1e-7 still pins its vol to about 1e-9).
    """
    if t <= 0.0:
        return math.nan
    df_r = math.exp(-r * t)
    df_q = math.exp(-q * t)
    lower = max(s * df_q - k * df_r, 0.0) if is_call else max(k * df_r - s * df_q, 0.0)
    upper = s * df_q if is_call else k * df_r
    if not (lower - tol <= price <= upper + tol):
        return math.nan
    if price <= lower + tol:
        return 0.0
    lo = 0.0
    hi = 1.0
    while bs_price_nb(is_call, s, k, t, r, q, hi) < price and hi < 1e3:
        lo = hi
        hi *= 2.0
    vol = 0.5 * (lo + hi)
    for _ in range(max_iter):
        p = bs_price_nb(is_call, s, k, t, r, q, vol)
        diff = p - price
        if abs(diff) <= tol * price:
            return vol
        if diff > 0.0:
            hi = vol
        else:
            lo = vol
        sq = math.sqrt(t)
        d1 = black_d1_nb(math.log(k / (s * math.exp((r - q) * t))), t, vol * sq, vol)
        vega = s * df_q * norm_pdf_nb(d1) * sq
        step = vol - diff / vega if vega > 0.0 else -1.0
        vol = step if lo < step < hi else 0.5 * (lo + hi)
        if hi - lo < 1e-15:
            return vol
    return vol
