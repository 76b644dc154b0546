"""Regression checks: a run's metrics against golden values in ``results/baselines/<name>.json``.

**Metric set.** Flat names (the schema's ``MetricName``):

* ``market.<metric>.{p05,p50,p95,mean}`` for every market metric of ``SimulationResult.summary()``;
* ``market.prob_touch_<level>``, ``market.prob_adl``, ``market.prob_bad_debt`` (``probabilities()``);
* with ``strategies:``, ``strategies.<row>.<metric>`` for every row of the strategies table and
  every metric of :data:`engine.portfolio.hedge.METRICS` that is defined there (``d_pnl_mean``/``d_es99`` not
  on the unhedged row, ``effectiveness`` only where premium is paid), resampled with the formulas
  that define it (:mod:`engine.portfolio.metrics`). ``<row>`` is the row's
  label made a name: lower case, ``[``/``,`` -> ``__``, ``=`` -> ``_``, a decimal point ``p``, a
  minus sign ``m``: ``put[strike_usd=55000,hedge_ratio=0.5]`` -> ``put__strike_usd_55000__hedge_ratio_0p5``.

**Standard errors.** Each metric's Monte Carlo standard error is the standard deviation of the
metric over :data:`RESAMPLES` bootstrap resamples of the run's paths (seed :data:`BOOTSTRAP_SEED`,
so it is a pure function of the run; all metrics see the same resamples, so differences such as
``d_es99`` are resampled jointly). A probability ``p`` estimated from ``n`` paths never gets a
smaller SE than the binomial ``sqrt(p'(1-p')/n)`` with ``p'`` = ``p`` clamped to ``[1/n, 1-1/n]``:
a probability that is 0 or 1 on every path (bootstrap SE 0) is treated as if one path differed.
Other metrics keep a bootstrap SE of 0 when it is 0 (a quantile on an atom, ``adl_usd`` = 0 on
every path): such a value must not move, apart from the float-noise tolerance below.

**Tolerance.** With ``se = sqrt(se_baseline^2 + se_current^2)`` (the baseline and a rerun whose
random numbers changed are two independent estimates; an unchanged engine with the same seed
reproduces the baseline exactly, so the tolerance only matters when something changed):
``abs_tol = max(regression.metrics[m].abs or 0, n_se * se)``, ``n_se`` from the metric's entry
or ``regression.default_n_se`` (4); ``rel_tol`` = the entry's ``rel`` or :data:`FLOAT_NOISE`
(floating-point differences across machines). A metric passes when
``|current - baseline| <= abs_tol + rel_tol * |baseline|``. A metric missing from the run or from
the baseline fails too (status ``missing`` / ``new``): the baseline no longer describes the
scenario. The baseline records the tolerance a rerun with the same SE would get
(``n_se * sqrt(2) * se``); the check recomputes it from both SEs and the scenario's current
``regression:`` section, so editing a tolerance needs no new baseline.

Why both SEs: a change that only reshuffles random numbers (another RNG layout, one more draw per
step) turns the rerun into an independent estimate of the same model, whose difference from the
baseline has standard deviation ``sqrt(se_b^2 + se_c^2)``; 4 of those make a false alarm on such a
change unlikely (about 6e-5 per normal metric). Using one run's SE would flag about a third of such
refactors somewhere among ~90 metrics. The price is sensitivity: a scenario needs enough paths for
the changes it should catch (SE ~ 1/sqrt(n)); ``ci-feb-2026-small`` has 100,000 so that a 5% change
of market liquidity drifts.

**Identity.** A baseline also keeps the SHA-256 of the resolved scenario (canonical YAML, without
``description`` and ``regression``, which change no number), its seed, paths and steps; a check
whose scenario differs says so (a note, not a failure: the metrics decide).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .._atomic import write_text
from .._files import read_regular_bytes
from ..errors import BaselineError, ScenarioError
from ..scenario.problems import scenario_problem
from .._format import five_digits

__all__ = ["BOOTSTRAP_SEED", "DEFAULT_BASELINES", "FLOAT_NOISE", "RESAMPLES", "CheckResult", "Measurement", "Metric",
           "Row", "baseline_record", "compare", "dumps_baseline", "load_baseline", "measure",
           "metric_slug", "metric_values", "scenario_sha256", "update_command", "write_baseline"]

RESAMPLES = 300  # bootstrap resamples: the SE itself is then known to about 4%
BOOTSTRAP_SEED = 7  # any fixed number: the SEs are then a pure function of the run
FLOAT_NOISE = 1e-9  # default relative tolerance: floating-point noise across machines
DEFAULT_BASELINES = Path("results") / "baselines"
FORMAT = 1  # version of the baseline file layout
MAX_BASELINE_BYTES = 4 * 1024**2  # a baseline holds a few dozen metrics: a few kB
_NAME = re.compile(r"^[a-z][a-z0-9_.]*$")


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    se: float


@dataclass
class Measurement:
    """A run's metrics with their standard errors, and what identifies the run."""

    scenario: str
    source: str
    sha256: str
    seed: int
    n_paths: int
    n_steps: int
    metrics: dict[str, Metric]


# ----------------------------------------------------------------------------- the metric set
def metric_slug(label: str) -> str:
    """A row label or probability key as part of a metric name (see the module doc)."""
    s = label.lower()
    s = re.sub(r"(?<=\d)\.(?=\d)", "p", s)
    s = re.sub(r"(?<=[=,\[])-(?=\d)", "m", s)
    s = s.replace("[", "__").replace(",", "__").replace("=", "_").replace("]", "")
    return re.sub(r"[^a-z0-9_]", "_", s)


def _market(result, bs, specs: list) -> None:
    pp = result.per_path
    summary = result.summary()
    for metric in summary.index:  # the market metrics, SimulationResult's SUMMARY_METRICS
        x = pp[metric].to_numpy(np.float64)
        for label, q in (("p05", 5), ("p50", 50), ("p95", 95)):
            specs.append((f"market.{metric}.{label}", summary.loc[metric, label], _pick(bs.quantile(x, q)), False))
        specs.append((f"market.{metric}.mean", summary.loc[metric, "mean"], _pick(bs.mean(x)), False))
    events = result.touch_events()
    events["prob_adl"] = pp["adl_usd"].to_numpy() > 0
    events["prob_bad_debt"] = pp["bad_debt_usd"].to_numpy() > 0
    probabilities = result.probabilities()
    if set(events) != set(probabilities):  # pragma: no cover - a new probability needs its event here
        raise RuntimeError(f"regression metrics out of date with SimulationResult.probabilities(): {sorted(probabilities)}")
    for key, value in probabilities.items():
        specs.append((f"market.{metric_slug(key)}", value, _pick(bs.mean(events[key])), True))


def _pick(handle: int):
    return lambda draws: draws[handle]


def _strategies(result, bs, specs: list) -> None:
    """Every strategy row's metrics (:mod:`engine.portfolio.metrics`): the rows' statistics registered
    on the bootstrap, and each metric's formula applied to their resampled values."""
    from ..portfolio.hedge import row_label
    from ..portfolio.metrics import METRICS, register, resampled

    table, paths = result.strategies, result.strategy_paths
    handles = []  # per row: statistic name -> handle of its resampled values
    for i in range(len(table)):
        handles.append(register(bs, {name: values[i] for name, values in paths.items()}))
    seen: dict[str, str] = {}
    for i, (_, row) in enumerate(table.iterrows()):
        label = row_label(row)
        slug = metric_slug(label)
        if slug in seen:
            raise ScenarioError(scenario_problem(result.scenario, ("strategies",), f"rows {seen[slug]!r} and {label!r} both "
                                         f"make the metric names strategies.{slug}.*", hint="rename one of them"))
        seen[slug] = label
        for metric in METRICS:
            if i == 0 and metric.startswith("d_"):
                continue  # the unhedged row minus itself
            specs.append((f"strategies.{slug}.{metric}", row[metric], resampled(metric, handles[i], handles[0]),
                          metric == "p_liquidated"))


def _register(result):
    """The bootstrap and ``[(name, value, draws -> resampled values, is a probability)]`` of a run."""
    from ._bootstrap import Bootstrap

    bs = Bootstrap(result.n_paths, RESAMPLES, BOOTSTRAP_SEED)
    specs: list = []
    _market(result, bs, specs)
    if result.scenario.strategies:
        _strategies(result, bs, specs)
    return bs, specs


def measure(result, source: str = "") -> Measurement:
    """The metric set of a run (a :class:`SimulationResult` of a scenario) with bootstrap SEs."""
    scenario = result.scenario
    if scenario is None:
        raise ValueError("measuring a run needs its scenario: run engine.run on a scenario, not a compiled one")
    n = result.n_paths
    bs, specs = _register(result)
    draws = bs.run()
    metrics = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, value, pick, is_probability in specs:
            value = float(value)
            if not math.isfinite(value):
                continue  # undefined here (effectiveness without premium)
            d = pick(draws)
            d = d[np.isfinite(d)]
            se = float(np.std(d, ddof=1)) if d.size > 1 else 0.0
            if is_probability:
                p = min(max(value, 1.0 / n), 1.0 - 1.0 / n)
                se = max(se, math.sqrt(max(p * (1.0 - p), 0.0) / n))
            metrics[name] = Metric(name, value, se)
    return Measurement(scenario.name, source, scenario_sha256(scenario), result.seed, n, result.n_steps,
                       dict(sorted(metrics.items())))


def metric_values(result) -> dict[str, float]:
    """The metric set of a run by name, without standard errors (nothing is resampled); a metric
    undefined in the run (``effectiveness`` of a row that pays no premium) is NaN."""
    if result.scenario is None:
        raise ValueError("naming a run's metrics needs its scenario: run engine.run on a scenario, not a compiled one")
    _, specs = _register(result)
    return {name: float(value) for name, value, _, _ in specs}


def scenario_sha256(scenario) -> str:
    """SHA-256 of the resolved scenario's canonical YAML, without ``description``, ``regression``
    and ``limits`` (they change no number: editing a tolerance or a limit does not make a baseline
    stale)."""
    from ..scenario.canonical import dump_scenario

    plain = scenario.model_copy(update={"regression": None, "description": "", "limits": []})
    return hashlib.sha256(dump_scenario(plain).encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------- tolerances
def regression_section(scenario, names) -> object:
    """The scenario's ``regression:`` section (defaults if absent); every metric it names must exist."""
    import difflib

    from ..scenario.schema import Regression

    reg = scenario.regression or Regression()
    problems = []
    for name in reg.metrics:
        if name not in names:
            close = difflib.get_close_matches(name, list(names), n=1)
            problems.append(scenario_problem(scenario, ("regression", "metrics", name), f"no metric named {name!r} in this run",
                                     hint=f"did you mean {close[0]!r}?" if close else "see `cascade check --verbose`"))
    if problems:
        raise ScenarioError(problems)
    return reg


def _tolerance(reg, name: str, se_b: float, se_c: float) -> tuple[float, float]:
    """``(abs_tol, rel_tol)`` of a metric (see the module doc)."""
    entry = reg.metrics.get(name)
    n_se = entry.n_se if entry is not None and entry.n_se is not None else reg.default_n_se
    floor = entry.abs if entry is not None and entry.abs is not None else 0.0
    rel = entry.rel if entry is not None and entry.rel is not None else FLOAT_NOISE
    return max(floor, n_se * math.hypot(se_b, se_c)), rel


# ----------------------------------------------------------------------------- baseline files
def _sig(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}") + 0.0  # + 0.0: no -0.0


def baseline_record(scenario, m: Measurement, created: datetime | None = None) -> dict:
    """The JSON object of a baseline for measurement ``m`` of ``scenario``."""
    from .._version import __version__

    reg = regression_section(scenario, m.metrics)
    created = created or datetime.now(UTC)
    rows = []
    for name, metric in m.metrics.items():
        abs_tol, rel_tol = _tolerance(reg, name, metric.se, metric.se)
        rows.append({"metric": name, "value": float(metric.value) + 0.0, "se": _sig(metric.se),
                     "abs_tol": _sig(abs_tol), "rel_tol": float(rel_tol)})
    return {"format": FORMAT, "scenario": m.scenario, "source": m.source, "scenario_sha256": m.sha256,
            "seed": m.seed, "n_paths": m.n_paths, "n_steps": m.n_steps, "engine_version": __version__,
            "created_utc": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "bootstrap": {"resamples": RESAMPLES, "seed": BOOTSTRAP_SEED, "unit": "paths"},
            "metrics": rows}


def dumps_baseline(record: dict) -> str:
    """Stable text: header keys in a fixed order, then one metric per line, sorted by name."""
    lines = ["{"]
    for key, value in record.items():
        if key != "metrics":
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, sort_keys=True)},")
    rows = sorted(record["metrics"], key=lambda r: r["metric"])
    lines.append('  "metrics": [')
    lines.append(",\n".join("    " + json.dumps(r, allow_nan=False) for r in rows))
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def write_baseline(path: Path, record: dict) -> None:
    """Write atomically and durably (:mod:`engine._atomic`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, dumps_baseline(record))


_HEADER = {"scenario": str, "scenario_sha256": str, "seed": int, "n_paths": int, "n_steps": int, "metrics": list}
_ROW = {"metric": str, "value": float, "se": float}


def _kind(value, expected) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


_KIND_TEXT = {str: "a string", int: "a whole number", float: "a finite number", list: "a list"}


def load_baseline(path) -> dict:
    """Read and check a baseline file; :class:`BaselineError` names the file, key, expected, found."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise BaselineError(f"{path}: no such baseline")
    try:  # a regular file of bounded size: a FIFO would block, a device never end
        data = json.loads(read_regular_bytes(path, MAX_BASELINE_BYTES, "a baseline").decode("utf-8"))
    except ScenarioError as exc:
        raise BaselineError(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise BaselineError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise BaselineError(f"{path}: expected a JSON object, found {type(data).__name__}")
    for key, kind in _HEADER.items():
        if key not in data:
            raise BaselineError(f"{path}: {key}: missing; expected {_KIND_TEXT[kind]}")
        if not _kind(data[key], kind):
            raise BaselineError(f"{path}: {key}: expected {_KIND_TEXT[kind]}, found {data[key]!r}")
    seen = set()
    for i, row in enumerate(data["metrics"]):
        where = f"{path}: metrics[{i}]"
        if not isinstance(row, dict):
            raise BaselineError(f"{where}: expected an object {{metric, value, se, ...}}, found {row!r}")
        for key, kind in _ROW.items():
            if not _kind(row.get(key), kind):
                raise BaselineError(f"{where}.{key}: expected {_KIND_TEXT[kind]}, found {row.get(key)!r}")
        if not _NAME.match(row["metric"]) or row["metric"] in seen:
            raise BaselineError(f"{where}.metric: expected a new name matching {_NAME.pattern}, found {row['metric']!r}")
        if row["se"] < 0:
            raise BaselineError(f"{where}.se: expected a number >= 0, found {row['se']!r}")
        seen.add(row["metric"])
    return data


# ----------------------------------------------------------------------------- comparing
@dataclass(frozen=True)
class Row:
    metric: str
    baseline: float | None
    current: float | None
    diff: float | None
    tolerance: float | None
    z: float | None  # diff in standard errors of the difference
    status: str  # ok, DRIFT, new (no baseline value), missing (not in this run)


@dataclass
class CheckResult:
    scenario: str
    source: str
    baseline_path: str
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if r.status != "ok"]

    @property
    def passed(self) -> bool:
        return not self.failures

    def render(self, verbose: bool = False) -> str:
        return render_check(self, verbose)

    def to_dict(self) -> dict:
        return {"scenario": self.scenario, "source": self.source, "baseline": self.baseline_path,
                "passed": self.passed, "notes": self.notes,
                "rows": [{k: (v if not isinstance(v, float) or math.isfinite(v) else str(v))
                          for k, v in r.__dict__.items()} for r in self.rows]}


def update_command(source: str, baselines=DEFAULT_BASELINES) -> str:
    extra = "" if Path(baselines) == DEFAULT_BASELINES else f" --baselines {Path(baselines).as_posix()}"
    return f"cascade check --update {source}{extra}"


def compare(scenario, m: Measurement, baseline: dict, *, baseline_path="", baselines=DEFAULT_BASELINES,
            overrides=()) -> CheckResult:
    """Measurement ``m`` of ``scenario`` against a loaded baseline (tolerances from ``scenario``)."""
    reg = regression_section(scenario, m.metrics)
    old = {r["metric"]: r for r in baseline["metrics"]}
    rows = []
    for name in sorted(set(old) | set(m.metrics)):
        cur, base = m.metrics.get(name), old.get(name)
        if cur is None or base is None:
            rows.append(Row(name, base and base["value"], cur and cur.value, None, None, None,
                            "missing" if cur is None else "new"))
            continue
        abs_tol, rel_tol = _tolerance(reg, name, base["se"], cur.se)
        diff = cur.value - base["value"]
        tol = abs_tol + rel_tol * abs(base["value"])
        se = math.hypot(base["se"], cur.se)
        z = diff / se if se > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
        rows.append(Row(name, base["value"], cur.value, diff, tol, z, "ok" if abs(diff) <= tol else "DRIFT"))
    return CheckResult(m.scenario, m.source, str(baseline_path), rows, _notes(m, baseline, baselines, overrides))


def _notes(m: Measurement, baseline: dict, baselines, overrides) -> list[str]:
    from .._version import __version__

    changed = []
    if baseline["scenario_sha256"] != m.sha256:
        changed.append(f"scenario hash {baseline['scenario_sha256'][:12]} -> {m.sha256[:12]}")
    for key in ("seed", "n_paths", "n_steps"):
        if baseline[key] != getattr(m, key):
            changed.append(f"{key} {baseline[key]} -> {getattr(m, key)}")
    notes = []
    if baseline["scenario"] != m.scenario:
        notes.append(f"the baseline is for scenario {baseline['scenario']!r}, not {m.scenario!r}")
    if changed:
        why = ("--set changed it" if overrides else
               f"if the change is intended, write a new baseline with `{update_command(m.source, baselines)}` "
               "and commit it")
        notes.append(f"the scenario is not the one the baseline was made from ({', '.join(changed)}): {why}")
    if baseline.get("engine_version") not in (None, __version__):
        notes.append(f"baseline made by engine {baseline['engine_version']}, this is {__version__}")
    return notes


# ----------------------------------------------------------------------------- the text of a check
_num = five_digits


def _z(z) -> str:
    if z is None:
        return "-"
    return f"{z:+.1f}" if math.isfinite(z) else ("+inf" if z > 0 else "-inf")


def render_check(result: CheckResult, verbose: bool = False) -> str:
    """The failing rows (every row with ``verbose``) and a count of the rest."""
    n, bad = len(result.rows), len(result.failures)
    verdict = "ok" if result.passed else f"DRIFT in {bad} of {n} metrics"
    lines = [f"{result.scenario}: {verdict} ({result.source} against {result.baseline_path})"]
    lines += [f"  note: {note}" for note in result.notes]
    shown = result.rows if verbose else result.failures
    if shown:
        width = max(28, *(len(r.metric) for r in shown))
        lines.append(f"  {'metric':<{width}} {'baseline':>11} {'current':>11} {'diff':>11} {'tolerance':>11} "
                     f"{'diff/SE':>8}  status")
        for r in shown:
            lines.append(f"  {r.metric:<{width}} {_num(r.baseline):>11} {_num(r.current):>11} "
                         f"{_num(r.diff, True):>11} {_num(r.tolerance):>11} {_z(r.z):>8}  {r.status}")
    if not verbose and n - bad:
        lines.append(f"  {n - bad} {'metric' if n - bad == 1 else 'metrics'} within tolerance"
                     + (" (--verbose lists them)" if bad else ""))
    return "\n".join(lines)
