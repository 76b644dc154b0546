"""Monte Carlo error of a run's risk figures, and the scenario's ``limits:`` checked against the run.

A run estimates its figures from a finite number of paths; this module says how far off they
may be, and whether they keep the bounds a scenario sets. ``cascade run`` prints both after its
tables; ``--json``, the run folder's ``metrics.json`` / ``metrics.csv`` and the report carry them
(``SimulationResult.to_dict()``'s ``uncertainty`` and ``limits``).

**VaR and ES** (95% and 99%) of every strategy row, and ``d_es99`` (the row's ES99 minus the
unhedged row's): the standard error is the standard deviation of the figure over
:data:`RESAMPLES` bootstrap resamples of the paths, with :class:`~engine.results._bootstrap.Bootstrap`
(the resampler of ``cascade check``). Every row sees the same resamples, so ``d_es99`` is resampled
jointly: it is far more precise than the two ES99 it subtracts, since the rows share their paths.
The resamples are drawn from a seed derived from the run's seed (:func:`bootstrap_seed`), so the
errors are a pure function of (scenario, seed), whatever the threads. The 95% interval is the
normal one, ``value +- 1.96 SE``: VaR (a sample quantile) and ES (a tail mean) are asymptotically
normal, and from 300 resamples the SE is known to about 4% while the 2.5th and 97.5th percentiles
of the resamples (a percentile interval) would rest on 7 or 8 draws each. The normal interval
needs a tail of some size: ES99 of 1,000 paths is the mean of 10 losses, and its interval is then
a rough guide.

**Probabilities** (touching a level, ADL, bad debt): each path is an independent trial, so the
standard error is the binomial ``sqrt(p (1 - p) / n)`` and the 95% interval Wilson's score
interval, which stays inside [0, 1] and does not collapse to a point when no path (or every
path) saw the event (``p = 0`` gives ``[0, 1.96^2 / (n + 1.96^2)]``). No resampling: exact and free.

**Limits.** ``limits:`` lists ``{metric, max}`` or ``{metric, min}``; metrics are named as
``cascade check --verbose`` names them (:mod:`engine.results.regression`). A limit is breached when
the value is above its ``max`` (below its ``min``); equal is within. A metric the run does not have
is a :class:`~engine.errors.ScenarioError` located at the limit, with the closest names.
"""

from __future__ import annotations

import difflib
import math
from statistics import NormalDist

import numpy as np

from ..errors import ScenarioError

__all__ = ["CONFIDENCE", "RESAMPLES", "STRATEGY_METRICS", "bootstrap_seed", "check_limits", "probability_error",
           "strategy_errors", "uncertainty", "wilson_interval"]

CONFIDENCE = 0.95
Z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)  # 1.96
RESAMPLES = 300  # as cascade check: the SE itself known to about 4%
STRATEGY_METRICS = ("var95", "es95", "var99", "es99", "d_es99")
_STREAM = 0x5249534B  # "RISK": the resampling's own stream, apart from the simulation's


def bootstrap_seed(seed: int) -> int:
    """The resampling seed of a run of ``seed``: derived from it, independent of its paths' streams."""
    return int(np.random.SeedSequence([int(seed), _STREAM]).generate_state(1, np.uint64)[0])


def wilson_interval(p: float, n: int, z: float = Z) -> tuple[float, float]:
    """Wilson's score interval of a proportion ``p`` observed on ``n`` independent trials."""
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(max(p * (1.0 - p), 0.0) / n + z2 / (4 * n * n)) / denominator
    low = 0.0 if p <= 0.0 else max(0.0, centre - half)  # exact ends where rounding would leave 1e-18
    high = 1.0 if p >= 1.0 else min(1.0, centre + half)
    return low, high


def probability_error(p: float, n: int) -> dict:
    """``{se, ci95_low, ci95_high}`` of a probability estimated on ``n`` paths."""
    low, high = wilson_interval(p, n)
    return {"se": math.sqrt(max(p * (1.0 - p), 0.0) / n), "ci95_low": low, "ci95_high": high}


def _normal(value: float, draws: np.ndarray) -> dict:
    draws = draws[np.isfinite(draws)]
    se = float(np.std(draws, ddof=1)) if draws.size > 1 else 0.0
    return {"se": se, "ci95_low": value - Z * se, "ci95_high": value + Z * se}


def strategy_errors(table, pnl: np.ndarray, seed: int) -> dict:
    """``{row label: {metric: {se, ci95_low, ci95_high}}}`` for :data:`STRATEGY_METRICS` of the
    strategies table ``table`` (the unhedged row first), from each row's per-path PnL ``pnl``
    (``rows x paths``). The unhedged row has no ``d_es99``."""
    from ..portfolio.hedge import row_label
    from ..portfolio.metrics import register, resampled, statistics_of
    from ._bootstrap import Bootstrap

    pnl = np.asarray(pnl, dtype=np.float64)
    bs = Bootstrap(pnl.shape[1], RESAMPLES, bootstrap_seed(seed))
    read = statistics_of(STRATEGY_METRICS)  # PnL statistics only: this reads no other per-path array
    handles = [register(bs, {"pnl": row}, read) for row in pnl]
    draws = bs.run()
    out = {}
    for i, (_, row) in enumerate(table.iterrows()):
        out[row_label(row)] = {m: _normal(float(row[m]), np.asarray(resampled(m, handles[i], handles[0])(draws)))
                               for m in STRATEGY_METRICS if i or not m.startswith("d_")}
    return out


def uncertainty(result) -> dict:
    """The ``uncertainty`` object of ``cascade run --json``: the method, and the errors of the
    market's probabilities and, when the run evaluated strategies, of their VaR and ES."""
    n = result.n_paths
    out = {"confidence": CONFIDENCE,
           "method": {"market": "binomial standard error; Wilson score interval",
                      "strategies": f"bootstrap over the paths ({RESAMPLES} resamples, seeded from the run's seed); "
                                    "normal interval, value +- 1.96 SE"},
           "market": {key: probability_error(p, n) for key, p in result.probabilities().items()}}
    if _has_strategies(result):
        out["strategies"] = strategy_errors(result.strategies, result.strategy_paths["pnl"], result.seed)
    return out


def _has_strategies(result) -> bool:
    return bool(result.scenario is not None and result.scenario.strategies
                and result.kept_steps)


def _interval_of(name: str, errors: dict) -> dict | None:
    """The interval :func:`uncertainty` gives the metric ``name`` (a ``cascade check`` name), if any."""
    from .regression import metric_slug

    section, _, rest = name.partition(".")
    if section == "market":
        by_slug = {metric_slug(k): v for k, v in errors.get("market", {}).items()}
        return by_slug.get(rest)
    if section == "strategies":
        row, _, metric = rest.rpartition(".")
        by_slug = {metric_slug(label): v for label, v in errors.get("strategies", {}).items()}
        return by_slug.get(row, {}).get(metric)
    return None


def check_limits(result, errors: dict | None = None) -> list[dict]:
    """Each of the scenario's ``limits:`` against the run: ``{metric, max or min, value, status}``
    (``status`` ``ok`` or ``breached``), with ``ci95_low``/``ci95_high`` when ``errors`` (an
    :func:`uncertainty` object) has the metric's interval. A metric the run lacks, or one
    without a value here (``effectiveness`` of a row that pays no premium), raises
    :class:`~engine.errors.ScenarioError` naming the limit and the closest metric names."""
    from ..scenario.problems import scenario_problem
    from .regression import metric_values

    scenario = result.scenario
    limits = list(getattr(scenario, "limits", None) or [])
    if not limits:
        return []
    values = metric_values(result)
    problems = []
    for i, limit in enumerate(limits):
        where = ("limits", i, "metric")
        if limit.metric not in values:
            close = difflib.get_close_matches(limit.metric, list(values), n=3, cutoff=0.6)
            hint = ("did you mean " + " or ".join(repr(c) for c in close) + "?") if close else \
                "`cascade check --verbose SCENARIO` lists the metric names"
            problems.append(scenario_problem(scenario, where, f"no metric named {limit.metric!r} in this run", hint=hint))
        elif not math.isfinite(values[limit.metric]):
            problems.append(scenario_problem(scenario, where, f"{limit.metric} has no value in this run (it is undefined, "
                                     "e.g. ES99 saved per dollar of a row that pays no premium)"))
    if problems:
        raise ScenarioError(problems)
    out = []
    for limit in limits:
        value = float(values[limit.metric])
        kind, bound = ("max", limit.max) if limit.max is not None else ("min", limit.min)
        breached = value > bound if kind == "max" else value < bound
        entry = {"metric": limit.metric, kind: float(bound), "value": value, "status": "breached" if breached else "ok"}
        interval = _interval_of(limit.metric, errors or {})
        if interval is not None:
            entry.update(ci95_low=interval["ci95_low"], ci95_high=interval["ci95_high"])
        out.append(entry)
    return out
