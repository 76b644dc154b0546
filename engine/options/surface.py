"""The implied-vol surface: ATM level, 25-delta risk reversal and butterfly, term structure, and
how it moves along a path; fitted to a real option chain.

The parametrisation is in *standardised moneyness* ``x = ln(K/F) / (atm * sqrt(T))``, the
``-d2``-like distance of a strike from the forward in ATM standard deviations. A 25-delta option
sits near ``|x| = z25 = 0.6745`` (``Phi^-1(0.75)``), so with

    vol(x, T) = atm(T) + rr25 / (2 z25) * x + bf25 / z25**2 * x**2,   floored at ``floor``,
    atm(T)    = atm + term_slope * (T - ref_tenor),

the 25-delta call minus put vol is ``rr25`` (the -13% of February 2026 is ``rr25 = -0.13``) and
their average over ATM is ``bf25``. ``term_slope`` is the change of ATM vol per year of tenor: in
stress the curve inverts (short tenors above long ones, a negative slope). This is the same
surface the engine uses for the dealers' hedge (``engine.simulate.dealer_hedge_table``) and
for the hedging strategies, from ``market.options``.

Along a path the surface reacts to the log return ``r = ln(S_t / S_0)`` (:meth:`VolSurface.moved`):
``atm - spot_vol_beta * r`` (vol rises as the price falls) and ``rr25 + skew_beta * r`` (the put
skew steepens as it falls), both configurable, the ATM level floored.

:func:`fit_surface` fits ``(atm, rr25, bf25, term_slope)`` to a chain by robust least squares on
implied vols, weighted by vega-like ``sqrt(T)``-scaled weights, and returns every option's
residual; :func:`fit_slices` fits ``(atm, rr25, bf25)`` expiry by expiry, which shows the term
structure the global fit flattens into a slope. :func:`load_deribit_chain` reads the Deribit
snapshots in ``../shared/data/options/``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..compile.layout import IV_FLOOR, IV_TENOR
from ..nb.bs import Z25, smile_vols_nb

__all__ = ["VolSurface", "Z25", "fit_surface", "fit_slices", "load_deribit_chain", "SurfaceFit"]

DAY = 1.0 / 365.25


@dataclass(frozen=True)
class VolSurface:
    atm: float = 0.55
    rr25: float = 0.0
    bf25: float = 0.0
    term_slope: float = 0.0
    ref_tenor: float = IV_TENOR  # the kernels' reference tenor and floor: one surface everywhere
    spot_vol_beta: float = 0.0
    skew_beta: float = 0.0
    floor: float = IV_FLOOR

    def atm_at(self, t) -> np.ndarray:
        """ATM vol at tenor ``t`` (years), floored: the smile at the forward."""
        return self.vol(1.0, 1.0, t)

    def vol(self, strike, forward, t) -> np.ndarray:
        """Implied vol of ``strike`` at tenor ``t`` (years, at least 1e-8) with the underlying's
        forward ``forward``; every argument and field broadcasts like numpy. The arithmetic is
        :func:`engine.nb.bs.smile_vol_nb`, the kernels' own."""
        t = np.maximum(np.asarray(t, dtype=float), 1e-8)
        lkf = np.log(np.asarray(strike, dtype=float) / np.asarray(forward, dtype=float))
        args = [lkf, t] + [np.asarray(getattr(self, name), dtype=float) for name in
                           ("atm", "rr25", "bf25", "term_slope", "ref_tenor", "floor")]
        shape = np.broadcast_shapes(*(a.shape for a in args))
        out = np.empty(shape)
        # each argument copied whole (writable, contiguous): the kernel is compiled for one array type
        smile_vols_nb(*(np.array(np.broadcast_to(a, shape), dtype=np.float64).reshape(-1) for a in args),
                      out.reshape(-1))
        return out

    def moved(self, log_return) -> VolSurface:
        """The surface after the underlying moved by ``log_return`` (a number or an array) from
        where it was set."""
        return replace(self, atm=np.maximum(self.atm - self.spot_vol_beta * log_return, self.floor),
                       rr25=self.rr25 + self.skew_beta * log_return)

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- chains
def load_deribit_chain(path: str | Path, min_days: float = 2.0):
    """A Deribit option-chain snapshot as a DataFrame with ``kind``, ``strike``, ``forward`` (the
    expiry's underlying future), ``t`` (years), ``iv`` (mark, per 1.00), ``bid_iv``, ``ask_iv``,
    ``open_interest`` (BTC) and ``expiry``. Options expiring within ``min_days`` are dropped (their
    marks are dominated by the next fixing, not by a smile).
    """
    import pandas as pd

    from .._files import read_csv_frame

    path = Path(path)
    raw = read_csv_frame(path, "an option chain")
    need = {"expiration_timestamp", "timestamp", "option_type", "strike", "underlying_price", "mark_iv"}
    missing = need - set(raw.columns)
    if missing:
        raise ValueError(f"{path}: not a Deribit chain snapshot, missing columns {sorted(missing)}")
    out = pd.DataFrame({
        "kind": raw["option_type"].str.lower(),
        "strike": raw["strike"].astype(float),
        "forward": raw["underlying_price"].astype(float),
        "t": (raw["expiration_timestamp"] - raw["timestamp"]) / 1000.0 / 86400.0 / 365.25,
        "iv": raw["mark_iv"].astype(float) / 100.0,
        "bid_iv": raw.get("bid_iv", np.nan) / 100.0,
        "ask_iv": raw.get("ask_iv", np.nan) / 100.0,
        "open_interest": raw.get("open_interest", 0.0),
        "expiry": pd.to_datetime(raw["expiration_timestamp"], unit="ms", utc=True),
    })
    out.loc[out["bid_iv"] <= 0, "bid_iv"] = np.nan
    out.loc[out["ask_iv"] <= 0, "ask_iv"] = np.nan
    keep = (out["t"] >= min_days * DAY) & (out["iv"] > 0) & out["kind"].isin(["call", "put"])
    return out[keep].sort_values(["expiry", "strike", "kind"]).reset_index(drop=True)


# ----------------------------------------------------------------------------- fits
@dataclass(frozen=True)
class SurfaceFit:
    surface: VolSurface
    # DataFrame: the chain plus ``x`` (standardised moneyness), ``model_iv``, ``residual`` (model -
    # market, per 1.00 of vol) and ``in_fit`` (the quote was fitted, rather than only compared)
    residuals: object
    rmse: float  # over the fitted quotes, per 1.00 of vol
    max_abs: float

    def summary(self):
        """Residuals by expiry over the fitted quotes (per 1.00 of vol), and how many were not fitted."""
        import pandas as pd

        rows = []
        for expiry, g in self.residuals.groupby("expiry"):
            fit = g[g["in_fit"]]["residual"]
            rows.append({"expiry": expiry, "days": float(g["t"].iloc[0]) * 365.25, "fitted": len(fit),
                         "not_fitted": int((~g["in_fit"]).sum()), "mean": float(fit.mean()) if len(fit) else np.nan,
                         "rmse": float(np.sqrt(np.mean(np.square(fit)))) if len(fit) else np.nan,
                         "max_abs": float(np.max(np.abs(fit))) if len(fit) else np.nan})
        return pd.DataFrame(rows).set_index("expiry")


def _otm(chain):
    """One quote per strike and expiry: the out-of-the-money option (puts below the forward)."""
    otm = ((chain["kind"] == "put") & (chain["strike"] <= chain["forward"])) | (
        (chain["kind"] == "call") & (chain["strike"] > chain["forward"]))
    return chain[otm]


def fit_surface(chain, ref_tenor: float = IV_TENOR, max_abs_x: float = 2.0, otm_only: bool = True) -> SurfaceFit:
    """Fit ``(atm, rr25, bf25, term_slope)`` to a chain's implied vols (see the module doc).

    Quotes more than ``max_abs_x`` ATM deviations from the forward are left out of the fit (but
    get residuals); with ``otm_only`` each strike contributes its out-of-the-money option, the
    liquid one. Robust (``soft_l1``) least squares, weights ``sqrt(T)`` so short expiries, whose
    vols are the noisiest, do not dominate.
    """
    from scipy.optimize import least_squares

    if len(chain) == 0:
        raise ValueError("the chain holds no options to fit")
    data = _otm(chain) if otm_only else chain
    k, f, t, iv = (data[c].to_numpy(float) for c in ("strike", "forward", "t", "iv"))
    atm0 = float(np.median(iv))
    x0 = np.log(k / f) / (atm0 * np.sqrt(t))
    use = np.abs(x0) <= max_abs_x
    if use.sum() < 4:
        raise ValueError(f"only {int(use.sum())} quotes within {max_abs_x} ATM deviations: too few to fit 4 parameters")
    w = np.sqrt(t / ref_tenor)

    def residual(p):
        s = VolSurface(atm=p[0], rr25=p[1], bf25=p[2], term_slope=p[3], ref_tenor=ref_tenor)
        return (s.vol(k[use], f[use], t[use]) - iv[use]) * w[use]

    sol = least_squares(residual, x0=[atm0, 0.0, 0.0, 0.0], loss="soft_l1", f_scale=0.02,
                        bounds=([0.01, -2.0, -1.0, -10.0], [5.0, 2.0, 2.0, 10.0]))
    surface = VolSurface(atm=float(sol.x[0]), rr25=float(sol.x[1]), bf25=float(sol.x[2]),
                         term_slope=float(sol.x[3]), ref_tenor=ref_tenor)
    out = chain.copy()
    kk, ff, tt = (out[c].to_numpy(float) for c in ("strike", "forward", "t"))
    out["x"] = np.log(kk / ff) / (surface.atm_at(tt) * np.sqrt(tt))
    out["model_iv"] = surface.vol(kk, ff, tt)
    out["residual"] = out["model_iv"] - out["iv"]
    out["in_fit"] = out.index.isin(data.index[use])
    fitted = out[out["in_fit"]]
    rmse = float(np.sqrt(np.mean(np.square(fitted["residual"]))))
    return SurfaceFit(surface, out, rmse, float(np.max(np.abs(fitted["residual"]))))


def fit_slices(chain, max_abs_x: float = 2.0, otm_only: bool = True):
    """``(atm, rr25, bf25)`` fitted expiry by expiry: the term structure and skew per tenor."""
    import pandas as pd

    rows = []
    for expiry, group in chain.groupby("expiry"):
        t = float(group["t"].iloc[0])
        try:
            fit = fit_surface(group.assign(t=t), ref_tenor=t, max_abs_x=max_abs_x, otm_only=otm_only)
        except ValueError:
            continue
        s = fit.surface
        rows.append({"expiry": expiry, "days": t * 365.25, "fitted": int(fit.residuals["in_fit"].sum()),
                     "atm": s.atm, "rr25": s.rr25, "bf25": s.bf25, "rmse": fit.rmse})
    return pd.DataFrame(rows).set_index("expiry") if rows else pd.DataFrame()
