"""Black-Scholes-Merton against published values, and the identities any pricer must satisfy."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.nb.bs import bs_greeks_nb, bs_price_nb
from engine.options import black_scholes as bs

from conftest import SHARED_DATA

REFERENCE = SHARED_DATA / "reference" / "black_scholes_reference_values.csv"


def _rows():
    if not REFERENCE.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"../shared/data is absent ({REFERENCE})"))]
    with REFERENCE.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [pytest.param(row, id=f"row{i + 1}-{row['quantity']}-{row['option_type']}") for i, row in enumerate(rows)]


def _value(row) -> float:
    """The row's quantity in the row's own unit convention (``units_note``)."""
    kind, quantity = row["option_type"], row["quantity"]
    spot, strike, t, r, vol = (float(row[k]) for k in ("spot", "strike", "time_years", "rate_r", "vol"))
    if quantity == "black76_price":  # the spot column holds the forward
        return float(bs.black76_price(kind, spot, strike, t, r, vol))
    q = float(row["div_yield_q"] or 0.0)
    return float(bs.greek(quantity, kind, spot, strike, t, r, q, vol))


@pytest.mark.parametrize("row", _rows())
def test_every_reference_row_within_its_tolerance(row):
    expected, tolerance = float(row["expected"]), float(row["tolerance"])
    got = _value(row)
    assert abs(got - expected) <= tolerance, f"{row['source_locator']}: {row['quantity']} {got} vs {expected}"
    if "implied vol of this price must be" in row["units_note"]:
        target = float(row["units_note"].rsplit(" ", 1)[1])
        vol = bs.implied_vol(row["option_type"], expected, float(row["spot"]), float(row["strike"]),
                             float(row["time_years"]), float(row["rate_r"]), float(row["div_yield_q"] or 0.0))
        assert abs(float(vol) - target) < 1e-6


def test_every_quantity_in_the_reference_file_has_a_convention():
    if not REFERENCE.is_file():
        pytest.skip(f"../shared/data is absent ({REFERENCE})")
    with REFERENCE.open(newline="") as f:
        quantities = {row["quantity"] for row in csv.DictReader(f)}
    assert quantities <= set(bs.GREEKS) | {"black76_price"}


prices = st.floats(1.0, 1e6)
vols = st.floats(0.01, 3.0)
times = st.floats(1 / 365, 5.0)
rates = st.floats(-0.02, 0.2)


@settings(max_examples=300, deadline=None)
@given(s=prices, m=st.floats(0.3, 3.0), t=times, r=rates, q=rates, vol=vols)
def test_put_call_parity_and_bounds(s, m, t, r, q, vol):
    k = s * m
    call = float(bs.price("call", s, k, t, r, q, vol))
    put = float(bs.price("put", s, k, t, r, q, vol))
    fwd = s * math.exp(-q * t) - k * math.exp(-r * t)
    assert call - put == pytest.approx(fwd, abs=1e-9 * s)
    assert max(fwd, 0.0) - 1e-9 * s <= call <= s * math.exp(-q * t) + 1e-9 * s
    assert max(-fwd, 0.0) - 1e-9 * s <= put <= k * math.exp(-r * t) + 1e-9 * s


@settings(max_examples=200, deadline=None)
@given(s=prices, m=st.floats(0.5, 2.0), t=times, r=rates, q=rates, vol=vols)
def test_greeks_are_the_derivatives_of_the_price(s, m, t, r, q, vol):
    k = s * m
    for kind in ("call", "put"):
        g = bs.greeks(kind, s, k, t, r, q, vol)
        scale = max(float(g["price"]), 1e-3 * s)

        def p(**kw):
            args = dict(s=s, t=t, r=r, q=q, vol=vol) | kw
            return float(bs.price(kind, args["s"], k, args["t"], args["r"], args["q"], args["vol"]))

        hs, hv, hr = 1e-3 * s * vol * math.sqrt(t), 1e-5, 1e-6  # spot step: a small share of a std dev
        assert float(g["delta"]) == pytest.approx((p(s=s + hs) - p(s=s - hs)) / (2 * hs), abs=1e-5 + 1e-6 * scale / s)
        assert float(g["vega"]) == pytest.approx((p(vol=vol + hv) - p(vol=vol - hv)) / (2 * hv), rel=1e-4, abs=1e-6 * scale)
        assert float(g["rho"]) == pytest.approx((p(r=r + hr) - p(r=r - hr)) / (2 * hr), rel=1e-4, abs=1e-6 * scale)
        assert float(g["dividend_rho"]) == pytest.approx((p(q=q + hr) - p(q=q - hr)) / (2 * hr), rel=1e-4, abs=1e-6 * scale)
        if t > 2e-3:  # theta: the value's change as calendar time passes, -d/dT
            ht = 1e-6
            assert float(g["theta"]) == pytest.approx(-(p(t=t + ht) - p(t=t - ht)) / (2 * ht), rel=1e-3, abs=1e-5 * scale)


@settings(max_examples=300, deadline=None)
@given(s=prices, m=st.floats(0.5, 2.0), t=times, r=st.floats(0.0, 0.1), vol=st.floats(0.05, 2.0))
def test_implied_vol_recovers_the_vol(s, m, t, r, vol):
    k = s * m
    for kind in ("call", "put"):
        p = float(bs.price(kind, s, k, t, r, 0.0, vol))
        g = bs.greeks(kind, s, k, t, r, 0.0, vol)
        if float(g["vega"]) < 1e-4 * s:  # a vol point moves the price by under 1e-6 of spot: not identified
            continue
        assert float(bs.implied_vol(kind, p, s, k, t, r, 0.0)) == pytest.approx(vol, rel=1e-6)


def test_implied_vol_outside_the_bounds_is_nan_and_at_intrinsic_is_zero():
    assert np.isnan(bs.implied_vol("call", 200.0, 100.0, 100.0, 1.0))  # above the spot
    assert np.isnan(bs.implied_vol("put", 1.0, 100.0, 100.0, 0.0))  # expired
    assert float(bs.implied_vol("call", 10.0, 110.0, 100.0, 1.0)) == 0.0


def test_limits_at_expiry_and_zero_vol():
    assert float(bs.price("put", 55_000.0, 60_000.0, 0.0, vol=0.5)) == 5_000.0
    g = bs.greeks("put", 55_000.0, 60_000.0, 0.0, vol=0.5)
    assert float(g["delta"]) == -1.0 and float(g["gamma"]) == 0.0
    assert float(bs.price("call", 100.0, 90.0, 1.0, r=0.05, vol=0.0)) == pytest.approx(100.0 - 90.0 * math.exp(-0.05))


def test_arrays_broadcast_and_match_the_kernel_functions():
    strikes = np.array([50_000.0, 55_000.0, 60_000.0])
    kinds = np.array(["put", "put", "call"])
    vols = np.array([[0.5], [0.8]])
    out = bs.greeks(kinds, 60_000.0, strikes, 30 / 365.25, 0.04, 0.0, vols)
    assert out["price"].shape == (2, 3)
    for i in range(2):
        for j in range(3):
            ref = bs_greeks_nb(kinds[j] == "call", 60_000.0, strikes[j], 30 / 365.25, 0.04, 0.0, vols[i, 0])
            assert out["price"][i, j] == ref[0] == bs_price_nb(kinds[j] == "call", 60_000.0, strikes[j],
                                                                30 / 365.25, 0.04, 0.0, vols[i, 0])
            assert out["delta"][i, j] == ref[1]


def test_bad_kind_and_unknown_greek_are_named():
    with pytest.raises(ValueError, match="'straddle'"):
        bs.price("straddle", 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="unknown greek 'vanna'"):
        bs.greek("vanna", "call", 1.0, 1.0, 1.0)
