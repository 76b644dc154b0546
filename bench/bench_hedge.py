"""Strategy evaluation speed: many parameter sets on one simulation (issue 4's requirement).

    python bench/bench_hedge.py                 # 100 put-spread parameter sets, 3 runs
    python bench/bench_hedge.py --sets 20 --runs 5

Simulates the flagship once (10,000 paths x 720 hourly steps, `horizon.duration=30d`, 2 threads,
price paths kept), then times `engine.hedge.evaluate` on a put spread swept over long strikes x
short strikes (``--sets`` of them, 100 by default: 10 x 10), 30-day tenor, hedge ratio 1 on 1 BTC.
Prints the median of the runs, the time per parameter set, and the requirement (100 sets within
20 s on 2 cores). Measures, never asserts.
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

REQUIRED_S = 20.0  # 100 parameter sets x 10,000 paths x 30 days hourly


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--paths", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import yaml

    import engine
    from engine.hedge import evaluate

    side = max(1, math.isqrt(args.sets))
    longs = [60_000 - 1_000 * i for i in range(side)]
    shorts = [50_000 - 1_000 * i for i in range(max(1, args.sets // side))]
    data = yaml.safe_load((ROOT / "scenarios" / "feb-2026-deleveraging.yaml").read_text())
    data["horizon"]["duration"] = "30d"
    data["strategies"] = [{"rule": "put_spread", "name": "spread", "long_strike_usd": {"values": longs},
                           "short_strike_usd": {"values": shorts}, "hedge_ratio": 1.0, "tenor": "30d"}]
    scenario = engine.load_scenario(data)
    result = engine.run(scenario, n_paths=args.paths, n_jobs=args.threads)
    n_sets = len(longs) * len(shorts)
    import numba

    numba.set_num_threads(args.threads)
    evaluate(result)  # compile (or load) the kernel
    times = []
    for i in range(args.runs):
        result.__dict__.pop("strategies", None)
        t = time.perf_counter()
        evaluate(result)
        times.append(time.perf_counter() - t)
        print(f"  run {i + 1}/{args.runs}: {times[-1]:.2f} s", file=sys.stderr)
    med = statistics.median(times)
    per_100 = med / (n_sets + 1) * 101  # the unhedged row is evaluated too
    print(f"strategy evaluation: {n_sets} put-spread parameter sets (+ unhedged) x {args.paths:,} paths x "
          f"{result.n_steps} steps, {args.threads} threads")
    print(f"  median {med:.2f} s (min {min(times):.2f}, max {max(times):.2f}); {med / (n_sets + 1) * 1e3:.0f} ms per set")
    print(f"  scaled to 100 sets: {per_100:.1f} s   requirement <= {REQUIRED_S:.0f} s: "
          f"{'PASS' if per_100 <= REQUIRED_S else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
