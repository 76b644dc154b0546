"""One pricing source: the strategy kernels, the dealers' hedge table, the surface and the
Black-Scholes functions for arrays compute a vol, a price and a delta with the same code
(:mod:`engine.nb.bs`), so they agree bit for bit, and an independent scipy computation agrees
with them to rounding."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.special import ndtr

import engine
from engine.compile.layout import IV_FLOOR, IV_TENOR, OPTION_PUT
from engine.nb import hedge as nbh
from engine.options import black_scholes as bs
from engine.options.surface import Z25, VolSurface
from engine.simulate import dealer_hedge_table, iv_levels

ROOT = Path(__file__).resolve().parents[1]
SURFACE = dict(atm=0.62, rr25=-0.13, bf25=0.02, term_slope=-0.3)
STRIKES = np.array([40_000.0, 50_000.0, 55_000.0, 60_000.0, 70_000.0, 80_000.0, 95_000.0])
TENORS = np.array([1.0, 7.0, 30.0, 90.0]) / 365.25


def _numpy_smile(k, f, t, atm, rr25, bf25, term_slope, ref_tenor=IV_TENOR, floor=IV_FLOOR):
    """The surface's formula written out again in numpy: an independent check of the one source."""
    a = np.maximum(atm + term_slope * (t - ref_tenor), floor)
    x = np.log(k / f) / (a * np.sqrt(t))
    return np.maximum(a + rr25 / (2 * Z25) * x + bf25 / Z25**2 * x * x, floor)


def test_the_surface_is_the_kernels_smile_bit_for_bit():
    surface = VolSurface(**SURFACE)
    spot = 68_000.0
    for k in STRIKES:
        for t in TENORS:
            _, _, kernel_vol = nbh._smile_nb(k, spot, t, SURFACE["atm"], SURFACE["rr25"], SURFACE["bf25"],
                                             SURFACE["term_slope"], IV_TENOR, IV_FLOOR)
            assert float(surface.vol(k, spot, t)) == kernel_vol
    grid = surface.vol(STRIKES[:, None], spot, TENORS[None, :])
    assert grid.shape == (STRIKES.size, TENORS.size)
    np.testing.assert_allclose(grid, _numpy_smile(STRIKES[:, None], spot, TENORS[None, :], **SURFACE), rtol=1e-14)


def test_the_surface_defaults_are_the_kernels_tenor_and_floor():
    surface = VolSurface()
    assert (surface.ref_tenor, surface.floor) == (IV_TENOR, IV_FLOOR)
    assert float(surface.atm_at(surface.ref_tenor)) == surface.atm


@pytest.mark.parametrize("kind", [0, 1], ids=["put", "call"])
def test_a_kernel_mark_is_black_scholes_on_the_surface_bit_for_bit(kind):
    """The strategy kernel's value and delta of an option are :mod:`engine.options.black_scholes`
    with no rates at the surface's vol: the same bits."""
    surface = VolSurface(**SURFACE)
    for s in (45_000.0, 60_000.0, 82_000.0):
        for k in STRIKES:
            for t in TENORS:
                args = (kind, k, s, t, SURFACE["atm"], SURFACE["rr25"], SURFACE["bf25"], SURFACE["term_slope"],
                        IV_TENOR, IV_FLOOR)
                vol = float(surface.vol(k, s, t))
                g = bs.greeks(bool(kind), s, k, t, 0.0, 0.0, vol)
                value, delta = nbh._option_value_delta_nb(*args)
                assert value == nbh._option_value_nb(*args) == float(g["price"])
                assert delta == nbh._option_delta_nb(*args) == float(g["delta"])


def test_black_scholes_with_rates_is_black_on_the_forward():
    """With rates, the price is Black (1976) on the forward, discounted: scipy's normal agrees."""
    s, k, t, r, q, vol = 70_000.0, 60_000.0, 0.25, 0.045, 0.01, 0.7
    f = s * math.exp((r - q) * t)
    d1 = (math.log(f / k) + 0.5 * vol * vol * t) / (vol * math.sqrt(t))
    d2 = d1 - vol * math.sqrt(t)
    put = math.exp(-r * t) * (k * ndtr(-d2) - f * ndtr(-d1))
    assert float(bs.price("put", s, k, t, r, q, vol)) == pytest.approx(put, rel=1e-13)


def test_the_dealers_table_is_the_summed_deltas_of_the_open_interest():
    """The table written out again with scipy's normal and the numpy smile, cell by cell."""
    compiled = engine.compile_scenario(engine.load_scenario(ROOT / "scenarios" / "feb-2026-deleveraging.yaml",
                                                            overrides=["n_paths=16"]))
    table, lo, inv = dealer_hedge_table(compiled)
    opts = compiled.options
    assert opts.kind.size > 0
    spot = compiled.param("SPOT0")
    log_s = lo + np.arange(table.shape[2]) / inv
    years = np.arange(compiled.n_steps) * compiled.param("DT_YEARS")
    share = compiled.step("DEALER_SHORT_SHARE")
    for t in (0, compiled.n_steps // 2, compiled.n_steps - 1):
        tau = opts.expiry_years - years[t]
        alive = tau > 0
        for j, level in enumerate(iv_levels()[::5]):
            rr = compiled.step("RISK_REVERSAL_25D")[t] + compiled.param("SURFACE_SKEW_BETA") * (log_s - math.log(spot))
            vol = _numpy_smile(opts.strike_usd[None, alive], np.exp(log_s)[:, None], tau[None, alive], level,
                               rr[:, None], compiled.param("SURFACE_BF25"), compiled.step("TERM_SLOPE")[t])
            d1 = (np.log(np.exp(log_s)[:, None] / opts.strike_usd[None, alive]) + 0.5 * vol**2 * tau[None, alive]) / (
                vol * np.sqrt(tau[None, alive]))
            delta = ndtr(d1) - (opts.kind[alive] == OPTION_PUT)[None, :]
            expected = share[t] * delta @ opts.open_interest_btc[t, alive]
            np.testing.assert_allclose(table[t, j * 5], expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())


def test_black_scholes_and_the_smile_are_written_once():
    """No module but :mod:`engine.nb.bs` writes the normal CDF, the 25-delta constant or a ``d1``."""
    offenders = []
    for path in sorted((ROOT / "engine").rglob("*.py")):
        if path == ROOT / "engine" / "nb" / "bs.py":
            continue
        text = path.read_text()
        for pattern in (r"\bZ25\s*=", r"\berfc\(", r"\bndtr\(", r"0\.5 \* vol \* vol", r"\bd1 = \("):
            if re.search(pattern, text):
                offenders.append(f"{path.relative_to(ROOT)}: {pattern}")
    # compile/book.py's ndtr draws the book's entry prices from a lognormal: not an option price
    assert offenders == ["engine/compile/book.py: \\bndtr\\("], offenders
