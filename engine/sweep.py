"""Parameter sweeps: grids over strategy and scenario keys, run in chunks, streamed to disk, resumable.

A grid has two kinds of dimensions:

* **strategy parameters** (inline sweep specs, ``--grid strategies[put].strike_usd=...``, or
  ``sweep.parameters`` keys under ``strategies[...]``): they do not change the market, so each
  scenario point is simulated once and every parameter set is evaluated on the same paths;
* **scenario keys** (``sweep.parameters``, ``--grid shocks[etf_run].total_usd=...``): each point
  is simulated on its own, with the same seed, so the random draws are common to every point
  (common random numbers): differences between points are the parameters' effect, not noise.

``product`` combines every scenario point with every parameter set of every strategy; ``zip``
pairs the i-th scenario point with the i-th parameter set (equal lengths required).

The work is a list of items (scenario point, strategy, parameter set), the unhedged book first
at each point, cut into chunks of consecutive items. Chunks run through joblib (``loky`` by
default, ``threading``, ``sequential``, or Dask through joblib's dask backend). A sweep with one
scenario point (strategy parameters only) is simulated once, by the parent on every core, and
handed to the workers (:class:`_SharedRun`: memory-mapped files for loky, scattered once to each
Dask worker, the object itself in the parent's own process); with several points, each worker
simulates a point once and keeps it for the next chunk. The parent writes each finished chunk as
``chunks/chunk-NNNNNN.parquet`` (atomically, with its SHA-256 and the hash of its work in a JSON
sidecar) as it arrives, so memory does not grow with the grid and an interruption loses at most
the chunks in flight. Running the same sweep again finds the folder by the plan's hash and skips
the chunks whose files verify. At the end the folder also becomes a run folder (manifest last):
``sweep.parquet``, ``sweep_failures.parquet``, the base point's market tables and the report
with the sweep's heatmaps.

Every number is a function of (scenario, grid, seed) only: rows are sorted by their item index
and each is computed from its own point's simulation, whatever the backend, job count or chunk
size.

A sweep holds a lock on its folder while it runs (:class:`_FolderLock`: ``fcntl.flock`` on
``.sweep.lock``, which records the pid, host, start time and command): a second sweep into the
same folder is refused with who holds it, a lock left by a dead process is taken over with a
note. A SIGTERM of the parent is handled as an interruption, which shuts the loky workers down;
after a ``kill -9``, each loky worker sees its parent gone and ends itself (:func:`_die_with_parent`).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import Problem, RunFolderError, ScenarioError

__all__ = ["SweepPlan", "plan_sweep", "run_sweep", "parse_grid", "apply_grid", "SweepResult", "BACKENDS"]

BACKENDS = ("loky", "threading", "sequential", "dask")
UNHEDGED = -1  # the strategy index of the unhedged book's row at each point


# --------------------------------------------------------------------------- --grid
def parse_grid(text: str, durations: bool = False) -> tuple[str, dict]:
    """``key=50k:60k:2k`` (range, stop included on the grid), ``key=1,2,3`` (values),
    ``key=linspace:a:b:n`` or ``key=logspace:a:b:n`` -> ``(key, sweep spec)``. With ``durations``
    (the key is a duration, e.g. a tenor) the values are durations: ``14d,30d`` or ``7d:35d:7d``."""
    if "=" not in text:
        raise ScenarioError(Problem(f"--grid expects key.path=values, got {text!r}", source="--grid"))
    key, raw = (part.strip() for part in text.split("=", 1))
    parts = raw.split(":")
    value = _duration if durations else _number
    try:
        if parts[0] in ("linspace", "logspace"):
            if durations:
                raise ValueError(f"{parts[0]} sweeps numbers; a duration takes v1,v2,... or start:stop:step")
            if len(parts) != 4:
                raise ValueError(f"{parts[0]} takes start:stop:count")
            spec = {parts[0]: [_number(parts[1]), _number(parts[2]), int(_number(parts[3]))]}
        elif len(parts) == 3:
            spec = {"range": [value(p) for p in parts]}
        elif len(parts) == 1:
            spec = {"values": [value(p) for p in raw.split(",") if p.strip()]}
        else:
            raise ValueError("use start:stop:step, v1,v2,..., linspace:a:b:n or logspace:a:b:n")
    except ValueError as exc:
        raise ScenarioError(Problem(f"--grid {key}: {exc}", source="--grid", found=raw, has_found=True)) from None
    if not key or (list(spec.values())[0] == []):
        raise ScenarioError(Problem(f"--grid expects key.path=values, got {text!r}", source="--grid"))
    return key, spec


def _number(text: str) -> float:
    from .scenario.sweep import parse_value

    value = parse_value(text.strip())
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"not a number: {text.strip()!r}")
    return float(value)


def _duration(text: str) -> str:
    from .scenario import units

    try:
        return units.format_duration(units.parse_duration(text.strip()))
    except units.UnitError as exc:
        raise ValueError(str(exc)) from None


def _is_duration(scenario, key: str) -> bool:
    """Whether ``key`` is a strategy's duration parameter (``strategies[put].tenor``), whose
    ``--grid`` values are durations (``30m`` there is 30 minutes, not 30 million)."""
    from .scenario.sweep import DurationSweep, field_sweep

    if not key.startswith("strategies["):
        return False
    label, _, rest = key[len("strategies["):].partition("].")
    return any(s.label == label and field_sweep(type(s), rest) is DurationSweep for s in scenario.strategies)


def apply_grid(scenario, grids: list[str]):
    """The scenario with ``--grid`` dimensions added: strategy keys become inline sweeps of that
    strategy, other keys entries of ``sweep.parameters``. Validated like a file."""
    if not grids:
        return scenario
    from .scenario.canonical import to_plain
    from .scenario.loader import load_scenario

    plain = to_plain(scenario)
    for text in grids:
        key, spec = parse_grid(text, durations=_is_duration(scenario, text.split("=", 1)[0].strip()))
        if key.startswith("strategies["):
            label, _, rest = key[len("strategies["):].partition("].")
            for s in plain.get("strategies") or []:
                if (s.get("name") or s.get("rule")) == label:
                    node = s
                    *path, last = rest.split(".")
                    for part in path:
                        node = node.setdefault(part, {})
                    node[last] = spec
                    break
            else:
                labels = [s.get("name") or s.get("rule") for s in plain.get("strategies") or []]
                raise ScenarioError(Problem(f"--grid {key}: no strategy {label!r}; the scenario has "
                                            f"{', '.join(labels) or 'none'}", source="--grid"))
        else:
            sweep = plain.get("sweep") or {"mode": "product", "parameters": {}}
            sweep.setdefault("parameters", {})[key] = spec
            plain["sweep"] = sweep
    return load_scenario(plain)


# --------------------------------------------------------------------------- the plan
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
    from .scenario.grid import _walk

    data = copy.deepcopy(data)
    dims = []
    for key, values in _walk(strategy, ""):
        path = key.lstrip(".")
        node = data
        *parents, last = path.split(".")
        for part in parents:
            node = node[part]
        node[last] = None
        dims.append((path, values))
    return data, dims


def _combine(dims: list[tuple[str, list]], mode: str) -> list[dict]:
    import itertools

    if not dims:
        return [{}]
    keys = [k for k, _ in dims]
    rows = zip(*(v for _, v in dims)) if mode == "zip" else itertools.product(*(v for _, v in dims))
    return [dict(zip(keys, row)) for row in rows]


def plan_sweep(scenario, *, n_paths: int | None = None, seed: int | None = None, chunk_size: int = 0) -> SweepPlan:
    """Lay out a sweep of ``scenario`` (a :class:`~engine.scenario.schema.Scenario` with inline
    strategy sweeps and/or ``sweep.parameters``). ``chunk_size`` 0 cuts the work into about 32
    chunks (for balance and for little lost work on interruption)."""
    from .scenario.canonical import to_plain
    from .scenario.grid import sweep_dimensions
    from .scenario.sweep import DurationSweep, field_sweep

    sweep_dimensions(scenario)  # raises for a zip of unequal lengths
    plain = to_plain(scenario)
    mode = scenario.sweep.mode if scenario.sweep is not None else "product"
    parameters = dict(plain.pop("sweep", None) and scenario.sweep.parameters or {})
    plain["sweep"] = None
    strategies, labels, variants = [], [], []
    moved: dict[str, dict] = {}  # sweep.parameters keys that belong to a strategy
    for key in list(parameters):
        if key.startswith("strategies["):
            label, _, rest = key[len("strategies["):].partition("].")
            moved.setdefault(label, {})[rest] = parameters.pop(key)
    for strategy, s in zip(scenario.strategies, plain.get("strategies") or []):
        label = strategy.label
        data, dims = _strip_sweeps(strategy, s)
        for rest, spec in moved.pop(label, {}).items():
            values = spec.expand() if hasattr(spec, "expand") else list(spec)
            if field_sweep(type(strategy), rest) is DurationSweep:  # the texts an inline sweep has: 24h -> 1d
                values = DurationSweep(values=values).expand()
            dims.append((rest, [float(v) if isinstance(v, (int, float)) else v for v in values]))
        strategies.append(data)
        labels.append(label)
        variants.append(_combine(dims, mode))
    if moved:
        raise ScenarioError(Problem(f"sweep.parameters names strategies {sorted(moved)} the scenario does not have",
                                    "sweep.parameters"))
    plain["strategies"] = []
    from .scenario.sweep import SweepBase, parse_value

    scenario_dims = [(k, v.expand() if isinstance(v, SweepBase) else [parse_value(x) for x in v])
                     for k, v in parameters.items()]
    points = _combine(scenario_dims, mode)
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


# --------------------------------------------------------------------------- one chunk (in a worker)
_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def _point_scenario(plan: SweepPlan, point: int, strategies: list[dict] | None = None):
    from .scenario.loader import load_scenario

    data = copy.deepcopy(plan.plain)
    data["strategies"] = strategies or []
    if strategies:
        data["sweep"] = {"mode": "zip", "parameters": {}}
    overrides = [f"{k}={json.dumps(v)}" for k, v in plan.points[point].items()]
    return load_scenario(data, overrides)


def _simulate(plan: SweepPlan, point: int, threads: int):
    """The point's simulation, once per process (kept for the following chunks)."""
    from .simulate import run

    key = (plan.hash, point)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        scenario = _point_scenario(plan, point)
        result = run(scenario, n_paths=plan.n_paths, seed=plan.seed, n_jobs=threads, keep_steps=True)
        _CACHE.clear()  # one point at a time: memory stays that of one simulation
        _CACHE[key] = result
        return result


def _market_columns(result) -> dict:
    """The point's market metrics (as ``cascade run`` reports them), ``market.<metric>.<stat>``."""
    out = {}
    for name, row in result.summary().iterrows():
        out.update({f"market.{name}.{stat}": float(row[stat]) for stat in ("p05", "p50", "p95", "mean")})
    out.update({f"market.{name}": value for name, value in result.probabilities().items()})
    return out


def _with_values(strategy: dict, sets: list[dict]) -> dict:
    """The strategy with each swept field holding the chunk's values (evaluated in zip mode)."""
    data = copy.deepcopy(strategy)
    for key in sets[0]:
        node = data
        *path, last = key.split(".")
        for part in path:
            node = node[part]
        node[last] = {"values": [s[key] for s in sets]}
    return data


def run_chunk(plan: SweepPlan, k: int, on_error: str = "raise", threads: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows (and failures) of chunk ``k``; pure: the same rows whatever process runs it."""
    from .hedge import METRICS, evaluate

    rows, failures = [], []
    by_point: dict[int, list[int]] = {}
    for i in plan.chunks[k]:
        by_point.setdefault(plan.items[i].point, []).append(i)
    for point, indices in by_point.items():
        try:
            result = _simulate(plan, point, threads)
            market = _market_columns(result)
            wanted = [plan.items[i] for i in indices if plan.items[i].strategy != UNHEDGED]
            order = sorted({it.strategy for it in wanted})
            chosen = {s: [it.variant for it in wanted if it.strategy == s] for s in order}
            strategies = []
            for s in order:
                sets = [plan.variants[s][j] for j in chosen[s]]
                strategies.append(_with_values(plan.strategies[s], sets) if sets[0] else plan.strategies[s])
            table = None
            if plan.plain.get("portfolio") is not None:
                table = evaluate(result, _point_scenario(plan, point, strategies))
            position = {UNHEDGED: 0}
            r = 1
            for s in order:
                for j in chosen[s]:
                    position[(s, j)] = r
                    r += 1
            for i in indices:
                it = plan.items[i]
                row = {"row": i, "point": it.point, "seed": plan.seed, "n_paths": plan.n_paths,
                       **{f"param.{key}": value for key, value in plan.points[point].items()}}
                if it.strategy == UNHEDGED:  # without a book, the row is the point's market alone
                    row.update({"strategy": "unhedged" if table is not None else "market", "rule": "none"})
                else:
                    row.update({"strategy": plan.labels[it.strategy], "rule": plan.strategies[it.strategy]["rule"],
                                **{f"param.{key}": value for key, value in plan.variants[it.strategy][it.variant].items()}})
                if table is not None:
                    src = table.iloc[position[UNHEDGED] if it.strategy == UNHEDGED else position[(it.strategy, it.variant)]]
                    row.update({m: float(src[m]) for m in METRICS})
                row.update(market)
                rows.append(row)
        except Exception:
            if on_error == "raise":
                raise
            tb = traceback.format_exc()
            for i in indices:
                it = plan.items[i]
                failures.append({"row": i, "point": it.point, "seed": plan.seed,
                                 "strategy": "unhedged" if it.strategy == UNHEDGED else plan.labels[it.strategy],
                                 "parameters": json.dumps({**plan.points[it.point],
                                                           **(plan.variants[it.strategy][it.variant]
                                                              if it.strategy != UNHEDGED else {})}),
                                 "error": tb.strip().splitlines()[-1], "traceback": tb})
    return pd.DataFrame(rows), pd.DataFrame(failures, columns=["row", "point", "seed", "strategy", "parameters",
                                                                "error", "traceback"])


class _SharedRun:
    """A point's simulation on disk, for worker processes on this machine (loky): the per-step
    arrays as ``.npy`` files each worker maps read-only (the page cache holds them once), the rest
    pickled. Pickling the result into every task instead would copy ~150 MB per chunk at 10,000
    paths x 720 steps (and joblib would hash every array at each dispatch)."""

    def __init__(self, result, folder: Path):
        import pickle

        self.folder = str(folder)
        self.keys = sorted(result._raw)
        for key in self.keys:
            np.save(folder / f"raw-{key}.npy", np.asarray(result._raw[key]), allow_pickle=False)
        raw, result._raw = result._raw, {}
        try:
            (folder / "result.pickle").write_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        finally:
            result._raw = raw

    def load(self):
        import pickle

        folder = Path(self.folder)
        result = pickle.loads((folder / "result.pickle").read_bytes())
        result._raw = {key: np.load(folder / f"raw-{key}.npy", mmap_mode="r") for key in self.keys}
        return result


def _adopt(plan: SweepPlan, shared) -> None:
    """Keep the parent's simulation of the plan's only point as this process's (see _simulate)."""
    key = (plan.hash, 0)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE.clear()
            _CACHE[key] = shared.load() if isinstance(shared, _SharedRun) else shared


_WATCHED_PARENT: int | None = None


def _die_with_parent(parent: int) -> None:
    """In a worker process whose parent is the sweep (``parent``, loky's workers), a daemon thread
    that ends the worker once the parent is gone (``kill -9`` leaves no chance to shut the pool
    down): the worker is re-parented, so ``os.getppid()`` changes. It runs beside a busy kernel,
    which releases the GIL. Nothing in the sweep's own process, nor in a Dask worker (whose parent
    is its nanny)."""
    global _WATCHED_PARENT
    if _WATCHED_PARENT == parent or os.getpid() == parent or os.getppid() != parent:
        return
    _WATCHED_PARENT = parent

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="cascade-parent-watch", daemon=True).start()


def _chunk_task(plan: SweepPlan, k: int, on_error: str, threads: int, shared=None, parent: int | None = None):
    import numba

    if parent is not None:
        _die_with_parent(parent)
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    if shared is not None:
        _adopt(plan, shared)
    started = time.perf_counter()
    rows, failures = run_chunk(plan, k, on_error, threads)
    return k, rows, failures, time.perf_counter() - started


# --------------------------------------------------------------------------- the parent: run, stream, resume
def lowest_first(metric: str) -> bool:
    """Whether the lowest value of a metric is the best: losses, probabilities, drawdowns and
    everything else yes; PnL and ES99 saved per dollar of premium no."""
    return not metric.startswith(("pnl", "d_pnl", "effectiveness"))


@dataclass
class SweepResult:
    folder: Path
    plan: SweepPlan
    table: pd.DataFrame  # one row per item, sorted by ``row``
    failures: pd.DataFrame
    computed: int  # chunks computed in this call
    resumed: int  # chunks found finished on disk
    seconds: float

    def _repr_html_(self) -> str:
        """The sweep's size and its best rows by ES99, in a notebook."""
        from .results.notebook import sweep_html

        return sweep_html(self)

    def plot(self, metric: str | None = None):
        """The report's heatmap of ``metric`` (default: the first it draws) over the sweep's first two
        parameters: a ``plotly.graph_objects.Figure``."""
        from .results.notebook import sweep_figure

        return sweep_figure(self, metric)

    def top(self, n: int = 10, by: str = "es99", ascending: bool | None = None) -> pd.DataFrame:
        """The ``n`` best rows by a metric (losses and probabilities: lowest first)."""
        if by not in self.table.columns:
            raise KeyError(by)
        if ascending is None:
            ascending = lowest_first(by)
        return self.table.sort_values([by, "row"], ascending=[ascending, True]).head(n)


def _sha256(path: Path) -> str:
    from .results.store import _sha256_file

    return _sha256_file(path)


def _write_atomic(path: Path, write) -> None:
    from ._atomic import write_with

    write_with(path, write)


def _chunk_paths(folder: Path, k: int) -> tuple[Path, Path]:
    return folder / "chunks" / f"chunk-{k:06d}.parquet", folder / "chunks" / f"chunk-{k:06d}.json"


def _regular(path: Path) -> bool:
    """Whether ``path`` is a regular file, not a link to one (a sweep folder is untrusted: a FIFO
    or a link planted in it must never be opened)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _finished(plan: SweepPlan, folder: Path, k: int) -> bool:
    """A chunk is done when its sidecar names this plan's work for it and its file's hash matches
    (anything but two regular files is a chunk to compute again, and is replaced)."""
    data, meta = _chunk_paths(folder, k)
    if not (_regular(data) and _regular(meta)):
        return False
    try:
        record = json.loads(meta.read_text())
    except json.JSONDecodeError:
        return False
    return record.get("work") == plan.chunk_hash(k) and record.get("sha256") == _sha256(data)


def _save_chunk(plan: SweepPlan, folder: Path, k: int, rows: pd.DataFrame, failures: pd.DataFrame,
                seconds: float) -> None:
    data, meta = _chunk_paths(folder, k)
    frame = rows.copy()
    frame["__failed"] = False
    if not failures.empty:
        fail = failures.assign(__failed=True)
        frame = pd.concat([frame, fail], ignore_index=True)
    _write_atomic(data, lambda p: frame.to_parquet(p))
    record = {"chunk": k, "work": plan.chunk_hash(k), "sha256": _sha256(data), "rows": int(len(rows)),
              "failures": int(len(failures)), "seconds": round(seconds, 4)}
    _write_atomic(meta, lambda p: p.write_text(json.dumps(record) + "\n"))


def default_folder(plan: SweepPlan, root: str | Path = "results") -> Path:
    return Path(root) / plan.name / f"sweep-{plan.hash[:12]}"


LOCK_NAME = ".sweep.lock"


class _FolderLock:
    """An exclusive ``fcntl.flock`` on ``folder/.sweep.lock`` for the duration of a sweep.

    The file holds a JSON record (pid, host, start time, command) for the message a second sweep
    prints. The kernel releases a flock when its holder dies, so a record found on taking the lock
    is a sweep that died before removing it: taken over, with a note. The file is removed on
    release (after checking, on taking it, that the locked file is still the one at the path)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / LOCK_NAME
        self.fd: int | None = None

    def _holder(self) -> str:
        try:
            info = json.loads((self.path.read_text() if _regular(self.path) else "") or "{}")
        except (OSError, ValueError):
            info = {}
        if not info:
            return "another sweep"
        return (f"pid {info.get('pid')} on {info.get('host')} since {info.get('started')} "
                f"({info.get('command', '?')})")

    def acquire(self) -> None:
        import fcntl
        import socket

        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunFolderError(f"{self.folder}: another sweep is running in this folder: {self._holder()}; "
                                     "wait for it to finish, or give another --out") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # its holder removed it while we waited: lock the new one
        stale = os.read(fd, 4096).decode("utf-8", "replace").strip()
        if stale:
            print(f"cascade sweep: note: taking over the lock of {self.folder} left by a sweep that ended without "
                  f"releasing it ({stale[:200]})", file=sys.stderr)
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self.fd)  # closing the descriptor releases the flock
        self.fd = None

    def __enter__(self) -> _FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def _terminate_interrupts():
    """SIGTERM raises KeyboardInterrupt in the main thread while a sweep runs, so that its cleanup
    (the loky workers shut down, the lock released) runs as for Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _kill_loky_workers() -> None:
    """Shut down loky's reusable executor, killing its workers (after an interruption or a
    failure: tasks in flight are lost, their chunks are computed again on resume)."""
    from joblib.externals.loky import reusable_executor

    executor = reusable_executor._executor
    if executor is not None:
        executor.shutdown(wait=False, kill_workers=True)


def _prepare_folder(plan: SweepPlan, folder: Path) -> None:
    plan_file = folder / "plan.json"
    if folder.exists() and any(p.name != LOCK_NAME for p in folder.iterdir()):
        if not _regular(plan_file):
            raise RunFolderError(f"{folder}: exists and is not a sweep folder (no plan.json as a plain file); "
                                 "give a new --out")
        try:
            old = json.loads(plan_file.read_text())
            old = old.get("hash") if isinstance(old, dict) else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            old = None
        if old != plan.hash:
            raise RunFolderError(f"{folder}: holds a different sweep (plan {str(old)[:12]}, this one "
                                 f"{plan.hash[:12]}); give a new --out or remove it")
        return
    (folder / "chunks").mkdir(parents=True, exist_ok=True)
    summary = {"hash": plan.hash, "name": plan.name, "seed": plan.seed, "n_paths": plan.n_paths, "mode": plan.mode,
               "scenario_keys": plan.scenario_keys, "strategies": plan.labels, "points": len(plan.points),
               "rows": len(plan.items), "chunk_size": plan.chunk_size, "chunks": plan.n_chunks}
    _write_atomic(plan_file, lambda p: p.write_text(json.dumps(summary, indent=1) + "\n"))


class _Executor:
    """joblib's Parallel for a backend name; Dask through joblib's dask backend and a Client."""

    def __init__(self, backend: str, n_jobs: int, scheduler: str | None, dask_local: int | None):
        self.backend, self.n_jobs = backend, n_jobs
        self.client = self.cluster = None
        if scheduler or dask_local:
            try:
                from dask.distributed import Client, LocalCluster
            except ImportError:
                raise RuntimeError("Dask is not installed: pip install 'cascade-engine[dask]'") from None
            if scheduler:
                self.client = Client(scheduler, timeout="20s")
            else:
                self.cluster = LocalCluster(n_workers=dask_local, threads_per_worker=1, processes=True,
                                            host="127.0.0.1", dashboard_address=None)
                self.client = Client(self.cluster)
            self.backend = "dask"
            self.n_jobs = -1

    @property
    def sequential(self) -> bool:
        """Whether the tasks run one after the other in this process (no joblib)."""
        return self.backend == "sequential" or (self.n_jobs == 1 and self.backend != "dask")

    def share(self, result, folder: Path):
        """``result`` in the form this executor's workers take it: the object itself in this
        process, a shallow copy for Dask (scattered once to each worker by :meth:`map`; a copy,
        so that the caller may go on caching tables on the original while it is pickled), files
        in ``folder`` for loky (:class:`_SharedRun`)."""
        if self.sequential or self.backend == "threading":
            return result
        if self.backend == "dask":
            return copy.copy(result)
        return _SharedRun(result, folder)

    def map(self, fn, args, scatter=()):
        import joblib

        if self.sequential:
            for a in args:
                yield fn(*a)
            return
        extra = {"scatter": list(scatter)} if self.backend == "dask" and scatter else {}
        with joblib.parallel_config(backend=self.backend, n_jobs=self.n_jobs, **extra):
            yield from joblib.Parallel(return_as="generator_unordered")(joblib.delayed(fn)(*a) for a in args)

    def close(self):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _check_memory(scenario, plan: SweepPlan, backend: str, n_jobs: int, scheduler: str | None) -> None:
    """Refuse (:class:`ScenarioError`) a sweep whose simulations do not fit in this machine's memory:
    one point with its fans per worker process that simulates at once (one in all for a single
    point, simulated here and shared; a remote Dask scheduler's machines are not this one)."""
    from .resources import check_memory

    if scheduler:
        return
    parallel = backend in ("loky", "dask") and n_jobs != 1 and len(plan.points) > 1
    workers = min(n_jobs if n_jobs > 0 else (os.cpu_count() or 1), len(plan.points)) if parallel else 1
    check_memory(scenario, n_paths=plan.n_paths, keep_steps=True, workers=workers)


def _check_sweep_arguments(scenario, *, n_paths, seed, out, root, n_jobs, backend, chunk_size, scheduler, dask_local,
                           on_error, threads, progress, report) -> None:
    """:func:`run_sweep`'s arguments, each of its type and range (:class:`~engine.errors.InvalidParameterError`)."""
    from ._params import check_bool, check_choice, check_count, check_path, check_scenario, check_seed
    from .errors import invalid_parameter

    f = "run_sweep"
    check_scenario(f, "scenario", scenario, path=False)
    check_count(f, "n_paths", n_paths, optional=True)
    check_seed(f, "seed", seed)
    check_path(f, "out", out, optional=True)
    check_path(f, "root", root)
    check_count(f, "n_jobs", n_jobs)
    check_choice(f, "backend", backend, BACKENDS)
    check_count(f, "chunk_size", chunk_size, low=0)
    if scheduler is not None and not (isinstance(scheduler, str) and scheduler.strip()):
        raise invalid_parameter(f, "scheduler", "a Dask scheduler's address (a str) or None", scheduler)
    check_count(f, "dask_local", dask_local, optional=True)
    check_choice(f, "on_error", on_error, ("raise", "collect"))
    check_count(f, "threads", threads, optional=True)
    check_bool(f, "progress", progress)
    check_bool(f, "report", report, optional=True)


def run_sweep(scenario, *, n_paths: int | None = None, seed: int | None = None, out: str | Path | None = None,
              root: str | Path = "results", n_jobs: int = 1, backend: str = "loky", chunk_size: int = 0,
              scheduler: str | None = None, dask_local: int | None = None, on_error: str = "raise",
              threads: int | None = None, progress: bool = False, report: bool | None = None) -> SweepResult:
    """Run (or resume) a sweep: every grid point of ``scenario``, every strategy parameter set.

    Parameters
    ----------
    scenario : Scenario
        A scenario with sweep specs (``strike_usd: {values: [...]}``, ``sweep.parameters``);
        :func:`apply_grid` adds ``--grid`` dimensions to one.
    n_paths, seed : int, optional
        Override the scenario's.
    out : str or Path, optional
        The sweep's folder (default: ``<root>/<name>/sweep-<plan hash>``); a folder of the same
        plan is resumed, its finished chunks kept.
    n_jobs, backend : int, str
        Parallel jobs and their joblib backend (``loky``, ``threading``, ``sequential``, ``dask``).
    chunk_size : int
        Rows per chunk (0: chosen for the job count).
    scheduler, dask_local : str, int, optional
        A Dask scheduler's address, or a local cluster of that many workers.
    on_error : str
        ``raise`` the first failure, or ``collect`` them (in ``failures``) and go on.
    threads : int, optional
        Kernel threads per job (default: 1 with several jobs, all cores with one).
    progress, report : bool
        A tqdm bar; write the HTML report (``None``: as the scenario's ``outputs.report`` says).

    Returns
    -------
    SweepResult
        Its folder, plan, tidy table (one row per scenario point, strategy and parameter set)
        and failures. The table is the same whatever ``n_jobs``, ``backend`` or ``chunk_size``.

    Raises
    ------
    ScenarioError
        A grid too large for memory, a bad sweep spec.
    RunFolderError
        ``out`` holds another sweep, or another process's sweep holds its lock.
    InvalidParameterError
        A bad argument (a ``ScenarioError`` and a ``TypeError``): an unknown ``backend`` or
        ``on_error``, ``n_jobs`` below 1, ``chunk_size`` below 0, ...

    Examples
    --------
    >>> import tempfile, engine
    >>> scenario = apply_grid(engine.load_scenario("scenarios/feb-2026-deleveraging.yaml", ["n_paths=64"]),
    ...                       ["strategies[put_60k].strike_usd=55k,60k"])
    >>> tmp = tempfile.TemporaryDirectory()
    >>> sweep = run_sweep(scenario, root=tmp.name, report=False)
    >>> sorted(set(sweep.table["param.strike_usd"].dropna()))
    [55000.0, 60000.0]
    >>> tmp.cleanup()
    """
    _check_sweep_arguments(scenario, n_paths=n_paths, seed=seed, out=out, root=root, n_jobs=n_jobs, backend=backend,
                           chunk_size=chunk_size, scheduler=scheduler, dask_local=dask_local, on_error=on_error,
                           threads=threads, progress=progress, report=report)
    started = time.perf_counter()
    workers = dask_local or n_jobs
    plan = plan_sweep(scenario, n_paths=n_paths, seed=seed, chunk_size=chunk_size)
    folder = Path(out) if out is not None else default_folder(plan, root)
    _check_memory(scenario, plan, backend, n_jobs, scheduler)  # before the folder exists
    with _FolderLock(folder), _terminate_interrupts():
        try:
            return _run_locked(plan, folder, started=started, workers=workers, n_jobs=n_jobs, backend=backend,
                               scheduler=scheduler, dask_local=dask_local, on_error=on_error, threads=threads,
                               progress=progress, report=report)
        except BaseException:  # interrupted (Ctrl-C, SIGTERM) or failed: no worker outlives the sweep
            if backend == "loky":
                _kill_loky_workers()
            raise


def _run_locked(plan: SweepPlan, folder: Path, *, started: float, workers: int, n_jobs: int, backend: str,
                scheduler: str | None, dask_local: int | None, on_error: str, threads: int | None, progress: bool,
                report: bool | None) -> SweepResult:
    """:func:`run_sweep` in its folder, once the folder is locked."""
    _prepare_folder(plan, folder)
    todo = [k for k in range(plan.n_chunks) if not _finished(plan, folder, k)]
    resumed = plan.n_chunks - len(todo)
    if threads is None:
        threads = (os.cpu_count() or 1) if workers == 1 and not scheduler else 1
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(plan.items), initial=sum(len(plan.chunks[k]) for k in range(plan.n_chunks)
                                                      if k not in set(todo)),
                   unit="row", desc="sweep", dynamic_ncols=True)
    executor = _Executor(backend, n_jobs, scheduler, dask_local)
    base = warm = None
    for stale in folder.glob(".shared-*"):  # left by a sweep killed here before
        shutil.rmtree(stale, ignore_errors=True)
    tmp = None
    try:
        shared = None
        if todo and len(plan.points) == 1:  # simulate once, here on every core, not once per worker
            try:
                base = _base_run(plan)
            except Exception:  # the workers meet the error again and raise it or collect it per row
                base = None
            if base is not None:
                # in the sweep's folder, so that files a kill leaves behind are found by the next run
                tmp = tempfile.TemporaryDirectory(prefix=".shared-", dir=folder)
                shared = executor.share(base, Path(tmp.name))
                # the run folder's tables of the base point, while the workers compute: its fan (the
                # quantiles of every step) is a second of a 10,000-path point, otherwise spent at the end
                warm = threading.Thread(target=_base_tables, args=(base,), name="sweep-base-tables", daemon=True)
                warm.start()
        tasks = [(plan, k, on_error, threads, shared, os.getpid()) for k in todo]
        scatter = [shared] if shared is not None else []
        for k, rows, failures, seconds in executor.map(_chunk_task, tasks, scatter=scatter):
            _save_chunk(plan, folder, k, rows, failures, seconds)
            if bar is not None:
                bar.update(len(plan.chunks[k]))
    finally:
        executor.close()
        if bar is not None:
            bar.close()
        if warm is not None:
            warm.join()
        if tmp is not None:
            tmp.cleanup()
    table, failures = load_chunks(plan, folder)
    result = SweepResult(folder, plan, table, failures, len(todo), resumed, time.perf_counter() - started)
    _finish(result, report=report, base=base)
    result.seconds = time.perf_counter() - started
    return result


def load_chunks(plan: SweepPlan, folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every chunk's rows, in row order (the same table whatever ran the chunks)."""
    frames = [pd.read_parquet(_chunk_paths(folder, k)[0]) for k in range(plan.n_chunks)]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    failed = frame["__failed"].astype(bool) if "__failed" in frame else pd.Series(False, index=frame.index)
    rows = frame[~failed].drop(columns=["__failed", "error", "traceback", "parameters"], errors="ignore")
    rows = rows.dropna(axis=1, how="all").sort_values("row", kind="stable").reset_index(drop=True)
    fails = frame[failed][["row", "point", "seed", "strategy", "parameters", "error", "traceback"]] if failed.any() \
        else pd.DataFrame(columns=["row", "point", "seed", "strategy", "parameters", "error", "traceback"])
    fails = fails.sort_values("row", kind="stable").reset_index(drop=True)
    return _tidy(rows, plan), fails


def _tidy(rows: pd.DataFrame, plan: SweepPlan) -> pd.DataFrame:
    """Columns in reading order: ids, strategy parameters (so the report's heatmaps are over
    them, e.g. strike x hedge ratio), scenario keys, strategy metrics, market metrics."""
    if rows.empty:
        return rows
    ids = [c for c in ("row", "point", "seed", "n_paths", "strategy", "rule") if c in rows]
    scenario_params = [f"param.{k}" for k in plan.scenario_keys if f"param.{k}" in rows]
    params = [c for c in rows.columns if c.startswith("param.") and c not in scenario_params] + scenario_params
    market = [c for c in rows.columns if c.startswith("market.")]
    rest = [c for c in rows.columns if c not in ids + params + market]
    out = rows[ids + params + rest + market].copy()
    for c in ("row", "point", "seed", "n_paths"):
        if c in out:
            out[c] = out[c].astype(np.int64)
    return out


def _base_tables(base) -> None:
    """Compute (and cache on ``base``) what the run folder writes of the base point; an error
    here is met again, and raised, when the folder is written."""
    try:
        base.per_path, base.flows, base.fan, base.sample_paths  # noqa: B018 (cached properties)
    except Exception:
        pass


def _base_run(plan: SweepPlan):
    """The first scenario point's simulation, on every core (per-step values kept: the strategies
    and the fan need them)."""
    from .simulate import run

    return run(_point_scenario(plan, 0), n_paths=plan.n_paths, seed=plan.seed, n_jobs=os.cpu_count() or 1,
               keep_steps=True)


def _finish(result: SweepResult, report: bool | None, base=None) -> None:
    """Make the sweep folder a run folder: the base point's market, the sweep table, the report.
    The manifest is written last (and again after a resume that computed more chunks). ``base``:
    the first point's simulation if the caller has it (the same numbers as :func:`_base_run`)."""
    from .results.store import write_run

    plan, folder = result.plan, result.folder
    if (folder / "manifest.json").exists() and result.computed == 0:
        return
    if base is None:
        base = _base_run(plan)
    failures = result.failures.drop(columns=["traceback"]) if not result.failures.empty else result.failures
    write_run(base, folder, source=None, merge=True, report=report,
              tables={"sweep": result.table, "sweep_failures": failures.astype({"row": "int64"})
                      if not failures.empty else failures},
              extra_manifest={"kind": "sweep", "sweep": {"plan": plan.hash, "rows": len(result.table),
                                                         "failures": len(result.failures),
                                                         "chunks": plan.n_chunks, "chunk_size": plan.chunk_size,
                                                         "mode": plan.mode, "base_point": plan.points[0]}})
