"""Commands that ask a scenario a question over many runs: ``sweep``, ``breakpoint`` and ``attribute``."""

from __future__ import annotations

import json
import os
import sys

from ..errors import RunFolderError, ScenarioError
from .common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, bad_out, check_out_dir, progress_bar, refuse_too_large, wants_bar


def cmd_sweep(args) -> int:
    from ..scenario.loader import load_scenario
    from ..sweep import apply_grid, plan_sweep, run_sweep
    from ..sweep.folder import default_folder
    from ..sweep.run import lowest_first

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
    check_out_dir(args.out, "--out")  # before any point runs (an existing --out is resumed)
    if not args.json:
        print(plan.describe())
    show_bar = wants_bar(args)
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


def cmd_breakpoint(args) -> int:
    from ..analysis.breakpoint import find_breakpoint

    lo = hi = None
    if args.range is not None:
        lo, sep, hi = args.range.partition(":")
        if not sep or not lo.strip() or not hi.strip():
            print(f"cascade breakpoint: --range expects LO:HI, e.g. 0:2 or 11%:40%, got {args.range!r}", file=sys.stderr)
            return EXIT_USAGE

    scenario = refuse_too_large(args)  # --set applied: not passed again below
    bar = progress_bar(args, args.max_evals, "sim", "breakpoint")

    def progress(e):  # the bar stops at max_evals at most; the search usually ends before
        bar.update(1)
        bar.set_postfix_str(f"s={e.scale:.4g}: {e.metric:.4g} ± {e.se:.2g}")

    with bar:
        result = find_breakpoint(scenario, args.shock, args.metric, args.threshold, direction=args.direction,
                                 scale_mode=args.scale_mode, lo=lo, hi=hi, max_scale=args.max_scale, tol=args.tol,
                                 max_evals=args.max_evals, n_se=args.n_se, n_paths=args.paths, seed=args.seed,
                                 n_jobs=args.jobs or os.cpu_count() or 1,
                                 progress=progress if not bar.disable else None)
    print(json.dumps(result.to_dict()) if args.json else result.render())
    return EXIT_OK if result.found else EXIT_FAIL


def cmd_attribute(args) -> int:
    from ..analysis.attribution import attribute

    if bad_out(args, "attribute"):
        return EXIT_USAGE

    scenario = refuse_too_large(args, keep_steps=not args.no_save, no_save=not args.no_save)
    bar = progress_bar(args, len(scenario.shocks) + 2, "sim", "attribution")

    def progress(label, seconds):
        bar.update(1)
        bar.set_postfix_str(f"{label} {seconds:.1f} s")

    with bar:  # the scenario loaded above, --set applied: its refusals locate the file's keys
        result = attribute(scenario, n_paths=args.paths, seed=args.seed, n_jobs=args.jobs or os.cpu_count() or 1,
                           keep_result=not args.no_save,
                           progress=progress if not bar.disable else None)
    folder = None
    if not args.no_save:
        from ..results.store import write_run

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
