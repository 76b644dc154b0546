"""Fit a small, documented set of market parameters to observed targets (``cascade calibrate``).

The parameters (:data:`PARAMETERS`) are the ones the facts cannot give directly:

==================  ======================================================  ===========================
name                scenario key                                            what it moves
==================  ======================================================  ===========================
``volatility``      ``market.volatility.annual``                            diffusive volatility
``impact``          ``market.impact.sqrt_coefficient``                      Y of the square-root law
``permanent``       ``market.impact.permanent_fraction``                    permanent impact per unit of
                                                                            net flow (share of q/depth)
``long_leverage``   ``market.perpetuals.long.leverage.median``              how close longs sit to
                                                                            liquidation
``deleveraging``    ``market.behaviour.deleveraging.drawdown_sensitivity``  stop-loss hazard per unit of
                                                                            loss against the entry
``momentum``        ``market.behaviour.momentum.open_rate``                 positions opened along the
                                                                            lookback return
``momentum_thr...`` ``market.behaviour.momentum.threshold``                 the move they ignore
``momentum_hol...`` ``market.behaviour.momentum.holding_time``              how fast they reach their
                                                                            target and close it again
``momentum_cap...`` ``market.behaviour.momentum.capital``                   their largest position
``momentum_lev...`` ``market.behaviour.momentum.leverage.median``           their leverage
``holding``         ``market.behaviour.deleveraging.base_hazard_per_day``   1 / the mean holding time
``vol_of_vol``      ``market.volatility.clustering.vol_of_vol``             volatility clustering
``liquidation...``  ``market.volatility.clustering.liquidation_feedback``  liquidations feeding vol back
``etf_reflexivity`` ``market.etf.reflexivity.loss_sensitivity``             ETF redemptions that
                                                                            follow losses
==================  ======================================================  ===========================

The inputs stay as observed: the scenario's shocks carry Farside's daily ETF flows and CME's margin
schedule. Other episodes can be fitted jointly (:class:`Episode`: October 2025's first 24 hours by
default, whose intra-hour wick pins the transient impact that hourly closes cannot see): each runs
with the shared mechanics and its own state (:data:`OWN_STATE`), and its targets join the
objective under the prefix ``name:``. The objective is the weighted mean of squared standardised misses of the model's
*median* against each :class:`~engine.calibration.targets.Target`, plus a penalty when the real
hourly path leaves the model's 5-95% fan for more than 10% of hours. Every evaluation runs the
same seed (common random numbers), so the objective is a deterministic function of the
parameters and the optimiser compares like with like.

The optimiser: a scrambled Sobol design over the box (in log space for positive scale
parameters), then Nelder-Mead from the best design point in the unit cube, clipped to the box.
Both are deterministic for a given seed; scipy provides them. At the result, the objective's
curvature says which parameters and combinations the targets pin down
(:mod:`engine.calibration.identify`).
"""

from __future__ import annotations

import copy
import math
import time
from typing import TYPE_CHECKING
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import Problem, ScenarioError
from .parameters import COVERAGE_GOAL, COVERAGE_SCALE, PARAMETERS, Parameter  # noqa: F401  (Parameter: in __all__)
from .targets import Target, evaluate, fan_coverage

if TYPE_CHECKING:
    from .identify import Identifiability

__all__ = ["Parameter", "PARAMETERS", "DEFAULT_PARAMETERS", "Calibration", "Episode", "objective_parts", "calibrate", "parameter_yaml",
           "COVERAGE_GOAL", "shared"]


# parameters that describe one episode's own state (its volatility, its book's leverage): an
# episode fitted jointly keeps its own; every other parameter is the market's mechanics, shared
OWN_STATE = ("volatility", "long_leverage", "long_dispersion")


def shared(name: str) -> bool:
    """Whether parameter ``name`` is carried to another episode (the mechanics) or stays its own state."""
    return name not in OWN_STATE


@dataclass(frozen=True)
class Episode:
    """Another scenario fitted jointly with the main one: its own state (spot, book, volatility, the
    book's leverage) and the shared mechanics (:func:`shared`), run on its own seed every
    evaluation; its targets' names take the prefix ``name:`` in the objective and the tables."""

    name: str
    plain: dict
    targets: tuple
    seed: int

    def evaluate(self, values: dict[str, float], n_paths: int, n_jobs: int) -> pd.DataFrame:
        point = with_parameters(self.plain, {k: v for k, v in values.items() if shared(k)})
        table = evaluate(simulate_plain(point, n_paths, self.seed, n_jobs), list(self.targets))
        return table.rename(index=lambda n: f"{self.name}:{n}")


# what `cascade calibrate` fits when --params does not say
DEFAULT_PARAMETERS: tuple[str, ...] = tuple(n for n, p in PARAMETERS.items() if p.default)


def _get(plain: dict, key: str):
    from ..scenario.loader import split_path

    node = plain
    for part in split_path(key):
        node = node[part]
    return node


def with_parameters(plain: dict, values: dict[str, float]) -> dict:
    """A copy of the plain scenario data with the parameters set."""
    from ..scenario.loader import set_path, split_path

    out = copy.deepcopy(plain)
    for name, value in values.items():
        p = PARAMETERS[name]
        set_path(out, split_path(p.key), p.encode(float(value)))
    return out


def objective_parts(table: pd.DataFrame, coverage: float | None) -> dict[str, float]:
    """The objective's terms: weighted squared misses per target and the coverage penalty."""
    parts = {name: float(row.weight * row.z ** 2) for name, row in table.iterrows() if row.weight > 0}
    if coverage is not None:
        parts["fan_coverage"] = float(max(0.0, (COVERAGE_GOAL - coverage) / COVERAGE_SCALE) ** 2)
    return parts


def _objective_value(parts: dict[str, float], weights: float) -> float:
    total = sum(parts.values()) / max(weights, 1e-12)
    return float(total) if math.isfinite(total) else 1e12


@dataclass
class Calibration:
    """What :func:`calibrate` found: the parameters, the targets table at them, the optimiser's
    history (one row per evaluation) and the objective."""

    names: list[str]
    start: dict[str, float]
    best: dict[str, float]
    objective: float
    start_objective: float
    table: pd.DataFrame
    coverage: float | None
    fan: pd.DataFrame | None
    history: pd.DataFrame
    n_paths: int
    seed: int
    seconds: float
    identifiability: Identifiability | None = None

    def parameters_frame(self) -> pd.DataFrame:
        rows = []
        for name in self.names:
            p = PARAMETERS[name]
            rows.append({"parameter": name, "key": p.key, "start": self.start[name], "fitted": self.best[name],
                         "low": p.low, "high": p.high, "at_bound": bool(min(p.to_unit(self.best[name]),
                                                                             1 - p.to_unit(self.best[name])) < 1e-3),
                         "meaning": p.meaning})
        return pd.DataFrame(rows).set_index("parameter")


def simulate_plain(plain: dict, n_paths: int, seed: int, n_jobs: int):
    from ..compile.compiler import compile_scenario
    from ..scenario.loader import load_scenario
    from ..simulate import run

    scenario = load_scenario(plain)
    compiled = compile_scenario(scenario, n_paths=n_paths, seed=seed)
    return run(compiled, n_jobs=n_jobs, keep_steps=True)


def replay_plain(plain: dict, candles: pd.Series):
    """The book and flows of the scenario ``plain`` replayed along the observed ``candles`` over its horizon."""
    from ..history.replay import replay
    from ..scenario.loader import load_scenario

    return replay(load_scenario(plain), candles)


def calm_plain(plain: dict) -> dict:
    """The scenario with its shocks removed: the calm market its ``on="calm"`` targets read."""
    out = copy.deepcopy(plain)
    out["shocks"] = []
    return out


def evaluate_all(point: dict, sim, targets: list[Target], candles, n_paths: int, seed: int, n_jobs: int) -> pd.DataFrame:
    """Every target at the scenario ``point``: simulated ones on ``sim``, replayed ones on the book
    along ``candles``, calm ones on the scenario with no shocks (same paths and seed)."""
    by_kind = {kind: [t for t in targets if t.on == kind] for kind in ("simulation", "replay", "calm")}
    replay = replay_plain(point, candles) if by_kind["replay"] else None
    tables = [evaluate(sim, by_kind["simulation"] + by_kind["replay"], replay)] if (
        by_kind["simulation"] or by_kind["replay"]) else []
    if by_kind["calm"]:
        tables.append(evaluate(simulate_plain(calm_plain(point), n_paths, seed, n_jobs), by_kind["calm"]))
    order = [t.name for t in targets]
    return pd.concat(tables).reindex(order)


def _runner(plain: dict, targets: list[Target], real_path, candles, n_paths: int, seed: int, n_jobs: int,
            episodes: tuple[Episode, ...] = ()):
    """One evaluation at given parameter values: (simulation, targets table, fan coverage), the same
    paths and seed every time (common random numbers); the episodes' targets follow the main ones."""
    def run_at(values: dict[str, float]):
        point = with_parameters(plain, values)
        sim = simulate_plain(point, n_paths, seed, n_jobs)
        table = evaluate_all(point, sim, targets, candles, n_paths, seed, n_jobs)
        if episodes:
            table = pd.concat([table, *(e.evaluate(values, n_paths, n_jobs) for e in episodes)])
        coverage = fan_coverage(sim, real_path)[0] if real_path is not None else None
        return sim, table, coverage
    return run_at


def _total_weight(targets: list[Target], episodes, real_path) -> float:
    return (sum(t.weight for t in targets) + sum(t.weight for e in episodes for t in e.targets)
            + (1.0 if real_path is not None else 0.0))


def calibrate(scenario, targets: list[Target], real_path: pd.Series | None = None, *, candles: pd.Series | None = None,
              names: list[str] | None = None, n_paths: int = 2000, seed: int | None = None,
              n_jobs: int = 1, design_points: int = 32, max_evals: int = 160,
              progress: Callable[[str], None] | None = None, identify: bool = True,
              episodes: tuple[Episode, ...] = ()) -> Calibration:
    """Fit ``names`` (default: :data:`DEFAULT_PARAMETERS`) of ``scenario`` (a loaded scenario) to
    ``targets``, with ``real_path`` (closes labelled by close time) for the fan coverage term and
    ``candles`` (closes by candle start, as :func:`engine.history.data.load_ohlcv` reads them) for the
    replay targets; ``episodes`` (:class:`Episode`) are fitted jointly, with the shared mechanics.

    ``design_points`` Sobol points first (a power of two is best), then Nelder-Mead until
    ``max_evals`` evaluations in all; then, with ``identify``, the curvature of the objective at the
    result (:mod:`engine.calibration.identify`, two evaluations per parameter beyond the budget).
    Deterministic for a given (scenario, seed)."""
    from scipy.optimize import minimize
    from scipy.stats import qmc

    from ..scenario.canonical import to_plain

    names = list(names or DEFAULT_PARAMETERS)
    unknown = [n for n in names if n not in PARAMETERS]
    if unknown:
        raise ScenarioError(Problem(f"unknown calibration parameter(s) {', '.join(unknown)}; "
                                    f"expected some of {', '.join(PARAMETERS)}", "--params"))
    if not targets:
        raise ValueError("no targets to calibrate to")
    if max_evals < 2:
        raise ValueError(f"max_evals must be at least 2, got {max_evals}")
    plain = to_plain(scenario)
    seed = int(scenario.seed if seed is None else seed)
    start = {n: PARAMETERS[n].decode(_get(plain, PARAMETERS[n].key)) for n in names}
    for n, v in start.items():
        p = PARAMETERS[n]
        if not p.low <= v <= p.high:
            raise ScenarioError(Problem(f"{p.key} = {v:g} lies outside the calibration box [{p.low:g}, {p.high:g}]: "
                                        f"start the fit inside it (--set {p.key}=...)",
                                        path=tuple(p.key.split("."))))
    weights = _total_weight(targets, episodes, real_path)
    history: list[dict] = []
    cache: dict[tuple, float] = {}
    began = time.perf_counter()

    replays = any(t.on == "replay" for t in targets)
    if replays and candles is None:
        raise ValueError("replay targets need the real candles (candles=)")

    run_at = _runner(plain, targets, real_path, candles, n_paths, seed, n_jobs, episodes)

    def f(u: np.ndarray) -> float:
        u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        key = tuple(np.round(u, 12))
        if key in cache:
            return cache[key]
        if len(history) >= max_evals:
            return 1e12  # budget spent: Nelder-Mead is stopped by maxfev too
        values = {n: PARAMETERS[n].from_unit(x) for n, x in zip(names, u)}
        try:
            _, table, coverage = run_at(values)
        except ScenarioError as exc:
            if phase[0] == "start":  # the scenario as given: the user's to fix
                raise
            # a point of the box the schema refuses (e.g. a leverage median at its distribution's
            # min): the worst objective, recorded with the reason, and the search goes on
            cache[key] = 1e12
            history.append({"evaluation": len(history) + 1, "phase": phase[0], **values, "objective": 1e12,
                            "coverage": None, "invalid": " ".join(str(exc).split())})
            if progress is not None:
                progress(f"[{len(history)}/{max_evals}] {phase[0]}: refused by the schema: {exc}")
            return 1e12
        parts = objective_parts(table, coverage)
        value = _objective_value(parts, weights)
        cache[key] = value
        history.append({"evaluation": len(history) + 1, "phase": phase[0], **values, "objective": value,
                        "coverage": coverage, **{f"z_{k}": float(table.loc[k, "z"]) for k in table.index}})
        if progress is not None:
            progress(f"[{len(history)}/{max_evals}] {phase[0]}: objective {value:.4g} "
                     + " ".join(f"{n}={v:.4g}" for n, v in values.items()))
        return value

    phase = ["start"]
    u0 = np.array([PARAMETERS[n].to_unit(start[n]) for n in names])
    start_objective = f(u0)
    phase[0] = "design"
    design = qmc.Sobol(d=len(names), scramble=True, seed=seed).random(max(1, min(design_points, max_evals - 1)))
    for u in design:
        f(u)
    best_u = min(cache, key=cache.get)
    phase[0] = "refine"
    remaining = max_evals - len(history)
    if remaining > 0:
        simplex = [np.array(best_u)]
        for i in range(len(names)):  # a simplex of 10% steps, pointing into the box
            v = np.array(best_u)
            v[i] = v[i] + 0.1 if v[i] <= 0.9 else v[i] - 0.1
            simplex.append(v)
        minimize(f, np.array(best_u), method="Nelder-Mead",
                 options={"maxfev": remaining, "initial_simplex": np.array(simplex), "xatol": 1e-3,
                          "fatol": 1e-4})
    best_u = min(cache, key=cache.get)
    best = {n: PARAMETERS[n].from_unit(x) for n, x in zip(names, best_u)}
    sim, table, coverage = run_at(best)
    fan = fan_coverage(sim, real_path)[1] if real_path is not None else None
    ident = None
    if identify:
        ident = _identify(run_at, names, np.array(best_u), cache[best_u], weights, progress)
    return Calibration(names=names, start=start, best=best, objective=cache[best_u], start_objective=start_objective,
                       table=table, coverage=coverage, fan=fan, history=pd.DataFrame(history), n_paths=n_paths,
                       seed=seed, seconds=time.perf_counter() - began, identifiability=ident)


def _identify(run_at, names: list[str], u0: np.ndarray, objective: float, weights: float, progress):
    """The identifiability check at the unit point ``u0`` (:mod:`engine.calibration.identify`), or
    None with a progress note when it cannot be measured (the point stands without it)."""
    from .identify import identifiability, jacobian, residual_vector

    def residuals(u: np.ndarray) -> np.ndarray | None:
        try:
            _, t, c = run_at({n: PARAMETERS[n].from_unit(x) for n, x in zip(names, u)})
        except ScenarioError:  # a neighbour the schema refuses: measured from the other side
            return None
        return residual_vector(t, c, weights)

    try:
        return identifiability(jacobian(residuals, u0, progress=progress), names, u0, objective)
    except (ValueError, np.linalg.LinAlgError) as exc:
        if progress is not None:
            progress(f"identifiability skipped: {exc}")
        return None


def identify_at(scenario, targets: list[Target], real_path: pd.Series | None = None, *,
                candles: pd.Series | None = None, names: list[str] | None = None, n_paths: int = 2000,
                seed: int | None = None, n_jobs: int = 1, progress: Callable[[str], None] | None = None,
                episodes: tuple[Episode, ...] = ()):
    """The identifiability check at ``scenario``'s own values of ``names`` (default:
    :data:`DEFAULT_PARAMETERS`), without fitting: what the targets pin down at the shipped parameters.
    The same evaluations as :func:`calibrate`'s (seed, paths, objective), so at a fitted file it
    measures what the fit's check measured. None when a value lies outside its box."""
    from ..scenario.canonical import to_plain

    names = list(names or DEFAULT_PARAMETERS)
    plain = to_plain(scenario)
    seed = int(scenario.seed if seed is None else seed)
    values = {n: PARAMETERS[n].decode(_get(plain, PARAMETERS[n].key)) for n in names}
    outside = [n for n, v in values.items() if not PARAMETERS[n].low <= v <= PARAMETERS[n].high]
    if outside:
        if progress is not None:
            progress(f"identifiability skipped: outside the calibration box: {', '.join(outside)}")
        return None
    weights = _total_weight(targets, episodes, real_path)

    run_at = _runner(plain, targets, real_path, candles, n_paths, seed, n_jobs, episodes)
    _, table, coverage = run_at(values)
    objective = _objective_value(objective_parts(table, coverage), weights)
    u0 = np.array([PARAMETERS[n].to_unit(values[n]) for n in names])
    return _identify(run_at, names, u0, objective, weights, progress)


# --------------------------------------------------------------------------- the parameter file
def _nest(values: dict[str, float]) -> dict:
    from ..scenario.loader import set_path, split_path

    out: dict = {}
    for name, value in values.items():
        p = PARAMETERS[name]
        set_path(out, split_path(p.key), p.encode(value, 4) if p.unit else _round(value))
    return out


def _round(x: float) -> float:
    """Four significant digits: more than the Monte Carlo error supports, stable in a diff."""
    return float(f"{x:.4g}")


def parameter_yaml(cal: Calibration, base_plain: dict, *, header: list[str]) -> str:
    """The parameter file shipped scenarios extend: the fitted keys, with a fitted leverage (the long
    book's, the momentum traders') as a whole mapping (the loader replaces a mapping whose ``distribution`` differs, so a lone
    ``median`` would not merge into the scenario's lognormal)."""
    import yaml

    from ..scenario.loader import set_path, split_path

    data = _nest(cal.best)
    for prefix in ("market.perpetuals.long.leverage.", "market.behaviour.momentum.leverage."):
        fitted = {PARAMETERS[n].key[len(prefix):]: v for n, v in cal.best.items()
                  if PARAMETERS[n].key.startswith(prefix)}
        if fitted:
            whole = copy.deepcopy(_get(base_plain, prefix[:-1]))
            whole.update({k: _round(v) for k, v in fitted.items()})
            set_path(data, split_path(prefix[:-1]), whole)
    lines = [f"# {line}" if line else "#" for line in header]
    return "\n".join(lines) + "\n" + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
