"""Black-Scholes-Merton for arrays: prices, greeks in named unit conventions, implied vols.

Every function broadcasts its arguments like numpy (scalars or arrays of any compatible shapes)
and returns float arrays (0-d for scalar inputs). The arithmetic is :mod:`engine.nb.bs`, the same
scalar functions the strategy kernels call, so a price here is bit for bit the price a kernel
books. Units, by name (:data:`GREEKS`):

==================  =========================================================
``price``           option value
``delta``           per 1 of spot
``gamma``           per 1 of spot, squared
``vega``            per 1.00 of vol (QuantLib, Haug)
``vega_per_vol_point``  per 1 vol point, ``vega / 100`` (vollib, Deribit)
``theta``           per year of calendar time (QuantLib, Haug)
``theta_per_year``  the same (vollib's per-day theta times 365)
``theta_per_day``   ``theta / 365``
``rho``             per 1.00 of rate
``rho_per_pct``     per 1% of rate, ``rho / 100``
``dividend_rho``    per 1.00 of dividend yield (foreign rate)
``elasticity``      ``delta * spot / price``
==================  =========================================================

Example::

    >>> from engine.options import black_scholes as bs
    >>> float(bs.price("put", 100.0, 95.0, 0.5, 0.10, 0.05, 0.20))   # Haug (1998) p. 2-8
    2.4647...
    >>> bs.greek("theta_per_day", "put", 430.0, 405.0, 1 / 12, 0.07, 0.05, 0.20)
"""

from __future__ import annotations

import numpy as np

from ..nb.bs import black76_price_nb, bs_greeks_nb, implied_vol_nb
from ..nb.config import jit

__all__ = ["price", "greeks", "greek", "black76_price", "implied_vol", "GREEKS"]

_BASE = ("price", "delta", "gamma", "vega", "theta", "rho", "dividend_rho")
_DERIVED = {
    "vega_per_vol_point": ("vega", 0.01),
    "theta_per_year": ("theta", 1.0),
    "theta_per_day": ("theta", 1.0 / 365.0),
    "rho_per_pct": ("rho", 0.01),
}
GREEKS = _BASE + tuple(_DERIVED) + ("elasticity",)


def _is_call(kind) -> np.ndarray:
    kinds = np.asarray(kind)
    if kinds.dtype == bool:
        return kinds
    lowered = np.char.lower(kinds.astype(str))
    bad = ~np.isin(lowered, ("call", "put", "c", "p"))
    if bad.any():
        raise ValueError(f"option kind must be 'call' or 'put', got {np.unique(kinds[bad]).tolist()}")
    return np.isin(lowered, ("call", "c"))


@jit
def _greeks_flat_nb(is_call, s, k, t, r, q, vol, out):
    for i in range(s.shape[0]):
        res = bs_greeks_nb(is_call[i], s[i], k[i], t[i], r[i], q[i], vol[i])
        for j in range(7):
            out[j, i] = res[j]


@jit
def _black76_flat_nb(is_call, f, k, t, r, vol, out):
    for i in range(f.shape[0]):
        out[i] = black76_price_nb(is_call[i], f[i], k[i], t[i], r[i], vol[i])


@jit
def _implied_flat_nb(is_call, p, s, k, t, r, q, out):
    for i in range(s.shape[0]):
        out[i] = implied_vol_nb(is_call[i], p[i], s[i], k[i], t[i], r[i], q[i])


def _flat(kind, *values):
    is_call = _is_call(kind)
    arrays = np.broadcast_arrays(is_call, *(np.asarray(v, dtype=float) for v in values))
    shape = arrays[0].shape
    return shape, [np.array(a.reshape(-1)) for a in arrays]  # copies: broadcast views are read-only


def greeks(kind, spot, strike, t, r=0.0, q=0.0, vol=0.2) -> dict[str, np.ndarray]:
    """All of :data:`GREEKS` for broadcast inputs, as a dict of arrays."""
    shape, (c, s, k, tt, rr, qq, v) = _flat(kind, spot, strike, t, r, q, vol)
    out = np.empty((7, s.size))
    _greeks_flat_nb(c, s, k, tt, rr, qq, v, out)
    res = {name: out[j].reshape(shape) for j, name in enumerate(_BASE)}
    for name, (base, factor) in _DERIVED.items():
        res[name] = res[base] * factor
    with np.errstate(divide="ignore", invalid="ignore"):
        res["elasticity"] = res["delta"] * s.reshape(shape) / res["price"]
    return res


def greek(name: str, kind, spot, strike, t, r=0.0, q=0.0, vol=0.2) -> np.ndarray:
    """One greek (or ``price``) by its name in :data:`GREEKS`."""
    if name not in GREEKS:
        raise ValueError(f"unknown greek {name!r}; expected one of {', '.join(GREEKS)}")
    return greeks(kind, spot, strike, t, r, q, vol)[name]


def price(kind, spot, strike, t, r=0.0, q=0.0, vol=0.2) -> np.ndarray:
    """Black-Scholes-Merton price."""
    return greeks(kind, spot, strike, t, r, q, vol)["price"]


def black76_price(kind, forward, strike, t, r=0.0, vol=0.2) -> np.ndarray:
    """Black (1976) price of an option on a forward, discounted at ``r``."""
    shape, (c, f, k, tt, rr, v) = _flat(kind, forward, strike, t, r, vol)
    out = np.empty(f.size)
    _black76_flat_nb(c, f, k, tt, rr, v, out)
    return out.reshape(shape)


def implied_vol(kind, option_price, spot, strike, t, r=0.0, q=0.0) -> np.ndarray:
    """The vol that reprices ``option_price`` (NaN outside the no-arbitrage bounds or at ``t <= 0``)."""
    shape, (c, p, s, k, tt, rr, qq) = _flat(kind, option_price, spot, strike, t, r, q)
    out = np.empty(s.size)
    _implied_flat_nb(c, p, s, k, tt, rr, qq, out)
    return out.reshape(shape)
