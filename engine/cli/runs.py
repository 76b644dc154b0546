"""Commands that make and read run folders: ``run``, ``rerun``, ``report``, ``compare`` and ``check``."""

from __future__ import annotations

import json
import os
import sys

from ..errors import ScenarioError
from .common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, bad_out, check_out_dir, wants_bar


def book_line(book) -> str:
    """The line under ``cascade run``'s header naming the book file the portfolio was read from."""
    if book.via == "--book":
        return f"book: {book.describe()} replaces the scenario's portfolio positions (its cash_usd kept)"
    return f"book: {book.describe()}, read from portfolio.positions_csv"


def cmd_run(args) -> int:
    from ..results.text import render_run
    from ..scenario.loader import load_scenario
    from ..simulate import run

    from ..portfolio.greeks import has_greeks
    from ..scenario.positions import book_of

    scenario = load_scenario(args.file, args.overrides, book=args.book)
    book = book_of(scenario)
    if bad_out(args, "run"):
        return EXIT_USAGE
    jobs = args.jobs or os.cpu_count() or 1
    show_bar = wants_bar(args)
    save = not args.no_save
    # the run folder's fans and the strategies are made from the price paths: keep them then
    keep_steps = save or bool(scenario.strategies) or has_greeks(scenario.portfolio)
    from ..resources import check_memory

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
            text = f"{head}\n{book_line(book)}\n{rest}"
        if text is not None and scenario.strategies:
            from ..results.text import render_risk_errors, render_strategies

            text += "\n\n" + render_strategies(result.strategies)
            text += "\n\n" + render_risk_errors(result.strategies, result.uncertainty, result.n_paths)
        if text is not None and result.book_greeks is not None and args.greeks:
            from ..portfolio.greeks import render_book_greeks

            text += "\n\n" + render_book_greeks(result.book_greeks)
        if text is not None and result.limits:
            from ..results.text import render_limits

            text += "\n\n" + render_limits(result.limits)
    except ScenarioError:  # a limit on a metric the run does not have: located, exit 2 (main)
        raise
    except ValueError as exc:  # a strategy the evaluation refuses (e.g. a roll on a fixed expiry)
        print(f"cascade run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    folder = None
    if save:
        from ..results.store import write_run

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


def cmd_rerun(args) -> int:
    from ..results.store import identical, load_run, scenario_hash, write_run
    from ..scenario.canonical import dump_scenario
    from ..simulate import run

    original = load_run(args.run_dir)
    check_out_dir(args.out, "--out", must_be_empty=True)  # writable and empty, before the run
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


def cmd_report(args) -> int:
    from ..results.store import load_run_for_report, rewrite_report

    run = load_run_for_report(args.run_dir, figures=not args.no_figures)  # a damaged report can be redrawn
    written = rewrite_report(run, figures=not args.no_figures)
    for path in written:
        print(path)
    if args.screenshot:
        from ..results.browser import find_chromium, render_page

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


def cmd_compare(args) -> int:
    from ..results.compare import compare_runs, render_comparison
    from ..results.store import load_run

    a, b = load_run(args.run_a), load_run(args.run_b)
    table, notes = compare_runs(a, b)
    if args.json:
        print(json.dumps({"run_a": str(a.path), "run_b": str(b.path), "notes": notes,
                          "metrics": json.loads(table.to_json(orient="records"))}))
    else:
        print(render_comparison(a, b, table, notes, show_all=args.all))
    return EXIT_OK


def cmd_check(args) -> int:
    from ..results.check import run_check

    return run_check(args.files, update=args.update, baselines=args.baselines, overrides=args.overrides,
                     verbose=args.verbose, as_json=args.json, junit=args.junit)
