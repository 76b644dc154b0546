"""The ``cascade`` command line: every subcommand, its flags and their help."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import EXIT_USAGE


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2 too; keep its usage line short
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"cascade: error: {message}\n")


def _count(text: str) -> int:
    """A whole number in any friendly spelling: ``2000``, ``1e4``, ``10k``."""
    from ..scenario.units import UnitError, parse_amount

    try:
        value = parse_amount(text)
    except UnitError:
        value = float("nan")
    if not value == value or value != int(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number like 2000 or 10k, got {text!r}")
    return int(value)


def _positive_int(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


_non_negative_int = _count


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
        help="override a value, e.g. --set n_paths=2000 --set shocks[warsh].depth_multiplier=0.5",
    )


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = _Parser(prog="cascade", description="Stress scenarios for leveraged crypto markets.")
    parser.add_argument("--version", action="version", version=f"cascade-engine {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("validate", help="check scenario and strategy files; exit 0 if all are valid, 2 otherwise")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per file (for CI annotations and editors)")
    _add_set(p)

    p = sub.add_parser("show", help="print the resolved scenario as canonical YAML")
    p.add_argument("file", type=Path)
    _add_set(p)
    p.add_argument("--compiled", action="store_true", help="print a summary of the compiled arrays instead")

    p = sub.add_parser("run", help="simulate a scenario and print its market metrics")
    p.add_argument("file", type=Path)
    p.add_argument("--paths", type=_positive_int, default=None, help="number of paths (default: the scenario's)")
    p.add_argument("--seed", type=_non_negative_int, default=None, help="seed (default: the scenario's)")
    p.add_argument("--jobs", type=_positive_int, default=None,
                   help="kernel threads (default: all cores); results do not depend on it")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write the run folder here (default: results/<scenario>/<UTC time>-<hash>/)")
    p.add_argument("--no-save", action="store_true", help="print the metrics only; write no run folder")
    p.add_argument("--book", type=Path, metavar="FILE",
                   help="a positions CSV or a Deribit positions export (JSON) replacing the scenario's portfolio "
                        "positions (its cash_usd kept); docs/book.md")
    p.add_argument("--greeks", action="store_true",
                   help="also print the book's delta, gamma and vega at the fan's prices (always in --json and the "
                        "report)")
    p.add_argument("--fail-on-breach", action="store_true",
                   help="exit 1 if a limit of the scenario's limits: is breached (the results are still written)")
    _add_set(p)

    p = sub.add_parser("rerun", help="run again from a run folder's manifest and check the result is bit-identical")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--out", type=Path, metavar="DIR", help="write the new run folder here")
    p.add_argument("--jobs", type=_positive_int, default=None, help="kernel threads; results do not depend on it")

    p = sub.add_parser("report", help="regenerate a run folder's report.html and figures/ from its tables")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--no-figures", action="store_true", help="the HTML report only")
    p.add_argument("--screenshot", type=Path, metavar="OUT.png",
                   help="also render the report in headless Chromium, check it, and save a screenshot")

    p = sub.add_parser("compare", help="print the metric differences between two run folders")
    p.add_argument("run_a", type=Path, metavar="RUN_A")
    p.add_argument("run_b", type=Path, metavar="RUN_B")
    p.add_argument("--all", action="store_true", help="also list the metrics that did not change")
    p.add_argument("--json", action="store_true", help="print the differences as JSON")

    p = sub.add_parser("check", help="run the regression scenarios against their baselines; exit 1 on drift")
    p.add_argument("files", nargs="*", type=Path, metavar="SCENARIO",
                   help="regression scenarios, as paths or library names (default: scenarios/ci/*.yaml here, "
                        "else the shipped ones)")
    p.add_argument("--update", action="store_true", help="rewrite the baselines from fresh runs, on purpose")
    p.add_argument("--baselines", type=Path, metavar="DIR",
                   help="baseline folder (default: the results/baselines/ of the nearest folder above each scenario "
                        "that has one, else ./results/baselines)")
    p.add_argument("--verbose", action="store_true", help="list every metric, not only those that drifted")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--junit", type=Path, metavar="FILE",
                   help="also write a JUnit XML report, one test case per scenario (CI test reporters read it)")
    _add_set(p)

    p = sub.add_parser("sweep", help="run a grid of strategy and scenario parameters (resumable)")
    p.add_argument("file", type=Path, metavar="SCENARIO")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=VALUES",
                   help="sweep a key: start:stop:step, v1,v2,..., linspace:a:b:n or logspace:a:b:n, "
                        "e.g. --grid strategies[put].strike_usd=50k:60k:2k; a strategy's duration takes "
                        "durations, e.g. --grid strategies[put].tenor=14d,30d,60d")
    p.add_argument("--paths", type=_positive_int, default=None, help="number of paths (default: the scenario's)")
    p.add_argument("--seed", type=_non_negative_int, default=None, help="seed (default: the scenario's)")
    p.add_argument("--jobs", type=_positive_int, default=None, help="parallel jobs (default: all cores)")
    p.add_argument("--backend", choices=["loky", "threading", "sequential"], default="loky",
                   help="joblib backend on this machine (default loky); results do not depend on it")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run on an existing Dask cluster")
    p.add_argument("--dask-local", type=_positive_int, metavar="N", help="start a local Dask cluster of N workers")
    p.add_argument("--chunk-size", type=_positive_int, default=None, metavar="ROWS",
                   help="rows per chunk (default: about 32 chunks, 8 for a strategy-only sweep)")
    p.add_argument("--on-error", choices=["raise", "collect"], default="raise",
                   help="stop at the first failing point (raise, default) or list failures and go on (collect)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="the sweep folder (default: results/<scenario>/sweep-<plan hash>/, found again to resume)")
    p.add_argument("--top", type=_non_negative_int, default=10, metavar="N", help="print the best N rows (default 10)")
    p.add_argument("--by", default="es99", metavar="METRIC", help="rank rows by this column (default es99)")
    p.add_argument("--order", choices=["auto", "lowest", "highest"], default="auto",
                   help="which end of --by is best (auto: highest for PnL and ES99 saved per dollar, "
                        "lowest for losses, probabilities and everything else)")
    p.add_argument("--no-report", action="store_true", help="no report.html / figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _add_set(p)

    p = sub.add_parser("list", help="the shipped scenarios, then the strategy library, with one-line descriptions")
    p.add_argument("--dir", type=Path, default=None, help="scenario folder (default: ./scenarios)")

    p = sub.add_parser("backtest", help="replay a scenario's hedging strategies on a real price history")
    p.add_argument("scenario", type=Path, nargs="?", help="a scenario whose portfolio: and strategies: are replayed")
    p.add_argument("--strategy", type=Path, dest="strategy_file", metavar="SCENARIO",
                   help="the same, as an option: cascade backtest --data FILE.csv --strategy hedges.yaml")
    p.add_argument("--data", type=Path, required=True, help="an OHLCV CSV (time and close columns), e.g. ../shared/data/...")
    p.add_argument("--time-column", help="the CSV's time column (default: found among timestamp, time, date, ...)")
    p.add_argument("--close-column", help="the CSV's close column (default: found among close, Close, price, ...)")
    p.add_argument("--start", help="first day or time used (UTC), e.g. 2019-04-01")
    p.add_argument("--end", help="last day or time used (UTC)")
    p.add_argument("--vol-window", default="30d", help="realised-vol window for the implied vol (default 30d)")
    p.add_argument("--vol-premium", default="5%", help="implied minus realised vol (default 5%%)")
    p.add_argument("--skew", default="-5%", help="25-delta risk reversal of the implied vol (default -5%%)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _add_set(p)
    p = sub.add_parser("replay", help="run a scenario's book and flows along an observed price path: implied "
                                      "liquidations, open interest and margin stress, beside the facts")
    p.add_argument("--data", type=Path, required=True, help="an OHLCV CSV of closes, e.g. ../shared/data/btc_hourly_*.csv")
    p.add_argument("--scenario", type=Path, required=True, metavar="FILE", help="the scenario whose book and flows are replayed")
    p.add_argument("--start", help="first day or time replayed (UTC; default: the scenario's horizon.start)")
    p.add_argument("--end", help="end of the window (UTC; a day alone means the whole day; default: start + horizon.duration)")
    p.add_argument("--facts", type=Path, metavar="FILE",
                   help="facts to compare with (default: facts/<scenario name>.yaml beside the data folder, or in ../shared/facts)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", type=Path, metavar="DIR", help="write the per-step table (Parquet and CSV), the daily table "
                                                         "and the facts comparison here (files are replaced)")
    _add_set(p)
    p = sub.add_parser("surface", help="fit the vol surface to an option-chain snapshot and show the residuals")
    p.add_argument("chain", type=Path, help="a Deribit chain snapshot CSV, e.g. ../shared/data/options/...")
    p.add_argument("--max-abs-x", type=float, default=2.0, metavar="X",
                   help="fit quotes within X ATM standard deviations of the forward (default 2)")
    p.add_argument("--residuals", type=Path, metavar="OUT.csv", help="write every quote's residual to a CSV")
    p.add_argument("--json", action="store_true", help="print the fit as one JSON object")
    p = sub.add_parser("stylised", help="stylised facts of simulated returns beside a real price history")
    p.add_argument("file", type=Path, metavar="SCENARIO")
    p.add_argument("--data", type=Path, required=True,
                   help="closes at the scenario's step or finer, e.g. ../shared/data/btc_hourly_binance_*.csv")
    p.add_argument("--time-column", help="the CSV's time column (default: found among timestamp, time, date, ...)")
    p.add_argument("--close-column", help="the CSV's close column (default: found among close, Close, price, ...)")
    p.add_argument("--start", help="first day or time of the real data used (UTC), e.g. 2025-03-05")
    p.add_argument("--end", help="last day or time used (UTC; a day alone means the whole day)")
    p.add_argument("--paths", type=_positive_int, default=None, help="number of paths (default: the scenario's)")
    p.add_argument("--seed", type=_non_negative_int, default=None, help="seed (default: the scenario's)")
    p.add_argument("--jobs", type=_positive_int, default=None, help="kernel threads; results do not depend on it")
    p.add_argument("--tail-fraction", default="5%", help="share of returns in each Hill tail (default 5%%)")
    p.add_argument("--stride", type=_positive_int, default=1,
                   help="steps between the starts of real windows (default 1: every window)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _add_set(p)
    p = sub.add_parser("calibrate", help="fit the market parameters to the February 2026 crash, validate them, "
                                         "and write the calibration report")
    p.add_argument("file", type=Path, metavar="SCENARIO", nargs="?", default=Path("feb-2026-deleveraging"),
                   help="the scenario fitted (default: the flagship); its shocks are the observed inputs")
    p.add_argument("--data", type=Path, help="real hourly closes (default: ../shared/data/" + "btc_hourly_binance_*.csv)")
    p.add_argument("--facts", type=Path, help="the observed figures (default: ../shared/facts/<scenario name>.yaml)")
    p.add_argument("--reference", type=Path, help="out-of-sample reference numbers (default: "
                   "../shared/data/reference/stress_event_reference_numbers.csv)")
    p.add_argument("--episode", type=Path, action="append", metavar="SCENARIO",
                   help="a historical episode fitted jointly with the scenario, sharing its mechanics (default: "
                        "scenarios/history/oct-2025-exchange-failure.yaml); repeat for several; --episode '' fits "
                        "the scenario and the calm year alone")
    p.add_argument("--oos", type=Path, action="append", metavar="SCENARIO",
                   help="an out-of-sample episode, run with the fitted mechanics and never refitted; repeat for "
                        "several (default: every other scenario in scenarios/history/); --oos '' skips them")
    p.add_argument("--params", help="comma-separated parameters to fit (default: all but liquidation_feedback, "
                                    "which is fitted only when named; README, 'Calibration')")
    p.add_argument("--no-fit", action="store_true",
                   help="evaluate the scenario as given (validate the shipped defaults); write the report only")
    p.add_argument("--no-calm", action="store_true",
                   help="leave out the calm year's targets (the scenario with no shocks against the real hourly "
                        "windows of its length, crashes excluded): fit February alone")
    p.add_argument("--identifiability", action=argparse.BooleanOptionalAction, default=None,
                   help="which parameters and combinations the targets pin down: two evaluations per parameter, "
                        "by default after a fit; with --no-fit, at the scenario's own values "
                        "(--no-identifiability skips it)")
    p.add_argument("--paths", type=_positive_int, default=2000, help="paths per evaluation in the fit (default 2000)")
    p.add_argument("--report-paths", type=_positive_int, default=10000,
                   help="paths of the report's run at the result (default 10000)")
    p.add_argument("--seed", type=_non_negative_int, default=None, help="seed of the fit (default: the scenario's)")
    p.add_argument("--design", type=_positive_int, default=32, help="Sobol design points before refining (default 32)")
    p.add_argument("--max-evals", type=_positive_int, default=160, help="evaluations in all (default 160)")
    p.add_argument("--jobs", type=_positive_int, default=None, help="kernel threads; results do not depend on it")
    p.add_argument("--out", type=Path, help="the report folder (default: results/calibration-<scenario>)")
    p.add_argument("--write-params", type=Path, metavar="FILE",
                   help="write the fitted parameter file here, e.g. scenarios/calibration/feb-2026.yaml (the file "
                        "the shipped scenarios extend)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _add_set(p)
    p = sub.add_parser("breakpoint", help="reverse stress test: the smallest scale of a shock at which a metric "
                                          "crosses a threshold; exit 1 if it never does")
    p.add_argument("file", type=Path, metavar="SCENARIO")
    p.add_argument("--shock", required=True, metavar="KEY",
                   help="the --set path of the number to scale, e.g. shocks[warsh].depth_multiplier, "
                        "shocks[etf_run].generated.total_usd, or a mapping of numbers (shocks[farside_days].daily_flows_usd)")
    p.add_argument("--metric", required=True, metavar="METRIC",
                   help="as cascade check names it: market.min_price.p50, market.prob_touch_56100, "
                        "strategies.unhedged.p_liquidated, ...")
    p.add_argument("--threshold", required=True, metavar="T", help="e.g. 56.1k or 5%%")
    p.add_argument("--direction", choices=["auto", "above", "below"], default="auto",
                   help="crossed when the metric is above / below T (auto: the way the shock moves the metric "
                        "between the ends of the range)")
    p.add_argument("--scale-mode", choices=["auto", "multiply", "multiplier", "value"], default="auto",
                   help="multiply: the key is s x its value; multiplier: 1 + s x (value - 1); value: s itself "
                        "(auto: multiplier for *_multiplier keys, else multiply)")
    p.add_argument("--range", metavar="LO:HI",
                   help="initial range of s (default 0:1, no shock to the scenario's); required in value mode, "
                        "e.g. --range=11%%:40%% (write --range=... when LO is negative)")
    p.add_argument("--max-scale", type=float, default=16.0, metavar="X",
                   help="the top of the range doubles up to this scale (default 16)")
    p.add_argument("--tol", default="1%", metavar="R", help="stop when the bracket is within R of the scale (default 1%%)")
    p.add_argument("--max-evals", type=_positive_int, default=40, metavar="N", help="at most N simulations (default 40)")
    p.add_argument("--n-se", type=float, default=2.0, metavar="Z",
                   help="uncertainty: the scales where T is within Z standard errors of the metric (default 2)")
    p.add_argument("--paths", type=_positive_int, default=None, help="number of paths (default: the scenario's)")
    p.add_argument("--seed", type=_non_negative_int, default=None, help="seed (default: the scenario's)")
    p.add_argument("--jobs", type=_positive_int, default=None, help="kernel threads; results do not depend on it")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _add_set(p)
    p = sub.add_parser("attribute", help="which shock did how much: re-run with each shock removed on the same "
                                         "random numbers and print each one's effect")
    p.add_argument("file", type=Path, metavar="SCENARIO")
    p.add_argument("--paths", type=_positive_int, default=None, help="number of paths (default: the scenario's)")
    p.add_argument("--seed", type=_non_negative_int, default=None, help="seed (default: the scenario's)")
    p.add_argument("--jobs", type=_positive_int, default=None, help="kernel threads; results do not depend on it")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write the run folder (the scenario as written, with the attribution table and chart) here "
                        "(default: results/<scenario>/<UTC time>-<hash>/)")
    p.add_argument("--no-save", action="store_true", help="print the attribution only; write no run folder")
    _add_set(p)
    p = sub.add_parser("schema", help="print the JSON Schema of scenario files")
    p.add_argument("--markdown", action="store_true", help="print the schema reference as Markdown")
    p.add_argument("--draft", choices=["2020-12", "7"], default="2020-12",
                   help="JSON Schema draft (default 2020-12; 7 for yaml-language-server and editors built on it)")
    p.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")
    return parser
