"""``cascade calibrate``: fit, validate, report, and write the parameter file.

:func:`run_calibration` does the whole of it: load the scenario, the real hourly closes and the
facts; build the February 2026 targets and the calm year's (the scenario with no shocks against
the real windows of its length, crashes excluded), and those of the episodes fitted jointly
(October 2025 by default); fit (unless ``fit=False``, which evaluates the scenario as
given: the shipped defaults' validation); run the result on ``report_paths`` paths with the
scenario's own seed for the report (targets, fan coverage, stylised facts), and the out-of-sample
scenario with the same parameter values; write the report folder and, when asked, the parameter
file the shipped scenarios extend.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .._atomic import write_text
from .fit import (PARAMETERS, Calibration, Episode, calibrate, evaluate_all, parameter_yaml, shared, simulate_plain,
                  with_parameters)
from .targets import calm_targets, evaluate, fan_coverage, feb_2026_targets, real_window

__all__ = ["CalibrationRun", "run_calibration", "default_data", "default_reference"]

HOURLY = "btc_hourly_binance_BTCUSDT_2025-03-05_2026-04-05.csv"


def default_data() -> Path | None:
    """The real hourly closes in ``../shared/data`` (from the current folder or the repository's)."""
    for base in (Path("..") / "shared" / "data", Path(__file__).resolve().parents[3] / "shared" / "data"):
        if (base / HOURLY).is_file():
            return base / HOURLY
    return None


def default_reference(data: Path | None) -> Path | None:
    candidates = [] if data is None else [Path(data).resolve().parent / "reference" / "stress_event_reference_numbers.csv"]
    candidates.append(Path("..") / "shared" / "data" / "reference" / "stress_event_reference_numbers.csv")
    return next((p for p in candidates if p.is_file()), None)


@dataclass
class CalibrationRun:
    scenario: str
    calibration: Calibration | None
    values: dict[str, float]
    table: pd.DataFrame
    coverage: float
    fan: pd.DataFrame
    stylised: pd.DataFrame | None
    oos: dict[str, pd.DataFrame] | None  # episode scenario name -> its targets table
    parameter_file: str | None
    info: dict = field(default_factory=dict)
    written: Path | None = None
    identifiability: object | None = None  # engine.calibration.identify.Identifiability, after a fit or on demand

    def passed(self) -> dict[str, bool]:
        """The validation the issue asks for: every fitted target inside the model's 5-95% range,
        and the realised path inside the 5-95% fan for at least 90% of hours."""
        from .parameters import COVERAGE_GOAL

        out = {name: bool(row.inside_5_95) for name, row in self.table.iterrows()}
        out["fan_coverage"] = self.coverage >= COVERAGE_GOAL
        return out


def run_calibration(scenario_path, *, data, facts, reference=None, oos_scenarios=(), episodes=(), names=None,
                    fit: bool = True,
                    n_paths: int = 2000, report_paths: int = 10000, seed: int | None = None, n_jobs: int = 1,
                    design_points: int = 32, max_evals: int = 160, stylised_data=None, overrides=(),
                    out=None, write_params: str | Path | None = None, progress=None,
                    calm: bool = True, identify: bool | None = None) -> CalibrationRun:
    from ..history.data import load_ohlcv
    from ..history.data import load_facts
    from ..scenario.canonical import to_plain
    from ..scenario.loader import load_scenario

    began = time.perf_counter()
    scenario = load_scenario(scenario_path, overrides)
    # the out-of-sample episodes and their reference targets, read before the fit: a bad file
    # fails now, not after minutes of fitting
    facts_data = load_facts(facts)
    closes = load_ohlcv(data)
    reported = []  # (scenario, targets, fitted jointly?)
    if (oos_scenarios or episodes) and reference is None:
        raise ValueError("the historical episodes need the reference numbers (reference=)")
    if oos_scenarios or episodes:
        from .oos import episode_targets

        for path, fitted in [(p, False) for p in oos_scenarios] + [(p, True) for p in episodes]:
            o = load_scenario(path)
            reported.append((o, episode_targets(o.name, reference, o.horizon.start, closes=closes, fitted=fitted),
                             fitted))
    joint = tuple(_fit_episode(o, targets_o) for o, targets_o, fitted in reported if fitted)
    start = pd.Timestamp(scenario.horizon.start)
    start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
    end = start + pd.Timedelta(scenario.horizon.duration)
    real = real_window(closes, start, end)
    real.attrs["labelled_by_close"] = True
    targets = feb_2026_targets(facts_data, real, start, end)
    # the real year of the calm targets and the stylised-facts table, read once
    year = closes if stylised_data in (None, False) else load_ohlcv(stylised_data)
    if calm:  # the calm year: the scenario with no shocks against the real windows of its length
        step = pd.Timedelta(scenario.horizon.step).total_seconds()
        targets += calm_targets(year,
                                int(round((end - start).total_seconds() / step)), step)
    plain = to_plain(scenario)
    cal = None
    ident = None
    identify = fit if identify is None else identify  # by default after a fit only
    if fit:
        cal = calibrate(scenario, targets, real, candles=closes, names=names, n_paths=n_paths, seed=seed, n_jobs=n_jobs,
                        design_points=design_points, max_evals=max_evals, progress=progress, identify=identify,
                        episodes=joint)
        values = cal.best
        ident = cal.identifiability
    else:
        values = {}
        if identify:  # at the scenario's own values, on the fit's paths and seed
            from .fit import identify_at

            ident = identify_at(scenario, targets, real, candles=closes, names=names, n_paths=n_paths, seed=seed,
                                n_jobs=n_jobs, progress=progress, episodes=joint)
    report_seed = int(scenario.seed)
    point = with_parameters(plain, values)
    sim = simulate_plain(point, report_paths, report_seed, n_jobs)
    table = evaluate_all(point, sim, targets, closes, report_paths, report_seed, n_jobs)
    coverage, fan = fan_coverage(sim, real)
    stylised = None
    if stylised_data is not False:
        from .stylised import compare

        # the real side: rolling windows of the horizon's length over the whole hourly history
        stylised = compare(sim, year)
    oos = None
    if reported:
        oos = {}
        for o, targets_o, _ in reported:
            o_plain = with_parameters(to_plain(o), {k: v for k, v in values.items() if shared(k)})
            o_sim = simulate_plain(o_plain, min(report_paths, 4000), int(o.seed), n_jobs)
            oos[o.name] = evaluate(o_sim, targets_o)
    header = None
    if cal is not None:
        header = [
            f"Calibrated market parameters: written by `cascade calibrate` on {time.strftime('%Y-%m-%d', time.gmtime())}.",
            "Do not edit by hand: rerun the calibration (README, 'Calibration').",
            f"Scenario {Path(scenario_path).name} (its shocks carry the observed ETF flows and margin schedule),",
            f"data {Path(data).name}, facts {Path(facts).name}; {n_paths:,} paths, seed {cal.seed},",
            *([f"fitted jointly with {', '.join(e.name for e in joint)} (its first 24 hours, its own seed),"]
              if joint else []),
            f"{len(cal.history)} evaluations; objective {cal.start_objective:.4g} as given -> {cal.objective:.4g}.",
            "Fitted: " + ", ".join(f"{n} ({PARAMETERS[n].key})" for n in cal.names) + ".",
        ]
    parameter_file = parameter_yaml(cal, plain, header=header) if cal is not None else None
    info = {
        "scenario": scenario.name, "fitted": cal is not None, "n_paths": n_paths if cal else report_paths,
        "report_paths": report_paths, "seed": cal.seed if cal else report_seed,
        "objective": cal.objective if cal else None, "start_objective": cal.start_objective if cal else None,
        "evaluations": len(cal.history) if cal else 0, "parameters": values, "coverage": coverage,
        "seconds": time.perf_counter() - began, "oos_scenarios": [str(p) for p in oos_scenarios],
        "episodes": [str(p) for p in episodes],
        "fitted_episodes": [o.name for o, _, fitted in reported if fitted],
        "meta": {"scenario file": str(scenario_path), "data": str(data), "facts": str(facts),
                 "report": f"{report_paths:,} paths, seed {report_seed}",
                 "fan coverage": f"{coverage:.1%} of {len(fan)} hours inside 5–95%",
                 "fit": (f"{len(cal.history)} evaluations of {n_paths:,} paths, {cal.seconds:.0f} s" if cal
                         else "none (evaluated as given)")},
        "notes": _notes(table, coverage, stylised),
        "identifiability": None if ident is None else ident.to_dict(),
    }
    result = CalibrationRun(scenario.name, cal, values, table, coverage, fan, stylised, oos, parameter_file, info,
                            identifiability=ident)
    if out is not None:
        from .report import write_calibration

        result.written = write_calibration(out, info, table, parameters=None if cal is None else cal.parameters_frame(),
                                           fan=fan, history=None if cal is None else cal.history,
                                           stylised=stylised, oos=oos, parameter_file=parameter_file,
                                           identifiability=ident)
    if write_params is not None and parameter_file is not None:
        target = Path(write_params)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text(target, parameter_file)
    return result


FIT_EPISODE_HORIZON = "1d"  # the October targets read the first 24 hours: the fit runs no more


def _fit_episode(scenario, targets) -> Episode:
    """An episode fitted jointly: its scenario cut to the targets' 24 hours (the steps after them
    cannot change them: the kernel is causal), on its own seed."""
    from ..scenario.canonical import to_plain

    plain = to_plain(scenario)
    plain.setdefault("horizon", {})["duration"] = FIT_EPISODE_HORIZON
    return Episode(scenario.name, plain, tuple(targets), int(scenario.seed))


def _notes(table: pd.DataFrame, coverage: float, stylised: pd.DataFrame | None) -> list[str]:
    from .parameters import COVERAGE_GOAL

    notes = []
    outside = [n for n, r in table.iterrows() if not r.inside_5_95]
    if outside:
        notes.append("Outside the model's 5–95% range: " + ", ".join(outside) + ".")
    if coverage < COVERAGE_GOAL:
        notes.append(f"The realised path is inside the 5–95% fan for {coverage:.0%} of hours, under the "
                     f"{COVERAGE_GOAL:.0%} goal.")
    if stylised is not None and "acf_abs_lag1" in stylised.index:
        r = stylised.loc["acf_abs_lag1"]
        if r.model_p50 < 0.5 * r.real_p50:
            notes.append(f"Volatility clustering: the autocorrelation of |r| at lag 1 is {r.model_p50:.2f} in the "
                         f"model against {r.real_p50:.2f} in the data; the model's variance does not persist.")
    return notes
