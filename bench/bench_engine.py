"""Engine benchmarks: throughput against this machine's floor, memory, and `cascade run` wall time.

    python bench/bench_engine.py            # 5 runs per figure (median), ~3 minutes on 2 cores
    python bench/bench_engine.py --quick    # 3 runs per figure, same shapes

Prints one table. Every figure is the median of several runs, next to a baseline measured in the
same invocation (so the ratios hold even when the machine is busy) and to its requirement with
PASS/FAIL. It measures, never asserts: the exit status is 0 whatever the figures, and 1 when a
figure could not be measured.
See bench/README.md for what each figure means and the last recorded numbers.

Figures
  a. throughput of the flagship (scenarios/feb-2026-deleveraging.yaml, every mechanism on) over
     10,000 paths x 720 hourly steps (`--set horizon.duration=30d`) through `engine.run`, 2 threads,
     keep_steps False and True; kernel time (`result.timings["simulate_s"]`) and end to end;
  b. the floor: `engine.nb.kernel.gbm_floor_nb` (one normal, one exp, a running minimum per
     path-step) on the same shapes and threads, and flagship / floor;
  c. peak RSS of a fresh process running 10,000 paths x 2,880 one-minute steps with keep_steps=True
     and building the fan;
  d. wall time of `cascade run scenarios/feb-2026-deleveraging.yaml`: first run on an empty numba
     cache (JIT compile included), then with that cache warm.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "scenarios" / "feb-2026-deleveraging.yaml"
if str(ROOT) not in sys.path:  # measure the engine next to this script, as the children do
    sys.path.insert(0, str(ROOT))

# the requirements
MIN_RATE = 30e6  # path-steps/s, flagship keep_steps=False, 2 threads (on the 2-core AMD box it was set on)
MIN_RATIO = 0.40  # flagship / gbm floor, measured in the same run (machine-independent)
MIN_RNG_RATIO = 0.17  # flagship / xoshiro floor, the same
MAX_RSS_BYTES = 2 * 1024**3  # 10k paths x 2,880 steps with the fan
MAX_COLD_S = 30.0  # `cascade run` flagship, JIT compile included
MAX_WARM_S = 5.0  # `cascade run` flagship, numba cache warm

THROUGHPUT_SET = ["horizon.duration=30d"]  # 720 hourly steps
MEMORY_STEP, MEMORY_DURATION = "1m", "2d"  # 2,880 one-minute steps


# ----------------------------------------------------------------------------- machine
def machine() -> dict:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "engine"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    # a checkout without .git (e.g. `git archive` of a commit, to bench it while the tree changes)
    commit = commit or os.environ.get("CASCADE_BENCH_COMMIT", "")
    import numba
    import numpy

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_start": os.getloadavg()[0],
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "commit": (commit or "?") + (" + uncommitted changes in engine/" if dirty else ""),
    }


def _child_env(**extra: str) -> dict:
    """Children import the engine next to this script (not another checkout on the path)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("CASCADE_SCENARIOS", None)
    env.update(extra)
    return env


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ----------------------------------------------------------------------------- a + b: throughput
_RNG_FLOOR = None


def rng_floor():
    """The same floor with a fast generator of the kind the kernel uses: xoshiro256** uniforms and
    Acklam's inverse normal (no rejection loop, no ``log`` for 95% of draws), one ``exp`` and a
    running minimum per path-step.

    ``gbm_floor_nb`` draws with numba's ``np.random.standard_normal``, which costs several times
    more than the engine's own draws; this row shows what one path-step costs with them. Defined
    here, not imported from ``engine.nb``, so that it measures the same thing whatever the kernel
    does.
    """
    global _RNG_FLOOR
    if _RNG_FLOOR is not None:
        return _RNG_FLOOR
    import numba
    import numpy as np

    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)

    @numba.njit(inline="always")
    def rotl(x, k):
        return (x << np.uint64(k)) | (x >> np.uint64(64 - k))

    @numba.njit(inline="always")
    def uniform(st):
        result = rotl(st[1] * np.uint64(5), 7) * np.uint64(9)
        t = st[1] << np.uint64(17)
        st[2] ^= st[0]
        st[3] ^= st[1]
        st[1] ^= st[2]
        st[0] ^= st[3]
        st[2] ^= t
        st[3] = rotl(st[3], 45)
        return ((result >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)

    @numba.njit(inline="always")
    def normal(p):
        if p < 0.02425 or p > 0.97575:
            q = np.sqrt(-2.0 * np.log(min(p, 1.0 - p)))
            x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
                ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0)
            return x if p < 0.5 else -x
        q = p - 0.5
        r = q * q
        return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / \
               (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)

    @numba.njit(parallel=True, nogil=True)
    def floor(n_paths, n_steps, sigma, seed):
        out = np.empty(n_paths)
        for p in numba.prange(n_paths):
            st = np.empty(4, dtype=np.uint64)
            x = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(p + 1)
            for i in range(4):  # splitmix64
                x += np.uint64(0x9E3779B97F4A7C15)
                z = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
                z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
                st[i] = z ^ (z >> np.uint64(31))
            s = 1.0
            low = 1.0
            for _ in range(n_steps):
                s *= np.exp(sigma * normal(uniform(st)))
                if s < low:
                    low = s
            out[p] = low
        return out

    _RNG_FLOOR = floor
    return floor


def throughput(runs: int, threads: int, paths: int) -> dict:
    import numba

    import engine
    from engine.nb.kernel import gbm_floor_nb

    threads = max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
    scenario = engine.load_scenario(FLAGSHIP, THROUGHPUT_SET)
    n_steps = scenario.horizon.n_steps
    sigma = scenario.market.volatility.annual * (scenario.horizon.step.total_seconds() / (365.25 * 86400)) ** 0.5

    # compile (or load from the numba cache) outside the timings
    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    gbm_floor_nb(64, 8, sigma, 1)
    rng_floor()(64, 8, sigma, 1)
    numba.set_num_threads(old)
    engine.run(scenario, n_paths=256, n_jobs=threads, keep_steps=True)

    keys = ("floor", "rng_floor", "kernel_false", "kernel_true", "e2e_false", "e2e_true")
    rates: dict[str, list[float]] = {k: [] for k in keys}
    cells = paths * n_steps
    for i in range(runs):  # interleaved, so that a busy spell hits every figure alike
        numba.set_num_threads(threads)
        t0 = time.perf_counter()
        gbm_floor_nb(paths, n_steps, sigma, 1000 * i)
        rates["floor"].append(cells / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        rng_floor()(paths, n_steps, sigma, 1000 * i)
        rates["rng_floor"].append(cells / (time.perf_counter() - t0))
        numba.set_num_threads(old)
        for keep in (False, True):
            t0 = time.perf_counter()
            result = engine.run(scenario, n_paths=paths, n_jobs=threads, keep_steps=keep)
            wall = time.perf_counter() - t0
            key = "true" if keep else "false"
            rates[f"kernel_{key}"].append(result.path_steps_per_second)
            rates[f"e2e_{key}"].append(cells / wall)
            print(f"  run {i + 1}/{runs}: floor {rates['floor'][-1] / 1e6:6.1f} (xoshiro "
                  f"{rates['rng_floor'][-1] / 1e6:6.1f})  keep_steps={keep!s:5} "
                  f"kernel {rates[f'kernel_{key}'][-1] / 1e6:6.1f}  end to end {rates[f'e2e_{key}'][-1] / 1e6:6.1f} "
                  f"M path-steps/s", file=sys.stderr)
    return {"threads": threads, "paths": paths, "steps": n_steps, "rates": rates}


# ----------------------------------------------------------------------------- c: memory
def _maxrss_bytes(who=resource.RUSAGE_SELF) -> int:
    kb = resource.getrusage(who).ru_maxrss
    return kb if sys.platform == "darwin" else kb * 1024  # Linux reports KiB, macOS bytes


def _as_utc(value) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)  # a date alone: midnight UTC


def memory_scenario():
    """The flagship's first two days at one-minute steps (2,880 steps).

    ``--set horizon.step=1m --set horizon.duration=2d`` alone is refused: the loader rejects
    events outside the horizon. So what falls after the window is dropped (the ETF flows of
    2-4 Feb, the later margin-hike steps, the put wall); every shock that starts inside stays,
    and the memory depends on paths x steps, not on the shocks.
    """
    import engine
    from engine.scenario.canonical import to_plain

    data = to_plain(engine.load_scenario(FLAGSHIP))  # resolved: its `extends` merged, every default shown
    data["horizon"].update(step=MEMORY_STEP, duration=MEMORY_DURATION)
    start = _as_utc(data["horizon"]["start"])
    end = start + timedelta(days=float(MEMORY_DURATION.rstrip("d")))
    shocks = []
    for shock in data.get("shocks", []):
        if str(shock["start"]).startswith("+"):
            shocks.append(shock)
            continue
        if _as_utc(shock["start"]) >= end:
            continue
        if shock.get("daily_flows_usd"):
            shock["daily_flows_usd"] = {d: f for d, f in shock["daily_flows_usd"].items() if _as_utc(d) < end}
        if shock.get("schedule"):
            shock["schedule"] = [s for s in shock["schedule"] if s.get("at") is None or _as_utc(s["at"]) < end]
        shocks.append(shock)
    data["shocks"] = shocks
    return engine.load_scenario(data)


def memory_child(paths: int, threads: int) -> None:
    """Runs in a fresh process; prints JSON with its own peak RSS at each stage."""
    import engine

    scenario = memory_scenario()
    engine.run(scenario, n_paths=256, n_jobs=threads, keep_steps=True).fan  # load the kernel, import pandas
    baseline = _maxrss_bytes()
    t0 = time.perf_counter()
    result = engine.run(scenario, n_paths=paths, n_jobs=threads, keep_steps=True)
    after_run = _maxrss_bytes()
    result.fan
    result.summary()
    after_fan = _maxrss_bytes()
    kept = sum(result._raw[k].nbytes for k in ("price", "open_interest", "liq_long", "liq_short", "funding"))
    print(json.dumps({"baseline": baseline, "run": after_run, "fan": after_fan, "kept_bytes": kept,
                      "steps": result.n_steps, "paths": result.n_paths, "seconds": time.perf_counter() - t0,
                      "shocks": [s.id or s.type for s in scenario.shocks]}))


def memory(runs: int, threads: int, paths: int) -> dict:
    out: dict[str, list] = {"baseline": [], "run": [], "fan": [], "children_maxrss": []}
    info = {}
    for i in range(runs):
        proc = subprocess.run([sys.executable, __file__, "--child-memory", "--paths", str(paths),
                               "--threads", str(threads)], cwd=ROOT, env=_child_env(), capture_output=True,
                              text=True, timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"memory child failed:\n{proc.stderr[-2000:]}")
        rec = json.loads(proc.stdout.strip().splitlines()[-1])
        for key in ("baseline", "run", "fan"):
            out[key].append(rec[key])
        out["children_maxrss"].append(_maxrss_bytes(resource.RUSAGE_CHILDREN))
        info = {k: rec[k] for k in ("kept_bytes", "steps", "paths", "shocks")}
        print(f"  run {i + 1}/{runs}: peak RSS {rec['fan'] / 2**20:,.0f} MiB "
              f"(run {rec['run'] / 2**20:,.0f}, before {rec['baseline'] / 2**20:,.0f}) in {rec['seconds']:.1f} s",
              file=sys.stderr)
    return {**out, **info}


# ----------------------------------------------------------------------------- d: cascade run
def _cascade_command() -> list[str]:
    script = Path(sys.executable).with_name("cascade")
    if script.exists():
        return [str(script)]
    found = shutil.which("cascade")
    return [found] if found else [sys.executable, "-m", "engine"]


def _timed(argv: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` failed:\n{proc.stderr[-2000:]}")
    return seconds


def cli(runs: int) -> dict:
    cascade = _cascade_command()
    target = str(FLAGSHIP.relative_to(ROOT))
    run_argv = cascade + ["run", target, "--no-progress"]
    out: dict[str, list[float]] = {"validate": [], "cold": [], "warm": []}
    with tempfile.TemporaryDirectory(prefix="cascade-bench-") as tmp:
        for i in range(runs):  # every first run on its own empty cache
            cache = Path(tmp) / f"cold-{i}"
            cache.mkdir()
            out["cold"].append(_timed(run_argv, _child_env(NUMBA_CACHE_DIR=str(cache))))
            print(f"  cold run {i + 1}/{runs}: {out['cold'][-1]:.1f} s", file=sys.stderr)
        warm_env = _child_env(NUMBA_CACHE_DIR=str(Path(tmp) / f"cold-{runs - 1}"))
        for i in range(runs):
            out["warm"].append(_timed(run_argv, warm_env))
            out["validate"].append(_timed(cascade + ["validate", target], warm_env))
            print(f"  warm run {i + 1}/{runs}: {out['warm'][-1]:.1f} s "
                  f"(cascade validate {out['validate'][-1]:.1f} s)", file=sys.stderr)
    out["command"] = f"cascade run {target}"
    return out


# ----------------------------------------------------------------------------- the table
def _status(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def table(info: dict, runs: int, tp: dict | None, mem: dict | None, cl: dict | None, errors: dict) -> str:
    rows: list[tuple[str, str, str, str, str, str]] = []  # figure, median, range, ratio, requirement, status

    def add(figure, median, lo_hi="", ratio="", requirement="", status=""):
        rows.append((figure, median, lo_hi, ratio, requirement, status))

    def mps(values):
        return f"{_median(values) / 1e6:,.1f} M/s", f"{min(values) / 1e6:,.1f}-{max(values) / 1e6:,.1f}"

    if tp:
        r = tp["rates"]
        shape = f"{tp['paths']:,} x {tp['steps']}, {tp['threads']} threads"

        def ratio(key, base="floor"):  # paired: each run against the baseline measured beside it
            return _median([x / y for x, y in zip(r[key], r[base])])

        add(f"b. floor: gbm_floor_nb, {shape}", *mps(r["floor"]), "1.00 (baseline)")
        add("   floor, xoshiro256** + Acklam normal", *mps(r["rng_floor"]), f"{ratio('rng_floor'):.2f} x floor")
        for key, label in (("false", "keep_steps=False"), ("true", "keep_steps=True")):
            median = _median(r[f"kernel_{key}"])
            of_floor = ratio(f"kernel_{key}")
            if key == "false":
                add(f"a. flagship, {label} (kernel)", *mps(r[f"kernel_{key}"]), f"{of_floor:.3f} of floor",
                    ">= 30 M/s", _status(median >= MIN_RATE))
                add("   flagship / floor, keep_steps=False", f"{of_floor:.3f}", "", "", f">= {MIN_RATIO}",
                    _status(of_floor >= MIN_RATIO))
            else:
                add(f"a. flagship, {label} (kernel)", *mps(r[f"kernel_{key}"]), f"{of_floor:.3f} of floor")
            rng_ratio = ratio(f"kernel_{key}", "rng_floor")
            if key == "false":
                add(f"   flagship, {label} / xoshiro floor", f"{rng_ratio:.3f}", "", "", f">= {MIN_RNG_RATIO}",
                    _status(rng_ratio >= MIN_RNG_RATIO))
            else:
                add(f"   flagship, {label} / xoshiro floor", f"{rng_ratio:.3f}")
        for key, label in (("false", "keep_steps=False"), ("true", "keep_steps=True")):
            add(f"   flagship, {label} (engine.run end to end)", *mps(r[f"e2e_{key}"]),
                f"{ratio(f'e2e_{key}'):.3f} of floor")
    elif "throughput" in errors:
        add("a/b. throughput", "error (below)")
    if mem:
        gib = 2**30
        peak = _median(mem["fan"])
        base = _median(mem["baseline"])
        shape = f"{mem['paths']:,} x {mem['steps']:,} one-minute steps"
        add(f"c. peak RSS: run + fan, {shape}", f"{peak / gib:.2f} GiB",
            f"{min(mem['fan']) / gib:.2f}-{max(mem['fan']) / gib:.2f}", f"{peak / base:.1f} x before run",
            "<= 2 GiB", _status(peak <= MAX_RSS_BYTES))
        add("   peak RSS after engine.run(keep_steps=True)", f"{_median(mem['run']) / gib:.2f} GiB",
            f"{min(mem['run']) / gib:.2f}-{max(mem['run']) / gib:.2f}", f"{_median(mem['run']) / base:.1f} x")
        add("   before the run (imports, kernel loaded)", f"{base / gib:.2f} GiB", "", "baseline")
        add("   cross-check: getrusage(RUSAGE_CHILDREN)", f"{max(mem['children_maxrss']) / gib:.2f} GiB")
        add("   per-step arrays kept (5 x float32)", f"{mem['kept_bytes'] / gib:.2f} GiB")
    elif "memory" in errors:
        add("c. memory", "error (below)")
    if cl:
        base = _median(cl["validate"])
        for key, label, limit in (("cold", "empty numba cache", MAX_COLD_S), ("warm", "numba cache warm", MAX_WARM_S)):
            median = _median(cl[key])
            add(f"d. cascade run flagship, {label}", f"{median:.1f} s", f"{min(cl[key]):.1f}-{max(cl[key]):.1f}",
                f"{median / base:.1f} x validate", f"<= {limit:g} s", _status(median <= limit))
        add("   cascade validate flagship", f"{base:.1f} s",
            f"{min(cl['validate']):.1f}-{max(cl['validate']):.1f}", "baseline")
    elif "cli" in errors:
        add("d. cascade run", "error (below)")

    head = ("figure", "median", "min-max", "ratio", "requirement", "status")
    widths = [max(len(str(row[i])) for row in rows + [head]) for i in range(6)]
    lines = [
        f"cascade-engine bench, {info['date']}: {info['cpu']}, nproc {info['nproc']}, Python {info['python']}, "
        f"numpy {info['numpy']}, numba {info['numba']}, commit {info['commit']}",
        f"median of {runs} runs per figure (ratios: median of per-run ratios); M/s = million path-steps per "
        f"second; load average {info['load_start']:.2f} at the start, {os.getloadavg()[0]:.2f} at the end",
        "",
        "  ".join(h.ljust(w) if i in (0, 4, 5) else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths))),
        "  ".join("-" * w for w in widths),
    ]
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) if i in (0, 4, 5) else str(c).rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    lines += [f"{name} failed: {message}" for name, message in errors.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 runs per figure instead of 5 (same shapes)")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (at least 3; default 5)")
    parser.add_argument("--threads", type=int, default=2, help="kernel threads (default 2)")
    parser.add_argument("--paths", type=int, default=10_000, help="paths (default 10,000)")
    parser.add_argument("--only", choices=("throughput", "memory", "cli"), action="append",
                        help="run only these figures (repeatable)")
    parser.add_argument("--child-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_memory:
        memory_child(args.paths, args.threads)
        return 0
    runs = max(3, args.runs or (3 if args.quick else 5))
    only = set(args.only or ("throughput", "memory", "cli"))
    info = machine()
    tp = mem = cl = None
    errors: dict[str, str] = {}
    for name in ("throughput", "memory", "cli"):
        if name not in only:
            continue
        print(f"{name} ...", file=sys.stderr)
        try:
            if name == "throughput":
                tp = throughput(runs, args.threads, args.paths)
            elif name == "memory":
                mem = memory(runs, args.threads, args.paths)
            else:
                cl = cli(runs)
        except Exception as exc:  # a figure that cannot be measured is reported, not fatal
            last = [line for line in str(exc).strip().splitlines() if line.strip()][-2:]
            errors[name] = f"{type(exc).__name__}: " + " / ".join(line.strip() for line in last)
            print(f"  {name} failed: {exc}", file=sys.stderr)
    print(table(info, runs, tp, mem, cl, errors))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
