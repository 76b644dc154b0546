"""Sweep benchmarks: the performance targets of `engine.run_sweep`.

    python bench/bench_sweep.py                         # every figure, 3 runs each (~8 minutes on 2 cores)
    python bench/bench_sweep.py --only target --runs 5  # one group, more runs
    python bench/bench_sweep.py --scaling-paths 2000    # figures 2-3 on a fifth of the paths (quicker)
    python bench/bench_sweep.py --snapshot              # bench a copy of engine/ while others edit the tree

Prints one table (progress on stderr). Every timed run is a fresh Python process that builds the
scenario and times `engine.run_sweep` alone, so each run starts its own loky workers (or Dask
cluster) and loads the kernels from numba's cache, as a user's `cascade sweep` does; a warm-up run
fills that cache first. Each run writes to a new folder under a temporary directory (never the
repository's results/): a folder that already held the sweep would be resumed, not computed.
Figures are medians of the runs; ratios are of medians measured in the same invocation, runs
interleaved (1 worker, 2 workers, Dask, then again) so that a busy spell hits every figure alike.
Measures, never asserts on time: exit status 0 whatever the figures. It does check that the
tables agree bit for bit across job counts and backends (`pandas.testing.assert_frame_equal`,
exact) and prints the outcome.

Figures (the sweep: the flagship `scenarios/feb-2026-deleveraging.yaml` over 30 days hourly,
`--set horizon.duration=30d`, 720 steps; a book of 10 BTC spot, 100k cash and a 5 BTC perp at
5x; one put_spread, 30-day tenor, over long_strike_usd 62k..80k x short_strike_usd 40k..58k x
hedge_ratio 0.1..1, 10 values each = 1,000 parameter sets, + the unhedged row):
  target   the 1,000-point sweep on 10,000 paths, loky, 2 jobs of 1 kernel thread, wall time of
           run_sweep end to end (worker start-up, the report and the run folder included), and
           where the time goes. Requirement: within 60 s on 2 cores;
  scaling  the same grid on --scaling-paths paths (10,000 by default: the target sweep itself, whose
           n_jobs=2 runs then serve figure 1 too), n_jobs=1 against n_jobs=2 (loky, threads=1 in
           both). Requirement: speed-up >= 1.6;
  dask     the same on a 2-worker Dask LocalCluster (`dask_local=2`), with and without the
           cluster's start-up and shutdown. Requirement: within 1.5x of loky;
  memory   a cheap sweep (the flagship at 6-hour steps over its 14 days, 56 steps, 2,000 paths,
           loky 2 jobs) with 100, 1,000 and 10,000 grid points (hedge_ratio 1, 10 or 100 values):
           peak RSS of the parent and of each worker, one fresh process per grid size.
           Requirement: flat as the grid grows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "scenarios" / "feb-2026-deleveraging.yaml"
if str(ROOT) not in sys.path:  # measure the engine next to this script, as the children do
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import _maxrss_bytes  # noqa: E402
from bench_engine import machine as engine_machine  # noqa: E402

# the targets
TARGET_S = 60.0  # 1,000 strategy points x 10,000 paths x 720 hourly steps on 2 cores
MIN_SPEEDUP = 1.6  # n_jobs 1 -> 2
MAX_DASK_RATIO = 1.5  # 2-worker Dask LocalCluster / loky n_jobs=2
MAX_GROWTH = 1.25  # "flat": our reading, peak RSS at 10,000 points within 1.25x of that at 100
FLAT = f"flat (<= {MAX_GROWTH} x)"

TARGET_SETS = ["horizon.duration=30d"]  # 720 hourly steps
TARGET_PATHS = 10_000
MEMORY_SETS = ["horizon.step=6h"]  # the flagship's 14 days at 6-hour steps: 56 steps
MEMORY_PATHS = 2_000
MEMORY_RATIOS = (1, 10, 100)  # hedge_ratio values: 10 x 10 x n = 100, 1,000, 10,000 points

BOOK = {"spot_btc": 10, "cash_usd": "100k", "perp": {"size_btc": 5, "leverage": 5}}
SPREAD = {"rule": "put_spread", "name": "spread", "long_strike_usd": 70_000, "short_strike_usd": 50_000,
          "hedge_ratio": 1.0, "tenor": "30d"}


def grid(n_ratios: int = 10, side: int = 10) -> list[str]:
    """`--grid` texts: long 62k.. x short 40k.. (2k apart, every short below every long) x hedge ratio."""
    ratios = "1" if n_ratios == 1 else f"linspace:{1 / n_ratios:g}:1:{n_ratios}"
    return [f"strategies[spread].long_strike_usd=62k:{62 + 2 * (side - 1)}k:2k",
            f"strategies[spread].short_strike_usd=40k:{40 + 2 * (side - 1)}k:2k",
            f"strategies[spread].hedge_ratio={ratios}"]


def build_scenario(sets: list[str], grid_texts: list[str]):
    import engine
    from engine.scenario.canonical import to_plain
    from engine.sweep import apply_grid

    data = to_plain(engine.load_scenario(FLAGSHIP, sets))  # the file, its extends resolved
    data["portfolio"] = BOOK
    data["strategies"] = [dict(SPREAD)]
    return apply_grid(engine.load_scenario(data), grid_texts)


# ----------------------------------------------------------------------------- machine
def machine() -> dict:
    """bench_engine's machine facts (CPU, versions, commit) plus the sweep's backends."""
    import dask
    import joblib

    return {**engine_machine(), "joblib": joblib.__version__, "dask": dask.__version__,
            "engine_state": _engine_state()}


SOURCE = ROOT  # where the children import engine/ from: the tree, or a snapshot of it (--snapshot)


def _engine_state(source: Path | None = None) -> str:
    """A digest of engine/'s sources: a change mid-bench (another session editing) is reported."""
    import hashlib

    source = source or SOURCE
    h = hashlib.sha256()
    for path in sorted((source / "engine").rglob("*.py")):
        h.update(str(path.relative_to(source)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def snapshot(tmp: Path) -> Path:
    """engine/ copied as it is now (uncommitted changes included) under ``tmp``: edits to the tree
    during the bench do not reach the runs. Numba caches the copy's kernels beside it, so the
    first warm-up compiles them."""
    dest = tmp / "src"
    shutil.copytree(ROOT / "engine", dest / "engine", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def export(tmp: Path, ref: str) -> Path:
    """engine/ of a commit (``git archive``) under ``tmp``, to bench it beside the tree."""
    dest = tmp / "src"
    dest.mkdir()
    archive = subprocess.run(["git", "archive", "--format=tar", ref, "engine"], cwd=ROOT, capture_output=True,
                             check=True, timeout=60).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True, timeout=60)
    return dest


def _child_env() -> dict:
    """Children (and their loky or Dask workers, which inherit sys.path) import engine/ from SOURCE."""
    env = dict(os.environ)
    paths = [str(SOURCE)] + ([str(ROOT)] if SOURCE != ROOT else [])
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("CASCADE_SCENARIOS", None)
    return env


def _median(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


# ----------------------------------------------------------------------------- the child: one timed sweep
class _Timers:
    """Inclusive time and calls of functions of engine.sweep run in this process, by phase
    ("finish" inside _finish, else "main"); chunk arrivals (the parent saving each chunk)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.phase = "main"
        self.started = 0.0
        self.arrivals: list[tuple[float, int]] = []
        self.hwm: dict[str, int] = {}  # this process's peak RSS at moments of the sweep

    def wrap(self, owner, name: str, phase: str | None = None):
        inner = getattr(owner, name)
        timers = self

        def timed(*args, **kwargs):
            old = timers.phase
            if phase:
                timers.phase = phase
            key = f"{timers.phase}:{name}"
            if name == "save_chunk":
                timers.arrivals.append((time.perf_counter() - timers.started, args[2]))
                timers.hwm.setdefault("first chunk back", _hwm_bytes(os.getpid()))
            if name in ("load_chunks", "_finish"):
                timers.hwm[f"before {name}"] = _hwm_bytes(os.getpid())
            t = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                timers.seconds[key] = timers.seconds.get(key, 0.0) + time.perf_counter() - t
                timers.calls[key] = timers.calls.get(key, 0) + 1
                timers.phase = old

        setattr(owner, name, timed)


def _hwm_bytes(pid: int) -> int:
    """Peak RSS (VmHWM) of a live process, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class _ChildPeaks(threading.Thread):
    """Polls this process's children (loky workers, Dask nannies and workers, the resource
    tracker) for their peak RSS while the sweep runs; VmHWM is the kernel's own high-water mark,
    so polling misses nothing but processes that exit between two polls (the final poll after the
    sweep catches every loky worker: the reusable executor keeps them alive)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peaks: dict[int, dict] = {}
        self.stop = threading.Event()

    def poll(self):
        import psutil

        for proc in psutil.Process().children(recursive=True):
            try:
                cmd = " ".join(proc.cmdline())
            except psutil.Error:
                continue
            if "python" not in cmd:  # e.g. loky's `lscpu` when it counts cores
                continue
            kind = "tracker" if "resource_tracker" in cmd or "semaphore_tracker" in cmd else "worker"
            peak = _hwm_bytes(proc.pid)
            old = self.peaks.get(proc.pid, {"peak": 0})
            self.peaks[proc.pid] = {"kind": kind, "peak": max(old["peak"], peak)}

    def run(self):
        while not self.stop.wait(0.05):
            self.poll()


def child(spec: dict) -> None:
    """One sweep in this (fresh) process; prints a JSON record."""
    import engine.portfolio.hedge as hedge
    import engine.results.store as store
    import engine.simulate as simulate
    import engine.sweep as sweep
    from engine.sweep import chunks, executors
    from engine.sweep import run as sweep_run

    scenario = build_scenario(spec["sets"], spec["grid"])
    if spec.get("source") and not Path(sweep.__file__).is_relative_to(spec["source"]):
        raise RuntimeError(f"engine imported from {sweep.__file__}, not from {spec['source']}")
    timers = _Timers()
    # each function where it is looked up when called: the run's names in engine.sweep.run, a
    # chunk's in engine.sweep.chunks
    for name in ("plan_sweep", "prepare_folder", "chunk_finished", "save_chunk", "load_chunks", "point_scenario"):
        timers.wrap(sweep_run, name)
    for name in ("_simulate", "_market_columns", "point_scenario"):
        timers.wrap(chunks, name)
    timers.wrap(sweep_run, "_finish", phase="finish")
    timers.wrap(executors.Executor, "__init__")
    timers.wrap(executors.Executor, "close")
    timers.wrap(hedge, "evaluate")  # run_chunk imports it at call time
    timers.wrap(store, "write_run")  # _finish imports it at call time
    peaks = None
    if spec.get("memory"):
        peaks = _ChildPeaks()
        peaks.start()
    before = _hwm_bytes(os.getpid())  # VmHWM: ru_maxrss would count the fat parent this process was forked from
    load_before = os.getloadavg()[0]
    timers.started = t0 = time.perf_counter()
    result = sweep.run_sweep(scenario, n_paths=spec["paths"], out=spec["out"], n_jobs=spec["n_jobs"],
                             dask_local=spec.get("dask_local"), threads=spec["threads"], chunk_size=spec.get("chunk_size", 0))
    wall = time.perf_counter() - t0
    record = {"wall": wall, "load": [load_before, os.getloadavg()[0]], "rows": len(result.table), "failures": len(result.failures), "n_chunks": result.plan.n_chunks,
              "chunk_size": result.plan.chunk_size, "computed": result.computed, "seconds": timers.seconds,
              "calls": timers.calls, "arrivals": timers.arrivals}
    chunks = sorted((Path(spec["out"]) / "chunks").glob("chunk-*.json"))
    record["chunk_seconds"] = {json.loads(p.read_text())["chunk"]: json.loads(p.read_text())["seconds"] for p in chunks}
    if peaks is not None:
        peaks.poll()
        peaks.stop.set()
        record["self_before"] = before
        record["self_peak"] = _hwm_bytes(os.getpid())
        record["self_hwm"] = timers.hwm
        record["children_live"] = list(peaks.peaks.values())
        from joblib.externals.loky import reusable_executor

        if reusable_executor._executor is not None:  # reap the workers: RUSAGE_CHILDREN counts waited-for ones
            reusable_executor._executor.shutdown(wait=True)
        record["children_rusage"] = _maxrss_bytes(resource.RUSAGE_CHILDREN)
        record["table_bytes"] = int(result.table.memory_usage(deep=True).sum())
    if spec.get("simulate_alone"):  # the point's simulation as each worker runs it: 1 thread, per-step arrays kept
        times = []
        for _ in range(2):
            t = time.perf_counter()
            simulate.run(chunks.point_scenario(result.plan, 0), n_paths=result.plan.n_paths, seed=result.plan.seed,
                         n_jobs=1, keep_steps=True)
            times.append(time.perf_counter() - t)
        record["simulate_1thread"] = min(times)
    if spec.get("table_out"):
        result.table.to_parquet(spec["table_out"])
    print(json.dumps(record))


def run_child(spec: dict, tmp: Path, label: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], cwd=tmp, env=_child_env(),
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{proc.stderr[-3000:]}")
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    rec["chunk_seconds"] = {int(k): v for k, v in rec["chunk_seconds"].items()}  # JSON keys are strings
    rec["spec"] = spec
    return rec


class _Runs:
    """Numbers the runs' folders under one temporary directory; warms numba's cache again when
    engine/ changed since the last warm-up (another session editing the kernels)."""

    def __init__(self, tmp: Path):
        self.tmp, self.n = tmp, 0
        self.warmed = ""
        self.changed: list[str] = []  # runs during which engine/ changed

    def run(self, spec: dict, label: str) -> dict:
        if _engine_state() != self.warmed:
            if self.warmed:
                print("  engine/ changed: warming numba's cache again", file=sys.stderr)
            warm_up(self)
        before = _engine_state()
        rec = run_child(spec, self.tmp, label)
        if _engine_state() != before:
            self.changed.append(f"{label} ({Path(spec['out']).name})")
            print(f"  warning: engine/ changed during this run ({label})", file=sys.stderr)
        return rec

    def spec(self, **kw) -> dict:
        self.n += 1
        name = f"run-{self.n:03d}"
        return {"out": str(self.tmp / name), "table_out": str(self.tmp / f"{name}.parquet"), "source": str(SOURCE), **kw}


# ----------------------------------------------------------------------------- the figures
def warm_up(runs: _Runs) -> None:
    """A tiny sweep: loads every kernel it needs (or compiles it into numba's cache)."""
    t = time.perf_counter()
    runs.warmed = _engine_state()
    spec = runs.spec(sets=TARGET_SETS, grid=grid(2, 2), paths=64, n_jobs=1, threads=1)
    run_child(spec, runs.tmp, "warm-up")
    print(f"  warm-up (numba cache) {time.perf_counter() - t:.1f} s", file=sys.stderr)


def _log(rec: dict, label: str, i: int, n: int) -> None:
    sec = rec["chunk_seconds"]
    print(f"  {label} run {i + 1}/{n}: {rec['wall']:.1f} s, {rec['rows']:,} rows, {rec['n_chunks']} chunks "
          f"(worker busy {sum(sec.values()):.1f} s), load average {rec['load'][0]:.1f} -> {rec['load'][1]:.1f}",
          file=sys.stderr)


def target(runs: _Runs, n: int, chunk_size: int = 0) -> list[dict]:
    out = []
    for i in range(n):
        spec = runs.spec(sets=TARGET_SETS, grid=grid(), paths=TARGET_PATHS, n_jobs=2, threads=1,
                         simulate_alone=i == 0, chunk_size=chunk_size)
        out.append(runs.run(spec, "target"))
        _log(out[-1], "target (loky, 2 jobs)", i, n)
    return out


def scaling(runs: _Runs, n: int, paths: int, which: set[str], chunk_size: int = 0) -> dict[str, list[dict]]:
    """Interleaved: n_jobs=1, n_jobs=2 (loky) and Dask, then again."""
    kinds = [k for k in ("jobs1", "jobs2", "dask") if k in which]
    out: dict[str, list[dict]] = {k: [] for k in kinds}
    for i in range(n):
        for kind in kinds:
            spec = runs.spec(sets=TARGET_SETS, grid=grid(), paths=paths, threads=1, simulate_alone=i == 0 and kind == "jobs1",
                             chunk_size=chunk_size,
                             n_jobs={"jobs1": 1, "jobs2": 2, "dask": 2}[kind], dask_local=2 if kind == "dask" else None)
            out[kind].append(runs.run(spec, kind))
            _log(out[kind][-1], {"jobs1": "loky, 1 job ", "jobs2": "loky, 2 jobs", "dask": "Dask, 2 workers"}[kind], i, n)
    return out


def memory(runs: _Runs, n: int) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for i in range(n):
        for ratios in MEMORY_RATIOS:
            spec = runs.spec(sets=MEMORY_SETS, grid=grid(ratios), paths=MEMORY_PATHS, n_jobs=2, threads=1, memory=True)
            rec = runs.run(spec, f"memory {100 * ratios}")
            out.setdefault(100 * ratios, []).append(rec)
            workers = [c["peak"] for c in rec["children_live"] if c["kind"] == "worker"]
            print(f"  memory run {i + 1}/{n}, {100 * ratios:,} points: {rec['wall']:.1f} s, parent peak "
                  f"{rec['self_peak'] / 2**20:,.0f} MiB, workers {', '.join(f'{w / 2**20:,.0f}' for w in workers)} MiB",
                  file=sys.stderr)
    return out


def same_tables(records: list[dict]) -> str:
    """Every table against the first, exactly."""
    import pandas as pd

    tables = [(r, pd.read_parquet(r["spec"]["table_out"])) for r in records]
    first_rec, first = tables[0]
    for rec, table in tables[1:]:
        try:
            pd.testing.assert_frame_equal(first, table, check_exact=True)
        except AssertionError as exc:
            return f"DIFFER ({_how(rec)} vs {_how(first_rec)}): {str(exc).splitlines()[0]}"
    return f"identical ({len(tables)} tables of {first.shape[0]:,} rows x {first.shape[1]} columns, exact)"


def _how(rec: dict) -> str:
    s = rec["spec"]
    return "Dask LocalCluster(2)" if s.get("dask_local") else f"loky n_jobs={s['n_jobs']}"


# ----------------------------------------------------------------------------- the split
def split(rec: dict) -> list[tuple[str, float]]:
    """Where one run's wall time went, from its chunks' sidecars and the parent's own timers."""
    s = rec["seconds"]
    sec = rec["chunk_seconds"]
    n_jobs = 2 if rec["spec"].get("dask_local") else rec["spec"]["n_jobs"]
    busy = sum(sec.values())
    rest = sorted(v for k, v in sec.items() if k >= n_jobs) or [0.0]
    typical = _median(rest)
    first = [sec[k] for k in range(min(n_jobs, len(sec)))]
    first_excess = sum(max(0.0, f - typical) for f in first)
    parent = {
        "plan and folder": s.get("main:plan_sweep", 0) + s.get("main:prepare_folder", 0) + s.get("main:chunk_finished", 0),
        "executor start (Dask: cluster)": s.get("main:__init__", 0),
        "executor close": s.get("main:close", 0),
        "saving chunks (parquet + SHA-256)": s.get("main:save_chunk", 0),
        "load_chunks": s.get("main:load_chunks", 0),
        "_finish: the base point (simulated here unless the sweep had it)": s.get("finish:_finish", 0) - s.get("finish:write_run", 0),
        "_finish: write_run (tables, report)": s.get("finish:write_run", 0),
    }
    rows = [("wall, run_sweep end to end", rec["wall"])]
    if n_jobs == 1:  # the chunks ran in this process: the timers see inside them
        sim = s.get("main:_simulate", 0)
        ev = s.get("main:evaluate", 0)
        mk = s.get("main:_market_columns", 0)
        rows += [("chunks (sum of sidecar seconds)", busy),
                 ("  simulation of the point (once, 1 thread, kernel load incl.)", sim),
                 ("  evaluate (strategy kernel + tables + stats)", ev),
                 ("  market columns (summary per chunk)", mk),
                 ("  other in chunks (scenario load per chunk, rows)", busy - sim - ev - mk)]
        parent_total = sum(parent.values())
        rows += [(f"parent: {k}", v) for k, v in parent.items() if v > 0.0005]
        rows.append(("unaccounted", rec["wall"] - busy - parent_total))
    else:
        first_arrival = rec["arrivals"][0] if rec["arrivals"] else (float("nan"), 0)
        rows += [(f"chunks: sum of sidecar seconds ({len(sec)} chunks, {n_jobs} workers)", busy),
                 ("  per worker (sum / workers)", busy / n_jobs),
                 (f"  typical chunk (median of chunks {n_jobs}..), {rec['chunk_size']} rows + unhedged", typical),
                 ("  first chunk of each worker, excess over typical (sum; kernel load, simulation if the worker makes it)", first_excess)]
        if "simulate_1thread" in rec:
            rows.append(("    of which the point's simulation, 1 thread, once per worker (measured apart, x workers)",
                         rec["simulate_1thread"] * n_jobs))
        rows.append(("  evaluation etc. (busy - first-chunk excess)", busy - first_excess))
        pre = first_arrival[0] - sec.get(first_arrival[1], 0.0)
        rows.append(("start-up: first chunk back - its seconds (spawn, imports, dispatch)", pre))
        serial = sum(v for k, v in parent.items() if k not in ("saving chunks (parquet + SHA-256)",
                                                               "executor start (Dask: cluster)"))
        rows += [(f"parent: {k}", v) for k, v in parent.items() if v > 0.0005]
        rows.append(("idle/imbalance/dispatch: wall - busy/workers - parent serial parts - start-up",
                     rec["wall"] - busy / n_jobs - serial - max(pre, 0.0)))
    return rows


# ----------------------------------------------------------------------------- the table
def _status(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _secs(values) -> tuple[str, str]:
    values = list(values)
    return f"{_median(values):.1f} s", f"{min(values):.1f}-{max(values):.1f}"


def report(info: dict, n_runs: int, args, tg, sc, mem, checks: list[str], errors: dict) -> str:
    rows: list[tuple[str, ...]] = []

    def add(figure, median="", lo_hi="", ratio="", requirement="", status=""):
        rows.append((figure, median, lo_hi, ratio, requirement, status))

    if tg:
        walls = [r["wall"] for r in tg]
        med = _median(walls)
        add(f"1. 1,000-point sweep, {TARGET_PATHS:,} paths x 720 steps, loky 2 jobs x 1 thread, "
            f"{tg[0]['n_chunks']} chunks", *_secs(walls),
            f"{med / TARGET_S:.2f} x target", f"<= {TARGET_S:g} s", _status(med <= TARGET_S))
        add("   per parameter set (wall / 1,001 rows)", f"{med / tg[0]['rows'] * 1e3:.0f} ms")
    if sc:
        label = f"{args.scaling_paths:,} paths x 720 steps, 1,000 points"
        j1 = [r["wall"] for r in sc.get("jobs1", [])]
        j2 = [r["wall"] for r in sc.get("jobs2", [])]
        dk = [r["wall"] for r in sc.get("dask", [])]
        if j1:
            add(f"2. {label}: loky n_jobs=1, threads=1", *_secs(j1), "baseline")
        if j2:
            add(f"   {label}: loky n_jobs=2, threads=1", *_secs(j2),
                f"{_median(j2) / _median(j1):.2f} x n_jobs=1" if j1 else "")
        if j1 and j2:
            sp = _median(j1) / _median(j2)
            add("   speed-up 1 -> 2 workers (median / median)", f"{sp:.2f} x",
                f"{min(j1) / max(j2):.2f}-{max(j1) / min(j2):.2f}", "", f">= {MIN_SPEEDUP}", _status(sp >= MIN_SPEEDUP))
        if dk:
            init = [r["seconds"].get("main:__init__", 0) for r in sc["dask"]]
            close = [r["seconds"].get("main:close", 0) for r in sc["dask"]]
            net = [r["wall"] - a - b for r, a, b in zip(sc["dask"], init, close)]
            base = _median(j2) if j2 else float("nan")
            add("3. the same on Dask LocalCluster(2 workers x 1 thread), cluster start+close incl.", *_secs(dk),
                f"{_median(dk) / base:.2f} x loky 2" if j2 else "", f"<= {MAX_DASK_RATIO} x loky",
                _status(_median(dk) / base <= MAX_DASK_RATIO) if j2 else "")
            add("   the same without the cluster's start-up and close", *_secs(net),
                f"{_median(net) / base:.2f} x loky 2" if j2 else "", f"<= {MAX_DASK_RATIO} x loky",
                _status(_median(net) / base <= MAX_DASK_RATIO) if j2 else "")
            add("   cluster start-up (LocalCluster + Client)", *_secs(init))
            add("   cluster close", *_secs(close))
    if mem:
        mib = 2**20
        sizes = sorted(mem)
        base = _median(r["self_peak"] for r in mem[sizes[0]])
        for size in sizes:
            recs = mem[size]
            peak = _median(r["self_peak"] for r in recs)
            workers = [max((c["peak"] for c in r["children_live"] if c["kind"] == "worker"), default=0) for r in recs]
            add(f"4. {size:>6,} points, {MEMORY_PATHS:,} paths x 56 steps: peak RSS, parent",
                f"{peak / mib:,.0f} MiB", f"{min(r['self_peak'] for r in recs) / mib:,.0f}-"
                f"{max(r['self_peak'] for r in recs) / mib:,.0f}", f"{peak / base:.2f} x 100 points",
                FLAT if size == sizes[-1] else "", _status(peak / base <= MAX_GROWTH) if size == sizes[-1] else "")
            wbase = _median(max((c["peak"] for c in r["children_live"] if c["kind"] == "worker"), default=0)
                            for r in mem[sizes[0]])
            add("   peak RSS, largest worker (VmHWM)", f"{_median(workers) / mib:,.0f} MiB",
                f"{min(workers) / mib:,.0f}-{max(workers) / mib:,.0f}", f"{_median(workers) / wbase:.2f} x 100 points",
                FLAT if size == sizes[-1] else "", _status(_median(workers) / wbase <= MAX_GROWTH) if size == sizes[-1] else "")
    head = ("figure", "median", "min-max", "ratio", "requirement", "status")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(6)]

    def line(r):
        return "  ".join(str(c).ljust(w) if i in (0, 4, 5) else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    lines = [f"cascade-engine sweep bench, {info['date']}: {info['cpu']}, nproc {info['nproc']}, Python {info['python']}, "
             f"numpy {info['numpy']}, numba {info['numba']}, joblib {info['joblib']}, dask {info['dask']}, "
             f"commit {info['commit']} (engine/ digest {info['engine_state']})",
             f"median of {n_runs} runs per figure, each a fresh process timing run_sweep (worker start-up included); "
             f"load average {info['load_start']:.2f} at the start, {os.getloadavg()[0]:.2f} at the end", "",
             line(head), "  ".join("-" * w for w in widths)]
    lines += [line(r) for r in rows]
    if checks:
        lines += ["", "determinism (pandas.testing.assert_frame_equal, check_exact=True):"] + [f"  {c}" for c in checks]
    # where the time goes: the median run of each kind
    for title, recs in ((f"where the time goes: 1,000-point sweep, {TARGET_PATHS:,} paths, loky 2 jobs (median run)", tg),
                        (f"where the time goes: {args.scaling_paths:,} paths, loky n_jobs=1 (median run)",
                         (sc or {}).get("jobs1")),
                        (f"where the time goes: {args.scaling_paths:,} paths, loky n_jobs=2 (median run)",
                         (sc or {}).get("jobs2")),
                        (f"where the time goes: {args.scaling_paths:,} paths, Dask LocalCluster(2) (median run)",
                         (sc or {}).get("dask"))):
        if not recs:
            continue
        rec = sorted(recs, key=lambda r: r["wall"])[len(recs) // 2]
        if "simulate_1thread" not in rec:
            sim = [r["simulate_1thread"] for r in recs if "simulate_1thread" in r]
            if sim:
                rec = {**rec, "simulate_1thread": sim[0]}
        lines += ["", title + ":"]
        for name, value in split(rec):
            lines.append(f"  {name:<86} {value:7.2f} s" + (f"  {100 * value / rec['wall']:5.1f}%" if name != "wall, run_sweep end to end" else ""))
    if mem:
        mib = 2**20
        lines += ["", f"memory side by side ({MEMORY_PATHS:,} paths x 56 six-hour steps, loky 2 jobs x 1 thread; "
                      "MiB, medians; workers: each one's VmHWM, polled):",
                  f"  {'grid points':>11}  {'rows':>7}  {'chunks':>6}  {'wall s':>6}  {'parent before':>13}  "
                  f"{'at 1st chunk':>12}  {'before _finish':>14}  {'parent peak':>11}  "
                  f"{'worker peaks':>14}  {'RUSAGE_CHILDREN*':>16}  {'table in memory':>15}"]
        for size in sorted(mem):
            recs = mem[size]
            ws = sorted(c["peak"] for c in recs[0]["children_live"] if c["kind"] == "worker")
            lines.append(f"  {size:>11,}  {recs[0]['rows']:>7,}  {recs[0]['n_chunks']:>6}  {_median(r['wall'] for r in recs):>6.1f}  "
                         f"{_median(r['self_before'] for r in recs) / mib:>13,.0f}  "
                         f"{_median(r['self_hwm'].get('first chunk back', 0) for r in recs) / mib:>12,.0f}  "
                         f"{_median(r['self_hwm'].get('before _finish', 0) for r in recs) / mib:>14,.0f}  "
                         f"{_median(r['self_peak'] for r in recs) / mib:>11,.0f}  "
                         f"{' + '.join(f'{w / mib:,.0f}' for w in ws):>14}  "
                         f"{_median(r['children_rusage'] for r in recs) / mib:>16,.0f}  "
                         f"{_median(r['table_bytes'] for r in recs) / mib:>15,.1f}")
    if mem:
        lines.append("  * max ru_maxrss of the reaped children (workers, loky's tracker): a cross-check and a ceiling, since a "
                     "process forked from this one starts out counting its pages")
    lines += [f"note: {message}" if name == "engine tree" else f"warning: {message}" if name.startswith("engine") else f"{name} failed: {message}"
              for name, message in errors.items()]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
GROUPS = ("target", "scaling", "dask", "memory")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=GROUPS, action="append", help="run only these figures (repeatable)")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    ap.add_argument("--scaling-paths", type=int, default=TARGET_PATHS,
                    help="paths of the 1-vs-2-worker and Dask figures (default 10,000: the target sweep, "
                         "whose 2-worker runs then give figure 1)")
    ap.add_argument("--snapshot", action="store_true",
                    help="bench a copy of engine/ taken at the start (edits during the bench do not reach it; "
                         "its kernels are compiled once, in the warm-up)")
    ap.add_argument("--chunk-size", type=int, default=0,
                    help="run_sweep's chunk_size for figures 1-3 (default 0: run_sweep's own choice, 8 chunks for this sweep)")
    ap.add_argument("--ref", help="bench engine/ as committed at this git ref (git archive), e.g. HEAD")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    global SOURCE
    n = max(1, args.runs)
    only = set(args.only or GROUPS)
    tmp = Path(tempfile.mkdtemp(prefix="cascade-bench-sweep-"))
    tree_state = _engine_state(ROOT)
    if args.snapshot and args.ref:
        ap.error("--snapshot and --ref exclude each other")
    if args.snapshot:
        SOURCE = snapshot(tmp)
    elif args.ref:
        SOURCE = export(tmp, args.ref)
    info = machine()
    if args.snapshot:
        info["commit"] += f", benched from a snapshot of engine/ taken at {info['date'][11:]}"
    elif args.ref:
        ref = subprocess.run(["git", "rev-parse", "--short", args.ref], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        info["commit"] = f"engine/ of {args.ref} ({ref}, git archive); the tree is at {info['commit']}"
    runs = _Runs(tmp)
    tg = sc = mem = None
    checks: list[str] = []
    errors: dict[str, str] = {}
    try:
        print(f"runs in {tmp}", file=sys.stderr)
        for name in ("scaling", "target", "memory"):
            if name == "scaling" and not only & {"scaling", "dask"}:
                continue
            if name != "scaling" and name not in only:
                continue
            print(f"{name} ...", file=sys.stderr)
            try:
                if name == "scaling":
                    which = ({"jobs1", "jobs2"} if "scaling" in only else set()) | \
                            ({"jobs2", "dask"} if "dask" in only else set())
                    sc = scaling(runs, n, args.scaling_paths, which, args.chunk_size)
                    checks.append(f"{args.scaling_paths:,} paths, loky n_jobs=1 / 2, Dask: "
                                  + same_tables([r for k in sc for r in sc[k]]))
                elif name == "target":
                    if sc and args.scaling_paths == TARGET_PATHS and sc.get("jobs2"):
                        tg = sc["jobs2"]  # the same sweep, already run
                    else:
                        tg = target(runs, n, args.chunk_size)
                    checks.append(f"{TARGET_PATHS:,} paths, loky n_jobs=2, every run: " + same_tables(tg))
                else:
                    mem = memory(runs, n)
            except Exception as exc:  # a figure that cannot be measured is reported, not fatal
                last = [line for line in str(exc).strip().splitlines() if line.strip()][-2:]
                errors[name] = f"{type(exc).__name__}: " + " / ".join(line.strip() for line in last)
                print(f"  {name} failed: {exc}", file=sys.stderr)
        end_state = _engine_state()
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if (args.snapshot or args.ref) and _engine_state(ROOT) != tree_state:
        errors["engine tree"] = "engine/ in the tree changed during the bench; the runs used their own copy"
    if end_state != info["engine_state"]:
        errors["engine"] = (f"engine/ changed during the bench (digest {info['engine_state']} -> {end_state}): "
                            "figures may mix two versions")
    if runs.changed:
        errors["engine during runs"] = "engine/ changed while these ran (a recompile may be in them): " + \
            ", ".join(runs.changed)
    print(report(info, n, args, tg, sc, mem, checks, errors))
    # a figure that could not be measured, or tables that differ, fail the bench
    return 1 if errors or any("DIFFER" in c for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
