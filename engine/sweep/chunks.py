"""One chunk of a sweep computed in a worker: its point simulated once (or a run shared by the
parent), its rows evaluated on those paths. A worker ends itself when its parent is gone."""

from __future__ import annotations

import copy
import json
import os
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd

from .plan import UNHEDGED, SweepPlan


_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def point_scenario(plan: SweepPlan, point: int, strategies: list[dict] | None = None):
    from ..scenario.loader import load_scenario

    data = copy.deepcopy(plan.plain)
    data["strategies"] = strategies or []
    if strategies:
        data["sweep"] = {"mode": "zip", "parameters": {}}
    overrides = [f"{k}={json.dumps(v)}" for k, v in plan.points[point].items()]
    return load_scenario(data, overrides)


def _simulate(plan: SweepPlan, point: int, threads: int):
    """The point's simulation, once per process (kept for the following chunks)."""
    from ..simulate import run

    key = (plan.hash, point)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        scenario = point_scenario(plan, point)
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
    from ..scenario.keypaths import set_path, split_path

    data = copy.deepcopy(strategy)
    for key in sets[0]:
        set_path(data, split_path(key), {"values": [s[key] for s in sets]})
    return data


def run_chunk(plan: SweepPlan, k: int, on_error: str = "raise", threads: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows (and failures) of chunk ``k``; pure: the same rows whatever process runs it."""
    from ..portfolio.hedge import METRICS, evaluate

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
                table = evaluate(result, point_scenario(plan, point, strategies))
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


class SharedRun:
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
            _CACHE[key] = shared.load() if isinstance(shared, SharedRun) else shared


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


def chunk_task(plan: SweepPlan, k: int, on_error: str, threads: int, shared=None, parent: int | None = None):
    import numba

    if parent is not None:
        _die_with_parent(parent)
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    if shared is not None:
        _adopt(plan, shared)
    started = time.perf_counter()
    rows, failures = run_chunk(plan, k, on_error, threads)
    return k, rows, failures, time.perf_counter() - started
