"""Time-step convergence: the market figures of a scenario at several step sizes, with Monte Carlo errors.

    python bench/convergence.py                          # flagship 4h..5m, October 4h..1m, 2,000 paths
    python bench/convergence.py --scenarios october --steps 15m,5m,1m --paths 10000
    python bench/convergence.py --markdown --json convergence.json
    python bench/convergence.py --set market.impact.permanent_fraction=0.02   # a --set on every run

A model whose mechanics are written in continuous time gives the same answer at every step small
enough to resolve its shocks; what is left is the Monte Carlo error (and, for the lowest price and
touch probabilities, a small bias of watching the price only at the end of each step, about
``0.58 * sigma * sqrt(step)`` in log price). This script runs each scenario at each step (the same
paths count and seed, ``horizon.step`` overridden through ``engine.load_scenario``'s overrides,
as ``cascade run --set horizon.step=15m`` does) and prints, per step:

* the median lowest price (per-path ``min_price``);
* P(touch) of every level the scenario lists (``outputs.price_levels_usd``,
  ``SimulationResult.touch_probabilities()``);
* the median long and short liquidations (``long_liquidations_usd``, ``short_liquidations_usd``),
  and the mean short liquidations (the short side's median is small and moves with rare squeezes);
* the median open-interest change (``open_interest_change``: end over start, minus 1);
* the mean bad debt (``bad_debt_usd``) and P(bad debt > 0);

each with its Monte Carlo standard error: for a median a bootstrap over paths (``--resamples``
resamples, fixed seed, the standard deviation of the resampled medians) or, with ``--median-se
order``, the asymptotic order-statistic interval (the distribution-free 95% interval of the
median, between the order statistics of ranks ``n/2 -+ 1.96 sqrt(n)/2``, divided by 2 x 1.96);
for a probability ``sqrt(p(1-p)/n)``; for a mean the sample standard deviation over ``sqrt(n)``.
The last column compares the coarsest step with the finest: the difference (relative, or in
points for probabilities and the open-interest change) and how many standard errors of the
difference it is.

Memory: runs use ``keep_steps=False``, so no paths x steps array is allocated (per-path summaries,
plus flow sums per RNG block of 256 paths and per 64-path task, capped at 64 MB per chunk). The
peak RSS of the process after each run is printed with the progress.

Progress goes to stderr, the tables to stdout. Measures, never asserts; but exits 1 when a figure
cannot be measured (a run fails, or a figure or its standard error is NaN), after printing what it
could measure.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # measure the engine next to this script
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import machine  # noqa: E402  (bench/ is on the path: the same header as bench_engine)

SCENARIOS = {
    "flagship": (ROOT / "scenarios" / "feb-2026-deleveraging.yaml", ["4h", "1h", "15m", "5m"]),
    "october": (ROOT / "scenarios" / "history" / "oct-2025-exchange-failure.yaml", ["4h", "1h", "15m", "5m", "1m"]),
}
BOOTSTRAP_SEED = 20260205  # fixed: the standard errors are a pure function of the runs
CHUNK_CELLS = 4_000_000  # resamples x paths held at once by the bootstrap (32 MB of float64)
Z95 = 1.959963984540054


# ----------------------------------------------------------------------------- standard errors
def median_se_bootstrap(x: np.ndarray, resamples: int, seed: int = BOOTSTRAP_SEED) -> float:
    """Standard deviation of the median over ``resamples`` bootstrap resamples of ``x``."""
    n = x.size
    rng = np.random.default_rng(seed)
    chunk = max(1, CHUNK_CELLS // n)
    medians = []
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        medians.append(np.median(x[rng.integers(0, n, size=(b, n))], axis=1))
    return float(np.std(np.concatenate(medians), ddof=1))


def median_se_order(x: np.ndarray) -> float:
    """Asymptotic order-statistic interval of the median: ranks ``n/2 -+ z sqrt(n)/2`` (95%),
    width over ``2 z``."""
    n = x.size
    xs = np.sort(x)
    half = Z95 * math.sqrt(n) / 2.0
    lo = max(0, int(math.floor(n / 2.0 - half)))
    hi = min(n - 1, int(math.ceil(n / 2.0 + half)))
    return float((xs[hi] - xs[lo]) / (2.0 * Z95))


def probability(hit: np.ndarray) -> tuple[float, float]:
    p = float(hit.mean())
    return p, math.sqrt(p * (1.0 - p) / hit.size)


def mean(x: np.ndarray) -> tuple[float, float]:
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else float("nan")


# ----------------------------------------------------------------------------- one run
# key -> (label, kind); kind decides units and how the coarsest/finest comparison reads
def figures_of(result, median_se: str, resamples: int) -> dict[str, dict]:
    """The figures of one run: ``{key: {"label", "kind", "value", "se"}}``."""
    pp = result.per_path
    out: dict[str, dict] = {}

    def add(key, label, kind, value, se):
        out[key] = {"label": label, "kind": kind, "value": float(value), "se": float(se)}

    def median(column):
        x = pp[column].to_numpy(dtype=np.float64)
        se = median_se_bootstrap(x, resamples) if median_se == "bootstrap" else median_se_order(x)
        return float(np.median(x)), se

    add("median_min_price", "median lowest price", "price", *median("min_price"))
    low = pp["min_price"].to_numpy(dtype=np.float64)
    touch = result.touch_probabilities()
    for level in result.compiled.outputs.price_levels_usd:
        key = f"prob_touch_{level:g}"
        p, se = probability(low <= level)
        if key not in touch or abs(touch[key] - p) > 1e-12:  # the API's own figure, with its SE
            raise RuntimeError(f"{key}: touch_probabilities() gives {touch.get(key)}, the per-path minima {p}")
        add(key, f"P(touch {_usd(level)})", "prob", p, se)
    add("median_long_liquidations_usd", "median long liquidations", "usd", *median("long_liquidations_usd"))
    add("median_short_liquidations_usd", "median short liquidations", "usd", *median("short_liquidations_usd"))
    # the short side's median is a small figure at the left edge of a skewed distribution (a few
    # squeezes carry most of it): its mean says whether the side converges as a whole
    add("mean_short_liquidations_usd", "mean short liquidations", "usd",
        *mean(pp["short_liquidations_usd"].to_numpy(dtype=np.float64)))
    add("median_open_interest_change", "median open-interest change", "ratio", *median("open_interest_change"))
    bad = pp["bad_debt_usd"].to_numpy(dtype=np.float64)
    add("mean_bad_debt_usd", "mean bad debt", "usd", *mean(bad))
    add("prob_bad_debt", "P(bad debt)", "prob", *probability(bad > 0))
    return out


def _maxrss_bytes() -> int:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb if sys.platform == "darwin" else kb * 1024


def measure(file: Path, step: str, args) -> dict:
    import engine

    scenario = engine.load_scenario(file, [f"horizon.step={step}", *args.overrides])
    t0 = time.perf_counter()
    result = engine.run(scenario, n_paths=args.paths, seed=args.seed, n_jobs=args.threads, keep_steps=False)
    seconds = time.perf_counter() - t0
    kept = result._raw["price"].shape[0]  # keep_steps=False: (0, steps); checked, the point of the flag
    if kept:
        raise RuntimeError(f"{kept} paths x {result.n_steps} steps kept despite keep_steps=False")
    figures = figures_of(result, args.median_se, args.resamples)
    bad = [k for k, f in figures.items() if not (math.isfinite(f["value"]) and math.isfinite(f["se"]))]
    if bad:
        raise RuntimeError("not finite: " + ", ".join(f"{k} = {figures[k]['value']} +- {figures[k]['se']}" for k in bad))
    return {"n_steps": result.n_steps, "n_paths": result.n_paths, "seed": result.seed, "seconds": seconds,
            "peak_rss_bytes": _maxrss_bytes(), "figures": figures}


# ----------------------------------------------------------------------------- formatting
def _usd(x: float) -> str:
    a = abs(x)
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= scale:
            return f"{x / scale:g}{suffix}" if suffix == "k" else f"{x / scale:.2f}{suffix}"
    return f"{x:.0f}"


def _cell(f: dict) -> str:
    v, se, kind = f["value"], f["se"], f["kind"]
    if kind == "price":
        return f"{v:,.0f} +- {se:,.0f}" if abs(v) >= 1000 else f"{v:.3g} +- {se:.2g}"
    if kind == "prob":
        return f"{v:.3f} +- {se:.3f}"
    if kind == "ratio":
        return f"{100 * v:+.1f}% +- {100 * se:.1f}%"
    scale, suffix = (1e9, "B") if max(abs(v), se) >= 1e9 else (1e6, "M")
    return f"{v / scale:.2f}{suffix} +- {se / scale:.2f}{suffix}"


def _compare(coarse: dict, fine: dict) -> str:
    """Coarsest step against the finest: the difference and its size in SEs of the difference."""
    diff = coarse["value"] - fine["value"]
    se = math.hypot(coarse["se"], fine["se"])
    z = f"{diff / se:+.1f} SE" if se > 0 else ("0 SE" if diff == 0 else "inf SE")
    if coarse["kind"] == "prob":
        return f"{diff:+.3f} ({z})"
    if coarse["kind"] == "ratio":
        return f"{100 * diff:+.1f} pts ({z})"
    if fine["value"] == 0:
        return f"{'+0' if diff == 0 else 'n/a'} ({z})"
    return f"{100 * diff / abs(fine['value']):+.1f}% ({z})"


def _rows(runs: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    steps = list(runs)
    head = ["figure", *steps]
    if len(steps) > 1:
        head.append(f"{steps[0]} vs {steps[-1]}")
    rows = [["steps", *(f"{runs[s]['n_steps']:,}" for s in steps)] + ([""] if len(steps) > 1 else [])]
    keys = list(runs[steps[0]]["figures"])
    for key in keys:
        row = [runs[steps[0]]["figures"][key]["label"]]
        row += [_cell(runs[s]["figures"][key]) if key in runs[s]["figures"] else "" for s in steps]
        if len(steps) > 1:
            row.append(_compare(runs[steps[0]]["figures"][key], runs[steps[-1]]["figures"][key]))
        rows.append(row)
    return head, rows


def plain_table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(head), "  ".join("-" * w for w in widths), *(fmt(r).rstrip() for r in rows)])


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|").replace(" +- ", " ± ") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _se_note(args) -> str:
    if args.median_se == "bootstrap":
        medians = f"bootstrap over paths ({args.resamples:,} resamples, seed {BOOTSTRAP_SEED})"
    else:
        medians = "asymptotic order-statistic interval (95% ranks n/2 -+ 1.96 sqrt(n)/2, width / 3.92)"
    return (f"+- (± in markdown) = Monte Carlo standard error; medians: {medians}; probabilities: sqrt(p(1-p)/n); "
            "means: sample SE. Last column: coarsest step minus finest (relative; points for "
            "probabilities and the OI change), in SEs of the difference.")


# ----------------------------------------------------------------------------- main
def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paths", type=int, default=2000, help="paths per run (default 2,000)")
    parser.add_argument("--seed", type=int, default=None, help="seed of every run (default: each scenario's own)")
    parser.add_argument("--scenarios", type=_csv, default=list(SCENARIOS),
                        help=f"comma-separated, of {', '.join(SCENARIOS)} (default: both)")
    parser.add_argument("--steps", type=_csv, default=None,
                        help="comma-separated steps, coarsest first, e.g. 1h,15m,5m: replaces each scenario's "
                             "default list (flagship 4h,1h,15m,5m; october 4h,1h,15m,5m,1m)")
    parser.add_argument("--threads", type=int, default=2, help="kernel threads (default 2; no figure depends on it)")
    parser.add_argument("--median-se", choices=("bootstrap", "order"), default="bootstrap",
                        help="standard error of the medians (default bootstrap)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1,000)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="a scenario override applied to every run, as cascade's --set (repeatable)")
    parser.add_argument("--markdown", action="store_true", help="also print the tables as markdown")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write every figure to FILE")
    args = parser.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown or not args.scenarios:
        parser.error(f"--scenarios: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(SCENARIOS)}")
    if args.paths < 2 or args.resamples < 2:
        parser.error("--paths and --resamples must be at least 2")
    if args.steps is not None and not args.steps:
        parser.error("--steps: no step given")

    info = machine()
    results: dict[str, dict] = {}
    errors: dict[str, str] = {}
    for name in args.scenarios:
        file, default_steps = SCENARIOS[name]
        runs: dict[str, dict] = {}
        for step in args.steps or default_steps:
            print(f"{name} at {step} ...", file=sys.stderr, flush=True)
            try:
                runs[step] = measure(file, step, args)
            except Exception as exc:  # reported, and the exit status says a figure is missing
                last = [line.strip() for line in str(exc).strip().splitlines() if line.strip()][-3:]
                errors[f"{name} at {step}"] = f"{type(exc).__name__}: " + " / ".join(last)
                print(f"  failed: {errors[f'{name} at {step}']}", file=sys.stderr)
                continue
            r = runs[step]
            print(f"  {r['n_paths']:,} paths x {r['n_steps']:,} steps in {r['seconds']:.1f} s "
                  f"(run + figures); peak RSS so far {r['peak_rss_bytes'] / 2**20:,.0f} MiB", file=sys.stderr)
        results[name] = {"file": str(file.relative_to(ROOT)), "runs": runs}

    out = [
        f"cascade-engine time-step convergence, {info['date']}: {info['cpu']}, nproc {info['nproc']}, "
        f"Python {info['python']}, numpy {info['numpy']}, numba {info['numba']}, commit {info['commit']}",
        f"{args.paths:,} paths per run, seed {args.seed if args.seed is not None else 'of each scenario'}, "
        f"keep_steps=False" + (f", --set {' --set '.join(args.overrides)}" if args.overrides else ""),
        _se_note(args),
    ]
    tables = []
    for name, res in results.items():
        if not res["runs"]:
            continue
        first = next(iter(res["runs"].values()))
        title = f"{name}: {res['file']}, seed {first['seed']}"
        head, rows = _rows(res["runs"])
        tables.append((title, head, rows))
        out += ["", title, plain_table(head, rows)]
    if args.markdown:
        for title, head, rows in tables:
            out += ["", f"**{title}**", "", markdown_table(head, rows)]
        out += ["", _se_note(args)]
    for where, message in errors.items():
        out.append(f"{where} failed: {message}")
    print("\n".join(out))

    if args.json is not None:
        record = {"machine": info, "paths": args.paths, "seed": args.seed, "threads": args.threads,
                  "overrides": args.overrides, "median_se": args.median_se,
                  "resamples": args.resamples if args.median_se == "bootstrap" else None,
                  "bootstrap_seed": BOOTSTRAP_SEED if args.median_se == "bootstrap" else None,
                  "scenarios": results, "errors": errors}
        args.json.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        print(f"figures written to {args.json}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
