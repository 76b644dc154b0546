"""Commands on real history: ``backtest``, ``replay``, ``surface`` (an option chain) and ``stylised``."""

from __future__ import annotations

import json
import os
import sys

from .common import EXIT_OK, EXIT_USAGE, check_out_dir


def cmd_backtest(args) -> int:
    from ..history.backtest import backtest
    from ..scenario.loader import load_scenario
    from ..scenario.units import UnitError, parse_duration, parse_rate

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
        from ..history.data import load_ohlcv

        close = load_ohlcv(args.data, args.time_column, args.close_column)
        for note in close.attrs.get("notes", ()):
            print(f"cascade backtest: note: {note}", file=sys.stderr)
        table, portfolio = backtest(args.data, scenario, start=args.start, end=args.end, vol_window=window,
                                    vol_premium=premium, skew=skew, close=close)
    except ValueError as exc:
        print(f"cascade backtest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from vectorbt.portfolio.enums import RejectedOrderError

    from ..portfolio.hedge import row_label

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


def cmd_replay(args) -> int:
    from ..history.data import load_ohlcv
    from ..history.data import default_facts, load_facts
    from ..history.replay import render_replay, replay
    from ..scenario.loader import load_scenario

    scenario = load_scenario(args.scenario, args.overrides)
    if args.out is not None:  # a writable folder, before the replay runs
        check_out_dir(args.out, "--out")
    facts = args.facts or default_facts(scenario.name, args.data)
    try:
        facts_data = load_facts(facts) if facts is not None else None  # read once, before the replay runs
    except ValueError as exc:
        print(f"cascade replay: {'--facts ' if args.facts else ''}{exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = replay(scenario, load_ohlcv(args.data), args.start, args.end)
        comparison = result.compare_facts(facts_data) if facts_data is not None else None
    except ValueError as exc:  # the data, the window or the facts file
        print(f"cascade replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    written = result.write(args.out, comparison=comparison) if args.out is not None else []
    if args.json:
        out = {"data": str(args.data), "facts_file": None if facts is None else str(facts),
               **result.to_dict(comparison=comparison)}
        if written:
            out["written"] = [str(p) for p in written]
        print(json.dumps(out))
        return EXIT_OK
    print(render_replay(result, args.data, facts, comparison))
    if written:
        print(f"\nwritten: {', '.join(str(p) for p in written)}")
    return EXIT_OK


def cmd_surface(args) -> int:
    import math

    from ..options.surface import fit_slices, fit_surface, load_deribit_chain

    if not (math.isfinite(args.max_abs_x) and args.max_abs_x > 0):
        print(f"cascade surface: --max-abs-x must be a positive number, got {args.max_abs_x}", file=sys.stderr)
        return EXIT_USAGE
    if args.residuals:  # writable, before the fit
        from .._files import check_output_file

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
        from .._atomic import write_with

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


def cmd_stylised(args) -> int:
    import math

    from ..history.data import load_ohlcv
    from ..calibration.stylised import compare, render_comparison, select_period
    from ..scenario.loader import load_scenario
    from ..scenario.units import UnitError, parse_rate
    from ..simulate import run

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
