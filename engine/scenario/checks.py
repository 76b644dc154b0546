"""Checks that need the whole scenario: times inside the horizon, references that resolve, sweeps.

Each check appends :class:`~engine.errors.Problem` records located through the loader's
:class:`~engine.scenario.problems.Document`, so they are reported together with file and line.
"""

from __future__ import annotations

import copy
import math
from datetime import datetime, timedelta

from pydantic import ValidationError

from .grid import sweep_dimensions
from .shocks import EtfFlows, ExchangeFailure, MarginHike, OptionsPositioning, BalanceSheetTightening
from .sweep import SweepBase, parse_value

__all__ = ["semantic_problems", "MAX_GRID_POINTS"]

MAX_GRID_POINTS = 10_000_000
MAX_PROBES = 64  # swept values validated one by one; longer lists are checked at their extremes


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _in_horizon(scenario, doc, problems, path, when, what: str, *, allow_end: bool = False) -> None:
    if when is None:
        return
    h = scenario.horizon
    t = h.resolve(when)
    late = t > h.end if allow_end else t >= h.end
    if t < h.start or late:
        problems.append(doc.problem(
            path, f"{what} {_fmt(t)} is outside the horizon {_fmt(h.start)} .. {_fmt(h.end)}",
            hint="move it inside, or change horizon.start / horizon.duration",
        ))


def _check_shocks(scenario, doc, problems) -> None:
    venues = set(scenario.market.perpetuals.venues)
    ids: dict[str, int] = {}
    for i, shock in enumerate(scenario.shocks):
        base = ("shocks", i)
        _in_horizon(scenario, doc, problems, base + ("start",), shock.start, "start")
        if shock.id is not None:
            if shock.id in ids:
                problems.append(doc.problem(base + ("id",), f"duplicate shock id {shock.id!r} (also shocks[{ids[shock.id]}])"))
            ids[shock.id] = i
        if isinstance(shock, (MarginHike, ExchangeFailure)) and shock.venues is not None:
            for j, venue in enumerate(shock.venues):
                if venue not in venues:
                    problems.append(doc.problem(
                        base + ("venues", j), f"unknown venue {venue!r}; market.perpetuals.venues has "
                        f"{', '.join(sorted(venues))}"))
        if isinstance(shock, MarginHike):
            for j, step in enumerate(shock.schedule):
                _in_horizon(scenario, doc, problems, base + ("schedule", j, "at"), step.at, "schedule step")
            times = [scenario.horizon.resolve(s.at or shock.start) for s in shock.steps()]
            if times != sorted(times):
                problems.append(doc.problem(base + ("schedule",), "schedule steps must be in time order"))
        if isinstance(shock, EtfFlows) and shock.generated is not None:
            window = shock.execution_window or scenario.market.etf.execution_window
            last = shock.generated_days(scenario.horizon.resolve(shock.start))[-1]
            if last + timedelta(minutes=window.start) >= scenario.horizon.end:
                problems.append(doc.problem(
                    base + ("generated", "days"),
                    f"the run's {shock.generated.days} trading days (weekends skipped) end on "
                    f"{last:%Y-%m-%d}, after the horizon ends {_fmt(scenario.horizon.end)}",
                    hint="shorten the run or lengthen horizon.duration"))
        if isinstance(shock, EtfFlows) and shock.daily_flows_usd:
            window = shock.execution_window or scenario.market.etf.execution_window
            for day in shock.daily_flows_usd:
                t0 = datetime(day.year, day.month, day.day, tzinfo=scenario.horizon.start.tzinfo)
                w0, w1 = t0 + timedelta(minutes=window.start), t0 + timedelta(minutes=window.end)
                if w1 <= scenario.horizon.start or w0 >= scenario.horizon.end:
                    problems.append(doc.problem(
                        base + ("daily_flows_usd", day),
                        f"flow date {day} (executed {window.start // 60:02d}:{window.start % 60:02d}-"
                        f"{window.end // 60:02d}:{window.end % 60:02d} UTC) is outside the horizon "
                        f"{_fmt(scenario.horizon.start)} .. {_fmt(scenario.horizon.end)}"))
        if isinstance(shock, BalanceSheetTightening) and shock.announcement_jump is not None:
            _in_horizon(scenario, doc, problems, base + ("announcement_jump", "at"),
                        shock.announcement_jump.at, "announcement")
        if isinstance(shock, OptionsPositioning):
            for key in ("open_interest_changes", "open_interest_removed"):
                for j, oi in enumerate(getattr(shock, key)):
                    if oi.expiry <= scenario.horizon.resolve(shock.start):
                        problems.append(doc.problem(base + (key, j, "expiry"),
                                                    f"expiry {_fmt(oi.expiry)} is before the shock starts"))


def _check_market(scenario, doc, problems) -> None:
    m = scenario.market
    for j, oi in enumerate(m.options.open_interest):
        if oi.expiry <= scenario.horizon.start:
            problems.append(doc.problem(("market", "options", "open_interest", j, "expiry"),
                                        f"expiry {_fmt(oi.expiry)} is not after horizon.start"))
    perps = m.perpetuals
    # a flat venue drops positions above its maximum leverage; a tiered one holds them at their tier's
    flat = [1.0 / perps.margin_rates(name)[1] for name in perps.venues if perps.schedule(name) is None]
    max_leverage = max(flat) if flat else math.inf
    for side in ("long", "short"):
        lev = getattr(perps, side).leverage
        top = lev.max if lev.distribution == "lognormal" else max(lev.weights)
        if top > max_leverage * (1 + 1e-9) and len(flat) == len(perps.venues):
            problems.append(doc.problem(
                ("market", "perpetuals", side, "leverage"),
                f"leverage up to {top:g}x exceeds the {max_leverage:g}x that initial_margin_rate "
                f"{1 / max_leverage:.4g} allows"))
    nda = m.miners.next_difficulty_adjustment
    if nda is not None and scenario.horizon.resolve(nda) < scenario.horizon.start:
        problems.append(doc.problem(("market", "miners", "next_difficulty_adjustment"),
                                    "next difficulty adjustment is before horizon.start"))
    if scenario.portfolio and scenario.portfolio.perp and scenario.portfolio.perp.venue:
        if scenario.portfolio.perp.venue not in m.perpetuals.venues:
            problems.append(doc.problem(("portfolio", "perp", "venue"),
                                        f"unknown venue {scenario.portfolio.perp.venue!r}"))


def _check_strategies(scenario, doc, problems) -> None:
    seen: dict[str, int] = {}
    for i, strategy in enumerate(scenario.strategies):
        if strategy.label in seen:
            first = seen[strategy.label]
            file, line, _ = doc.locate(("strategies", first))  # another file's when a `use:` brought it in
            where = f" at {file}:{line}" if line is not None else ""
            problems.append(doc.problem(("strategies", i), f"two strategies are called {strategy.label!r} "
                                        f"(also strategies[{first}]{where}); give each a distinct name"))
        seen.setdefault(strategy.label, i)


def _probes(values: list) -> list:
    """The values a swept parameter is validated with: all of a short list; of a long one, both
    ends and the smallest and largest number (bounds are intervals, so these stand for the rest)."""
    if len(values) <= MAX_PROBES:
        return list(values)
    numbers = []
    for i, value in enumerate(values):
        try:
            number = parse_value(value)
        except ValueError:
            number = None
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            return list(values[:MAX_PROBES])  # not all numbers: no extremes to pick
        if not math.isfinite(number):
            return [value]  # refused anyway; report it
        numbers.append((number, i))
    picks = {0, len(values) - 1, min(numbers)[1], max(numbers)[1]}
    return [values[i] for i in sorted(picks)]


def _check_sweep(scenario, doc, problems) -> None:
    from .keypaths import set_path, split_path

    from .schema import Scenario

    parameters = scenario.sweep.parameters if scenario.sweep else {}
    for key, spec in parameters.items():
        here = ("sweep", "parameters", key)
        try:
            path = split_path(key)
        except ValueError as exc:
            problems.append(doc.problem(here, str(exc)))
            continue
        values = spec.expand() if isinstance(spec, SweepBase) else list(spec)
        if not values:
            problems.append(doc.problem(here, "a swept parameter needs at least one value"))
            continue
        for value in _probes(values):
            trial = copy.deepcopy(doc.data)
            try:
                set_path(trial, path, value)
                Scenario.model_validate(trial)
            except KeyError as exc:
                problems.append(doc.problem(here, f"key path does not resolve: {exc.args[0]}"))
                break
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                problems.append(doc.problem(here, f"value {value!r} is not valid there: {err['msg']}",
                                            hint=f"at {'.'.join(map(str, err['loc']))}"))
                break
    try:
        dims = sweep_dimensions(scenario)
    except ValueError as exc:
        problems.append(doc.problem(("sweep", "mode"), str(exc)))
        return
    size = 1
    for _, values in dims:
        zipped = scenario.sweep is not None and scenario.sweep.mode == "zip"
        size = len(values) if zipped else size * len(values)
    if size > MAX_GRID_POINTS:
        problems.append(doc.problem(("sweep",), f"the grid has {size:,} points, more than {MAX_GRID_POINTS:,}"))


def semantic_problems(scenario, doc) -> list:
    problems: list = []
    _check_shocks(scenario, doc, problems)
    _check_market(scenario, doc, problems)
    _check_strategies(scenario, doc, problems)
    _check_sweep(scenario, doc, problems)
    return problems

