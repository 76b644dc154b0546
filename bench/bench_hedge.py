"""Strategy evaluation speed: many parameter sets on one simulation (the hedge-table and sweep speed targets).

    python bench/bench_hedge.py                 # 100 put-spread parameter sets, 3 runs
    python bench/bench_hedge.py --sets 1000 --runs 5 --vectorbt-paths 0    # the sweep requirement
    python bench/bench_hedge.py --sets 1000 --chunk 100 --vectorbt-paths 0  # as a sweep runs it, in chunks

Simulates the flagship once (10,000 paths x 720 hourly steps, `horizon.duration=30d`, 2 threads,
price paths kept; the simulation is timed too), then times `engine.portfolio.hedge.evaluate` on a put
spread swept over long strikes x short strikes x hedge ratios (``--sets`` of them: 100 by
default, 10 x 10 at ratio 1; 1,000 is 10 x 10 x 10, ratios 1.0 down to 0.1: 1,000 rows over 20
distinct contracts), 30-day tenor, on a book of 1 BTC and 100k of cash. With ``--chunk K`` the
sets are evaluated K at a time (the unhedged row first in each call), as a sweep runner does.

Baseline, measured in the same invocation, runs interleaved with the timed ones: the general
kernel (``engine.portfolio.hedge.FIXED_CONTRACT_KERNEL = False``, every row through ``evaluate_nb``) on the
first ``--baseline-sets`` sets, scaled per row; its rows are checked equal to the fast ones.
Prints the medians, the ratio, the time per set, and the requirements: 100 sets within 20 s and
1,000 sets within 60 s on 2 cores. Then the same metrics for a subset (``--vectorbt-paths``,
``--vectorbt-sets``) through ``vectorbt.Portfolio.from_orders`` against the engine, with the ratio
(at least 20x required). Measures, never asserts.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REQUIRED_S = 20.0  # 100 parameter sets x 10,000 paths x 30 days hourly: a hedge table
REQUIRED_SWEEP_S = 60.0  # 1,000 parameter sets, the same paths: a sweep


def grid(n_sets: int) -> tuple[list, list, list]:
    """Long strikes, short strikes and hedge ratios of about ``n_sets`` put spreads: 100 or fewer
    at ratio 1 (10 x 10 for 100), then up to 10 ratios (10 x 10 x 10 for 1,000)."""
    n_ratios = min(10, max(1, n_sets // 100))
    side = max(1, math.isqrt(max(1, n_sets // n_ratios)))
    longs = [60_000 - 1_000 * i for i in range(side)]
    shorts = [50_000 - 1_000 * i for i in range(max(1, n_sets // n_ratios // side))]
    return longs, shorts, [round(1.0 - 0.1 * i, 1) for i in range(n_ratios)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", type=int, default=100, help="parameter sets (100: 10 x 10; 1000: 10 x 10 x 10)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--paths", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=0, help="evaluate the sets this many at a time (0: all in one call)")
    ap.add_argument("--baseline-sets", type=int, default=10,
                    help="sets evaluated by the general kernel as the baseline (0 = skip it)")
    ap.add_argument("--vectorbt-paths", type=int, default=1000,
                    help="paths of the vectorbt comparison (0 = skip it; default 1,000)")
    ap.add_argument("--vectorbt-sets", type=int, default=10, help="parameter sets in the vectorbt comparison")
    args = ap.parse_args(argv)

    import numpy as np

    import engine
    from engine.portfolio import hedge

    longs, shorts, ratios = grid(args.sets)
    from engine.scenario.canonical import to_plain

    # the flagship with its `extends` resolved (the calibrated parameter file), 30 days
    data = to_plain(engine.load_scenario(ROOT / "scenarios" / "feb-2026-deleveraging.yaml", ["horizon.duration=30d"]))
    data["portfolio"] = {"spot_btc": 1, "cash_usd": "100k"}  # cash for the premiums: vectorbt does not lend
    data["strategies"] = [{"rule": "put_spread", "name": "spread", "long_strike_usd": {"values": longs},
                           "short_strike_usd": {"values": shorts},
                           "hedge_ratio": {"values": ratios} if len(ratios) > 1 else ratios[0], "tenor": "30d"}]
    scenario = engine.load_scenario(data)
    engine.run(scenario, n_paths=256, n_jobs=args.threads)  # compile (or load) the simulation kernel
    t = time.perf_counter()
    result = engine.run(scenario, n_paths=args.paths, n_jobs=args.threads)
    simulate_s = time.perf_counter() - t
    n_sets = len(longs) * len(shorts) * len(ratios)
    import numba

    numba.set_num_threads(args.threads)
    prices, lows, funding = result._raw["price"], result.per_path["min_price"].to_numpy(), result._raw["funding"]
    atm = result._raw["atm_iv"]  # the paths' own ATM vols, as hedge.evaluate(result) marks them
    vs, _ = hedge.variants(scenario, result.compiled)
    base_vs = vs[: args.baseline_sets + 1]

    def fast():
        if not args.chunk:
            result.__dict__.pop("strategies", None)
            return hedge.evaluate(result)
        for start in range(1, len(vs), args.chunk):
            hedge._evaluate(prices, lows, result.compiled, scenario, funding, vs=[vs[0], *vs[start:start + args.chunk]],
                            atm=atm)
        return None

    def general():
        hedge.FIXED_CONTRACT_KERNEL = False
        try:
            return hedge._evaluate(prices, lows, result.compiled, scenario, funding, vs=base_vs, atm=atm)[0]
        finally:
            hedge.FIXED_CONTRACT_KERNEL = True

    table = fast()  # compile (or load) the kernels
    if args.baseline_sets:
        reference = general()
        if table is None:
            table = hedge._evaluate(prices, lows, result.compiled, scenario, funding, vs=base_vs, atm=atm)[0]
        worst = max(float(np.nanmax(np.abs(table[m].to_numpy()[: len(base_vs)] - reference[m].to_numpy())))
                    for m in hedge.METRICS)
    times, base_times = [], []
    for i in range(args.runs):
        t = time.perf_counter()
        fast()
        times.append(time.perf_counter() - t)
        if args.baseline_sets:
            t = time.perf_counter()
            general()
            base_times.append(time.perf_counter() - t)
        print(f"  run {i + 1}/{args.runs}: {times[-1]:.2f} s" + (f", baseline {base_times[-1]:.2f} s" if base_times else ""),
              file=sys.stderr)
    med = statistics.median(times)
    per_set = med / (n_sets + 1)  # the unhedged row is evaluated too
    how = f"in chunks of {args.chunk}" if args.chunk else "in one call"
    print(f"strategy evaluation: {n_sets:,} put-spread parameter sets ({len(longs)} long x {len(shorts)} short strikes x "
          f"{len(ratios)} hedge ratio{'s' if len(ratios) > 1 else ''}, + unhedged) x {args.paths:,} paths x {result.n_steps} steps, {args.threads} threads, "
          f"{how}")
    print(f"  median {med:.2f} s (min {min(times):.2f}, max {max(times):.2f}, {args.runs} runs); "
          f"{per_set * 1e3:.1f} ms per set")
    if base_times:
        base_per_set = statistics.median(base_times) / len(base_vs)
        print(f"  baseline, general kernel (evaluate_nb) on {len(base_vs)} rows: median {statistics.median(base_times):.2f} s, "
              f"{base_per_set * 1e3:.0f} ms per set; fixed-contract kernel {base_per_set / per_set:.1f}x faster per set; "
              f"same rows: largest difference {worst:.1e}")
    print(f"  simulation of the paths (engine.run): {simulate_s:.2f} s; evaluation / simulation {med / simulate_s:.1f}")
    # the requirement nearest the size measured, scaled per set (the fixed costs, tables and
    # shared marks, weigh more per set in a smaller sweep)
    size, required = (100, REQUIRED_S) if n_sets <= 100 else (1000, REQUIRED_SWEEP_S)
    scaled = per_set * (size + 1)
    print(f"  scaled to {size:,} sets: {scaled:.1f} s   requirement <= {required:.0f} s: "
          f"{'PASS' if scaled <= required else 'FAIL'}")
    if args.vectorbt_paths:
        # the same book and rule with --vectorbt-sets parameter sets, on a run of --vectorbt-paths paths
        data["strategies"][0]["long_strike_usd"] = {"values": longs[: max(1, args.vectorbt_sets)]}
        data["strategies"][0]["short_strike_usd"] = {"values": shorts[:1]}
        data["strategies"][0]["hedge_ratio"] = 1.0
        small = engine.run(engine.load_scenario(data), n_paths=args.vectorbt_paths, n_jobs=args.threads)
        vectorbt_ratio(small, args.vectorbt_paths, args.runs)
    return 0


def vectorbt_ratio(result, n_paths: int, runs: int) -> None:
    """The same metrics on a subset through vectorbt: for each row, one ``Portfolio.from_orders``
    over all the subset's paths (a column group per path, vectorbt's vectorised form), then
    final values and max drawdowns into PnL, VaR/ES and drawdown quantiles. Timed: the engine's
    ``evaluate_paths`` on the subset against vectorbt's simulation and metrics (the marks and orders
    vectorbt needs come from the engine's trace, prepared beforehand and not timed)."""
    import numpy as np
    import pandas as pd
    import vectorbt as vbt

    from engine.portfolio.hedge import evaluate_paths, vectorbt_orders

    scenario = result.scenario
    compiled = result.compiled
    prices = np.ascontiguousarray(result._raw["price"][:n_paths], dtype=np.float64)
    lows = result.per_path["min_price"].to_numpy()[:n_paths]
    table = evaluate_paths(prices, lows, compiled, scenario)
    rows = list(range(len(table)))  # every row, the unhedged one included
    prepared = {}
    for row in rows:  # the engine's trace of every (row, path): vectorbt's inputs
        parts = [vectorbt_orders(prices, compiled, scenario, row, p) for p in range(n_paths)]
        width = max(t["close"].shape[1] for t in parts)

        def pad(a, fill):
            return np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=fill)

        prepared[row] = dict(
            close=pd.DataFrame(np.hstack([pad(t["close"].to_numpy(), 1.0) for t in parts]), index=parts[0]["close"].index),
            size=np.hstack([pad(t["size"], np.nan) for t in parts]),
            price=np.hstack([pad(t["price"], np.nan) for t in parts]),
            fixed=np.hstack([pad(t["fixed_fees"], 0.0) for t in parts]),
            groups=np.repeat(np.arange(n_paths), width), init=np.array([t["init_cash"] for t in parts]),
            freq=parts[0]["freq"],
            out=np.array([t["out"] for t in parts]))

    def through_vectorbt():
        metrics = []
        for row in rows:
            d = prepared[row]
            pf = vbt.Portfolio.from_orders(d["close"], d["size"], price=d["price"], fixed_fees=d["fixed"], fees=0.0,
                                           init_cash=d["init"], cash_sharing=True, group_by=d["groups"],
                                           direction="both", freq=d["freq"], raise_reject=True)
            pnl = pf.final_value().to_numpy() - d["init"]  # init cash: the unhedged book's start value
            dd = -pf.max_drawdown().to_numpy()
            q5, q1 = np.quantile(pnl, [0.05, 0.01])
            metrics.append((pnl.mean(), -pnl[pnl <= q5].mean(), -pnl[pnl <= q1].mean(), np.median(dd),
                            np.quantile(dd, 0.95)))
        return metrics

    def through_engine():
        return evaluate_paths(prices, lows, compiled, scenario)

    through_vectorbt()
    through_engine()
    t_vbt, t_eng = [], []
    for _ in range(runs):
        t = time.perf_counter()
        vbt_metrics = through_vectorbt()
        t_vbt.append(time.perf_counter() - t)
        t = time.perf_counter()
        eng = through_engine()
        t_eng.append(time.perf_counter() - t)
    worst = max(abs(vbt_metrics[i][0] - eng["pnl_mean"].iloc[r]) / max(abs(eng["pnl_mean"].iloc[r]), 1.0)
                for i, r in enumerate(rows))
    ratio = statistics.median(t_vbt) / statistics.median(t_eng)
    print(f"vectorbt comparison: {len(rows)} rows x {n_paths} paths x {compiled.n_steps} steps")
    print(f"  engine {statistics.median(t_eng) * 1e3:.0f} ms, vectorbt Portfolio.from_orders {statistics.median(t_vbt):.2f} s "
          f"(medians of {runs}); engine {ratio:.0f}x faster   requirement >= 20x: {'PASS' if ratio >= 20 else 'FAIL'}")
    print(f"  same figures: mean PnL agrees to {worst:.1e} (relative)")


if __name__ == "__main__":
    sys.exit(main())
