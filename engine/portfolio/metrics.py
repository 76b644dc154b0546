"""The hedge table's metrics, defined once: what each is of a row's per-path outcomes.

A metric is a formula of a few statistics of its row's per-path outcomes (:data:`STATISTICS`:
a per-path array and a mean, percentile or tail mean of it) and of the same statistics of the
unhedged row (the table's first). The formulas (:data:`FORMULAS`) take both as mappings of
statistic name to value, and work elementwise on floats and numpy arrays alike, so one
definition serves two evaluators:

* :func:`engine.portfolio.hedge._evaluate` computes the statistics on the paths (:func:`row_statistics`,
  one row at a time) and the formulas on the rows' arrays (:func:`metrics`);
* :mod:`engine.results.regression` (every metric, for ``cascade check``) and
  :mod:`engine.results.risk` (VaR, ES and ``d_es99``, for a run's error bars) register the
  statistics on a bootstrap over the paths (:func:`register`) and apply the same formulas to
  their resampled values (:func:`resampled`; every row on the same resamples).

Touching a price level (:func:`touched`) is defined here too: the market's ``P(touch)``
(:meth:`engine.result.SimulationResult.touch_probabilities`) and the table's ``p_touch_<level>``
columns read the same rule.

The per-path arrays are those of :func:`engine.portfolio.hedge.evaluate_with_paths`: ``pnl``,
``max_drawdown``, ``liquidated``, ``premium`` and ``payoff``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["FORMULAS", "METRICS", "STATISTICS", "Statistic", "metrics", "premium_over_fair", "register",
           "resampled", "row_statistics", "statistics_of", "touch_direction", "touched"]


class Statistic(NamedTuple):
    """One statistic of a row's per-path values.

    Attributes
    ----------
    array : str
        The per-path array it is of (``pnl``, ``max_drawdown``, ``liquidated``, ``premium``, ``payoff``).
    kind : str
        ``mean``; ``quantile``, the ``q``-th percentile (numpy's default, linear method);
        ``tail_mean``, the mean of the values at or below the ``q``-th percentile.
    q : float
        The percentile, 0 to 100 (``quantile`` and ``tail_mean``).
    """

    array: str
    kind: str
    q: float = 0.0


STATISTICS: dict[str, Statistic] = {  # in this order on the bootstrap
    "pnl_mean": Statistic("pnl", "mean"),
    "pnl_median": Statistic("pnl", "quantile", 50),
    "pnl_q05": Statistic("pnl", "quantile", 5),
    "pnl_tail05": Statistic("pnl", "tail_mean", 5),
    "pnl_q01": Statistic("pnl", "quantile", 1),
    "pnl_tail01": Statistic("pnl", "tail_mean", 1),
    "max_dd_p50": Statistic("max_drawdown", "quantile", 50),
    "max_dd_p95": Statistic("max_drawdown", "quantile", 95),
    "p_liquidated": Statistic("liquidated", "mean"),
    "premium": Statistic("premium", "mean"),
    "fair_value": Statistic("payoff", "mean"),
}


def premium_over_fair(premium, fair):
    """The premium paid per dollar of the legs' fair value on the model's own paths (> 1: dear),
    where both are positive; NaN elsewhere (elementwise)."""
    premium, fair = np.asarray(premium, dtype=float), np.asarray(fair, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((premium > 0) & (fair > 0), premium / fair, np.nan)


def _effectiveness(row, base):
    """ES99 saved per USD of premium, ``-d_es99 / premium``; NaN where no premium is paid. (Not
    ``(row - base) / premium``: equal, but for the sign of a zero when the tails are the same.)"""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(row["premium"] > 0, -(base["pnl_tail01"] - row["pnl_tail01"]) / row["premium"], np.nan)


Formula = Callable[[Mapping, Mapping], object]

# metric -> formula(row's statistics, unhedged row's statistics); ``d_*`` compare with the unhedged
# row (nothing on that row itself), losses are positive (VaR and ES: minus a percentile / tail mean)
FORMULAS: dict[str, Formula] = {
    "pnl_mean": lambda row, base: row["pnl_mean"],
    "pnl_median": lambda row, base: row["pnl_median"],
    "var95": lambda row, base: -row["pnl_q05"],
    "es95": lambda row, base: -row["pnl_tail05"],
    "var99": lambda row, base: -row["pnl_q01"],
    "es99": lambda row, base: -row["pnl_tail01"],
    "max_dd_p50": lambda row, base: row["max_dd_p50"],
    "max_dd_p95": lambda row, base: row["max_dd_p95"],
    "p_liquidated": lambda row, base: row["p_liquidated"],
    "premium": lambda row, base: row["premium"],
    "fair_value": lambda row, base: row["fair_value"],
    "premium_over_fair": lambda row, base: premium_over_fair(row["premium"], row["fair_value"]),
    "effectiveness": _effectiveness,
    "d_pnl_mean": lambda row, base: row["pnl_mean"] - base["pnl_mean"],
    "d_es99": lambda row, base: base["pnl_tail01"] - row["pnl_tail01"],  # = es99 - the unhedged es99, exactly
}

METRICS = tuple(FORMULAS)  # the hedge table's metrics, in the order of the table and of every output


def row_statistics(arrays: Mapping[str, np.ndarray]) -> dict[str, float]:
    """:data:`STATISTICS` of one row, from its per-path ``arrays`` (name -> 1-D values).

    A median is numpy's ``median``, another percentile ``quantile`` at ``q / 100``; a tail mean
    reads the same percentile (computed once)."""
    levels: dict[tuple, float] = {}

    def level(name: str, q: float) -> float:
        if (name, q) not in levels:
            x = arrays[name]
            levels[name, q] = np.median(x) if q == 50 else np.quantile(x, q / 100)
        return levels[name, q]

    out = {}
    for name, (array, kind, q) in STATISTICS.items():
        x = arrays[array]
        if kind == "mean":
            out[name] = x.mean()
        elif kind == "quantile":
            out[name] = level(array, q)
        else:  # tail_mean
            out[name] = x[x <= level(array, q)].mean()
    return out


def metrics(rows: Sequence[Mapping[str, float]]) -> dict[str, np.ndarray]:
    """Every metric (:data:`METRICS` order) of every row, one value per row, from the rows'
    :func:`row_statistics`; the first row is the unhedged baseline."""
    statistics = {name: np.array([row[name] for row in rows]) for name in STATISTICS}
    return {name: np.asarray(formula(statistics, rows[0]), dtype=float) for name, formula in FORMULAS.items()}


def statistics_of(names) -> list[str]:
    """The :data:`STATISTICS` the metrics ``names`` read, in :data:`STATISTICS` order (found by
    calling each formula on a recorder)."""

    class _Reads(dict):
        def __missing__(self, key):
            used.add(key)
            return 1.0

    used: set[str] = set()
    for name in names:
        FORMULAS[name](_Reads(), _Reads())
    return [name for name in STATISTICS if name in used]


def register(bootstrap, arrays: Mapping[str, np.ndarray], names=None) -> dict[str, int]:
    """Register the statistics ``names`` (default: all of :data:`STATISTICS`) of one row's per-path
    ``arrays`` on ``bootstrap`` (:class:`engine.results._bootstrap.Bootstrap`); returns statistic
    name -> handle. Pass the same array objects for every statistic of an array: it is sorted once."""
    kinds = {"mean": lambda x, q: bootstrap.mean(x), "quantile": bootstrap.quantile, "tail_mean": bootstrap.tail_mean}
    names = STATISTICS if names is None else names
    return {name: kinds[STATISTICS[name].kind](arrays[STATISTICS[name].array], STATISTICS[name].q) for name in names}


def resampled(metric: str, row: Mapping[str, int], base: Mapping[str, int]) -> Callable[[Sequence], object]:
    """``draws -> the metric on each resample``, from the handles :func:`register` gave the row and
    the unhedged row."""
    formula = FORMULAS[metric]
    return lambda draws: formula({k: draws[h] for k, h in row.items()}, {k: draws[h] for k, h in base.items()})


def touch_direction(level: float, spot: float) -> str:
    """``up`` for a level above the start price ``spot`` (reached by a rise), else ``down``."""
    return "up" if level > spot else "down"


def touched(level: float, spot: float, low, high) -> np.ndarray:
    """Which paths touched ``level``: those whose highest price ``high`` reached it when it lies
    above the start price ``spot``, else those whose lowest price ``low`` did (per-path arrays;
    intra-step extremes included when the kernel recorded them)."""
    if touch_direction(level, spot) == "up":
        return np.asarray(high) >= level
    return np.asarray(low) <= level
