"""Reverse stress test: the smallest scale of a shock at which a metric crosses a threshold.

``find_breakpoint(scenario, "shocks[warsh].depth_multiplier", "market.prob_touch_56100", "25%")``
answers "how far must depth be withdrawn before the probability of touching 56.1k exceeds 25%?".

**The scale.** The shock key is a ``--set`` path (:func:`engine.scenario.loader.split_path`) to a
number, or to a mapping or list of numbers that are scaled together
(``shocks[farside_days].daily_flows_usd``: every day's flow). A scale ``s`` sets it to:

* ``multiply``: ``s * v`` (``v`` the scenario's value): ``s = 0`` removes the shock, ``s = 1`` is
  the scenario as written, ``s = 2`` doubles it. For sizes: ETF flows, jump sizes, forced selling.
* ``multiplier``: ``1 + s * (v - 1)``, for keys that multiply something and are neutral at 1: the
  shock is the distance from 1, so ``s = 2`` turns a ``depth_multiplier`` of 0.7 (30% of depth
  withdrawn) into 0.4 (60% withdrawn) and a ``vol_multiplier`` of 1.3 into 1.6.
* ``value``: ``s`` itself, searched over ``range`` (required), for keys with no natural zero
  (a margin rate from 11% to 40%: ``range=(0.11, 0.40)``).

``auto`` picks ``multiplier`` for keys named ``*_multiplier`` and ``multiply`` otherwise. The
breakpoint is reported as the scale and as the key's value there (for a mapping, the sum of its
numbers: the total ETF flow).

**The search.** Every evaluation simulates the scenario with the same seed: the random streams
depend only on the seed (:mod:`engine.simulate`), so the metric is a deterministic, typically
monotone function of the scale (common random numbers) and root finding works on it as on any
function. (One exception: a scheduled jump with no spread is skipped by the kernel, with its
draw, when its size is exactly 0, so the ``s = 0`` point of such a key sees shifted streams.)
From ``range`` (default ``0:1``, no shock to the scenario's own) the top end grows by doubling
up to ``max_scale`` (default 16; lowered to the largest scale the scenario's schema accepts, a
``depth_multiplier`` must stay above 0) until the metric crosses; then the bracket is narrowed by
the Illinois variant of false position (each step is a full simulation, and interpolating in a
smooth metric converges in a few) with a bisection step whenever two steps have not halved the
bracket (metrics that move in steps, such as probabilities, stall false position). It stops when
the bracket is within ``tol`` (1%) of the scale, or after ``max_evals`` simulations. Evaluations
are cached. "Crossing" is strict: ``above`` means metric > threshold, ``below`` metric <
threshold; ``auto`` takes the way the shock moves the metric from the bottom of the range to its
top (scale 1 by default), so that a metric already past the threshold with no shock is reported
as such (status ``crossed_at_start``) rather than searched the wrong way.
The point estimate interpolates linearly within the final bracket.

**Monte Carlo uncertainty.** Each evaluation comes with the metric's bootstrap standard error
(:func:`engine.results.regression.measure`: 300 resamples of the paths; a probability never gets
less than the binomial SE). The reported interval is the set of scales at which the threshold is
within ``n_se`` (2) standard errors of the simulated metric, i.e. the scales where the curves
``metric + n_se*SE`` and ``metric - n_se*SE`` cross the threshold, found by the same search on
those curves (a few more simulations). This inverts a test: a scale is outside the interval when
the simulation says, at about 95%, on which side of the threshold the metric lies there. Under
common random numbers the error of the metric moves together across nearby scales, so the error
at the true breakpoint is one draw of size ~SE and the interval covers it about 95% of the time;
it is an interval for the breakpoint of this model with these inputs, and narrows as 1/sqrt(paths).
Re-running with other seeds (``--seed``) is the brute-force check of the same quantity; it costs
a whole search per seed, where the band costs a few simulations. An end of the interval that lies
beyond the searched range is reported open (``None``): "the threshold is already within noise
with no shock", or "still within noise at the largest scale".

The answer is a crossing of the metric in the searched range; if the metric is not monotone in
the scale (cascades can make it so), it may not be the first one. The notes say when the
evaluated points changed side more than once.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import math
import re
import time
from dataclasses import asdict, dataclass, field, replace

from ..errors import InvalidParameterError, Problem, ScenarioError, invalid_parameter

__all__ = ["DIRECTIONS", "SCALE_MODES", "BreakpointResult", "Evaluation", "find_breakpoint"]

DIRECTIONS = ("auto", "above", "below")
SCALE_MODES = ("auto", "multiply", "multiplier", "value")
GROWTH = 2.0  # the top of the bracket doubles until the metric crosses
PROBE_PATHS = 256  # a first small run lists the metric names (one RNG block)
VALIDITY_STEPS = 30  # bisection steps to the largest scale the schema accepts


def _bad(name: str, expected: str, found, *, message: str | None = None, hint: str | None = None
         ) -> InvalidParameterError:
    """A bad argument of :func:`find_breakpoint`; the command line shows it under its flag
    (``shock_key`` -> ``--shock``, ``lo`` and ``hi`` -> ``--range``)."""
    return invalid_parameter("find_breakpoint", name, expected, found, message=message, hint=hint)


def _number(text, name: str) -> float:
    """``56.1k``, ``5%``, ``-2.5B``, ``0.05`` or a number -> float."""
    from ..scenario.sweep import parse_value

    try:
        value = parse_value(text)
    except ValueError:
        value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(name, "a number like 56.1k, 5% or 0.05", text)
    return float(value)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# ----------------------------------------------------------------------------- the scaled key
@dataclass(frozen=True)
class _Key:
    """The shock key: its validated value, where it goes in the raw data and how a scale sets it."""

    text: str
    path: tuple  # concrete path into the raw scenario data (as the loader read it)
    base: object  # the validated number, or a dict / list of them (dict keys as in the raw data)
    mode: str

    @classmethod
    def find(cls, raw: dict, plain: dict, text: str, mode: str) -> _Key:
        from ..scenario.loader import set_path, split_path

        try:
            tokens = split_path(text)
            path = set_path(copy.deepcopy(plain), tokens, None, create=False)
        except (KeyError, ValueError) as exc:
            raise _bad("shock_key", "the key path of a number in the scenario", text, hint=str(exc.args[0])) from None
        node = plain
        for part in path:
            node = node[part]
        leaves = list(node.values()) if isinstance(node, dict) else node if isinstance(node, list) else [node]
        if node is None or not leaves or not all(_is_number(v) for v in leaves):
            if node is None:
                what = "not set"
            elif isinstance(node, dict):
                what = "a section"
            elif isinstance(node, list):
                what = "a list of non-numbers"
            else:
                what = repr(node)
            raise _bad("shock_key", "the key path of a number (or a mapping or list of numbers) to scale", text,
                       hint=f"{text} is {what}, not a number; point at one, e.g. shocks[warsh].depth_multiplier or "
                            "shocks[etf_run].generated.total_usd")
        last = str(path[-1])
        if mode == "auto":
            mode = "multiplier" if last.endswith("_multiplier") else "multiply"
        if mode == "value" and isinstance(node, (dict, list)):
            raise _bad("scale_mode", "'multiply' or 'multiplier' for a key that holds several numbers", "value",
                       message=f"must not be 'value' for {text}: value mode sets one number, and it holds "
                               f"{len(leaves)}", hint="use 'multiply'")
        neutral = 1.0 if mode == "multiplier" else 0.0
        if mode != "value" and all(v == neutral for v in leaves):
            raise _bad("shock_key", "the key path of a shock to scale", text,
                       message=f"must point at a shock: {text} is {neutral:g}, which is no shock in {mode} mode "
                               "(scaling it changes nothing)",
                       hint="search its raw value: scale_mode 'value' with lo and hi, --scale-mode value --range LO:HI")
        raw_path = set_path(copy.deepcopy(raw), tokens, None)  # a default absent from the file is created
        base = node
        if isinstance(node, dict):  # the raw keys (dates as YAML read them), the validated numbers, in order
            written = raw
            for part in raw_path:
                written = written.get(part) if isinstance(written, dict) else written[part]
            if isinstance(written, dict) and len(written) == len(node):
                base = dict(zip(written, node.values()))
        return cls(text, raw_path, copy.deepcopy(base), mode)

    def _scaled(self, v: float, s: float) -> float:
        if self.mode == "value":
            return s
        neutral = 1.0 if self.mode == "multiplier" else 0.0
        return neutral + s * (v - neutral)

    def at(self, s: float):
        if isinstance(self.base, dict):
            return {k: self._scaled(v, s) for k, v in self.base.items()}
        if isinstance(self.base, list):
            return [self._scaled(v, s) for v in self.base]
        return self._scaled(self.base, s)

    def shown(self, s: float) -> float:
        """The number reported for scale ``s``: the value, or the sum of a mapping's or list's."""
        value = self.at(s)
        return float(sum(value.values()) if isinstance(value, dict) else sum(value) if isinstance(value, list)
                     else value)

    @property
    def formula(self) -> str:
        if self.mode == "value":
            return f"{self.text} = s (the scenario has {_fmt_value(self.base)})"
        base = self.shown(1.0)
        total = "the sum of " if isinstance(self.base, (dict, list)) else ""
        if self.mode == "multiplier":
            return f"{self.text} = 1 + s x ({_fmt_value(base)} - 1)"
        return f"{self.text} = s x {total}{_fmt_value(base)}" + (" (each scaled)" if total else "")

    def apply(self, raw: dict, s: float) -> dict:
        from ..scenario.loader import set_path

        data = copy.deepcopy(raw)
        set_path(data, self.path, self.at(s))
        return data


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Evaluation:
    scale: float
    value: float  # the key's value (a mapping's sum)
    metric: float
    se: float
    phase: str  # bracket, search, interval
    seconds: float


@dataclass
class BreakpointResult:
    """Outcome of :func:`find_breakpoint`; ``found`` when the metric crossed in the searched range."""

    scenario: str
    shock_key: str
    scale_mode: str
    metric: str
    threshold: float
    direction: str  # above | below: the metric crosses when it is above / below the threshold
    n_paths: int
    seed: int
    n_se: float
    status: str  # found | not_crossed | crossed_at_start
    scale: float | None  # point estimate
    bracket: tuple[float, float] | None  # (last scale not crossed, first scale crossed)
    interval: tuple[float | None, float | None] | None  # None: beyond the searched range
    searched: tuple[float, float]  # the bottom of the range and the largest scale simulated
    evaluations: list[Evaluation]
    seconds: float
    notes: list[str] = field(default_factory=list)
    key: _Key | None = field(default=None, repr=False)

    @property
    def found(self) -> bool:
        return self.status == "found"

    def value_at(self, scale: float | None) -> float | None:
        """The shock key's value at a scale (a mapping's sum)."""
        return None if scale is None else self.key.shown(scale)

    @property
    def table(self):
        """Every simulation, in scale order: scale, the key's value, the metric, its SE, crossed."""
        import pandas as pd

        return pd.DataFrame(self._rows(), columns=["scale", "value", "metric", "se", "crossed", "phase", "seconds"])

    def _rows(self) -> list[dict]:
        lo, top = self.searched
        order = sorted(self.evaluations, key=lambda e: (e.scale - lo) * (1.0 if top >= lo else -1.0))
        return [dict(asdict(e), crossed=self._crossed(e.metric)) for e in order]

    def _crossed(self, metric: float) -> bool:
        return metric > self.threshold if self.direction == "above" else metric < self.threshold

    def to_dict(self) -> dict:
        lo, hi = self.interval or (None, None)
        interval = {"n_se": self.n_se, "scale": [lo, hi], "value": [self.value_at(lo), self.value_at(hi)]}
        return {"scenario": self.scenario, "shock": self.shock_key, "scale_mode": self.scale_mode,
                "scale_formula": self.key.formula, "metric": self.metric, "threshold": self.threshold,
                "direction": self.direction, "status": self.status, "n_paths": self.n_paths, "seed": self.seed,
                "scale": self.scale, "value": self.value_at(self.scale),
                "bracket": list(self.bracket) if self.bracket else None,
                "interval": interval if self.interval else None, "searched": list(self.searched),
                "simulations": len(self.evaluations), "seconds": self.seconds, "notes": self.notes,
                "evaluations": self._rows()}

    def render(self) -> str:
        m, t = self.metric, _fmt_metric(self.metric, self.threshold)
        word = "rises above" if self.direction == "above" else "falls below"
        verb = "exceed" if self.direction == "above" else "fall below"
        lines = [f"{self.scenario}: at what scale of {self.shock_key} does {m} {verb} {t}?",
                 f"scale s: {self.key.formula}",
                 f"{self.n_paths:,} paths, seed {self.seed}, the same random numbers at every scale; "
                 f"{len(self.evaluations)} simulations in {self.seconds:.1f} s", ""]
        if self.status == "found":
            a, b = self.bracket
            ea, eb = self._at(a), self._at(b)
            lines.append(f"breakpoint      s = {_fmt_value(self.scale)}   ({self.shock_key} = "
                         f"{_fmt_value(self.value_at(self.scale))})")
            lines.append(f"                {m} {word} {t} between s = {_fmt_value(a)} ({_fmt_metric(m, ea.metric)}) "
                         f"and s = {_fmt_value(b)} ({_fmt_metric(m, eb.metric)})")
            lo, hi = self.interval
            lo_text = f"s = {_fmt_value(lo)}" if lo is not None else f"at or before s = {_fmt_value(self.searched[0])}"
            hi_text = f"{_fmt_value(hi)}" if hi is not None else f"beyond s = {_fmt_value(self.searched[1])}"
            values = (f"   ({_fmt_value(self.value_at(lo)) if lo is not None else '-'} .. "
                      f"{_fmt_value(self.value_at(hi)) if hi is not None else '-'})")
            lines.append(f"uncertainty     {lo_text} .. {hi_text}{values}: where {t} is within {self.n_se:g} SE "
                         "of the metric")
        elif self.status == "not_crossed":
            top = self._at(self.searched[1])
            lines.append(f"not crossed: {m} never {word} {t} up to s = {_fmt_value(top.scale)} "
                         f"({self.shock_key} = {_fmt_value(top.value)}), where it is "
                         f"{_fmt_metric(m, top.metric)} +- {_fmt_metric(m, top.se)}")
        else:
            first = self._at(self.searched[0])
            lines.append(f"already crossed: {m} is {_fmt_metric(m, first.metric)} at the bottom of the range, "
                         f"s = {_fmt_value(first.scale)}; start lower (--range) or check --direction")
        lines += [f"note: {n}" for n in self.notes]
        lines += ["", self._render_table()]
        return "\n".join(lines)

    def _at(self, s: float) -> Evaluation:
        return next(e for e in self.evaluations if e.scale == s)

    def _render_table(self) -> str:
        rows = [("s", self.shock_key.rsplit(".", 1)[-1], self.metric.split(".", 1)[-1], "SE", "crossed", "phase")]
        for r in self._rows():
            rows.append((_fmt_value(r["scale"]), _fmt_value(r["value"]), _fmt_metric(self.metric, r["metric"]),
                         _fmt_metric(self.metric, r["se"]), "yes" if r["crossed"] else "no", r["phase"]))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.rjust(w) if i < 4 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
                         .rstrip() for row in rows)


def _is_probability(metric: str) -> bool:
    return metric.rsplit(".", 1)[-1].startswith(("prob_", "p_"))


def _fmt_metric(metric: str, x: float) -> str:
    if _is_probability(metric):
        return f"{x:.2%}" if abs(x) < 0.1 else f"{x:.1%}"
    return _fmt_value(x) if abs(x) >= 1e6 else f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _fmt_value(x: float) -> str:
    from ..scenario.units import format_amount

    return format_amount(x) if abs(x) >= 1000 else f"{x:.4g}"


# ----------------------------------------------------------------------------- the search
class _Search:
    """Evaluations (cached by scale) and the root finding on them."""

    def __init__(self, raw, key: _Key, metric, threshold, n_paths, seed, n_jobs, keep_steps, max_evals,
                 progress):
        self.raw, self.key, self.metric, self.threshold = raw, key, metric, threshold
        self.n_paths, self.seed, self.n_jobs, self.keep_steps = n_paths, seed, n_jobs, keep_steps
        self.max_evals, self.progress = max_evals, progress
        self.cache: dict[float, Evaluation] = {}
        self.sign = 0.0  # +1: crossed when metric > threshold, -1: when below
        self.phase = "bracket"
        self.orient = 1.0  # +1 when the search runs toward larger scales
        self.lo = self.cap = 0.0  # the bottom of the range and the farthest scale the search may go

    def scenario(self, s: float):
        from ..scenario.loader import load_scenario

        try:
            return load_scenario(self.key.apply(self.raw, s))
        except ScenarioError as exc:
            where = f"{self.key.text} = {_fmt_value(self.key.shown(s))} (scale {s:.6g})"
            raise ScenarioError([Problem(f"{where}: {p.message}", hint=p.hint, found=p.found, has_found=p.has_found,
                                         source="shock_key=") for p in exc.problems]) from None

    def valid(self, s: float) -> bool:
        try:
            self.scenario(s)
        except ScenarioError:
            return False
        return True

    def clip(self, ok: float, s: float, tol: float) -> float:
        """``s`` within the cap; beyond what the schema accepts, the largest valid scale past ``ok``
        (which then becomes the cap)."""
        if self.d(s) >= self.d(self.cap):
            s = self.cap
        if not self.valid(s):
            self.cap = s = _largest_valid(self, ok, s, tol)
        return s

    def budget(self) -> bool:
        return len(self.cache) < self.max_evals

    def evaluate(self, s: float) -> Evaluation:
        from ..results.regression import measure
        from ..simulate import run

        s = float(s)
        if s in self.cache:
            return self.cache[s]
        started = time.perf_counter()
        result = run(self.scenario(s), n_paths=self.n_paths, seed=self.seed, n_jobs=self.n_jobs,
                     keep_steps=self.keep_steps)
        m = measure(result).metrics.get(self.metric)
        if m is None:
            raise _bad("metric", "a metric defined at every scale searched", self.metric,
                       message=f"must name a metric defined at every scale searched; it is not at scale {s:.6g} "
                               f"({self.key.text} = {_fmt_value(self.key.shown(s))})")
        e = Evaluation(s, self.key.shown(s), float(m.value), float(m.se), self.phase, time.perf_counter() - started)
        self.cache[s] = e
        if self.progress is not None:
            self.progress(e)
        return e

    # signed distance past the threshold: > 0 once crossed; offset -1/+1 for the uncertainty band
    def h(self, s: float, band: float = 0.0) -> float:
        e = self.evaluate(s)
        return self.sign * (e.metric - self.threshold) + band * e.se

    def d(self, s: float) -> float:
        return (s - self.lo) * self.orient

    def solve(self, band: float, a: float, b: float, tol_abs) -> tuple[float, float]:
        """Narrow ``[a, b]`` (``h(a) <= 0 < h(b)`` for this band) until ``tol_abs(a, b)``: Illinois
        false position, with a bisection step whenever two steps have not halved the bracket."""
        wa, wb, side = self.h(a, band), self.h(b, band), 0  # Illinois: a retained end's weight halves
        widths = [abs(b - a)]
        while abs(b - a) > tol_abs(a, b) and self.budget():
            w = abs(b - a)
            stalled = len(widths) >= 3 and widths[-1] > 0.5 * widths[-3]
            if stalled or wb == wa:
                c = 0.5 * (a + b)
            else:
                c = b - wb * (b - a) / (wb - wa)
                margin = min(0.5 * tol_abs(a, b), 0.25 * w)  # near an end, land just inside the tolerance
                lo, hi = min(a, b) + margin, max(a, b) - margin
                c = min(max(c, lo), hi)
            hc = self.h(c, band)
            if hc > 0:
                b, wb = c, hc
                if side == 1:
                    wa *= 0.5
                side = 1
            else:
                a, wa = c, hc
                if side == -1:
                    wb *= 0.5
                side = -1
            widths.append(abs(b - a))
        return a, b

    def interpolate(self, a: float, b: float, band: float = 0.0) -> float:
        ha, hb = self.h(a, band), self.h(b, band)
        return a + (b - a) * (-ha) / (hb - ha) if hb != ha else 0.5 * (a + b)

    def first_crossing(self, band: float, after: float | None = None) -> tuple[float | None, float | None]:
        """Among the evaluated scales in search order (from ``after`` on), the first whose band is
        crossed and the one before it: ``(a, b)``; ``b`` is None when none crossed."""
        points = sorted((s for s in self.cache if after is None or self.d(s) >= self.d(after)), key=self.d)
        prev = None
        for s in points:
            if self.h(s, band) > 0:
                return prev, s
            prev = s
        return prev, None


def _data(scenario_or_path, overrides) -> tuple[dict, dict, str]:
    """``(raw, plain, name)``: the data the loader validated (``extends`` merged, ``--set`` applied;
    it is what each evaluation changes and loads again) and the validated values, every default in."""
    from ..scenario.canonical import to_plain
    from ..scenario.loader import load_scenario, source_data, with_overrides
    from ..scenario.problems import scenario_problem

    if isinstance(scenario_or_path, dict) or not hasattr(scenario_or_path, "model_dump"):
        scenario = load_scenario(scenario_or_path, overrides)
    else:
        scenario = with_overrides(scenario_or_path, overrides)
    if scenario.sweep is not None and scenario.sweep.parameters:
        message = ("a breakpoint search runs one market at a time: sweep.parameters is not supported (inline "
                   "strategy sweeps are)")
        raise ScenarioError(scenario_problem(scenario, ("sweep", "parameters"), message))
    return source_data(scenario), to_plain(scenario), scenario.name


def _metric_names(raw: dict, n_paths: int, seed: int, n_jobs: int, keep_steps: bool) -> list[str]:
    """The metric set of the scenario, from a run of one RNG block (the names do not depend on it)."""
    from ..results.regression import measure
    from ..scenario.loader import load_scenario
    from ..simulate import run

    result = run(load_scenario(raw), n_paths=min(PROBE_PATHS, n_paths), seed=seed, n_jobs=n_jobs,
                 keep_steps=keep_steps)
    return list(measure(result).metrics)


_TOUCH = re.compile(r"^market\.prob_touch_(\d+)$")


def _prepare_metric(raw: dict, plain: dict, metric: str) -> bool:
    """Adjust the raw data for ``metric``: a touch probability of a level the scenario does not
    report gets the level added; a market metric drops the strategies (not needed, and the run can
    then skip the per-step paths). Returns whether the run must keep the price paths."""
    touch = _TOUCH.match(metric)
    if touch:
        levels = list(plain["outputs"]["price_levels_usd"])
        level = float(touch.group(1))
        if level > 0 and level not in levels:
            raw.setdefault("outputs", {})["price_levels_usd"] = levels + [level]
    if metric.startswith("strategies."):
        return True
    raw["strategies"] = []
    raw.pop("sweep", None)
    return False


def find_breakpoint(scenario_or_path, shock_key: str, metric: str, threshold, *, direction: str = "auto",
                    scale_mode: str = "auto", lo=None, hi=None, max_scale: float = 16.0, tol: float = 0.01,
                    max_evals: int = 40, n_se: float = 2.0, n_paths: int | None = None, seed: int | None = None,
                    n_jobs: int = 1, overrides=(), progress=None) -> BreakpointResult:
    """The smallest scale of a shock at which a metric crosses a threshold (a reverse stress test).

    Parameters
    ----------
    scenario_or_path : str, Path, Scenario or dict
        A scenario file, a loaded scenario or raw scenario data.
    shock_key : str
        The shock's key to scale, as ``--set`` names it (``shocks[warsh].depth_multiplier``).
    metric : str
        A metric as ``cascade check --verbose`` names it (``market.min_price.p50``,
        ``market.prob_touch_56100``, ``strategies.unhedged.p_liquidated``).
    threshold : float or str
        A number or a friendly string (``56.1k``, ``5%``).
    direction, scale_mode : str
        ``auto``, ``above`` or ``below``; ``auto``, ``scale`` or ``value`` (module doc).
    lo, hi : optional
        The initial range of scales (default 0 and 1; in ``value`` mode the key's raw values, both
        required, and ``hi`` is not extended); ``max_scale`` caps the doubling of ``hi``.
    tol, max_evals, n_se : float, int, float
        The bracket's final width relative to the scale, the most simulations, the width of the
        uncertainty band in standard errors.
    n_paths, seed, n_jobs, overrides
        As :func:`engine.run` takes them; every scale uses the same random numbers.
    progress : callable, optional
        ``progress(evaluation)`` after each simulation.

    Returns
    -------
    BreakpointResult
        ``found``, the scale and the key's value there, the bracket, the uncertainty interval and
        every evaluation.

    Raises
    ------
    InvalidParameterError
        A bad argument (a ``ScenarioError`` and a ``TypeError``): an unknown shock key or metric, a
        bad threshold, range or option. Its problem's ``source`` names the parameter
        (``direction=``); ``cascade breakpoint`` shows it under its flag (``--direction``).
    ScenarioError
        A scenario that cannot be used, at the bottom of the range or as given.

    Examples
    --------
    >>> result = find_breakpoint("scenarios/feb-2026-deleveraging.yaml", "shocks[warsh].depth_multiplier",
    ...                          "market.prob_touch_60000", "30%", n_paths=200, max_evals=6)
    >>> result.evaluations[0].scale, len(result.evaluations) <= 6
    (0.0, True)
    """
    started = time.perf_counter()
    threshold, tol, n_se, max_evals, n_paths, seed, n_jobs, overrides = _check_arguments(
        scenario_or_path, shock_key, metric, threshold, direction, scale_mode, max_scale, tol, max_evals, n_se,
        n_paths, seed, n_jobs, overrides, progress)
    raw, plain, name = _data(scenario_or_path, overrides)
    key = _Key.find(raw, plain, shock_key, scale_mode)
    lo, hi = _range(key, lo, hi, max_scale)
    keep_steps = _prepare_metric(raw, plain, metric)
    seed = plain["seed"] if seed is None else seed
    n_paths = plain["n_paths"] if n_paths is None else n_paths
    search = _Search(raw, key, metric, threshold, n_paths, seed, n_jobs, keep_steps, max_evals, progress)
    search.lo, search.orient = lo, (1.0 if hi > lo else -1.0)
    if not search.valid(lo):
        try:
            search.scenario(lo)
        except ScenarioError as exc:
            raise ScenarioError([replace(p, hint="the bottom of the range must be a valid scenario: give lo and hi "
                                                 "(--range LO:HI), or scale_mode 'value' (--scale-mode value)")
                                 for p in exc.problems]) from None
    names = _metric_names(raw, n_paths, seed, n_jobs, keep_steps)
    if metric not in names:
        close = difflib.get_close_matches(metric, names, n=3, cutoff=0.5)
        raise _bad("metric", "a metric of this scenario", metric, message="must name a metric of this scenario",
                   hint=f"did you mean {' or '.join(repr(c) for c in close)}?" if close else
                   "names as in `cascade check --verbose`, e.g. market.min_price.p50, market.prob_touch_56100, "
                   "strategies.unhedged.p_liquidated")
    search.cap = hi if key.mode == "value" else max_scale
    status, a, b = _bracket(search, lo, hi, direction, tol)
    result = BreakpointResult(name, shock_key, key.mode, metric, threshold, "above" if search.sign > 0 else "below",
                              n_paths, seed, n_se, status, None, None, None, (lo, lo), [], 0.0, key=key)
    if status == "found":
        rel = _tolerance(tol, lo, search.cap)
        search.phase = "search"
        a, b = search.solve(0.0, a, b, rel)
        result.scale, result.bracket = search.interpolate(a, b), (a, b)
        if abs(b - a) > rel(a, b):
            result.notes.append(f"stopped at --max-evals {max_evals}: the bracket is still {abs(b - a):.3g} wide")
        result.interval = _interval(search, result, n_se, rel, tol)
    result.notes += _monotone_note(search)
    result.evaluations = list(search.cache.values())
    result.searched = (lo, max(search.cache, key=search.d))
    result.seconds = time.perf_counter() - started
    return result


def _check_arguments(scenario_or_path, shock_key, metric, threshold, direction, scale_mode, max_scale, tol,
                     max_evals, n_se, n_paths, seed, n_jobs, overrides, progress) -> tuple:
    """:func:`find_breakpoint`'s arguments, checked before any file is read: ``(threshold, tol, n_se,
    max_evals, n_paths, seed, n_jobs, overrides)`` as numbers and a list; raises
    :class:`~engine.errors.InvalidParameterError`."""
    from .._params import (check_callable, check_choice, check_count, check_number, check_overrides, check_scenario,
                          check_seed)

    f = "find_breakpoint"
    check_scenario(f, "scenario_or_path", scenario_or_path, mapping=True)
    if not isinstance(shock_key, str) or not shock_key.strip():
        raise _bad("shock_key", "a key path as --set takes it, like shocks[warsh].depth_multiplier", shock_key)
    if not isinstance(metric, str) or not metric.strip():
        raise _bad("metric", "a metric name, like market.min_price.p50", metric)
    threshold = _number(threshold, "threshold")
    check_choice(f, "direction", direction, DIRECTIONS)
    check_choice(f, "scale_mode", scale_mode, SCALE_MODES)
    check_number(f, "max_scale", max_scale, "a number")
    tol = _number(tol, "tol")
    if not 0 < tol < 1:
        raise _bad("tol", "a fraction between 0 and 1, like 1%", tol)
    n_se = check_number(f, "n_se", n_se, "a positive number", lambda x: x > 0)
    max_evals = check_count(f, "max_evals", max_evals, low=3)
    n_paths = check_count(f, "n_paths", n_paths, optional=True)
    seed = check_seed(f, "seed", seed)
    n_jobs = check_count(f, "n_jobs", n_jobs)
    overrides = check_overrides(f, overrides)
    check_callable(f, "progress", progress)
    return threshold, tol, n_se, max_evals, n_paths, seed, n_jobs, overrides


def _range(key: _Key, lo, hi, max_scale) -> tuple[float, float]:
    if key.mode == "value" and (lo is None or hi is None):
        raise _bad("lo" if lo is None else "hi", "a number in value mode", None,
                   message=f"must be a number in value mode, which searches the raw value of {key.text} between "
                           "lo and hi (--range LO:HI, LO the mild end)")
    lo = 0.0 if lo is None else _number(lo, "lo")
    hi = 1.0 if hi is None else _number(hi, "hi")
    if lo == hi:
        raise _bad("hi", f"a number other than lo ({lo:g})", hi, message=f"must differ from lo ({lo:g})")
    if key.mode != "value":
        if hi < lo or hi <= 0:
            raise _bad("hi", f"a scale above lo ({lo:g}) and above 0", hi,
                       hint="scales grow from the mild end: lo < hi and hi > 0")
        if max_scale < hi:
            raise _bad("max_scale", f"at least the top of the range ({hi:g})", max_scale)
    return lo, hi


def _tolerance(tol: float, lo: float, top: float):
    floor = 1e-9 * abs(top - lo)
    return lambda a, b: max(tol * max(abs(a), abs(b)), floor)


def _bracket(search: _Search, lo, hi, direction, tol):
    """Evaluate the bottom, then grow the top until the metric crosses: ``(status, a, b)``."""
    first = search.evaluate(lo)
    if direction == "auto":  # the way the shock moves the metric; if it does not, away from where it starts
        trend = search.evaluate(hi).metric - first.metric if search.valid(hi) else 0.0
        direction = "above" if trend > 0 or (trend == 0 and first.metric <= search.threshold) else "below"
    search.sign = 1.0 if direction == "above" else -1.0
    if search.h(lo) > 0:
        return "crossed_at_start", None, None
    prev, s = lo, hi
    while True:
        s = search.clip(prev, s, tol)
        if search.h(s) > 0:
            return "found", prev, s
        if s == search.cap or not search.budget():
            return "not_crossed", None, None
        prev, s = s, s * GROWTH


def _largest_valid(search: _Search, ok: float, bad: float, tol: float) -> float:
    """Bisect on the schema's verdict alone (no simulation) toward the largest valid scale."""
    for _ in range(VALIDITY_STEPS):
        if abs(bad - ok) <= 0.1 * tol * max(abs(ok), abs(bad)):
            break
        mid = 0.5 * (ok + bad)
        ok, bad = (mid, bad) if search.valid(mid) else (ok, mid)
    return ok


def _interval(search: _Search, result: BreakpointResult, n_se: float, rel, tol: float):
    """The scales where the threshold is within ``n_se`` SE of the metric (module doc)."""
    search.phase = "interval"
    star = result.scale

    def band_tol(a, b):  # the ends of an interval need less precision than the breakpoint
        return max(rel(a, b), 0.1 * abs(0.5 * (a + b) - star))

    # early end: metric + n_se*SE crosses first (in search order); before the breakpoint
    a, b = search.first_crossing(+n_se)
    if a is None:
        early = None  # within noise already at the bottom of the range
    else:
        a, b = search.solve(+n_se, a, b, band_tol)
        early = search.interpolate(a, b, +n_se)
    # late end: metric - n_se*SE crosses; after the breakpoint, perhaps beyond the points so far
    first = result.bracket[1]
    a, b = search.first_crossing(-n_se, after=result.bracket[0])
    reach = max(abs(star - early) if early is not None else abs(star - search.lo), rel(star, star))
    last = max(search.cache, key=search.d)
    while b is None and search.budget() and last != search.cap:
        last = search.clip(first, max(star + search.orient * reach, last, key=search.d), tol)
        reach *= GROWTH
        if search.h(last, -n_se) > 0:
            a, b = search.first_crossing(-n_se, after=result.bracket[0])
    if b is None:
        late = None  # still within noise at the largest scale
    else:
        a, b = search.solve(-n_se, a, b, band_tol)
        late = search.interpolate(a, b, -n_se)
    return early, late


def _monotone_note(search: _Search) -> list[str]:
    if search.sign == 0:
        return []
    signs = [search.h(s) > 0 for s in sorted(search.cache, key=search.d)]
    changes = sum(x != y for x, y in itertools.pairwise(signs))
    if changes > 1:
        return [f"the metric changed side of the threshold {changes} times along the evaluated scales: it is not "
                "monotone in the scale here, and the breakpoint found is a crossing, not necessarily the first"]
    return []
