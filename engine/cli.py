"""The ``cascade`` command.

User errors (a bad scenario, a bad flag) print a located message and exit 2, with no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import ScenarioError

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

    p = sub.add_parser("validate", help="check scenario files; exit 0 if all are valid, 2 otherwise")
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
    _add_set(p)

    p = sub.add_parser("list", help="the shipped scenarios with one-line descriptions")
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
    p = sub.add_parser("surface", help="fit the vol surface to an option-chain snapshot and show the residuals")
    p.add_argument("chain", type=Path, help="a Deribit chain snapshot CSV, e.g. ../shared/data/options/...")
    p.add_argument("--max-abs-x", type=float, default=2.0, metavar="X",
                   help="fit quotes within X ATM standard deviations of the forward (default 2)")
    p.add_argument("--residuals", type=Path, metavar="OUT.csv", help="write every quote's residual to a CSV")
    p.add_argument("--json", action="store_true", help="print the fit as one JSON object")
    p = sub.add_parser("schema", help="print the JSON Schema of scenario files")
    p.add_argument("--markdown", action="store_true", help="print the schema reference as Markdown")
    p.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")
    return parser


def _cmd_validate(args) -> int:
    from .scenario.loader import load_scenario

    failed = 0
    for file in args.files:
        try:
            scenario = load_scenario(file, args.overrides)
        except ScenarioError as exc:
            failed += 1
            if args.json:
                print(json.dumps({"file": str(file), "valid": False,
                                  "problems": [problem.to_dict() for problem in exc.problems]}))
                continue
            message = str(exc)
            if not any(p.file == str(file) for p in exc.problems):  # all in a parent file or a --set
                message = f"in {file}:\n  " + message.replace("\n", "\n  ")
            print(message, file=sys.stderr)
            continue
        if args.json:
            print(json.dumps({"file": str(file), "valid": True, "name": scenario.name, "problems": []}))
        elif not args.quiet:
            print(f"ok  {file}  ({scenario.name}: {len(scenario.shocks)} shocks, "
                  f"{scenario.horizon.n_steps} steps x {scenario.n_paths} paths)")
    if failed:
        print(f"{failed} of {len(args.files)} files invalid", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _cmd_show(args) -> int:
    from .scenario.canonical import dump_scenario
    from .scenario.loader import load_scenario

    scenario = load_scenario(args.file, args.overrides)
    if args.compiled:
        from .compile.compiler import compile_scenario

        print(compile_scenario(scenario).describe())
    else:
        sys.stdout.write(dump_scenario(scenario))
    return EXIT_OK


def _cmd_run(args) -> int:
    import os

    from .report_text import render_run
    from .scenario.loader import load_scenario
    from .simulate import run

    scenario = load_scenario(args.file, args.overrides)
    jobs = args.jobs or os.cpu_count() or 1
    show_bar = not args.no_progress and not args.json and sys.stderr.isatty()
    # hedging strategies are marked along the price paths: keep them only when there are some
    result = run(scenario, n_paths=args.paths, seed=args.seed, n_jobs=jobs, progress=show_bar,
                 keep_steps=bool(scenario.strategies))
    if args.json:
        try:
            print(json.dumps(result.to_dict()))
        except ValueError as exc:  # a strategy the evaluation refuses (e.g. a roll on a fixed expiry)
            print(f"cascade run: {exc}", file=sys.stderr)
            return EXIT_USAGE
    else:
        text = render_run(result)
        if scenario.strategies:
            from .report_text import render_strategies

            try:
                text += "\n\n" + render_strategies(result.strategies)
            except ValueError as exc:
                print(f"cascade run: {exc}", file=sys.stderr)
                return EXIT_USAGE
        print(text)
    return EXIT_OK


def _cmd_list(args) -> int:
    from .scenario.library import list_scenarios, scenarios_dir

    root = args.dir or scenarios_dir()
    rows = list_scenarios(root)
    if not rows:
        print(f"no scenarios in {root}", file=sys.stderr)
        return EXIT_USAGE
    width = max(len(str(path.relative_to(root))) for path, _, _ in rows)
    for path, _, line in rows:
        print(f"{str(path.relative_to(root)):<{width}}  {line}")
    return EXIT_OK


def _cmd_schema(args) -> int:
    if args.markdown:
        from .scenario.reference import schema_markdown

        text = schema_markdown()
    else:
        from .scenario.canonical import scenario_json_schema

        text = json.dumps(scenario_json_schema(), indent=2) + "\n"
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _cmd_backtest(args) -> int:
    from .backtest import backtest
    from .report_text import render_strategies
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
        table, portfolio = backtest(args.data, scenario, start=args.start, end=args.end, vol_window=window,
                                    vol_premium=premium, skew=skew, close=close)
    except ValueError as exc:
        print(f"cascade backtest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from .hedge import row_label

    stats = {}
    for i, (_, row) in enumerate(table.iterrows()):
        try:
            st = portfolio(i).stats()
            stats[row_label(row)] = {"total_return_pct": float(st["Total Return [%]"]),
                                     "max_drawdown_pct": float(st["Max Drawdown [%]"]),
                                     "sharpe": float(st["Sharpe Ratio"])}
        except ValueError as exc:  # what vectorbt cannot book (e.g. a liquidation)
            stats[row_label(row)] = {"vectorbt": str(exc)}
    a = table.attrs
    if args.json:
        from .hedge import METRICS

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


def _cmd_surface(args) -> int:
    import math

    from .options.surface import fit_slices, fit_surface, load_deribit_chain

    if not args.chain.is_file():
        print(f"cascade surface: {args.chain}: no such file", file=sys.stderr)
        return EXIT_USAGE
    if not (math.isfinite(args.max_abs_x) and args.max_abs_x > 0):
        print(f"cascade surface: --max-abs-x must be a positive number, got {args.max_abs_x}", file=sys.stderr)
        return EXIT_USAGE
    try:
        chain = load_deribit_chain(args.chain)
        fit = fit_surface(chain, max_abs_x=args.max_abs_x)
    except ValueError as exc:
        print(f"cascade surface: {exc}", file=sys.stderr)
        return EXIT_USAGE
    slices = fit_slices(chain, max_abs_x=args.max_abs_x)
    by_expiry = fit.summary()
    if args.residuals:
        tmp = args.residuals.with_name(args.residuals.name + ".partial")
        fit.residuals.to_csv(tmp, index=False)
        tmp.replace(args.residuals)
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


_COMMANDS = {"validate": _cmd_validate, "show": _cmd_show, "run": _cmd_run, "list": _cmd_list,
             "surface": _cmd_surface, "backtest": _cmd_backtest, "schema": _cmd_schema}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except ScenarioError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `cascade show x | head`
        return EXIT_OK
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
