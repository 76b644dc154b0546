"""``cascade calibrate``: the fit, its progress bar and its text report."""

from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path

from .common import EXIT_OK, EXIT_USAGE, check_out_dir, wants_bar


def cmd_calibrate(args) -> int:
    from ..calibration.fit import DEFAULT_PARAMETERS, PARAMETERS
    from ..calibration.run import default_data, default_reference, run_calibration
    from ..history.data import default_facts
    from ..scenario.loader import load_scenario

    def usage(message: str) -> int:
        print(f"cascade calibrate: {message}", file=sys.stderr)
        return EXIT_USAGE

    scenario = load_scenario(args.file, args.overrides)  # a bad scenario fails here, before any work
    from ..resources import check_memory

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
    from ..scenario.library import scenarios_dir

    from ..calibration.oos import EPISODES, FITTED

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
    check_out_dir(out, "--out")  # writable, before the fit (minutes of CPU)
    if args.write_params is not None:
        from .._files import check_output_file

        check_output_file(args.write_params, "--write-params", create_parents=True)

    bar = _calibration_bar(args, len(names or DEFAULT_PARAMETERS)) if wants_bar(args) else None
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
    from ..calibration.report import _fmt

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
