"""The vol surface: what its parameters mean, how it moves, and fits to synthetic and real chains."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from engine.cli import main
from engine.options.surface import DAY, Z25, VolSurface, fit_slices, fit_surface, load_deribit_chain

from conftest import SHARED_DATA

CHAINS = sorted((SHARED_DATA / "options").glob("deribit_btc_options_chain_snapshot_*.csv")) if SHARED_DATA.is_dir() else []


def _at_x(surface: VolSurface, x: float, t: float) -> float:
    """The vol at standardised moneyness ``x`` (strike = F * exp(x * atm(T) * sqrt(T)))."""
    k = np.exp(x * surface.atm_at(t) * np.sqrt(t))
    return float(surface.vol(k, 1.0, t))


def test_parameters_mean_what_the_desk_means():
    s = VolSurface(atm=0.55, rr25=-0.13, bf25=0.02, term_slope=-0.15)
    t = s.ref_tenor
    call25, put25 = _at_x(s, Z25, t), _at_x(s, -Z25, t)
    assert call25 - put25 == pytest.approx(-0.13)  # the 25-delta risk reversal of February 2026
    assert (call25 + put25) / 2 - 0.55 == pytest.approx(0.02)  # the butterfly
    assert float(s.atm_at(t)) == pytest.approx(0.55)
    assert float(s.atm_at(t + 1.0)) == pytest.approx(0.40)  # inverted term structure: longer is lower
    assert float(s.vol(1.0, 1.0, t)) == pytest.approx(0.55)


def test_the_floor_holds_in_the_wings():
    s = VolSurface(atm=0.3, rr25=-0.5)
    assert float(np.min(s.vol(np.geomspace(0.1, 10, 50), 1.0, 30 * DAY))) >= s.floor


def test_moves_with_the_price_as_configured():
    s = VolSurface(atm=0.55, rr25=-0.08, spot_vol_beta=0.5, skew_beta=0.3)
    down, up = s.moved(np.log(0.8)), s.moved(np.log(1.2))
    assert down.atm > s.atm > up.atm  # vol up as the price falls
    assert down.rr25 < s.rr25 < up.rr25  # put skew steeper as it falls
    assert down.atm == pytest.approx(0.55 - 0.5 * np.log(0.8))
    still = VolSurface(atm=0.55, rr25=-0.08).moved(np.log(0.5))  # knobs at 0: no reaction
    assert (still.atm, still.rr25) == (0.55, -0.08)
    assert VolSurface(atm=0.06, spot_vol_beta=1.0).moved(1.0).atm == 0.05  # floored


def _synthetic_chain(truth: VolSurface, noise: float = 0.0, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for days in (7, 14, 35, 90, 180):
        t = days * DAY
        for m in np.linspace(0.6, 1.6, 21):
            for kind in ("put", "call"):
                iv = float(truth.vol(10_000 * m, 10_000.0, t)) + noise * rng.standard_normal()
                rows.append({"kind": kind, "strike": 10_000 * m, "forward": 10_000.0, "t": t, "iv": iv,
                             "expiry": pd.Timestamp("2026-02-05", tz="UTC") + pd.Timedelta(days=days)})
    return pd.DataFrame(rows)


def test_fit_recovers_the_parameters_it_was_generated_with():
    truth = VolSurface(atm=0.62, rr25=-0.13, bf25=0.03, term_slope=-0.2)
    fit = fit_surface(_synthetic_chain(truth))
    got = fit.surface
    assert (got.atm, got.rr25, got.bf25, got.term_slope) == pytest.approx(
        (truth.atm, truth.rr25, truth.bf25, truth.term_slope), abs=1e-6)
    assert fit.rmse < 1e-8
    noisy = fit_surface(_synthetic_chain(truth, noise=0.01)).surface
    assert noisy.rr25 == pytest.approx(truth.rr25, abs=0.01) and noisy.atm == pytest.approx(truth.atm, abs=0.01)


def test_slices_see_each_expiry():
    truth = VolSurface(atm=0.62, rr25=-0.13, bf25=0.03, term_slope=-0.2)
    slices = fit_slices(_synthetic_chain(truth))
    assert len(slices) == 5
    assert slices["rr25"].to_numpy() == pytest.approx(-0.13, abs=1e-6)
    days = slices["days"].to_numpy()
    assert slices["atm"].to_numpy() == pytest.approx(0.62 - 0.2 * (days - 30) / 365.25, abs=1e-6)


@pytest.mark.parametrize("path", CHAINS or [pytest.param(None, marks=pytest.mark.skip(
    reason=f"../shared/data is absent: no Deribit chains under {SHARED_DATA / 'options'}"))],
    ids=lambda p: getattr(p, "stem", "none"))
def test_fit_to_a_real_deribit_chain(path):
    chain = load_deribit_chain(path)
    assert len(chain) > 200 and chain["t"].min() >= 2 * DAY
    fit = fit_surface(chain)
    s = fit.surface
    assert 0.6 < s.atm < 1.1  # May 2020, just after the halving: BTC 30d vols near 80-90%
    assert s.rr25 < 0  # puts over calls
    assert fit.rmse < 0.07  # about 4-6 vol points: the quadratic smile misses the short-dated wings
    summary = fit.summary()
    assert summary["fitted"].sum() == fit.residuals["in_fit"].sum()
    assert summary["rmse"].iloc[-1] < 0.02  # the long expiries fit within 2 vol points


def test_cli_surface_prints_writes_and_refuses(tmp_path, capsys):
    truth = VolSurface(atm=0.62, rr25=-0.13, bf25=0.03, term_slope=-0.2)
    chain = _synthetic_chain(truth)
    epoch, ms = pd.Timestamp(0, tz="UTC"), pd.Timedelta(milliseconds=1)
    raw = pd.DataFrame({
        "expiration_timestamp": (chain["expiry"] - epoch) // ms,
        "timestamp": (chain["expiry"] - pd.to_timedelta(chain["t"] * 365.25, unit="D") - epoch) // ms,
        "option_type": chain["kind"], "strike": chain["strike"], "underlying_price": chain["forward"],
        "mark_iv": chain["iv"] * 100})
    path = tmp_path / "chain.csv"
    raw.to_csv(path, index=False)
    out = tmp_path / "res.csv"
    assert main(["surface", str(path), "--residuals", str(out)]) == 0
    text = capsys.readouterr().out
    assert "25d risk reversal -13.0%" in text and "rmse 0.0 vol points" in text
    assert len(pd.read_csv(out)) == len(chain) and not list(tmp_path.glob("*.partial"))
    assert main(["surface", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["surface"]["rr25"] == pytest.approx(-0.13, abs=1e-6) and len(doc["slices"]) == 5

    assert main(["surface", str(tmp_path / "missing.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["surface", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "missing columns" in err and "Traceback" not in err
    assert main(["surface", str(path), "--max-abs-x", "-1"]) == 2
