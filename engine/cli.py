"""The ``cascade`` command.

User errors (a bad scenario, a bad flag) print a located message and exit 2, with no traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import textwrap
from pathlib import Path

from ._terminal import terminal_safe
from .errors import RunFolderError, ScenarioError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2 too; keep its usage line short
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"cascade: error: {message}\n")


def _count(text: str) -> int:
    """A whole number in any friendly spelling: ``2000``, ``1e4``, ``10k``."""
    from .scenario.units import UnitError, parse_amount

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
    from . import __version__

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


def _cmd_validate(args) -> int:
    from .scenario.loader import load_scenario
    from .scenario.strategy_files import is_strategy_file, load_strategy_file

    failed = 0
    for file in args.files:
        strategy_file = is_strategy_file(file)  # strategies: and no market:, horizon: or extends:
        try:
            scenario = load_strategy_file(file, args.overrides) if strategy_file else load_scenario(file, args.overrides)
        except ScenarioError as exc:
            failed += 1
            if args.json:
                print(json.dumps({"file": str(file), "valid": False,
                                  "problems": [problem.to_dict() for problem in exc.problems]}))
                continue
            message = str(exc)
            if not any(p.file == str(file) for p in exc.problems):  # all in a parent file or a --set
                message = terminal_safe(f"in {file}:\n  ") + message.replace("\n", "\n  ")
            print(message, file=sys.stderr)
            continue
        if strategy_file:
            _validated_strategy_file(args, file, scenario)
            continue
        from .resources import validate_problems

        too_big = validate_problems(scenario)  # more memory than this machine has, even without fans
        if too_big:
            failed += 1
            if args.json:
                print(json.dumps({"file": str(file), "valid": False,
                                  "problems": [problem.to_dict() for problem in too_big]}))
            else:
                message = str(ScenarioError(too_big))
                if not any(p.file == str(file) for p in too_big):  # n_paths set in a parent file or a --set
                    message = f"in {file}:\n  " + message
                print(message, file=sys.stderr)
        elif args.json:
            print(json.dumps({"file": str(file), "valid": True, "name": scenario.name, "problems": []}))
        elif not args.quiet:
            print(terminal_safe(f"ok  {file}  ({scenario.name}: {len(scenario.shocks)} shocks, "
                                f"{scenario.horizon.n_steps} steps x {scenario.n_paths} paths)"))
        if not too_big and not args.json:
            from .scenario.library import uncalibrated_note

            note = uncalibrated_note(file)
            if note:
                print(terminal_safe(f"note: {note}"), file=sys.stderr)
    if failed:
        print(f"{failed} of {len(args.files)} files invalid", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _validated_strategy_file(args, file: Path, model) -> None:
    labels = [s.label for s in model.strategies]
    if args.json:
        print(json.dumps({"file": str(file), "valid": True, "kind": "strategies", "name": file.stem,
                          "strategies": labels, "problems": []}))
    elif not args.quiet:
        print(terminal_safe(f"ok  {file}  (strategy file, {len(labels)} rule{'s' if len(labels) != 1 else ''}: "
                            f"{', '.join(labels)})"))


def _cmd_show(args) -> int:
    from .scenario.canonical import dump_scenario
    from .scenario.loader import load_scenario

    scenario = load_scenario(args.file, args.overrides)
    if args.compiled:
        from .compile.compiler import compile_scenario

        print(compile_scenario(scenario).describe())
    else:
        from .scenario.library import uncalibrated_note

        text = dump_scenario(scenario)
        note = uncalibrated_note(args.file)
        if note:  # under the header, as a comment: the output stays a loadable scenario
            head, _, rest = text.partition("\n")
            text = f"{head}\n" + "".join(f"# {line}\n" for line in textwrap.wrap(f"note: {note}", 98)) + rest
        sys.stdout.write(text)
    return EXIT_OK


def _bad_out(args, command: str) -> bool:
    """``--out``/``--no-save`` refused before any work (printed): both given, or an --out that holds files."""
    if args.out is not None and args.no_save:
        print(f"cascade {command}: --out and --no-save contradict each other", file=sys.stderr)
        return True
    if args.out is not None and args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        print(f"cascade {command}: --out {args.out}: already exists and is not empty", file=sys.stderr)
        return True
    if not args.no_save:  # writable, before the simulation runs (a ScenarioError: exit 2, located)
        _check_out_dir(args.out, "--out")
    return False


def _check_out_dir(out: Path | None, flag: str, **kw) -> None:
    """Refuse, before any work, a results folder that cannot be written; ``None`` checks the default
    ``results/`` folder under the current directory."""
    from ._files import check_output_dir

    check_output_dir(out if out is not None else Path("results"),
                     flag if out is not None else f"{flag} (default results folder)", **kw)


def _cmd_run(args) -> int:
    from .report_text import render_run
    from .scenario.loader import load_scenario
    from .simulate import run

    from .book_greeks import has_greeks
    from .scenario.positions import book_of

    scenario = load_scenario(args.file, args.overrides, book=args.book)
    book = book_of(scenario)
    if _bad_out(args, "run"):
        return EXIT_USAGE
    jobs = args.jobs or os.cpu_count() or 1
    show_bar = _wants_bar(args)
    save = not args.no_save
    # the run folder's fans and the strategies are made from the price paths: keep them then
    keep_steps = save or bool(scenario.strategies) or has_greeks(scenario.portfolio)
    from .resources import check_memory

    check_memory(scenario, n_paths=args.paths, keep_steps=keep_steps, no_save=save)  # before any allocation
    result = run(scenario, n_paths=args.paths, seed=args.seed, n_jobs=jobs, progress=show_bar,
                 keep_steps=keep_steps)
    for note in result.compiled.notes:  # what the compiler could not use as written
        print(f"cascade run: note: {note}", file=sys.stderr)
    bounded = result.bounded_paths()
    if bounded:
        print(f"cascade run: note: {bounded:,} of {result.n_paths:,} paths reached the price bound the model keeps "
              "(spot x e^-20 or x e^20): their impact ran away; check market.impact and the book", file=sys.stderr)
    try:
        metrics = result.to_dict()
        text = None if args.json else render_run(result)
        if text is not None and book is not None:  # under the header: whose book this is
            head, _, rest = text.partition("\n")
            text = f"{head}\n{_book_line(book)}\n{rest}"
        if text is not None and scenario.strategies:
            from .report_text import render_risk_errors, render_strategies

            text += "\n\n" + render_strategies(result.strategies)
            text += "\n\n" + render_risk_errors(result.strategies, result.uncertainty, result.n_paths)
        if text is not None and result.book_greeks is not None and args.greeks:
            from .book_greeks import render_book_greeks

            text += "\n\n" + render_book_greeks(result.book_greeks)
        if text is not None and result.limits:
            from .report_text import render_limits

            text += "\n\n" + render_limits(result.limits)
    except ScenarioError:  # a limit on a metric the run does not have: located, exit 2 (main)
        raise
    except ValueError as exc:  # a strategy the evaluation refuses (e.g. a roll on a fixed expiry)
        print(f"cascade run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    folder = None
    if save:
        from .results.store import write_run

        command = ["cascade", "run", str(args.file)] + [f"--set={o}" for o in args.overrides]
        command += ["--book", str(args.book)] if args.book is not None else []
        folder = write_run(result, args.out, source=args.file, overrides=args.overrides, command=command,
                           extra_manifest={"book": book.manifest()} if book is not None else None)
    if args.json:
        if book is not None:
            metrics["book"] = book.manifest()
        if folder is not None:
            metrics["run_dir"] = str(folder)
        print(json.dumps(metrics))
    else:
        print(text + (f"\n\nrun folder: {folder}" if folder is not None else ""))
    breached = [lim["metric"] for lim in result.limits if lim["status"] == "breached"]
    if breached and args.fail_on_breach:
        print(f"cascade run: {len(breached)} of {len(result.limits)} limits breached: {', '.join(breached)}",
              file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def _book_line(book) -> str:
    """The line under ``cascade run``'s header naming the book file the portfolio was read from."""
    if book.via == "--book":
        return f"book: {book.describe()} replaces the scenario's portfolio positions (its cash_usd kept)"
    return f"book: {book.describe()}, read from portfolio.positions_csv"


def _cmd_rerun(args) -> int:
    from .results.store import identical, load_run, scenario_hash, write_run
    from .scenario.canonical import dump_scenario
    from .simulate import run

    original = load_run(args.run_dir)
    _check_out_dir(args.out, "--out")  # writable, before the run
    m = original.manifest
    original.metrics  # read (a missing or unlisted one refused) before anything is simulated or written
    scenario = original.scenario
    if scenario_hash(dump_scenario(scenario)) != m["scenario"]["hash"]:
        print(f"cascade rerun: {args.run_dir / 'scenario.yaml'}: the resolved scenario no longer hashes to the "
              f"manifest's {m['scenario']['hash'][:12]} (this engine reads it differently)", file=sys.stderr)
        return EXIT_FAIL
    result = run(scenario, n_paths=m["n_paths"], seed=m["seed"], n_jobs=args.jobs or os.cpu_count() or 1)
    if result.compiled.fingerprint() != m["scenario"]["fingerprint"]:
        print("cascade rerun: note: the scenario compiles to different arrays than when the run was written "
              f"(engine {m['engine']['version']} then); comparing anyway", file=sys.stderr)
    folder = write_run(result, args.out, source=m["scenario"].get("source"), overrides=m.get("overrides", []),
                       command=["cascade", "rerun", str(args.run_dir)],
                       report="report.html" in m["files"],
                       figures=any(name.startswith("figures/") for name in m["files"]),
                       extra_manifest={"book": m["book"]} if m.get("book") else None)
    differ = identical(original, load_run(folder))
    print(f"rerun of {args.run_dir}: {m['scenario']['name']}, seed {m['seed']}, {m['n_paths']:,} paths")
    if m.get("book"):  # the parsed book is in scenario.yaml: the file is not read again
        print(f"book: {m['book']['file']} (sha256 {m['book']['sha256'][:12]}), as parsed into the run folder's "
              "scenario.yaml")
    print(f"run folder: {folder}")
    if differ:
        print(f"NOT bit-identical: {', '.join(differ)} differ", file=sys.stderr)
        return EXIT_FAIL
    print("bit-identical: per-path table, fans, flows, sample paths, strategies and metrics")
    return EXIT_OK


def _cmd_report(args) -> int:
    from .results.store import load_run_for_report, rewrite_report

    run = load_run_for_report(args.run_dir, figures=not args.no_figures)  # a damaged report can be redrawn
    written = rewrite_report(run, figures=not args.no_figures)
    for path in written:
        print(path)
    if args.screenshot:
        from .results.browser import find_chromium, render_page

        if find_chromium() is None:
            print("cascade report: --screenshot needs Chromium (apt-get install chromium, or set CASCADE_CHROMIUM)",
                  file=sys.stderr)
            return EXIT_USAGE
        check = render_page(run.path / "report.html", args.screenshot)
        print(f"{args.screenshot}: {check.charts_drawn} of {check.charts} charts drawn, {len(check.errors)} JS errors")
        for error in check.errors:
            print(f"  {error}", file=sys.stderr)
        if not check.ok:
            return EXIT_FAIL
    return EXIT_OK


def _cmd_compare(args) -> int:
    from .results.compare import compare_runs, render_comparison
    from .results.store import load_run

    a, b = load_run(args.run_a), load_run(args.run_b)
    table, notes = compare_runs(a, b)
    if args.json:
        print(json.dumps({"run_a": str(a.path), "run_b": str(b.path), "notes": notes,
                          "metrics": json.loads(table.to_json(orient="records"))}))
    else:
        print(render_comparison(a, b, table, notes, show_all=args.all))
    return EXIT_OK


def _cmd_check(args) -> int:
    from .results.check import run_check

    return run_check(args.files, update=args.update, baselines=args.baselines, overrides=args.overrides,
                     verbose=args.verbose, as_json=args.json, junit=args.junit)


def _cmd_sweep(args) -> int:
    from .scenario.loader import load_scenario
    from .sweep import apply_grid, default_folder, lowest_first, plan_sweep, run_sweep

    if args.scheduler and args.dask_local:
        print("cascade sweep: give --scheduler or --dask-local, not both", file=sys.stderr)
        return EXIT_USAGE
    scenario = apply_grid(load_scenario(args.file, args.overrides), args.grid)
    try:
        plan = plan_sweep(scenario, n_paths=args.paths, seed=args.seed, chunk_size=args.chunk_size or 0)
    except ValueError as exc:
        print(f"cascade sweep: {args.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if len(plan.items) == 1:
        print(f"cascade sweep: {args.file}: nothing is swept: give --grid KEY=VALUES, a sweep spec on a strategy "
              "parameter, or sweep.parameters", file=sys.stderr)
        return EXIT_USAGE
    _check_out_dir(args.out, "--out")  # before any point runs (an existing --out is resumed)
    if not args.json:
        print(plan.describe())
    show_bar = _wants_bar(args)
    jobs = args.jobs or os.cpu_count() or 1
    try:
        result = run_sweep(scenario, n_paths=args.paths, seed=args.seed, out=args.out, n_jobs=jobs,
                           backend=args.backend, chunk_size=args.chunk_size or 0, scheduler=args.scheduler,
                           dask_local=args.dask_local, on_error=args.on_error, progress=show_bar,
                           report=False if args.no_report else None)
    except (RunFolderError, ScenarioError):
        raise
    except KeyboardInterrupt:
        print(f"interrupted: finished chunks are kept in {args.out or default_folder(plan)}; rerun the same "
              "command to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # a point that failed under --on-error raise: finished chunks stay on disk
        folder = args.out or default_folder(plan)
        print(f"cascade sweep: a point failed: {type(exc).__name__}: {exc}\n"
              f"finished chunks are kept in {folder}; rerun the same command to resume, or use --on-error collect",
              file=sys.stderr)
        return EXIT_FAIL
    table = result.table
    if args.by not in table.columns:
        print(f"cascade sweep: --by {args.by}: no such column; metrics: "
              f"{', '.join(c for c in table.columns if not c.startswith(('param.', 'row', 'point')))}", file=sys.stderr)
        return EXIT_USAGE
    ascending = lowest_first(args.by) if args.order == "auto" else args.order == "lowest"
    top = result.top(args.top, args.by, ascending)
    if args.json:
        print(json.dumps({"folder": str(result.folder), "plan": plan.hash, "rows": len(table),
                          "computed_chunks": result.computed, "resumed_chunks": result.resumed,
                          "failures": json.loads(result.failures.drop(columns=["traceback"]).to_json(orient="records")),
                          "top": json.loads(top.to_json(orient="records"))}))
        return EXIT_FAIL if len(result.failures) else EXIT_OK
    print(f"{len(table):,} rows in {result.seconds:.1f} s: {result.computed} chunk(s) computed, "
          f"{result.resumed} found finished")
    if args.top:
        params = [c for c in table.columns if c.startswith("param.")]
        metrics = [c for c in ("es99", "pnl_mean", "premium", "p_liquidated", "market.min_price.p50") if c in table]
        shown = top[["strategy", *params, *dict.fromkeys([args.by, *metrics])]]
        print(f"\nbest {len(top)} by {args.by} ({'lowest' if ascending else 'highest'} first):")
        print(shown.to_string(index=False, float_format=lambda x: f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"))
    if len(result.failures):
        print(f"\n{len(result.failures)} row(s) failed (sweep_failures.parquet has the tracebacks):", file=sys.stderr)
        print(result.failures[["row", "parameters", "error"]].head(20).to_string(index=False), file=sys.stderr)
    print(f"\nsweep folder: {result.folder}")
    return EXIT_FAIL if len(result.failures) else EXIT_OK


def _cmd_list(args) -> int:
    from .scenario.library import list_scenarios, list_strategies, scenarios_dir

    root = args.dir or scenarios_dir()
    rows = list_scenarios(root)
    if not rows:
        print(f"no scenarios in {root}", file=sys.stderr)
        return EXIT_USAGE
    width = max(len(str(path.relative_to(root))) for path, _, _ in rows)
    for path, _, line in rows:  # file names and descriptions are file content: printed inert
        print(terminal_safe(f"{str(path.relative_to(root)):<{width}}  {line}"))
    strategies = list_strategies(root)
    if strategies:
        folders = ", ".join(dict.fromkeys(_shown(path.parent) for path, _, _ in strategies))
        print(f"\nstrategies (in {folders}; a scenario takes one with `- use: NAME` in its strategies:)")
        width = max(len(name) for _, name, _ in strategies)
        for _, name, line in strategies:
            print(terminal_safe(f"{name:<{width}}  {line}"))
    return EXIT_OK


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) + "/"
    except ValueError:
        return str(path) + "/"


def _cmd_schema(args) -> int:
    if args.markdown:
        from .scenario.reference import schema_markdown

        text = schema_markdown()
    else:
        from .scenario.canonical import scenario_json_schema

        text = json.dumps(scenario_json_schema(args.draft), indent=2) + "\n"
    if args.output:
        from ._files import check_output_file

        check_output_file(args.output, "-o/--output")
        from ._atomic import write_text

        write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _cmd_backtest(args) -> int:
    from .backtest import backtest
    from .scenario.loader import load_scenario
    from .scenario.units import UnitError, parse_duration, parse_rate

    if (args.scenario is None) == (args.strategy_file is None):
        print("cascade backtest: give the scenario with its strategies once, as SCENARIO or --strategy SCENARIO",
              file=sys.stderr)
        return EXIT_USAGE
    args.scenario = args.scenario or args.strategy_file
    scenario = load_scenario(args.scenario, args.overrides)
    try:
        window = parse_duration(args.vol_window)
        premium, skew = parse_rate(args.vol_premium), parse_rate(args.skew)
    except UnitError as exc:
        print(f"cascade backtest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not scenario.strategies:
        print(f"cascade backtest: {args.scenario}: the scenario has no strategies: to replay", file=sys.stderr)
        return EXIT_USAGE
    try:
        from .backtest import load_ohlcv

        close = load_ohlcv(args.data, args.time_column, args.close_column)
        for note in close.attrs.get("notes", ()):
            print(f"cascade backtest: note: {note}", file=sys.stderr)
        table, portfolio = backtest(args.data, scenario, start=args.start, end=args.end, vol_window=window,
                                    vol_premium=premium, skew=skew, close=close)
    except ValueError as exc:
        print(f"cascade backtest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from vectorbt.portfolio.enums import RejectedOrderError

    from .hedge import row_label

    stats = {}
    for i, (_, row) in enumerate(table.iterrows()):
        try:
            st = portfolio(i).stats()
            stats[row_label(row)] = {"total_return_pct": float(st["Total Return [%]"]),
                                     "max_drawdown_pct": float(st["Max Drawdown [%]"]),
                                     "sharpe": float(st["Sharpe Ratio"])}
        except (ValueError, RejectedOrderError) as exc:  # what vectorbt cannot book (a liquidation, a margin
            stats[row_label(row)] = {"vectorbt": str(exc)}  # above the cash: its orders need the cash up front)
    a = table.attrs
    if args.json:

        print(json.dumps({"scenario": scenario.name, "data": str(args.data), "start": str(a["start"]),
                          "end": str(a["end"]), "rows": a["rows"], "filled": a["filled"],
                          "strategies": {row_label(r): {m: float(r[m]) for m in ("pnl_mean", "max_dd_p50", "premium",
                                                                                   "p_liquidated")}
                                         for _, r in table.iterrows()},
                          "vectorbt": stats}))
        return EXIT_OK
    print(f"{args.data}: {a['rows']} rows, {a['start']:%Y-%m-%d %H:%M} .. {a['end']:%Y-%m-%d %H:%M} UTC"
          + (f", {a['filled']} missing rows filled" if a["filled"] else ""))
    print(f"implied vol: realised over {args.vol_window} + {premium:.0%}, 25d risk reversal {skew:+.0%}\n")
    print(f"{'strategy':<28} {'PnL':>12} {'max DD':>8} {'premium':>10} {'liquidated':>10}   "
          f"{'vectorbt: return':>16} {'max DD':>8} {'Sharpe':>7}")
    for _, r in table.iterrows():
        label = row_label(r)
        st = stats[label]
        vb = (f"{st['total_return_pct']:>15.1f}% {st['max_drawdown_pct']:>7.1f}% {st['sharpe']:>7.2f}"
              if "sharpe" in st else f"{'(' + st['vectorbt'][:30] + ')':>33}")
        print(f"{label[:28]:<28} {r['pnl_mean']:>12,.0f} {r['max_dd_p50']:>8.1%} {r['premium']:>10,.0f} "
              f"{'yes' if r['p_liquidated'] else 'no':>10}   {vb}")
    if table.attrs.get("not_evaluated"):
        print(f"not evaluated: {', '.join(table.attrs['not_evaluated'])}")
    return EXIT_OK


def _cmd_replay(args) -> int:
    from .backtest import load_ohlcv
    from .replay import default_facts, load_facts, render_replay, replay
    from .scenario.loader import load_scenario

    scenario = load_scenario(args.scenario, args.overrides)
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        print(f"cascade replay: --out {args.out}: exists and is not a folder", file=sys.stderr)
        return EXIT_USAGE
    if args.out is not None:  # writable, before the replay runs
        _check_out_dir(args.out, "--out")
    facts = args.facts or default_facts(scenario.name, args.data)
    try:
        if facts is not None:
            load_facts(facts)  # readable, before the replay runs
    except ValueError as exc:
        print(f"cascade replay: {'--facts ' if args.facts else ''}{exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = replay(scenario, load_ohlcv(args.data), args.start, args.end)
        comparison = result.compare_facts(facts) if facts is not None else None
    except ValueError as exc:  # the data, the window or the facts file
        print(f"cascade replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    written = result.write(args.out, facts) if args.out is not None else []
    if args.json:
        out = {"data": str(args.data), "facts_file": None if facts is None else str(facts), **result.to_dict(facts)}
        if written:
            out["written"] = [str(p) for p in written]
        print(json.dumps(out))
        return EXIT_OK
    print(render_replay(result, args.data, facts, comparison))
    if written:
        print(f"\nwritten: {', '.join(str(p) for p in written)}")
    return EXIT_OK


def _cmd_surface(args) -> int:
    import math

    from .options.surface import fit_slices, fit_surface, load_deribit_chain

    if not (math.isfinite(args.max_abs_x) and args.max_abs_x > 0):
        print(f"cascade surface: --max-abs-x must be a positive number, got {args.max_abs_x}", file=sys.stderr)
        return EXIT_USAGE
    if args.residuals:  # writable, before the fit
        from ._files import check_output_file

        check_output_file(args.residuals, "--residuals")
    try:
        chain = load_deribit_chain(args.chain)
        fit = fit_surface(chain, max_abs_x=args.max_abs_x)
    except ValueError as exc:
        print(f"cascade surface: {exc}", file=sys.stderr)
        return EXIT_USAGE
    slices = fit_slices(chain, max_abs_x=args.max_abs_x)
    by_expiry = fit.summary()
    if args.residuals:
        from ._atomic import write_with

        write_with(args.residuals, lambda tmp: fit.residuals.to_csv(tmp, index=False))
    s = fit.surface
    if args.json:
        def rows(frame):
            return [{"expiry": str(k), **{c: float(v) for c, v in r.items()}} for k, r in frame.iterrows()]

        print(json.dumps({"chain": str(args.chain), "quotes": len(chain), "surface": s.to_dict(),
                          "rmse": fit.rmse, "max_abs": fit.max_abs, "residuals_by_expiry": rows(by_expiry),
                          "slices": rows(slices)}))
        return EXIT_OK
    print(f"{args.chain}: {len(chain)} quotes, {int(fit.residuals['in_fit'].sum())} fitted "
          f"(out of the money, |x| <= {args.max_abs_x:g})")
    print(f"surface: ATM {s.atm:.1%} at {s.ref_tenor * 365.25:.0f}d, 25d risk reversal {s.rr25:+.1%}, "
          f"25d butterfly {s.bf25:+.1%}, term slope {s.term_slope:+.1%} per year")
    print(f"residuals (model - market vol, fitted quotes): rmse {fit.rmse * 100:.1f} vol points, "
          f"max {fit.max_abs * 100:.1f}\n")
    print(f"{'expiry':<12} {'days':>6} {'fitted':>6}  {'mean':>7} {'rmse':>7} {'max':>7}   "
          f"{'slice ATM':>9} {'RR25':>7} {'BF25':>7} {'rmse':>7}")
    for expiry, r in by_expiry.iterrows():
        sl = slices.loc[expiry] if expiry in slices.index else None
        tail = (f"{sl['atm']:>9.1%} {sl['rr25']:>+7.1%} {sl['bf25']:>+7.1%} {sl['rmse']:>7.1%}" if sl is not None
                else f"{'-':>9} {'-':>7} {'-':>7} {'-':>7}")
        print(f"{expiry:%Y-%m-%d}   {r['days']:>6.1f} {int(r['fitted']):>6}  {r['mean']:>+7.1%} {r['rmse']:>7.1%} "
              f"{r['max_abs']:>7.1%}   {tail}")
    return EXIT_OK


def _cmd_stylised(args) -> int:
    import math

    from .backtest import load_ohlcv
    from .calibration.stylised import compare, render_comparison, select_period
    from .scenario.loader import load_scenario
    from .scenario.units import UnitError, parse_rate
    from .simulate import run

    try:
        tail_fraction = parse_rate(args.tail_fraction)
    except UnitError as exc:
        print(f"cascade stylised: --tail-fraction: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not 0 < tail_fraction < 0.5:
        print(f"cascade stylised: --tail-fraction must be between 0 and 50%, got {args.tail_fraction!r}", file=sys.stderr)
        return EXIT_USAGE
    scenario = load_scenario(args.file, args.overrides)
    try:  # the data first: its mistakes show before a simulation runs
        close = select_period(load_ohlcv(args.data, args.time_column, args.close_column), args.start, args.end)
    except ValueError as exc:
        print(f"cascade stylised: {args.data}: {exc}" if str(args.data) not in str(exc) else f"cascade stylised: {exc}",
              file=sys.stderr)
        return EXIT_USAGE
    result = run(scenario, n_paths=args.paths, seed=args.seed, n_jobs=args.jobs or os.cpu_count() or 1)
    try:
        table = compare(result, close, stride=args.stride, tail_fraction=tail_fraction)
    except ValueError as exc:
        print(f"cascade stylised: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        a = table.attrs

        def number(value):
            return None if isinstance(value, float) and not math.isfinite(value) else value

        rows = {s: {c: (bool(v) if c == "in_range" else number(float(v))) for c, v in row.items()}
                for s, row in table.iterrows()}
        print(json.dumps({"scenario": a["scenario"], "n_paths": a["n_paths"], "seed": a["seed"], "data": str(args.data),
                          "start": str(a["real_start"]), "end": str(a["real_end"]), "window": a["window"],
                          "real_windows": a["real_windows"], "stride": a["stride"],
                          "tail_fraction": a["tail_fraction"], "statistics": rows}))
        return EXIT_OK
    print(render_comparison(table, str(args.data)))
    return EXIT_OK


def _cmd_breakpoint(args) -> int:
    from .breakpoint import find_breakpoint

    lo = hi = None
    if args.range is not None:
        lo, sep, hi = args.range.partition(":")
        if not sep or not lo.strip() or not hi.strip():
            print(f"cascade breakpoint: --range expects LO:HI, e.g. 0:2 or 11%:40%, got {args.range!r}", file=sys.stderr)
            return EXIT_USAGE

    _check_memory(args, keep_steps=None)
    bar = _bar(args, args.max_evals, "sim", "breakpoint")

    def progress(e):  # the bar stops at max_evals at most; the search usually ends before
        bar.update(1)
        bar.set_postfix_str(f"s={e.scale:.4g}: {e.metric:.4g} ± {e.se:.2g}")

    with bar:
        result = find_breakpoint(args.file, args.shock, args.metric, args.threshold, direction=args.direction,
                                 scale_mode=args.scale_mode, lo=lo, hi=hi, max_scale=args.max_scale, tol=args.tol,
                                 max_evals=args.max_evals, n_se=args.n_se, n_paths=args.paths, seed=args.seed,
                                 n_jobs=args.jobs or os.cpu_count() or 1, overrides=args.overrides,
                                 progress=progress if not bar.disable else None)
    print(json.dumps(result.to_dict()) if args.json else result.render())
    return EXIT_OK if result.found else EXIT_FAIL


def _check_memory(args, keep_steps: bool | None, no_save: bool = False) -> None:
    """Refuse, before any work, a run of ``args.file`` (with ``--paths``, ``--set``) that does not fit in
    memory; ``keep_steps=None``: the per-step fans only if the scenario has strategies."""
    from .resources import check_memory
    from .scenario.loader import load_scenario

    scenario = load_scenario(args.file, args.overrides)
    keep = bool(scenario.strategies) if keep_steps is None else keep_steps
    check_memory(scenario, n_paths=args.paths, keep_steps=keep or bool(scenario.strategies), no_save=no_save)


def _cmd_attribute(args) -> int:
    from .attribution import attribute

    if _bad_out(args, "attribute"):
        return EXIT_USAGE

    _check_memory(args, keep_steps=not args.no_save or None, no_save=not args.no_save)
    from .scenario.loader import load_scenario

    bar = _bar(args, len(load_scenario(args.file, args.overrides).shocks) + 2, "sim", "attribution")

    def progress(label, seconds):
        bar.update(1)
        bar.set_postfix_str(f"{label} {seconds:.1f} s")

    with bar:
        result = attribute(args.file, n_paths=args.paths, seed=args.seed, n_jobs=args.jobs or os.cpu_count() or 1,
                           overrides=args.overrides, keep_result=not args.no_save,
                           progress=progress if not bar.disable else None)
    folder = None
    if not args.no_save:
        from .results.store import write_run

        command = ["cascade", "attribute", str(args.file)] + [f"--set={o}" for o in args.overrides]
        extra = {k: v for k, v in result.to_dict().items() if k in ("metrics", "levels", "notes")}
        folder = write_run(result.result, args.out, source=args.file, overrides=args.overrides, command=command,
                           tables={"attribution": result.table}, extra_manifest={"attribution": extra})
    if args.json:
        out = result.to_dict()
        if folder is not None:
            out["run_dir"] = str(folder)
        print(json.dumps(out))
    else:
        print(result.render() + (f"\n\nrun folder: {folder}" if folder is not None else ""))
    return EXIT_OK


def _cmd_calibrate(args) -> int:
    from .calibration.fit import DEFAULT_PARAMETERS, PARAMETERS
    from .calibration.run import default_data, default_reference, run_calibration
    from .replay import default_facts
    from .scenario.loader import load_scenario

    def usage(message: str) -> int:
        print(f"cascade calibrate: {message}", file=sys.stderr)
        return EXIT_USAGE

    scenario = load_scenario(args.file, args.overrides)  # a bad scenario fails here, before any work
    from .resources import check_memory

    check_memory(scenario, n_paths=max(args.paths, args.report_paths), keep_steps=True,
                 flag="--paths" if args.paths >= args.report_paths else "--report-paths")
    data = args.data or default_data()
    if data is None:
        return usage("no --data given and ../shared/data/btc_hourly_binance_*.csv not found")
    if not Path(data).is_file():
        return usage(f"--data {data}: no such file")
    facts = args.facts or default_facts(scenario.name, data)
    if facts is None or not Path(facts).is_file():
        return usage(f"--facts {facts}: no such file" if facts else
                     f"no --facts given and no facts/{scenario.name}.yaml beside the data or in ../shared/facts")
    names = None
    if args.params:
        names = [n.strip() for n in args.params.split(",") if n.strip()]
        unknown = [n for n in names if n not in PARAMETERS]
        if unknown or not names:
            return usage(f"--params: unknown parameter(s) {', '.join(unknown) or '(none given)'}; "
                         f"expected some of {', '.join(PARAMETERS)}")
    if args.no_fit and (args.params or args.write_params):
        return usage("--no-fit fits nothing: drop --params and --write-params")
    from .scenario.library import scenarios_dir

    from .calibration.oos import EPISODES, FITTED

    names_of: dict[Path, str] = {}  # each episode file is loaded once for its name

    def name_of(path: Path) -> str:
        if path not in names_of:
            names_of[path] = load_scenario(path).name
        return names_of[path]

    history = sorted((scenarios_dir() / "history").glob("*.yaml"))
    default_episodes = [path for path in history if name_of(path) in FITTED]
    episodes = [Path(o) for o in (args.episode if args.episode is not None else default_episodes)
                if str(o) not in ("", ".")]
    for o in episodes:
        if not o.is_file():
            return usage(f"--episode {o}: no such file")
        name = name_of(o)
        if name not in FITTED:
            return usage(f"--episode {o}: scenario {name!r} has no fit targets; expected one of {', '.join(FITTED)}")
    fitted_paths = {o.resolve() for o in episodes}
    default_oos = [path for path in history if path.resolve() not in fitted_paths]
    oos = [Path(o) for o in (args.oos if args.oos is not None else default_oos) if str(o) not in ("", ".")]
    for o in oos:
        if not o.is_file():
            return usage(f"--oos {o}: no such file")
        if o.resolve() in fitted_paths:
            return usage(f"--oos {o}: it is fitted (--episode); an episode is either fitted or out of sample")
    for o in oos:
        name = name_of(o)
        if name not in EPISODES:
            return usage(f"--oos {o}: no reference numbers for scenario {name!r}; expected one of "
                         f"{', '.join(EPISODES)}")
    reference = args.reference or default_reference(Path(data))
    if args.reference is not None and not args.reference.is_file():
        return usage(f"--reference {args.reference}: no such file")
    if reference is None and (oos or episodes):
        if args.oos is not None or args.episode is not None:
            return usage("--oos and --episode need the reference numbers: no --reference given and "
                         "reference/stress_event_reference_numbers.csv not found beside the data")
        print("cascade calibrate: note: no reference numbers found beside the data; the historical episodes "
              "are left out of the fit and the report (--reference FILE)", file=sys.stderr)
        oos, episodes = [], []
    out = args.out or Path("results") / f"calibration-{scenario.name}"
    if out.exists() and not out.is_dir():
        return usage(f"--out {out}: exists and is not a folder")
    _check_out_dir(out, "--out")  # writable, before the fit (minutes of CPU)
    if args.write_params is not None:
        from ._files import check_output_file

        check_output_file(args.write_params, "--write-params", create_parents=True)

    bar = _calibration_bar(args, len(names or DEFAULT_PARAMETERS)) if _wants_bar(args) else None
    try:
        result = run_calibration(args.file, data=data, facts=facts, reference=reference, oos_scenarios=oos,
                                 episodes=episodes,
                                 names=names, fit=not args.no_fit, n_paths=args.paths, report_paths=args.report_paths,
                                 seed=args.seed, n_jobs=args.jobs or os.cpu_count() or 1, design_points=args.design,
                                 max_evals=args.max_evals, overrides=args.overrides, out=out,
                                 write_params=args.write_params, calm=not args.no_calm,
                                 identify=args.identifiability,
                                 progress=None if bar is None else bar.line)
    except ValueError as exc:  # the data, the facts or the reference file
        return usage(str(exc))
    finally:
        if bar is not None:
            bar.close()
    passed = result.passed()
    if args.json:
        print(json.dumps({**{k: v for k, v in result.info.items() if k not in ("meta",)},
                          "passed": passed, "targets": json.loads(result.table.to_json(orient="index")),
                          "out_of_sample": None if not result.oos else {
                              name: json.loads(frame.to_json(orient="index")) for name, frame in result.oos.items()},
                          "written": str(result.written), "parameter_file": None if args.write_params is None
                          else str(args.write_params)}, default=str))
        return EXIT_OK
    print(render_calibration_text(result))
    print(f"\nreport: {result.written / 'calibration.html'}")
    if args.write_params is not None:
        print(f"parameter file: {args.write_params}")
    return EXIT_OK


class _CalibrationBar:
    """A tqdm bar over the fit's evaluations (and the identifiability check's, two per parameter)
    on a terminal, fed by :func:`engine.calibration.fit.calibrate`'s progress lines; the best
    objective so far in its postfix. The fit may stop before ``max_evals`` (Nelder-Mead converged)."""

    _LINE = re.compile(r"\[(\d+)/\d+\] (\w+): (?:objective ([0-9.eE+-]+|inf|nan))?")

    def __init__(self, total: int):
        from tqdm import tqdm

        self.best = math.inf
        self.bar = tqdm(total=total, unit="eval", desc="calibrating", leave=False, dynamic_ncols=True)

    def line(self, text: str) -> None:
        if text.startswith("[identifiability"):
            self.bar.set_description("identifiability")
            self.bar.update(2)
            return
        m = self._LINE.match(text)
        if m is None:
            return
        if m.group(3) is not None and float(m.group(3)) < self.best:
            self.best = float(m.group(3))
        self.bar.set_description(m.group(2))
        if math.isfinite(self.best):
            self.bar.set_postfix_str(f"best objective {self.best:.4g}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _calibration_bar(args, n_params: int) -> _CalibrationBar | None:
    identify = (not args.no_fit) if args.identifiability is None else args.identifiability
    if args.no_fit:  # the check alone: two evaluations per parameter (and the point itself)
        return _CalibrationBar(2 * n_params) if identify else None
    return _CalibrationBar(args.max_evals + (2 * n_params if identify else 0))


def render_calibration_text(result) -> str:
    from .calibration.report import _fmt

    lines = []
    cal = result.calibration
    if cal is not None:
        lines.append(f"fitted {', '.join(cal.names)} in {len(cal.history)} evaluations of {cal.n_paths:,} paths "
                     f"(seed {cal.seed}, {cal.seconds:.0f} s): objective {cal.start_objective:.4g} -> {cal.objective:.4g}")
        for name, row in cal.parameters_frame().iterrows():
            lines.append(f"  {name:<16} {row.key:<55} {row.start:>9.4g} -> {row.fitted:<9.4g}"
                         + ("  (at a bound)" if row.at_bound else ""))
        lines.append("")
    lines.append(f"{'target':<32} {'observed':>10} {'median':>10} {'5-95%':>23} {'MC err':>9} {'inside':>7}")
    tables = [(None, result.table)] + list((result.oos or {}).items())
    for episode, table in tables:
        if episode is not None:
            fitted = episode in result.info.get("fitted_episodes", ())
            lines.append(f"{'fitted jointly' if fitted else 'out of sample (not refitted)'}: {episode}")
        for name, r in table.iterrows():
            lines.append(f"{name:<32} {_fmt(r.observed, r.unit):>10} {_fmt(r.model_p50, r.unit):>10} "
                         f"{_fmt(r.model_p05, r.unit) + ' - ' + _fmt(r.model_p95, r.unit):>23} "
                         f"{_fmt(r.mc_se_p50, r.unit):>9} {'yes' if r.inside_5_95 else 'NO':>7}")
    lines.append(f"realised path inside the 5-95% fan: {result.coverage:.1%} of hours (goal 90%)")
    ident = result.identifiability
    if ident is not None:
        lines.append("")
        lines.append(f"identifiability (spans where the objective rises by {ident.tolerance:.3g}):")
        lines.append(f"  {'parameter':<20} {'fitted':>10} {'alone':>23} {'others re-fitted':>23} {'identified':>11}")
        for name, r in ident.parameters.iterrows():
            lines.append(f"  {name:<20} {r.fitted:>10.4g} {f'{r.alone_low:.4g} - {r.alone_high:.4g}':>23} "
                         f"{f'{r.profile_low:.4g} - {r.profile_high:.4g}':>23} "
                         f"{'at a bound' if r.at_bound else 'yes' if r.identified else 'NO':>11}")
        for finding in ident.findings:
            lines.append(f"  {finding}")
    for note in result.info.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


_COMMANDS = {"validate": _cmd_validate, "show": _cmd_show, "run": _cmd_run, "rerun": _cmd_rerun,
             "report": _cmd_report, "compare": _cmd_compare, "check": _cmd_check, "sweep": _cmd_sweep, "list": _cmd_list,
             "surface": _cmd_surface, "backtest": _cmd_backtest, "schema": _cmd_schema, "stylised": _cmd_stylised,
             "replay": _cmd_replay, "breakpoint": _cmd_breakpoint, "attribute": _cmd_attribute,
             "calibrate": _cmd_calibrate}


def _in_ci() -> bool:
    """Whether the ``CI`` environment variable says this is a CI job (``CI=true``, as GitHub
    Actions, GitLab and most runners set it)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _wants_bar(args) -> bool:
    """A progress bar only for a person watching: stderr is a terminal, no ``--json`` or
    ``--no-progress``, and not in CI (whose logs keep every redraw)."""
    return (not getattr(args, "json", False) and not getattr(args, "no_progress", False) and not _in_ci()
            and sys.stderr.isatty())


def _bar(args, total: int, unit: str, desc: str):
    """A tqdm bar on stderr when :func:`_wants_bar`, else a disabled one (its calls do nothing)."""
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, leave=False, dynamic_ncols=True, disable=not _wants_bar(args))


def _compile_notice(message: str) -> None:
    print(f"cascade: {message}", file=sys.stderr, flush=True)


# a Python argument -> the flag that sets it, where the names differ (else ``--name-with-dashes``)
_FLAGS = {"n_paths": "--paths", "n_jobs": "--jobs", "overrides": "--set", "shock_key": "--shock", "lo": "--range",
          "hi": "--range", "directory": "--dir"}


def _under_flags(exc: ScenarioError) -> ScenarioError:
    """``exc`` with each problem about a Python argument (source ``direction=``, an
    :class:`~engine.errors.InvalidParameterError`'s) under the flag that sets it (``--direction``)."""
    from dataclasses import replace

    if not any(p.parameter for p in exc.problems):
        return exc
    return ScenarioError([replace(p, source=_FLAGS.get(p.parameter, "--" + p.parameter.replace("_", "-")))
                          if p.parameter else p for p in exc.problems])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from . import _notice

    _notice.on_compile = _compile_notice
    try:
        return _COMMANDS[args.command](args)
    except ScenarioError as exc:  # an InvalidParameterError too: shown under the flag (--jobs), not the argument
        print(str(_under_flags(exc)), file=sys.stderr)
        return EXIT_USAGE
    except RunFolderError as exc:  # it may quote a manifest's content
        print(terminal_safe(f"cascade {args.command}: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `cascade show x | head`
        return EXIT_OK
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
