"""The initial perpetuals book on a log grid of bankruptcy prices.

Each side's open notional is spread over (entry price x leverage) quadrature nodes taken from
the scenario's distributions. A node's *bankruptcy price* is ``E*(1 - 1/L)`` for a long and
``E*(1 + 1/L)`` for a short; its size in BTC is deposited on the two neighbouring cells of a
log-spaced grid (``spot/span .. spot*span``) with weights linear in log price, which keeps the
total size exactly. The grid alone then gives each cell's liquidation price for any
maintenance-margin rate ``m`` (mark-price convention, as Binance USDT-M:
``P_liq = P_b/(1-m)`` long, ``P_b/(1+m)`` short), its effective leverage and its loss.

Positions that would already be past their liquidation price at ``spot``, or levered beyond
what their venue's initial margin allows, cannot exist at the start: they are dropped and the
rest rescaled so each venue still holds its share of each side's stated notional.
Nodes beyond the grid go to its end cells (they are at most ``1/span`` away from bankruptcy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri  # not scipy.stats: the same numbers (stats.norm calls these), without
# scipy.stats' 1.2 s import, which every `cascade run` and every sweep worker paid

__all__ = ["Book", "build_book", "entry_nodes", "leverage_nodes", "N_ENTRY_NODES", "N_LEVERAGE_NODES"]

N_ENTRY_NODES = 96
N_LEVERAGE_NODES = 64


@dataclass(frozen=True)
class Book:
    bankruptcy_usd: np.ndarray  # (n_cells,) log-spaced grid, increasing
    long_btc: np.ndarray  # (n_venues, n_cells)
    short_btc: np.ndarray  # (n_venues, n_cells)
    dropped_long_share: float  # share of nodes already liquidated at spot, before rescaling
    dropped_short_share: float


def _midquantiles(n: int) -> np.ndarray:
    return (np.arange(n) + 0.5) / n


def entry_nodes(dist, spot: float) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes and weights (summing to 1) of an entry-price distribution."""
    kind = dist.distribution
    if kind == "uniform":
        u = _midquantiles(N_ENTRY_NODES)
        return dist.low_usd + u * (dist.high_usd - dist.low_usd), np.full(N_ENTRY_NODES, 1 / N_ENTRY_NODES)
    if kind == "lognormal":
        center = dist.center_usd if dist.center_usd is not None else spot
        z = ndtri(_midquantiles(N_ENTRY_NODES))
        return center * np.exp(dist.dispersion * z), np.full(N_ENTRY_NODES, 1 / N_ENTRY_NODES)
    prices = np.array(list(dist.weights), dtype=float)
    weights = np.array(list(dist.weights.values()), dtype=float)
    return prices, weights / weights.sum()


def leverage_nodes(dist) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes and weights of a leverage distribution (lognormal truncated to [min, max])."""
    if dist.distribution == "table":
        lev = np.array(list(dist.weights), dtype=float)
        weights = np.array(list(dist.weights.values()), dtype=float)
        return lev, weights / weights.sum()
    mu, sigma = np.log(dist.median), dist.dispersion
    lo, hi = ndtr((np.log([dist.min, dist.max]) - mu) / sigma)
    u = lo + _midquantiles(N_LEVERAGE_NODES) * (hi - lo)
    return np.exp(mu + sigma * ndtri(u)), np.full(N_LEVERAGE_NODES, 1 / N_LEVERAGE_NODES)


def _deposit(grid: np.ndarray, prices: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Spread ``sizes`` at ``prices`` onto the log grid, linear in log price, conserving the total."""
    out = np.zeros(grid.size)
    x = np.log(np.clip(prices, grid[0], grid[-1]))
    lg = np.log(grid)
    hi = np.clip(np.searchsorted(lg, x, side="right"), 1, grid.size - 1)
    lo = hi - 1
    frac = (x - lg[lo]) / (lg[hi] - lg[lo])
    np.add.at(out, lo, sizes * (1 - frac))
    np.add.at(out, hi, sizes * frac)
    return out


def _side(side, grid, spot, mmr, max_leverage, is_long) -> tuple[np.ndarray, float]:
    entry, w_entry = entry_nodes(side.entry_price, spot)
    lev, w_lev = leverage_nodes(side.leverage)
    e = entry[:, None]
    l = lev[None, :]
    weights = w_entry[:, None] * np.where(lev <= max_leverage * (1 + 1e-12), w_lev, 0.0)[None, :]
    if is_long:
        bankruptcy = e * (1 - 1 / l)
        alive = bankruptcy / (1 - mmr) < spot
    else:
        bankruptcy = e * (1 + 1 / l)
        alive = bankruptcy / (1 + mmr) > spot
    alive_share = weights[alive].sum()
    if side.notional_usd == 0:
        return np.zeros(grid.size), 1 - alive_share
    if alive_share <= 0:
        raise ValueError(
            f"every {'long' if is_long else 'short'} position of the entry/leverage distributions "
            f"up to {max_leverage:g}x would already be liquidated at spot {spot:,.0f}"
        )
    size_btc = side.notional_usd / spot
    sizes = np.where(alive, weights, 0.0) / alive_share * size_btc
    cells = _deposit(grid, bankruptcy.ravel(), sizes.ravel())
    # interpolation may put part of a node just past spot's liquidation boundary: keep it alive
    dead = grid / (1 - mmr) >= spot if is_long else grid / (1 + mmr) <= spot
    edge = np.flatnonzero(~dead)[-1 if is_long else 0]
    cells[edge] += cells[dead].sum()
    cells[dead] = 0.0
    return cells, 1 - alive_share


def build_book(market) -> Book:
    """Both sides on every venue: the venue's share of each side's notional, its leverage
    distribution truncated at the venue's maximum (1 / initial margin rate), its maintenance rate."""
    perps = market.perpetuals
    spot = market.spot_usd
    grid = spot * np.geomspace(1 / perps.grid_span, perps.grid_span, perps.book_cells)
    longs, shorts, dropped_long, dropped_short = [], [], 0.0, 0.0
    for name, venue in perps.venues.items():
        mmr, imr = perps.margin_rates(name)
        cells, dropped = _side(perps.long, grid, spot, mmr, 1 / imr, True)
        longs.append(venue.share * cells)
        dropped_long += venue.share * dropped
        cells, dropped = _side(perps.short, grid, spot, mmr, 1 / imr, False)
        shorts.append(venue.share * cells)
        dropped_short += venue.share * dropped
    return Book(grid, np.array(longs), np.array(shorts), dropped_long, dropped_short)
