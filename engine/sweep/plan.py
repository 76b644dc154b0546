"""A sweep's plan: its items (scenario point, strategy, parameter set; the unhedged book first at
each point) and how they are cut into chunks. The plan's hash names the sweep's folder."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import dataclass, field

from ..errors import ScenarioError


UNHEDGED = -1  # the strategy index of the unhedged book's row at each point


@dataclass(frozen=True)
class Item:
    point: int  # index into plan.points
    strategy: int  # index into the scenario's strategies, or UNHEDGED
    variant: int  # index into that strategy's parameter sets


@dataclass
class SweepPlan:
    """What a sweep computes: scenario points, each strategy's parameter sets, the work items and
    their chunks. ``hash`` identifies it (a resumed sweep must have the same)."""

    name: str
    plain: dict  # the resolved scenario, plain data, strategies with their sweeps removed
    seed: int
    n_paths: int
    mode: str
    scenario_keys: list[str]
    points: list[dict]  # scenario key -> value
    strategies: list[dict]  # plain strategy data (sweeps removed)
    labels: list[str]
    variants: list[list[dict]]  # per strategy: its parameter sets, field path -> value
    items: list[Item]
    chunk_size: int
    hash: str = ""
    chunks: list[list[int]] = field(default_factory=list)  # item indices per chunk

    @property
    def n_chunks(self) -> int:
        return len(self.chunks)

    def chunk_hash(self, k: int) -> str:
        return hashlib.sha256(f"{self.hash}|{k}|{self.chunks[k]}".encode()).hexdigest()

    def describe(self) -> str:
        n_sets = sum(len(v) for v in self.variants)
        return (f"{self.name}: {len(self.points):,} scenario point(s) x {n_sets:,} strategy parameter set(s) "
                f"({len(self.items):,} rows, mode {self.mode}) in {self.n_chunks:,} chunk(s) of up to "
                f"{self.chunk_size}; {self.n_paths:,} paths, seed {self.seed}")


def _strip_sweeps(strategy, data: dict) -> tuple[dict, list]:
    """(the strategy's plain ``data`` with every inline sweep spec replaced by None, [(field path,
    values)]): the specs are read off the validated ``strategy``, whose types tell a duration sweep
    (``tenor: {values: [14d, 30m]}``) from a number sweep."""
    from ..scenario.grid import _walk
    from ..scenario.keypaths import set_path, split_path

    data = copy.deepcopy(data)
    dims = []
    for key, values in _walk(strategy, ""):
        path = key.lstrip(".")
        set_path(data, split_path(path), None, create=False)
        dims.append((path, values))
    return data, dims


def plan_sweep(scenario, *, n_paths: int | None = None, seed: int | None = None, chunk_size: int = 0) -> SweepPlan:
    """Lay out a sweep of ``scenario`` (a :class:`~engine.scenario.schema.Scenario` with inline
    strategy sweeps and/or ``sweep.parameters``). ``chunk_size`` 0 cuts the work into about 32
    chunks (for balance and for little lost work on interruption)."""
    from ..scenario.canonical import to_plain
    from ..scenario.grid import combine, sweep_dimensions
    from ..scenario.keypaths import strategy_key
    from ..scenario.problems import scenario_problem
    from ..scenario.sweep import DurationSweep, SweepBase, field_sweep, parse_value

    sweep_dimensions(scenario)  # raises for a zip of unequal lengths
    plain = to_plain(scenario)
    mode = scenario.sweep.mode if scenario.sweep is not None else "product"
    parameters = dict(plain.pop("sweep", None) and scenario.sweep.parameters or {})
    plain["sweep"] = None
    strategies, labels, variants = [], [], []
    moved: dict[str, dict] = {}  # sweep.parameters keys that belong to a strategy
    for key in list(parameters):
        if (named := strategy_key(key)) is not None:
            label, rest = named
            moved.setdefault(label, {})[rest] = parameters.pop(key)
    for strategy, s in zip(scenario.strategies, plain.get("strategies") or []):
        label = strategy.label
        data, dims = _strip_sweeps(strategy, s)
        for rest, spec in moved.pop(label, {}).items():
            values = spec.expand() if hasattr(spec, "expand") else list(spec)
            if field_sweep(type(strategy), rest) is DurationSweep:  # the texts an inline sweep has: 24h -> 1d
                values = DurationSweep(values=values).expand()
            else:  # numbers, as the scenario's keys below and an inline sweep have them: 52k -> 52000.0
                values = [parse_value(v) for v in values]
            dims.append((rest, [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                                for v in values]))
        strategies.append(data)
        labels.append(label)
        variants.append(combine(dims, mode))
    if moved:
        raise ScenarioError(scenario_problem(scenario, ("sweep", "parameters"),
                                             f"sweep.parameters names strategies {sorted(moved)} the scenario does not have"))
    plain["strategies"] = []

    scenario_dims = [(k, v.expand() if isinstance(v, SweepBase) else [parse_value(x) for x in v])
                     for k, v in parameters.items()]
    points = combine(scenario_dims, mode)
    items: list[Item] = []
    if mode == "zip" and scenario_dims and any(len(v) > 1 for v in variants):
        for i in range(len(points)):
            items.append(Item(i, UNHEDGED, 0))
            items += [Item(i, s, i if len(v) > 1 else 0) for s, v in enumerate(variants)]
    else:
        for i in range(len(points)):
            items.append(Item(i, UNHEDGED, 0))
            items += [Item(i, s, j) for s, v in enumerate(variants) for j in range(len(v))]
    n = n_paths if n_paths is not None else scenario.n_paths
    sd = seed if seed is not None else scenario.seed
    if chunk_size <= 0:
        chunk_size = default_chunk_size(len(items), len(points))
    plan = SweepPlan(scenario.name, plain, int(sd), int(n), mode, [k for k, _ in scenario_dims], points, strategies,
                     labels, variants, items, chunk_size)
    plan.chunks = [list(range(a, min(a + chunk_size, len(items)))) for a in range(0, len(items), chunk_size)]
    body = json.dumps({"scenario": plain, "strategies": strategies, "variants": variants, "points": points,
                       "mode": mode, "seed": plan.seed, "n_paths": plan.n_paths, "chunk_size": chunk_size},
                      sort_keys=True, default=str)
    plan.hash = hashlib.sha256(body.encode()).hexdigest()
    return plan


MAX_CHUNK_ROWS = 250  # a chunk's outputs (rows x paths x metrics) stay ~100 MB at 10,000 paths


def default_chunk_size(n_items: int, n_points: int) -> int:
    """Rows per chunk when the user gives none. Independent of the job count, so a sweep resumes
    whatever ``--jobs`` the rerun uses.

    A scenario sweep (several points, each simulated) in about 32 chunks: balance for up to ~8
    jobs and little work lost to an interruption. A strategy-only sweep (one simulation, many rows)
    in about 8: each chunk pays a fixed cost, the mark tables of its contracts and their marks on
    every path (about half a second at 10,000 paths x 720 steps for 20 contracts, on one core, as
    much as 20 rows). On one core a 1,000-row put-spread sweep took 53 s in 32 chunks, 38 s in 8
    and 30 s in 4 (``bench/bench_sweep.py``); 8 keeps two to eight jobs busy."""
    chunks = 8 if n_points == 1 else 32
    return max(1, min(MAX_CHUNK_ROWS, math.ceil(n_items / chunks)))
