"""``cascade check``: regression scenarios against their baselines, and ``--update`` to rewrite them.

Exit codes: 0 every scenario within tolerance, 1 a metric drifted (or the baseline no longer
lists the scenario's metrics), 2 a user error (no scenario, a bad file, a missing or unreadable
baseline), reported without a traceback after every scenario has been looked at.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .._files import check_output_dir, check_output_file
from .._terminal import terminal_safe
from ..errors import BaselineError, ScenarioError
from ..scenario.problems import scenario_problem
from .regression import (
    DEFAULT_BASELINES,
    CheckResult,
    Measurement,
    baseline_record,
    compare,
    dumps_baseline,
    load_baseline,
    measure,
    regression_section,
    render_check,
    update_command,
    write_baseline,
)

__all__ = ["DEFAULT_SCENARIOS", "check", "measure_file", "measure_scenario", "render_check", "run_check"]

DEFAULT_SCENARIOS = Path("scenarios") / "ci"
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _files(given: list[Path]) -> list[Path]:
    """The scenario files to check: those given (a bare name is looked up in the scenario library,
    as ``cascade run`` does), else ``scenarios/ci/*.yaml`` here, else the shipped ones."""
    from ..scenario.library import find_scenario, scenarios_dir

    if given:
        return [Path(f) if Path(f).exists() else find_scenario(str(f)) or Path(f) for f in given]
    folder = DEFAULT_SCENARIOS if DEFAULT_SCENARIOS.is_dir() else scenarios_dir() / "ci"
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise BaselineError(f"no scenarios given and none in {DEFAULT_SCENARIOS.as_posix()}/ (looked in "
                            f"{Path.cwd()}) or in {folder}: name the files, e.g. cascade check scenarios/ci/ci-calm.yaml")
    return files


def baselines_for(file: Path) -> Path:
    """Where a scenario's baseline lives when ``--baselines`` is not given: the ``results/baselines/``
    of the nearest folder above the scenario that has one (a project's own, or the shipped
    library's), else ``results/baselines/`` here (where ``--update`` then creates it)."""
    for folder in Path(file).resolve().parents:
        if (folder / DEFAULT_BASELINES).is_dir():
            here = Path.cwd().resolve()
            found = folder / DEFAULT_BASELINES
            return found.relative_to(here) if found.is_relative_to(here) else found
    return DEFAULT_BASELINES


def _update_one(file: Path, baselines: Path, verbose: bool) -> tuple[dict, str]:
    """Write ``file``'s baseline; returns a JSON-ready report and its text."""
    scenario, m = measure_file(file)
    path = baselines / f"{scenario.name}.json"
    record = baseline_record(scenario, m)
    report = {"scenario": m.scenario, "source": m.source, "baseline": path.as_posix(), "metrics": len(m.metrics)}
    previous, problem = None, None
    if path.exists():
        try:
            previous = load_baseline(path)
        except BaselineError as exc:
            problem = str(exc)
    if previous is not None and dumps_baseline({**previous, "created_utc": ""}) == dumps_baseline(
            {**record, "created_utc": ""}):
        report["status"] = "unchanged"
        return report, f"{m.scenario}: {path.as_posix()} unchanged ({len(m.metrics)} metrics)"
    write_baseline(path, record)
    if previous is None:
        report["status"] = "new"
        text = f"{m.scenario}: wrote {path.as_posix()} ({len(m.metrics)} metrics)"
        return report, text + (f"; it replaces an unreadable file ({problem})" if problem else "")
    diff = compare(scenario, m, previous, baseline_path=path.as_posix(), baselines=baselines)
    counts = {s: sum(r.status == s for r in diff.rows) for s in ("DRIFT", "new", "missing")}
    moved = sum(r.status == "ok" and r.diff != 0 for r in diff.rows)
    report.update(status="updated", beyond_tolerance=counts["DRIFT"], added=counts["new"], removed=counts["missing"],
                  moved_within_tolerance=moved, rows=diff.to_dict()["rows"])
    text = (f"{m.scenario}: updated {path.as_posix()}: {counts['DRIFT']} metrics moved beyond tolerance, "
            f"{moved} within, {counts['new']} added, {counts['missing']} removed")
    table = diff.render(verbose).splitlines()[1:]  # the notes and the rows that moved beyond tolerance
    return report, "\n".join([text, *table])


# ----------------------------------------------------------------------------- CI outputs
def write_junit(path: Path, cases: list[dict], seconds: float) -> None:
    """A JUnit XML report (the schema Jenkins, GitLab and GitHub test reporters read): one test
    suite ``cascade check``, one test case per scenario file, ``<failure>`` for a drift (the drift
    table inside), ``<error>`` for a file that could not be checked."""
    import xml.etree.ElementTree as ET

    from .._atomic import write_bytes

    failures = sum(c["failure"] is not None for c in cases)
    errors = sum(c["error"] is not None for c in cases)
    suites = ET.Element("testsuites", tests=str(len(cases)), failures=str(failures), errors=str(errors),
                        time=f"{seconds:.3f}")
    suite = ET.SubElement(suites, "testsuite", name="cascade check", tests=str(len(cases)), failures=str(failures),
                          errors=str(errors), skipped="0", time=f"{seconds:.3f}")
    for case in cases:
        node = ET.SubElement(suite, "testcase", classname="cascade.check", name=case["name"], file=case["file"],
                             time=f"{case['seconds']:.3f}")
        if case["failure"] is not None:
            ET.SubElement(node, "failure", message=case["failure"], type="drift").text = case["text"]
        elif case["error"] is not None:
            ET.SubElement(node, "error", message=case["error"], type="error").text = case["error"]
        else:
            ET.SubElement(node, "system-out").text = case["text"]
    ET.indent(suites)
    write_bytes(path, ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n")


def _escape_annotation(text: str, *, prop: bool = False) -> str:
    """GitHub Actions' workflow-command escaping (``%``, CR, LF; ``:`` and ``,`` in properties)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def annotation(message: str, file: str, line: int | None = None, title: str = "cascade check") -> str:
    """``::error file=...,line=...,title=...::message``: GitHub Actions shows it on the file's line
    in the pull request."""
    where = f"file={_escape_annotation(file, prop=True)}"
    if line is not None:
        where += f",line={line}"
    return f"::error {where},title={_escape_annotation(title, prop=True)}::{_escape_annotation(message)}"


def run_check(files: list[Path], *, update: bool = False, baselines: Path | None = None, overrides=(),
              verbose: bool = False, as_json: bool = False, junit: Path | None = None,
              annotate: bool | None = None) -> int:
    """The ``cascade check`` command; returns its exit code. ``junit``: also write a JUnit XML
    report there; ``annotate`` (default: ``GITHUB_ACTIONS=true``): print a GitHub Actions error
    annotation per drifted or unreadable scenario."""
    import time

    if annotate is None:
        annotate = os.environ.get("GITHUB_ACTIONS") == "true"
    given = Path(baselines) if baselines is not None else None
    try:
        files = _files(list(files))
    except BaselineError as exc:
        print(f"cascade check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if update and overrides:
        print("cascade check: --update writes the baselines of the files as they are; drop --set", file=sys.stderr)
        return EXIT_USAGE
    folders = {f: given if given is not None else baselines_for(Path(f)) for f in files}
    try:  # before any run: a path that cannot be written is found at once
        if update:
            for folder in set(folders.values()):
                check_output_dir(folder, "--baselines")
        if junit is not None:
            check_output_file(junit, "--junit")
    except ScenarioError as exc:
        print(f"cascade check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    reports, errors, drifted, cases = [], [], 0, []
    started = time.perf_counter()
    for file in files:
        t0 = time.perf_counter()
        case = {"name": Path(file).stem, "file": Path(file).as_posix(), "failure": None, "error": None, "text": ""}
        cases.append(case)
        try:
            if not Path(file).exists():  # anything else that is not a plain file: the reader says what it is
                raise BaselineError(f"{file}: no such scenario file")
            baselines = folders[file]
            if update:
                report, text = _update_one(Path(file), baselines, verbose)
            else:
                result = check(Path(file), baselines, overrides)
                report, text = result.to_dict(), result.render(verbose)
                drifted += not result.passed
                case["name"] = result.scenario
                if not result.passed:
                    names = [r.metric for r in result.failures]
                    case["failure"] = (f"{result.scenario}: {len(names)} metrics drifted beyond tolerance "
                                       f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})")
                    if annotate:
                        print(annotation(case["failure"] + f"; baseline {result.baseline_path}", case["file"]))
        except (ScenarioError, BaselineError, ValueError) as exc:  # ValueError: a strategy the hedge layer refuses
            message = str(exc) if isinstance(exc, ScenarioError) else f"cascade check: {exc}"
            errors.append(message)
            case.update(error=message, seconds=time.perf_counter() - t0)
            if annotate:
                for problem in (exc.problems if isinstance(exc, ScenarioError) else ()):
                    print(annotation(str(problem), problem.file or case["file"], problem.line))
                if not isinstance(exc, ScenarioError):
                    print(annotation(message, case["file"]))
            if not as_json:  # a baseline's or a scenario's text, printed inert
                print(terminal_safe(message), file=sys.stderr)
            continue
        case.update(seconds=time.perf_counter() - t0, text=text)
        reports.append(report)
        if not as_json:
            print(terminal_safe(text))
    if junit is not None:
        write_junit(Path(junit), cases, time.perf_counter() - started)
    if as_json:
        print(json.dumps({"passed": not errors and not drifted, "scenarios": reports, "errors": errors}))
    elif not update and len(files) > 1:
        print(f"\n{drifted} of {len(files)} scenarios drifted" if drifted else
              f"\nall {len(reports)} scenarios within tolerance" if not errors else
              f"\n{len(reports) - drifted} of {len(files)} scenarios within tolerance")
    if errors:
        return EXIT_USAGE
    return EXIT_FAIL if drifted else EXIT_OK


def _display(file) -> str:
    path = Path(file)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def measure_file(file, overrides=(), n_jobs: int | None = None):
    """Load a regression scenario, run it and measure it: ``(scenario, Measurement)``."""
    from ..scenario.loader import load_scenario

    scenario = load_scenario(file, overrides)
    return scenario, measure_scenario(scenario, _display(file), n_jobs)


def measure_scenario(scenario, source: str = "", n_jobs: int | None = None) -> Measurement:
    """Run a loaded regression scenario and measure it (``source``: its file, for messages)."""
    from ..simulate import run

    if scenario.sweep is not None and scenario.sweep.parameters:
        raise ScenarioError(scenario_problem(scenario, ("sweep", "parameters"), "a regression scenario runs one market: "
                                     "sweep.parameters is not supported by cascade check (inline strategy sweeps are)"))
    result = run(scenario, n_jobs=n_jobs or os.cpu_count() or 1, keep_steps=bool(scenario.strategies))
    measurement = measure(result, source)
    regression_section(scenario, measurement.metrics)  # an unknown metric name in regression: is an error
    return measurement


def check(file, baselines=DEFAULT_BASELINES, overrides=()) -> CheckResult:
    """Run a regression scenario and compare it with ``<baselines>/<name>.json``."""
    from ..scenario.loader import load_scenario

    scenario = load_scenario(file, overrides)
    source = _display(file)
    path = Path(baselines) / f"{scenario.name}.json"
    if not path.exists():  # before the run: say so at once
        raise BaselineError(f"no baseline for {source}: {path.as_posix()} does not exist; write it with "
                            f"`{update_command(source, baselines)}` and commit it")
    baseline = load_baseline(path)
    m = measure_scenario(scenario, source)
    return compare(scenario, m, baseline, baseline_path=path.as_posix(), baselines=baselines, overrides=overrides)
