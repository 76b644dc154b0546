"""What each mechanism costs the kernel: the flagship with parts of its market switched off.

    python bench/mechanism_cost.py                      # 2 threads, 10,000 paths, 5 rounds
    python bench/mechanism_cost.py --threads 1 --paths 3000

The throughput figure of ``bench/bench_engine.py`` is one number for the whole market. This
script times the same flagship (``--set horizon.duration=30d``, 720 hourly steps) with scenario
overrides that remove one mechanism at a time, and the machine's two floors, in interleaved
rounds in one process (each round: every variant, best of 3 kernel calls), and prints the median
ns per path-step per thread and the median per-round ratio of the gbm floor to each variant (the
same "share of the floor" as bench_engine.py). The variants:

* ``flagship``: every mechanism on;
* ``flat margin``: one maintenance rate per venue (0.5%, 1% initial) instead of the Binance tiers:
  one book row per venue instead of one per size class, no partial liquidation;
* ``no clustering``: ``market.volatility.clustering.vol_of_vol=0``: constant volatility (one draw
  and one ``exp`` fewer per step, and fewer steps whose bridge reaches a trigger);
* ``no turnover``: ``market.behaviour.deleveraging.base_hazard_per_day=0``: no new positions
  replacing the holding-time closes (two deposits fewer per step);
* ``no momentum``: ``market.behaviour.momentum.open_rate=0``: no new momentum positions;
* ``flat, no momentum``: both;
* ``calm``: ``scenarios/calm-baseline.yaml`` over the same 720 steps.

The variants change the market, so their paths differ: the table says what the mechanisms
cost on this scenario, not what a faster kernel would do. Measures, never asserts; exits 1 when
a figure could not be measured.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

FLAGSHIP = ROOT / "scenarios" / "feb-2026-deleveraging.yaml"
CALM = ROOT / "scenarios" / "calm-baseline.yaml"
HORIZON = ["horizon.duration=30d"]
FLAT = ["market.perpetuals.maintenance_margin_rate=0.005", "market.perpetuals.initial_margin_rate=0.01"]
NO_MOMENTUM = ["market.behaviour.momentum.open_rate=0"]
NO_CLUSTERING = ["market.volatility.clustering.vol_of_vol=0"]
NO_TURNOVER = ["market.behaviour.deleveraging.base_hazard_per_day=0"]
VARIANTS = {
    "flagship": (FLAGSHIP, []),
    "no clustering": (FLAGSHIP, NO_CLUSTERING),
    "no turnover": (FLAGSHIP, NO_TURNOVER),
    "flat margin": (FLAGSHIP, FLAT),
    "no momentum": (FLAGSHIP, NO_MOMENTUM),
    "flat, no momentum": (FLAGSHIP, FLAT + NO_MOMENTUM),
    "calm": (CALM, []),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--paths", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)

    import numba

    import engine
    from bench_engine import rng_floor
    from engine.nb.kernel import gbm_floor_nb

    threads = max(1, min(args.threads, numba.config.NUMBA_NUM_THREADS))
    compiled = {}
    for name, (path, sets) in VARIANTS.items():
        scenario = engine.load_scenario(path, HORIZON + sets)
        compiled[name] = engine.compile_scenario(scenario, n_paths=args.paths, seed=5)
        engine.run(compiled[name], n_jobs=threads, keep_steps=False)  # compile or load the kernel
    n_steps = compiled["flagship"].n_steps
    scenario = engine.load_scenario(FLAGSHIP, HORIZON)
    sigma = scenario.market.volatility.annual * (scenario.horizon.step.total_seconds() / (365.25 * 86400)) ** 0.5
    floors = {"gbm floor": lambda: gbm_floor_nb(args.paths, n_steps, sigma, 1),
              "xoshiro floor": lambda: rng_floor()(args.paths, n_steps, sigma, 1)}
    numba.set_num_threads(threads)
    for run in floors.values():
        run()

    ns: dict[str, list[float]] = {name: [] for name in [*floors, *VARIANTS]}
    for r in range(args.rounds):
        for name, run in floors.items():
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - t0)
            ns[name].append(best * threads / (args.paths * n_steps) * 1e9)
        for name, comp in compiled.items():
            best = min(engine.run(comp, n_jobs=threads, keep_steps=False).timings["simulate_s"] for _ in range(3))
            ns[name].append(best * threads / (comp.n_paths * comp.n_steps) * 1e9)
        print(f"  round {r + 1}/{args.rounds}: " + "  ".join(f"{k} {v[-1]:.1f}" for k, v in ns.items()),
              file=sys.stderr)

    if any(not v or not all(x > 0 for x in v) for v in ns.values()):
        print("mechanism_cost: a figure could not be measured", file=sys.stderr)
        return 1
    print(f"{args.paths:,} paths x {n_steps} steps, {threads} thread(s), {args.rounds} rounds (best of 3 calls); "
          f"ns per path-step per thread, median over rounds")
    print(f"{'variant':<20} {'ns/step':>8} {'of gbm floor':>13} {'of xoshiro':>11}")
    for name, values in ns.items():
        gbm = statistics.median(g / v for g, v in zip(ns["gbm floor"], values))
        xo = statistics.median(x / v for x, v in zip(ns["xoshiro floor"], values))
        print(f"{name:<20} {statistics.median(values):8.1f} {gbm:13.3f} {xo:11.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
