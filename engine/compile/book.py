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

Margin tiers split each venue into rows, one per size class (:func:`size_classes`): a tier's share of
the book is the share of open interest in positions of its notional bracket
(``market.perpetuals.position_size``), its maintenance rate the tier's effective rate at the class's
representative notional ``N`` (``m - cum/N``, Binance's maintenance amount ``cum`` included), its
leverage capped at the tier's maximum. A venue with a flat rate has one row. Each cell also carries
its positions' entry notional (size x entry price), which ranks them for auto-deleveraging.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri  # not scipy.stats: the same numbers (stats.norm calls these), without
# scipy.stats' 1.2 s import, which every `cascade run` and every sweep worker paid

from .layout import N_ROW_FIELDS, Row

__all__ = ["Book", "SizeClass", "build_book", "entry_nodes", "leverage_nodes", "size_classes", "N_ENTRY_NODES",
           "N_LEVERAGE_NODES", "new_leverage_nodes"]

N_ENTRY_NODES = 96
N_LEVERAGE_NODES = 64
MAX_KEEP = 0.99  # a partial liquidation closes at least 1% of the position
MIN_CLASS_SHARE = 0.005  # a tier holding less of the book joins the nearest class below it


@dataclass(frozen=True)
class SizeClass:
    """One margin tier's share of a venue's book."""

    share: float  # of the venue's open interest
    notional_usd: float  # representative position notional: exp(E[log N]) within the bracket
    maintenance_rate: float  # effective: the tier's rate less its maintenance amount / notional_usd
    max_leverage: float
    tier: int  # 1-based tier number in the schedule (0: a flat venue's one class)
    up_to_usd: float  # the bracket's upper bound (inf for the last)


def _brackets(tiers):
    """Each tier as ``(lower, upper, rate, cum)``: its notional bracket (the last one open-ended) and
    Binance's maintenance amount ``cum_k = cum_(k-1) + bound_(k-1)*(m_k - m_(k-1))``, which makes
    the requirement ``N*m_k - cum_k`` continuous in ``N``."""
    lower, cum, prev = 0.0, 0.0, None
    for k, tier in enumerate(tiers):
        m = tier.maintenance_margin_rate
        if prev is not None:
            cum += lower * (m - prev)
        upper = np.inf if (tier.up_to_usd is None or k == len(tiers) - 1) else float(tier.up_to_usd)
        yield lower, upper, m, cum
        lower, prev = upper, m


def tier_rate(tiers, notional_usd: float) -> float:
    """The maintenance rate of one position of ``notional_usd`` under a tier schedule: Binance's
    ``(N*m_k - cum_k)/N`` with ``k`` the tier holding ``N`` (positions beyond the last bound use the
    last tier)."""
    for _, upper, m, cum in _brackets(tiers):
        if notional_usd <= upper:
            return m - cum / notional_usd if notional_usd > 0 else m
    raise AssertionError("unreachable: the last bracket is open-ended")


def _phi(z: float) -> float:
    return 0.0 if not np.isfinite(z) else float(np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi))


def size_classes(tiers, position_size) -> list[SizeClass]:
    """The size classes of a tier schedule under a notional-weighted lognormal of position sizes.

    Bracket ``k`` holds the share ``Phi(b) - Phi(a)`` of open interest (``a``, ``b`` its bounds in
    standard units of log notional; the last bracket is open-ended); its representative notional is
    ``exp(mu + sigma*E[z | a < z < b])`` (truncated normal mean), kept inside the bracket; the
    class's rate is the requirement ``N*m_k - cum_k`` over ``N`` (:func:`_brackets`). Tiers
    holding less than ``MIN_CLASS_SHARE`` join the nearest kept class below (or the first kept).
    """
    mu, sigma = np.log(position_size.median_usd), position_size.dispersion
    raw = []
    for k, (lower, upper, m, cum) in enumerate(_brackets(tiers)):
        a = (np.log(lower) - mu) / sigma if lower > 0 else -np.inf
        b = (np.log(upper) - mu) / sigma if np.isfinite(upper) else np.inf
        share = float(ndtr(b) - ndtr(a))
        if share > 0:
            notional = float(np.clip(np.exp(mu + sigma * (_phi(a) - _phi(b)) / share), lower, upper))
        else:
            notional = lower if not np.isfinite(upper) else 0.5 * (lower + upper)
        raw.append(SizeClass(share, notional, m - cum / max(notional, 1e-300), float(tiers[k].max_leverage), k + 1,
                             upper))
    kept = [k for k, c in enumerate(raw) if c.share >= MIN_CLASS_SHARE] or [max(range(len(raw)),
                                                                                key=lambda k: raw[k].share)]
    shares = {k: 0.0 for k in kept}
    for k, c in enumerate(raw):
        shares[max((j for j in kept if j <= k), default=kept[0])] += c.share
    total = sum(shares.values())
    return [dataclasses.replace(raw[k], share=shares[k] / total) for k in kept]


@dataclass(frozen=True)
class Book:
    bankruptcy_usd: np.ndarray  # (n_cells,) log-spaced grid, increasing
    long_btc: np.ndarray  # (n_rows, n_cells): one row per (venue, size class)
    short_btc: np.ndarray  # (n_rows, n_cells)
    long_entry_usd: np.ndarray  # (n_rows, n_cells): size x entry price
    short_entry_usd: np.ndarray  # (n_rows, n_cells)
    rows: np.ndarray  # (n_rows, N_ROW_FIELDS): see engine.compile.layout.ROW_FIELDS
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


def new_leverage_nodes(dist, n: int) -> np.ndarray:
    """``n`` equal-mass leverage nodes of a distribution (a number: all equal), for new positions:
    the mid-quantiles ``(k + 1/2)/n`` of the lognormal truncated to [min, max], or of a table's
    discrete distribution (leverage ascending). A step's new positions open at one node, the node
    rotating with the step, so every ``n`` steps open the whole distribution."""
    u = _midquantiles(n)
    if isinstance(dist, (int, float)):
        return np.full(n, float(dist))
    if dist.distribution == "table":
        lev = np.array(sorted(dist.weights), dtype=float)
        w = np.array([dist.weights[k] for k in sorted(dist.weights)], dtype=float)
        cum = np.cumsum(w / w.sum())
        return lev[np.minimum(np.searchsorted(cum, u, side="right"), lev.size - 1)]
    mu, sigma = np.log(dist.median), dist.dispersion
    lo, hi = ndtr((np.log([dist.min, dist.max]) - mu) / sigma)
    return np.exp(mu + sigma * ndtri(lo + u * (hi - lo)))


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


def _side(side, grid, spot, mmr, max_leverage, is_long, cap=False) -> tuple[np.ndarray, np.ndarray, float]:
    """One side of one row. Leverage above ``max_leverage`` is dropped (a flat venue: such positions
    are held elsewhere), or with ``cap`` held at it (a margin tier: a large position is levered as
    much as its tier allows)."""
    entry, w_entry = entry_nodes(side.entry_price, spot)
    lev, w_lev = leverage_nodes(side.leverage)
    if cap:
        lev = np.minimum(lev, max_leverage)
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
        return np.zeros(grid.size), np.zeros(grid.size), 1 - alive_share
    if alive_share <= 0:
        raise ValueError(
            f"every {'long' if is_long else 'short'} position of the entry/leverage distributions "
            f"up to {max_leverage:g}x would already be liquidated at spot {spot:,.0f}"
        )
    size_btc = side.notional_usd / spot
    sizes = np.where(alive, weights, 0.0) / alive_share * size_btc
    cells = _deposit(grid, bankruptcy.ravel(), sizes.ravel())
    entry_usd = _deposit(grid, bankruptcy.ravel(), (sizes * e).ravel())
    # interpolation may put part of a node just past spot's liquidation boundary: keep it alive
    dead = grid / (1 - mmr) >= spot if is_long else grid / (1 + mmr) <= spot
    edge = np.flatnonzero(~dead)[-1 if is_long else 0]
    for out in (cells, entry_usd):
        out[edge] += out[dead].sum()
        out[dead] = 0.0
    return cells, entry_usd, 1 - alive_share


def venue_classes(perps, name: str) -> list[SizeClass]:
    """A venue's size classes: one per kept tier, or one class at its flat rates."""
    tiers = perps.schedule(name)
    if tiers is None:
        mmr, imr = perps.margin_rates(name)
        return [SizeClass(1.0, np.nan, mmr, 1.0 / imr, 0, np.inf)]
    return size_classes(tiers, perps.position_size)


def build_book(market) -> Book:
    """Both sides on every venue and size class: the class's share of the venue's share of each
    side's notional, its leverage distribution truncated at the class's maximum (a tier's, or 1 /
    the venue's flat initial rate), its maintenance rate."""
    perps = market.perpetuals
    spot = market.spot_usd
    grid = spot * np.geomspace(1 / perps.grid_span, perps.grid_span, perps.book_cells)
    longs, shorts, long_entry, short_entry, rows = [], [], [], [], []
    dropped_long = dropped_short = 0.0
    for v, (name, venue) in enumerate(perps.venues.items()):
        classes = venue_classes(perps, name)
        for k, cls in enumerate(classes):
            weight = venue.share * cls.share
            tiered = cls.tier > 0  # a tier holds large positions at its maximum leverage; a flat venue drops them
            cells, entry, dropped = _side(perps.long, grid, spot, cls.maintenance_rate, cls.max_leverage, True,
                                          tiered)
            longs.append(weight * cells)
            long_entry.append(weight * entry)
            dropped_long += weight * dropped
            cells, entry, dropped = _side(perps.short, grid, spot, cls.maintenance_rate, cls.max_leverage, False,
                                          tiered)
            shorts.append(weight * cells)
            short_entry.append(weight * entry)
            dropped_short += weight * dropped
            row = np.zeros(N_ROW_FIELDS)
            row[Row.VENUE] = v
            row[Row.MMR] = cls.maintenance_rate if tiered else 0.0
            row[Row.IMR] = 1.0 / cls.max_leverage if tiered else 0.0
            row[Row.DOWN] = len(rows) - 1 if k > 0 else -1
            # a partial liquidation cuts the position down to the top of the class below
            row[Row.KEEP] = min(classes[k - 1].up_to_usd / cls.notional_usd, MAX_KEEP) if k > 0 else 0.0
            rows.append(row)
    return Book(grid, np.array(longs), np.array(shorts), np.array(long_entry), np.array(short_entry),
                np.array(rows), dropped_long, dropped_short)
