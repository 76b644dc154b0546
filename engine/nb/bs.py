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
"""

from __future__ import annotations

import math

from .config import jit

SQRT2 = math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@jit
def norm_cdf_nb(x):
    return 0.5 * math.erfc(-x / SQRT2)


@jit
def norm_pdf_nb(x):
    return INV_SQRT_2PI * math.exp(-0.5 * x * x)


@jit
def bs_price_nb(is_call, s, k, t, r, q, vol):
    """Price of a European call (``is_call``) or put."""
    if t <= 0.0:
        return max(s - k, 0.0) if is_call else max(k - s, 0.0)
    df_r = math.exp(-r * t)
    df_q = math.exp(-q * t)
    if vol <= 0.0:  # deterministic forward
        fwd = s * df_q - k * df_r
        return max(fwd, 0.0) if is_call else max(-fwd, 0.0)
    sq = vol * math.sqrt(t)
    d1 = (math.log(s / k) + (r - q + 0.5 * vol * vol) * t) / sq
    d2 = d1 - sq
    if is_call:
        return s * df_q * norm_cdf_nb(d1) - k * df_r * norm_cdf_nb(d2)
    return k * df_r * norm_cdf_nb(-d2) - s * df_q * norm_cdf_nb(-d1)


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
    d1 = (math.log(s / k) + (r - q + 0.5 * vol * vol) * t) / sq
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
        d1 = (math.log(s / k) + (r - q + 0.5 * vol * vol) * t) / (vol * sq)
        vega = s * df_q * norm_pdf_nb(d1) * sq
        step = vol - diff / vega if vega > 0.0 else -1.0
        vol = step if lo < step < hi else 0.5 * (lo + hi)
        if hi - lo < 1e-15:
            return vol
    return vol
