"""The book's greeks along the fan: delta, gamma and vega of the whole portfolio at the fan's prices.

For a book holding a perp or options, :func:`book_greeks` evaluates the portfolio's greeks at a
few dates, the start, the middle and the end of the horizon, at the fan's quantile prices (at the
start, the spot), and along a grid of price levels for the report's chart:

* ``delta_btc``: BTC delta: the spot held, the perp's size (0 at a level past its liquidation
  price, where the perp is gone: :func:`engine.portfolio.margin.liquidation_price`, the kernels' rule, funding
  aside) and each option's Black-Scholes delta times its signed size;
* ``gamma_btc_per_pct``: the change of that delta for a 1% move of the price (gamma x price / 100);
* ``vega_usd_per_vol_pt``: USD per 1 vol point of implied vol (Black-Scholes vega / 100).

Options are valued as the strategy kernels mark them (:mod:`engine.nb.hedge`): Black-Scholes with
no rates (:mod:`engine.options.black_scholes`) on the vol surface of :mod:`engine.options.surface`,
aged to the date (an option past its expiry has settled into cash: no greeks). The surface's ATM
level is the model's: at the start the quoted ``atm_iv`` moved by ``spot_vol_beta`` for a level
away from the spot; at a later date the mean ATM vol of the simulated paths whose price at that
date is nearest the level (the ``WINDOW`` share of paths around its rank), since each path is
marked at its own vol. The step's risk reversal (moved by ``skew_beta`` on the log return since
the start), term slope and butterfly are the scenario's, as in the kernels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["book_greeks", "greeks_at", "has_greeks", "render_book_greeks", "start_delta", "WINDOW", "N_GRID"]

WINDOW = 0.05  # share of the paths, nearest a level in rank, whose ATM vols give the level's
N_GRID = 41  # price levels of each curve drawn in the report
GREEKS = ("delta_btc", "gamma_btc_per_pct", "vega_usd_per_vol_pt")
UNITS = {"delta_btc": "BTC", "gamma_btc_per_pct": "BTC of delta per 1% move of the price",
         "vega_usd_per_vol_pt": "USD per vol point (1% of implied vol)", "price": "USD",
         "atm_iv": "ATM implied vol at the level (fraction)"}


def has_greeks(portfolio) -> bool:
    """Whether a scenario's portfolio holds a perp or options (greeks beyond its spot)."""
    return portfolio is not None and ((portfolio.perp is not None and portfolio.perp.size_btc != 0.0)
                                      or bool(portfolio.options))


def _surface(compiled, row: int, atm, levels):
    """The kernels' vol surface at step ``row`` for prices ``levels``, the ATM level ``atm`` (arrays)."""
    from ..options.surface import VolSurface

    r = np.log(levels / compiled.param("SPOT0"))
    surface = VolSurface(atm=atm, rr25=float(compiled.step("RISK_REVERSAL_25D")[row]),
                         bf25=compiled.param("SURFACE_BF25"), term_slope=float(compiled.step("TERM_SLOPE")[row]),
                         spot_vol_beta=0.0, skew_beta=compiled.param("SURFACE_SKEW_BETA"))
    return surface.moved(r)


def greeks_at(compiled, step: int, levels, atm) -> dict[str, np.ndarray]:
    """The book's greeks at price ``levels`` at the end of step ``step`` (``-1``: the start), with
    the ATM implied vols ``atm`` at those levels; also ``perp_liquidated`` (bool per level)."""
    from .margin import liquidation_price
    from ..options import black_scholes as bs

    pf = compiled.portfolio
    levels = np.asarray(levels, dtype=float)
    atm = np.broadcast_to(np.asarray(atm, dtype=float), levels.shape)
    delta = np.full(levels.shape, pf.spot_btc if pf is not None else 1.0)
    gamma, vega = np.zeros(levels.shape), np.zeros(levels.shape)
    gone = np.zeros(levels.shape, dtype=bool)
    if pf is not None and pf.perp_size_btc != 0.0:
        side = "long" if pf.perp_size_btc > 0 else "short"
        liq = liquidation_price(pf.perp_entry_usd, pf.perp_leverage, pf.perp_mmr, side)
        gone = levels <= liq if side == "long" else levels >= liq
        delta = delta + np.where(gone, 0.0, pf.perp_size_btc)
    if pf is not None and pf.option_kind.size:
        now = (step + 1) * compiled.param("DT_YEARS")
        surface = _surface(compiled, max(step, 0), atm, levels)
        for kind, strike, expiry, size in zip(pf.option_kind, pf.option_strike_usd, pf.option_expiry_years,
                                              pf.option_size_btc):
            tau = expiry - now
            if tau <= 0.0:
                continue  # settled at intrinsic value, in cash
            g = bs.greeks(bool(kind == 1), levels, strike, tau, 0.0, 0.0, surface.vol(strike, levels, tau))
            delta = delta + size * g["delta"]
            gamma = gamma + size * g["gamma"]
            vega = vega + size * g["vega_per_vol_point"]
    return {"delta_btc": delta, "gamma_btc_per_pct": gamma * levels / 100.0, "vega_usd_per_vol_pt": vega,
            "perp_liquidated": gone}


def start_delta(compiled) -> float:
    """The book's BTC delta at the start (1 BTC spot without a ``portfolio:``): what hedge ratios size."""
    spot = compiled.param("SPOT0")
    return float(greeks_at(compiled, -1, np.array([spot]), compiled.step("ATM_IV")[0])["delta_btc"][0])


def _path_atm(prices: np.ndarray, atm: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The mean ATM vol of the ``WINDOW`` share of paths nearest each level in rank (one date)."""
    order = np.argsort(prices, kind="stable")
    sorted_prices, sorted_atm = prices[order], atm[order].astype(np.float64)
    n = sorted_prices.size
    width = max(1, int(round(WINDOW * n)))
    cumulative = np.concatenate([[0.0], np.cumsum(sorted_atm)])
    ranks = np.searchsorted(sorted_prices, levels)
    lo = np.clip(ranks - width // 2, 0, n - width)
    return (cumulative[lo + width] - cumulative[lo]) / width


def _dates(n_steps: int) -> list[tuple[str, int]]:
    """(name, step) of the dates evaluated: the start (-1), the middle and the end of the horizon."""
    out = [("start", -1)]
    middle = n_steps // 2 - 1
    if 0 <= middle < n_steps - 1:
        out.append(("middle", middle))
    out.append(("end", n_steps - 1))
    return out


def book_greeks(result) -> dict | None:
    """The ``book_greeks`` section of ``cascade run --json``: ``units``, ``points`` (each date at
    each fan quantile: date, time, level, price, ATM vol, the greeks, whether the perp is gone)
    and ``curves`` (each date along ``N_GRID`` price levels). ``None`` when the book has no perp
    and no options, or the run kept no price paths."""
    compiled = result.compiled
    scenario = result.scenario
    if scenario is None or not has_greeks(scenario.portfolio) or not result.kept_steps:
        return None
    fan = result.fan
    quantiles = [f"p{q:g}" for q in compiled.outputs.quantiles]
    spot = compiled.param("SPOT0")
    atm0 = float(compiled.step("ATM_IV")[0])
    start, step = result.timeline[0], scenario.horizon.step
    dates = _dates(compiled.n_steps)
    spots = [spot] + [float(fan[("price", q)].iloc[t]) for _, t in dates[1:] for q in (quantiles[0], quantiles[-1])]
    grid = np.geomspace(min(spots) * 0.9, max(spots) * 1.1, N_GRID)
    points, curves = [], []
    for name, t in dates:
        when = (start + step * (t + 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        if t < 0:
            labels, levels = ["spot"], np.array([spot])
            level_atm = np.array([atm0])
            moved = lambda x: _start_atm(compiled, x)  # noqa: E731
        else:
            labels = quantiles
            levels = np.array([float(fan[("price", q)].iloc[t]) for q in quantiles])
            prices, atms = result.step_values("price")[:, t].astype(np.float64), result.step_values("atm_iv")[:, t]
            level_atm = _path_atm(prices, atms, levels)
            moved = lambda x, p=prices, a=atms: _path_atm(p, a, x)  # noqa: E731
        g = greeks_at(compiled, t, levels, level_atm)
        for i, label in enumerate(labels):
            points.append({"date": name, "time": when, "level": label, "price": float(levels[i]),
                           "atm_iv": float(level_atm[i]), **{k: float(g[k][i]) for k in GREEKS},
                           "perp_liquidated": bool(g["perp_liquidated"][i])})
        curve = greeks_at(compiled, t, grid, moved(grid))
        curves.append({"date": name, "time": when, "price": _short(grid),
                       **{k: _short(curve[k]) for k in GREEKS}})
    return {"units": UNITS, "points": points, "curves": curves}


def _short(values: np.ndarray) -> list[float]:
    """A curve's values to 6 significant digits: a chart needs no more, and the JSON stays small."""
    return [float(f"{x:.6g}") for x in values]


def _start_atm(compiled, levels: np.ndarray) -> np.ndarray:
    """The quoted ATM vol moved by ``spot_vol_beta`` for an instant move to each level, floored."""
    from ..compile.layout import IV_FLOOR

    r = np.log(levels / compiled.param("SPOT0"))
    return np.maximum(compiled.step("ATM_IV")[0] - compiled.param("SURFACE_SPOT_VOL_BETA") * r, IV_FLOOR)


def _num(x: float, digits: int = 3) -> str:
    return f"{x:,.{digits}f}" if abs(x) < 1e4 else f"{x:,.0f}"


def render_book_greeks(section: dict) -> str:
    """The ``book_greeks`` section as the compact table ``cascade run`` prints."""
    head = f"{'date':<17} {'level':<6} {'price':>10} {'ATM IV':>7} {'delta':>10} {'gamma':>9} {'vega':>10}  perp"
    lines = ["book greeks along the fan (delta in BTC; gamma: BTC of delta per 1% move; vega: USD per vol point; "
             "at each price level's implied vol)", head, "-" * len(head)]
    for p in section["points"]:
        when = p["time"][:16].replace("T", " ")
        lines.append(f"{when:<17} {p['level']:<6} {p['price']:>10,.0f} {p['atm_iv']:>7.1%} "
                     f"{_num(p['delta_btc']):>10} {_num(p['gamma_btc_per_pct']):>9} "
                     f"{_num(p['vega_usd_per_vol_pt'], 1):>10}  {'liquidated' if p['perp_liquidated'] else ''}".rstrip())
    return "\n".join(lines)

