"""Shock attribution: which shock did how much.

``attribute(scenario)`` simulates the scenario as written, once more with each of its shocks
removed, and once with none of them, every run on the same seed. The random streams depend only
on the seed and the path (:mod:`engine.simulate`), so path ``i`` draws the same numbers in every
run and the runs differ by the shocks alone (common random numbers). One exception: a
``price_jump`` with a spread (or a size) takes one extra draw at its step, so removing it shifts
the draws after that step; its row is then noted.

For each shock and metric:

* **marginal effect** = the metric of the full scenario minus the metric without that shock: what
  the shock adds given all the others;
* **all shocks** = the full scenario minus no shocks at all;
* **interaction** = all shocks minus the sum of the marginal effects. Shocks that amplify each
  other (a margin hike that liquidates more because ETF selling moved the price first) make the
  whole more than the sum of its parts; the interaction is that excess, and it is reported, not
  shared out among the shocks.

Metrics: the median lowest price, the mean liquidations (long + short, USD, per path) and each
strategy's ES99 (of its PnL; the unhedged book is a strategy row). Each effect comes with a
standard error from a paired bootstrap over paths (:class:`engine.results._bootstrap.Bootstrap`):
every run's per-path values are resampled with the same draws, so the error is that of a
difference on common random numbers, usually far below either run's own error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import ScenarioError
from .._format import usd_3g

__all__ = ["attribute", "Attribution", "shock_label", "RESAMPLES"]

RESAMPLES = 300  # bootstrap resamples for the standard errors (as engine.results.regression)
FULL, NONE = "scenario", "no_shocks"  # the two reference runs, as keys of Attribution.levels


def shock_label(shock, index: int) -> str:
    """A shock's name in the attribution: its ``id``, else ``<type>#<index>``."""
    return shock.id if shock.id else f"{shock.type}#{index}"


@dataclass
class _Run:
    low: np.ndarray  # per-path lowest price
    liquidations: np.ndarray  # per-path long + short liquidations, USD
    pnl: dict = field(default_factory=dict)  # strategy label -> per-path PnL
    result: object = None  # the SimulationResult, when kept
    jump_steps: np.ndarray | None = None  # the steps at which the kernel draws a scheduled jump


def _simulate(scenario, n_paths, seed, n_jobs, keep: bool = False) -> _Run:
    from ..portfolio.hedge import row_label
    from ..simulate import run

    result = run(scenario, n_paths=n_paths, seed=seed, n_jobs=n_jobs, keep_steps=keep or bool(scenario.strategies))
    per_path = result.per_path
    out = _Run(per_path["min_price"].to_numpy(np.float64),
               (per_path["long_liquidations_usd"] + per_path["short_liquidations_usd"]).to_numpy(np.float64),
               result=result if keep else None)
    c = result.compiled
    out.jump_steps = np.flatnonzero((c.step("SCHEDULED_JUMP") != 0.0) | (c.step("SCHEDULED_JUMP_SPREAD") != 0.0))
    if scenario.strategies:
        table = result.strategies
        pnl = result.strategy_paths["pnl"]
        for i, (_, row) in enumerate(table.iterrows()):
            out.pnl[row_label(row)] = np.asarray(pnl[i], dtype=np.float64)
    return out


@dataclass
class Attribution:
    """The attribution table and what it was computed from.

    ``table``: one row per shock, then ``all shocks`` and ``interaction``; columns ``shock``,
    ``type``, and per metric ``<metric>`` (the effect) and ``<metric>_se`` (its standard error).
    ``levels``: each metric in the full scenario and with no shocks. ``notes``: rows whose
    random numbers are not common (see the module docstring). ``result``: the full scenario's
    :class:`~engine.result.SimulationResult` (with its per-step paths, for a run folder), when
    ``attribute(..., keep_result=True)``."""

    scenario: str
    n_paths: int
    seed: int
    metrics: list[str]
    table: pd.DataFrame
    levels: dict
    notes: list[str]
    result: object = None

    def to_dict(self) -> dict:
        rows = []
        for _, r in self.table.iterrows():
            rows.append({"shock": r["shock"], "type": r["type"],
                         **{m: _num(r[m]) for m in self.metrics}, **{f"{m}_se": _num(r[f"{m}_se"]) for m in self.metrics}})
        return {"scenario": self.scenario, "n_paths": self.n_paths, "seed": self.seed, "metrics": self.metrics,
                "levels": {k: {m: _num(v) for m, v in d.items()} for k, d in self.levels.items()},
                "attribution": rows, "notes": self.notes}

    def render(self, width: int = 132) -> str:
        """The table as text; metric columns wrap into blocks of at most ``width`` characters."""
        names = {"min_price_p50": "median low", "liquidations_mean": "liquidations"}
        heads = [names.get(m, m.removeprefix("es99.") + " ES99") for m in self.metrics]
        cells = [[_cell(m, r[m], r[m + "_se"]) for m in self.metrics] for _, r in self.table.iterrows()]
        widths = [max(len(h), *(len(c[j]) for c in cells)) + 2 for j, h in enumerate(heads)]
        lines = [f"{self.scenario}: shock attribution over {self.n_paths:,} paths, seed {self.seed}",
                 "each shock: the scenario minus the scenario without it (what it adds given the others); "
                 "± one bootstrap standard error"]
        blocks, block, used = [], [], 50
        for j, w in enumerate(widths):
            if block and used + w > width:
                blocks.append(block)
                block, used = [], 50
            block.append(j)
            used += w
        blocks.append(block)
        for block in blocks:
            head = f"{'shock':<24}{'type':<26}" + "".join(f"{heads[j]:>{widths[j]}}" for j in block)
            lines += ["", head, "-" * len(head)]
            for (_, r), row in zip(self.table.iterrows(), cells):
                kind = "" if str(r["type"]).startswith("(") else str(r["type"])
                lines.append(f"{str(r['shock'])[:23]:<24}{kind[:25]:<26}"
                             + "".join(f"{row[j]:>{widths[j]}}" for j in block))
        lines.append("")
        for key, label in ((FULL, "with every shock"), (NONE, "with no shock")):
            parts = [f"{h} {_value(m, self.levels[key][m])}" for m, h in zip(self.metrics, heads)]
            lines.append(f"{label}: " + "; ".join(parts))
        lines.append("interaction: all shocks minus the sum of the shocks' rows (what they do together beyond it)")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


_usd = usd_3g


def _value(metric: str, x: float) -> str:
    if x != x:
        return "n/a"
    return f"{x:,.0f}" if metric == "min_price_p50" else _usd(x)


def _cell(metric: str, x: float, se: float) -> str:
    if x != x:
        return "n/a"
    sign = "+" if x > 0 else ""
    text = sign + (f"{x:,.0f}" if metric == "min_price_p50" else _usd(x))
    if se == se:
        text += " ±" + (f"{se:,.0f}" if metric == "min_price_p50" else _usd(se))
    return text


def _steps(a: _Run, b: _Run) -> str:
    diff = np.setxor1d(a.jump_steps, b.jump_steps)
    shown = ", ".join(str(int(k)) for k in diff[:5])
    return shown + (", ..." if diff.size > 5 else "")


def _num(x):
    x = float(x)
    return None if math.isnan(x) else x


def attribute(scenario, *, n_paths: int | None = None, seed: int | None = None, n_jobs: int = 1,
              overrides=(), progress=None, keep_result: bool = False) -> Attribution:
    """Attribute the scenario's stress to its shocks: each shock's marginal effect (the scenario
    minus the scenario without it), on common random numbers (module docstring).

    Parameters
    ----------
    scenario : str, Path or Scenario
        A scenario with at least one shock.
    n_paths, seed, n_jobs, overrides
        As :func:`engine.run` takes them.
    progress : callable, optional
        ``progress(label, seconds)`` after each simulation.
    keep_result : bool
        Keep the full scenario's simulation (``result``), to write a run folder from it.

    Returns
    -------
    Attribution
        The table (one row per shock, then ``all shocks`` and ``interaction``) of effects on the
        median low, the mean liquidations and each strategy's ES99, with paired-bootstrap errors.

    Raises
    ------
    ScenarioError
        A scenario that cannot be used, or one without shocks.
    InvalidParameterError
        A bad argument (a ``ScenarioError`` and a ``TypeError``), e.g. ``n_jobs`` below 1.

    Examples
    --------
    >>> result = attribute("scenarios/ci/ci-margin-hike.yaml", n_paths=200)
    >>> list(result.table["shock"])[-2:]
    ['all shocks', 'interaction']
    """
    import time
    from pathlib import Path

    from .._params import check_bool, check_callable, check_count, check_overrides, check_scenario, check_seed
    from ..results._bootstrap import Bootstrap

    f = "attribute"
    check_scenario(f, "scenario", scenario)
    n_paths = check_count(f, "n_paths", n_paths, optional=True)
    seed = check_seed(f, "seed", seed)
    n_jobs = check_count(f, "n_jobs", n_jobs)
    overrides = check_overrides(f, overrides)
    check_callable(f, "progress", progress)
    keep_result = check_bool(f, "keep_result", keep_result)
    from ..scenario.loader import load_scenario, with_overrides
    from ..scenario.problems import scenario_problem

    if isinstance(scenario, (str, Path)):
        scenario = load_scenario(scenario, overrides)
    else:
        scenario = with_overrides(scenario, overrides)
    if scenario.sweep is not None:
        raise ScenarioError(scenario_problem(scenario, ("sweep",), "attribution takes one scenario, not a sweep grid",
                                             expected="a scenario without sweep: (pick one point of the grid with --set)",
                                             hint="remove the sweep: section or run cascade sweep"))
    if not scenario.shocks:
        raise ScenarioError(scenario_problem(scenario, ("shocks",), "no shocks to attribute",
                                             expected="at least one shock", found=[], has_found=True))
    seed = scenario.seed if seed is None else seed
    n_paths = scenario.n_paths if n_paths is None else n_paths
    labels = [shock_label(s, i) for i, s in enumerate(scenario.shocks)]
    types = [s.type for s in scenario.shocks]

    def one(label, shocks, keep=False) -> _Run:
        t0 = time.perf_counter()
        variant = scenario if shocks is None else scenario.model_copy(update={"shocks": shocks})
        out = _simulate(variant, n_paths, seed, n_jobs, keep)
        if progress is not None:
            progress(label, time.perf_counter() - t0)
        return out

    full = one("the scenario as written", None, keep_result)
    without = [one(f"without {lab}", [s for j, s in enumerate(scenario.shocks) if j != i])
               for i, lab in enumerate(labels)]
    none = one("no shocks", [])

    strategies = list(full.pnl)
    metrics = ["min_price_p50", "liquidations_mean"] + [f"es99.{s}" for s in strategies]
    boot = Bootstrap(n_paths, RESAMPLES, seed)
    index: dict = {}  # (run number, metric) -> the bootstrap's statistic
    values: dict = {}
    runs = [full, *without, none]
    for k, r in enumerate(runs):
        for m in metrics:
            if m == "min_price_p50":
                index[k, m] = boot.quantile(r.low, 50.0)
            elif m == "liquidations_mean":
                index[k, m] = boot.mean(r.liquidations)
            else:  # ES99 = minus the mean PnL at or below its 1st percentile
                index[k, m] = boot.tail_mean(r.pnl[m[len("es99."):]], 1.0)
    sample = boot.run(identity=True)
    draws = boot.run()
    sign = {m: (-1.0 if m.startswith("es99.") else 1.0) for m in metrics}
    for key, stat in index.items():
        values[key] = (sign[key[1]] * float(sample[stat][0]), sign[key[1]] * draws[stat])

    last = len(runs) - 1
    rows = []
    for i, (lab, typ) in enumerate(zip(labels, types)):
        row = {"shock": lab, "type": typ}
        for m in metrics:
            row[m] = values[0, m][0] - values[i + 1, m][0]
            row[m + "_se"] = float(np.std(values[0, m][1] - values[i + 1, m][1], ddof=1))
        rows.append(row)
    total = {"shock": "all shocks", "type": "(scenario minus no shocks)"}
    inter = {"shock": "interaction", "type": "(all shocks minus the sum)"}
    for m in metrics:
        total[m] = values[0, m][0] - values[last, m][0]
        total_draws = values[0, m][1] - values[last, m][1]
        total[m + "_se"] = float(np.std(total_draws, ddof=1))
        marg = sum(values[0, m][1] - values[i + 1, m][1] for i in range(len(labels)))
        inter[m] = total[m] - sum(r[m] for r in rows)
        inter[m + "_se"] = float(np.std(total_draws - marg, ddof=1))
    rows += [total, inter]
    table = pd.DataFrame(rows)
    levels = {FULL: {m: values[0, m][0] for m in metrics}, NONE: {m: values[last, m][0] for m in metrics}}
    notes = [f"{lab}: the scenario draws a scheduled jump's random number at steps {_steps(full, r)} that the "
             "run without this shock does not, so the later draws of that run differ (its effect carries some "
             "Monte Carlo noise)" for lab, r in zip(labels, without) if not np.array_equal(full.jump_steps, r.jump_steps)]
    return Attribution(scenario.name, n_paths, seed, metrics, table, levels, notes, full.result)
