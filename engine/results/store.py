"""Run folders: everything one run produced, written atomically, read back as the same tables.

Layout of ``results/<scenario>/<UTC timestamp>-<short hash>/``::

    manifest.json          resolved scenario hash, seed, n_paths, versions, git, timings, machine,
                           and the SHA-256 of every other file (written last)
    scenario.yaml          the resolved scenario (extends merged, --set applied, defaults shown)
    metrics.json           the ``cascade run --json`` object (Monte Carlo errors and limits included)
    metrics.csv            the same, one row per (section, name, statistic)
    per_path.parquet       one row per path (the kernel's summary)
    fan.parquet            per-step quantiles, columns (metric, quantile)
    flows.parquet          mean flow per step by who traded (USD, sell < 0)
    sample_paths.parquet   full price paths of the first few paths
    shocks.parquet         each shock's window, for the report's timeline
    strategies.parquet     the hedge table (when the scenario has strategies)
    strategy_pnl.parquet   per-path PnL of every strategy row (columns "0", "1", ... = table rows)
    <name>.parquet         extra tables given to :func:`write_run` (e.g. a sweep)
    report.html            the report (``outputs.report``), plotly inlined: works offline
    figures/*.png          the main charts as PNG (``outputs.figures``)

Atomicity: the folder is built under a hidden ``.<name>.partial-<pid>`` sibling and renamed into
place once complete, so an interrupted run leaves no folder that looks finished (and
:func:`load_run` refuses anything without a manifest). The short hash identifies (resolved
scenario, seed, n_paths): two runs of the same thing share it and differ by timestamp.
:func:`rewrite_report` draws the new report and figures in a hidden staging folder inside the run
folder and swaps them in with the manifest, so an interruption leaves the old report verifying.

Reading: a run folder is untrusted input. ``manifest.json`` is validated (:class:`Manifest`) and
every name in its ``files`` must be a plain relative path inside the folder (no absolute path, no
``..``, no link on the way) naming a regular file, checked before anything is opened. :class:`Run`
reads only the files the manifest lists and, when verifying, serves the bytes whose SHA-256 it
checked. ``scenario.yaml`` is loaded without following ``extends:``, ``use:`` or a positions file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cached_property
from importlib import metadata
from pathlib import Path
from stat import S_ISDIR, S_ISLNK, S_ISREG
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._atomic import fsync_dir, write_json
from .._files import _kind
from .._terminal import terminal_safe
from ..errors import RunFolderError, format_path

__all__ = ["Run", "RunFolderError", "write_run", "load_run", "run_folder_name", "scenario_hash",
           "shock_windows", "FORMAT"]

FORMAT = 1
DEPENDENCIES = ("numpy", "pandas", "numba", "llvmlite", "pyarrow", "pydantic", "pyyaml", "scipy", "vectorbt",
                "plotly", "matplotlib")
_TABLES = ("per_path", "fan", "flows", "sample_paths", "shocks", "strategies", "strategy_pnl")


# --------------------------------------------------------------------------- identity
def scenario_hash(canonical_yaml: str) -> str:
    """SHA-256 of the resolved scenario's canonical YAML."""
    return hashlib.sha256(canonical_yaml.encode()).hexdigest()


def run_hash(canonical_yaml: str, seed: int, n_paths: int) -> str:
    """What makes two runs the same: the resolved scenario, the seed and the number of paths."""
    return hashlib.sha256(f"{scenario_hash(canonical_yaml)}|{seed}|{n_paths}".encode()).hexdigest()


def run_folder_name(created: datetime, canonical_yaml: str, seed: int, n_paths: int) -> str:
    return f"{created:%Y%m%dT%H%M%SZ}-{run_hash(canonical_yaml, seed, n_paths)[:8]}"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_files(folder: Path, *, skip=()) -> dict[str, str]:
    """SHA-256 of every regular file under ``folder`` (a folder this process wrote), by relative name."""
    return {p.relative_to(folder).as_posix(): _sha256_file(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.relative_to(folder).as_posix() not in skip}


# --------------------------------------------------------------------------- provenance
def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True,
                             timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _provenance() -> dict:
    from .._version import __version__

    versions = {}
    for name in DEPENDENCIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "engine": {"name": "cascade-engine", "version": __version__},
        "dependencies": {"python": platform.python_version(), **versions},
        "git": {"commit": commit, "dirty": bool(status)} if commit else None,
        "machine": {"platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
                    "node": platform.node()},
    }


# --------------------------------------------------------------------------- tables
def shock_windows(scenario) -> pd.DataFrame:
    """Each shock's id, type and window (start, end; UTC) on the scenario's horizon, for timelines.

    Regimes last ramp + duration + ramp-out (to the horizon's end when open-ended); ETF flows cover
    their dated or generated days; margin hikes run to their last schedule step (or ``duration``);
    a price jump is one step.
    """
    h = scenario.horizon
    rows = []
    for i, shock in enumerate(scenario.shocks):
        start = h.resolve(shock.start)
        end = None
        if shock.type == "etf_flows":
            days = (sorted(shock.daily_flows_usd) if shock.daily_flows_usd
                    else [d.date() for d in shock.generated_days(start)] if shock.generated else [])
            if days:
                first = datetime(days[0].year, days[0].month, days[0].day, tzinfo=timezone.utc)
                start = min(start, first) if shock.daily_flows_usd else start
                end = datetime(days[-1].year, days[-1].month, days[-1].day, tzinfo=timezone.utc) + timedelta(days=1)
        elif shock.type == "margin_hike":
            ats = [h.resolve(s.at) for s in shock.schedule if getattr(s, "at", None) is not None]
            end = start + shock.duration if shock.duration is not None else max([start + h.step, *ats])
        elif shock.type == "price_jump":
            end = start + h.step
        else:
            ramp, ramp_out = getattr(shock, "ramp", None), getattr(shock, "ramp_out", None)
            duration = getattr(shock, "duration", None)
            if duration is not None:
                end = start + (ramp or timedelta(0)) + duration + (ramp_out or timedelta(0))
        end = h.end if end is None else min(end, h.end) if end > start else start + h.step
        rows.append({"id": shock.id or f"{shock.type}#{i}", "type": shock.type, "start": pd.Timestamp(start),
                     "end": pd.Timestamp(end)})
    frame = pd.DataFrame(rows, columns=["id", "type", "start", "end"])
    for col in ("start", "end"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def metrics_rows(metrics: dict) -> pd.DataFrame:
    """The ``metrics.json`` object as a tidy table: section, name, statistic, value. Monte Carlo
    errors are statistics of their metric (``market, prob_touch_60000, ci95_low``; ``strategies,
    put_60k, es99_se``); a limit is its bound and whether it was breached (``limits,
    strategies.put_60k.es99, max`` and ``max_breached``, 1 or 0)."""
    rows = []
    for name, value in metrics.get("market", {}).items():
        if isinstance(value, dict):
            rows += [("market", name, stat, v) for stat, v in value.items()]
        else:
            rows.append(("market", name, "value", value))
    for label, values in metrics.get("strategies", {}).items():
        rows += [("strategies", label, stat, v) for stat, v in values.items()]
    errors = metrics.get("uncertainty", {})
    for name, values in errors.get("market", {}).items():
        rows += [("market", name, stat, v) for stat, v in values.items()]
    for label, by_metric in errors.get("strategies", {}).items():
        rows += [("strategies", label, f"{metric}_{stat}", v) for metric, values in by_metric.items()
                 for stat, v in values.items()]
    for limit in metrics.get("limits", []):
        kind = "max" if "max" in limit else "min"
        rows += [("limits", limit["metric"], kind, limit[kind]),
                 ("limits", limit["metric"], f"{kind}_breached", float(limit["status"] == "breached"))]
    return pd.DataFrame(rows, columns=["section", "name", "statistic", "value"])


# --------------------------------------------------------------------------- writing
@dataclass
class _Staging:
    """A hidden sibling folder that becomes the run folder by one rename, or disappears."""

    final: Path
    tmp: Path = field(init=False)

    def __post_init__(self):
        self.final.parent.mkdir(parents=True, exist_ok=True)
        _sweep_dead_partials(self.final.parent)
        self.tmp = self.final.parent / f".{self.final.name}.partial-{os.getpid()}"
        if self.tmp.exists():  # left by an earlier crash of a process with our pid
            shutil.rmtree(self.tmp)
        self.tmp.mkdir()

    def merge(self) -> Path:
        """Move the staged files into the existing final folder, ``manifest.json`` last."""
        files = sorted(p for p in self.tmp.rglob("*") if p.is_file())
        files.sort(key=lambda p: p.name == "manifest.json")
        for src in files:
            dst = self.final / src.relative_to(self.tmp)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return self.final

    def commit(self) -> Path:
        if self.final.exists():
            if any(self.final.iterdir()):
                raise RunFolderError(f"{self.final}: already exists and is not empty")
            self.final.rmdir()
        os.rename(self.tmp, self.final)
        return self.final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _sweep_dead_partials(parent: Path, pattern: str = ".*.partial-*") -> None:
    """Remove the staging folders of killed writers (their process is gone); a live writer's stay."""
    for stale in parent.glob(pattern):
        try:
            pid = int(stale.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(stale, ignore_errors=True)
        except (ValueError, PermissionError, OSError):
            continue


def _default_folder(root: Path, name: str, folder: str) -> Path:
    final = root / name / folder
    n = 1
    while final.exists():  # two runs of the same thing in the same second
        n += 1
        final = root / name / f"{folder}-{n}"
    return final


def _check_write_arguments(result, out, root, source, overrides, command, tables, report, figures, merge,
                           extra_manifest) -> None:
    """:func:`write_run`'s arguments, each of its type (:class:`~engine.errors.InvalidParameterError`)."""
    from .._params import check_bool, check_overrides, check_path, check_strings
    from ..errors import invalid_parameter
    from ..result import SimulationResult

    if not isinstance(result, SimulationResult) or result.scenario is None:
        raise invalid_parameter("write_run", "result", "a SimulationResult of engine.run on a scenario", result,
                                hint="a compiled scenario's result has no scenario to store"
                                if isinstance(result, SimulationResult) else None)
    check_path("write_run", "out", out, optional=True)
    check_path("write_run", "root", root)
    check_path("write_run", "source", source, optional=True)
    check_overrides("write_run", overrides)
    if command is not None:
        check_strings("write_run", "command", command, "strings (the command's words)")
    if tables is not None:
        expected = "a dict of extra table names to DataFrames, or None"
        if not isinstance(tables, dict):
            raise invalid_parameter("write_run", "tables", expected, tables)
        for name, frame in tables.items():
            reserved = name in _TABLES or name == "plan"
            if reserved or not isinstance(name, str) or not name.isidentifier():
                raise invalid_parameter("write_run", "tables", expected, name,
                                        message="must name each extra table by an identifier no run table has",
                                        hint="that name is reserved" if reserved else "not an identifier")
            if not isinstance(frame, pd.DataFrame):
                raise invalid_parameter("write_run", "tables", expected, frame,
                                        message=f"must map each name to a DataFrame; {name!r} is not one")
    check_bool("write_run", "report", report, optional=True)
    check_bool("write_run", "figures", figures, optional=True)
    check_bool("write_run", "merge", merge)
    if extra_manifest is not None and not isinstance(extra_manifest, dict):
        raise invalid_parameter("write_run", "extra_manifest", "a dict or None", extra_manifest)


def write_run(result, out: str | Path | None = None, *, root: str | Path = "results", source: str | Path | None = None,
              overrides=(), command: list[str] | None = None, tables: dict[str, pd.DataFrame] | None = None,
              report: bool | None = None, figures: bool | None = None, merge: bool = False,
              extra_manifest: dict | None = None) -> Path:
    """Write a simulation's result as a run folder (what ``cascade run`` writes).

    Parameters
    ----------
    result : SimulationResult
        What :func:`engine.run` returned.
    out : str or pathlib.Path, optional
        The folder; it must not exist, or be empty. Default ``<root>/<scenario>/<UTC
        timestamp>-<short hash>``.
    root : str or pathlib.Path
        Where the default folder goes.
    source, overrides, command
        The scenario file, the ``--set`` overrides and the command line, recorded in the manifest
        so that ``cascade rerun`` can repeat the run.
    tables : dict of str to DataFrame, optional
        Extra tables, stored as ``<name>.parquet`` (a sweep's ``{"sweep": frame}``).
    report, figures : bool, optional
        Write the HTML report and the figures; default: the scenario's ``outputs.report`` and
        ``outputs.figures``.
    merge : bool
        Write into an existing folder (a sweep's), the manifest last.
    extra_manifest : dict, optional
        Keys added to the manifest.

    Returns
    -------
    pathlib.Path
        The run folder: ``manifest.json`` (every file's SHA-256, written last), ``scenario.yaml``,
        ``metrics.json``, the Parquet tables and, if asked, ``report.html``.

    Raises
    ------
    InvalidParameterError
        A bad argument (``result`` not a :class:`~engine.result.SimulationResult`, ``out`` not a path).
    RunFolderError
        ``out`` holds files.

    Examples
    --------
    >>> import engine, tempfile
    >>> result = engine.run("scenarios/ci/ci-calm.yaml", n_paths=256)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = engine.write_run(result, f"{tmp}/calm", report=False)
    ...     sorted(p.name for p in folder.iterdir())[:3]
    ['fan.parquet', 'flows.parquet', 'manifest.json']
    """
    from ..scenario.canonical import dump_scenario

    _check_write_arguments(result, out, root, source, overrides, command, tables, report, figures, merge,
                           extra_manifest)
    scenario = result.scenario
    started = time.perf_counter()
    created = datetime.now(timezone.utc).replace(microsecond=0)
    canonical = dump_scenario(scenario)
    folder = run_folder_name(created, canonical, result.seed, result.n_paths)
    final = Path(out) if out is not None else _default_folder(Path(root), result.name, folder)
    if not merge and final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise RunFolderError(f"{final}: already exists and is not empty; give a new --out folder")
    report = scenario.outputs.report if report is None else report
    figures = scenario.outputs.figures if figures is None else figures

    stage = _Staging(final)
    try:
        d = stage.tmp
        timings = dict(result.timings)
        (d / "scenario.yaml").write_text(canonical)
        t0 = time.perf_counter()
        metrics = result.to_dict()
        timings["metrics_s"] = time.perf_counter() - t0
        (d / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
        metrics_rows(metrics).to_csv(d / "metrics.csv", index=False)
        frames = {"per_path": result.per_path, "shocks": shock_windows(scenario)}
        frames["flows"] = result.flows
        if result.kept_steps:
            frames["fan"] = result.fan
            frames["sample_paths"] = result.sample_paths.rename(columns=str)
        if "strategies" in metrics:
            frames["strategies"] = result.strategies
            pnl = result.strategy_paths["pnl"]
            frames["strategy_pnl"] = pd.DataFrame(pnl.T, columns=[str(i) for i in range(pnl.shape[0])],
                                                  index=pd.RangeIndex(pnl.shape[1], name="path"))
        frames.update(tables or {})
        for name, frame in frames.items():
            frame = frame.copy(deep=False)
            frame.attrs = {}  # pandas stores attrs in the Parquet metadata; ours are not JSON
            frame.to_parquet(d / f"{name}.parquet", compression="zstd")
        manifest = {
            "format": FORMAT,
            "kind": "run",
            "created_utc": created.isoformat().replace("+00:00", "Z"),
            "scenario": {"name": scenario.name, "description": scenario.summary_line,
                         "source": str(source) if source is not None else None,
                         "hash": scenario_hash(canonical), "fingerprint": result.compiled.fingerprint()},
            "seed": result.seed,
            "n_paths": result.n_paths,
            "n_steps": result.n_steps,
            "step_seconds": result.compiled.step_seconds,
            "start": str(result.timeline[0]),
            "overrides": list(overrides),
            "command": command if command is not None else None,
            "run_hash": run_hash(canonical, result.seed, result.n_paths),
            "strategies_not_evaluated": list(result.strategies.attrs.get("not_evaluated") or [])
            if "strategies" in metrics else [],
            **_provenance(),
            **(extra_manifest or {}),
        }
        if report or figures:
            run = Run(d, manifest={**manifest, "timings": {k: round(v, 4) for k, v in timings.items()},
                                   "files": _hash_files(d)}, _verify=False)  # the tables written so far
            if report:
                from .report import write_report

                t0 = time.perf_counter()
                write_report(run, d / "report.html")
                timings["report_s"] = time.perf_counter() - t0
            if figures:
                from .figures import write_figures

                t0 = time.perf_counter()
                write_figures(run, d / "figures")
                timings["figures_s"] = time.perf_counter() - t0
        timings["write_s"] = time.perf_counter() - started
        manifest["timings"] = {k: round(v, 4) for k, v in timings.items()}
        manifest["files"] = _hash_files(d)
        _write_json_atomic(d / "manifest.json", manifest)
        return stage.merge() if merge else stage.commit()
    except BaseException:
        stage.abort()
        raise


def _write_json_atomic(path: Path, obj) -> None:
    write_json(path, obj, indent=1)


def rewrite_report(run: Run, *, report: bool = True, figures: bool = True) -> list[Path]:
    """Regenerate ``report.html`` and ``figures/`` of an existing run folder from its tables
    (``cascade report``).

    Both are drawn into a hidden staging folder inside the run folder (``.report.partial-<pid>``)
    while the old ones stay in place; then the old ones are moved aside, the new ones moved in and
    the manifest replaced, with Ctrl-C held back for those few renames (a failure among them puts
    the old ones back). An interruption while drawing leaves the folder as it was. A ``figures``
    or ``report.html`` that is a link, or of the wrong kind, is refused (:class:`RunFolderError`):
    it is not followed, and not removed either, since it is not the engine's.
    """
    from .figures import write_figures
    from .report import write_report

    folder = run.path
    names = (["report.html"] if report else []) + (["figures"] if figures else [])
    for name in names:
        _check_replaceable(folder / name, want_dir=name == "figures")
    _sweep_dead_partials(folder, ".report.partial-*")
    stage = folder / f".report.partial-{os.getpid()}"
    if stage.exists() or stage.is_symlink():
        _remove(stage)
    stage.mkdir()
    try:
        if report:
            write_report(run, stage / "report.html")
        if figures:
            write_figures(run, stage / "figures")
        files = {k: v for k, v in run.manifest["files"].items()
                 if not ((report and k == "report.html") or (figures and k.startswith("figures/")))}
        files.update(_hash_files(stage))
        manifest = {**run.manifest, "files": dict(sorted(files.items()))}
        write_json(stage / "manifest.json", manifest, indent=1)
        _swap_in(folder, stage, names)
    finally:
        _remove(stage)
    run.manifest = manifest
    written = [folder / "report.html"] if report else []
    return written + (sorted((folder / "figures").glob("*.png")) if figures else [])


def _check_replaceable(path: Path, *, want_dir: bool) -> None:
    if path.is_symlink():
        raise RunFolderError(f"{path}: is a symbolic link; cascade report replaces it and neither follows nor "
                             "removes links: remove the link, then run cascade report again")
    if path.exists() and (not path.is_dir() if want_dir else not path.is_file()):
        found = "a folder" if path.is_dir() else "not a plain file" if not want_dir else "not a folder"
        raise RunFolderError(f"{path}: is {found}; expected {'a folder of figures' if want_dir else 'a file'}: "
                             "remove it, then run cascade report again")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _swap_in(folder: Path, stage: Path, names: list[str]) -> None:
    """Move ``stage/<name>`` over ``folder/<name>`` for each name, then ``stage/manifest.json`` over
    the manifest; the old entries go to ``stage/.old`` (removed with the stage). Ctrl-C waits until
    the renames are done; an error among them moves the old entries back."""
    old = stage / ".old"
    old.mkdir()
    moved, placed = [], []
    with _interrupts_held():
        try:
            for name in names:
                if (folder / name).exists():
                    os.rename(folder / name, old / name)
                    moved.append(name)
                os.rename(stage / name, folder / name)
                placed.append(name)
            os.replace(stage / "manifest.json", folder / "manifest.json")
        except BaseException:
            for name in placed:
                os.rename(folder / name, stage / name)
            for name in moved:
                os.rename(old / name, folder / name)
            raise
    fsync_dir(folder)


class _interrupts_held:
    """Hold SIGINT back for a few renames (main thread only); raise KeyboardInterrupt after them."""

    def __enter__(self):
        self.caught = False
        # main thread only; and a SIGINT ignored (a job started with nohup) stays ignored
        self.installed = (threading.current_thread() is threading.main_thread()
                          and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN)
        if self.installed:
            self.previous = signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, *_args) -> None:
        self.caught = True

    def __exit__(self, *exc) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, signal.default_int_handler if self.previous is None else self.previous)
        if self.caught and exc[0] is None:
            raise KeyboardInterrupt


# --------------------------------------------------------------------------- reading
_SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _ScenarioRecord(_Closed):
    name: str
    description: str | None = None
    source: str | None = None
    hash: _SHA256
    fingerprint: str


class _EngineRecord(_Closed):
    name: str
    version: str


class _GitRecord(_Closed):
    commit: str
    dirty: bool


class _BookRecord(_Closed):
    file: str
    sha256: str
    format: str
    via: str
    positions: int
    skipped: list[str]


class Manifest(BaseModel):
    """``manifest.json`` as :func:`write_run` writes it, checked before anything else is read.

    Known keys have their types (strict: ``"7"`` is not a seed); the sub-records written whole by
    the engine (``scenario``, ``engine``, ``git``, ``book``) take no other keys; ``dependencies``,
    ``machine`` and ``timings`` are open maps of simple values; other top-level keys are allowed,
    as :func:`write_run`'s ``extra_manifest`` adds them (``attribution``, ``sweep``).
    """

    model_config = ConfigDict(extra="allow", strict=True)

    format: Literal[1]
    kind: Literal["run", "sweep"]
    created_utc: str
    scenario: _ScenarioRecord
    seed: int
    n_paths: int = Field(gt=0)
    n_steps: int = Field(ge=0)
    step_seconds: float = Field(gt=0)
    start: str
    overrides: list[str]
    command: list[str] | None
    run_hash: _SHA256
    strategies_not_evaluated: list[str]
    engine: _EngineRecord
    dependencies: dict[str, str | None]
    git: _GitRecord | None
    machine: dict[str, str | int | None]
    timings: dict[str, float]
    files: dict[str, _SHA256]
    book: _BookRecord | None = None
    attribution: dict[str, Any] | None = None
    sweep: dict[str, Any] | None = None

    @field_validator("start", "created_utc")
    @classmethod
    def _a_time(cls, value: str) -> str:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"expected an ISO 8601 time such as 2026-02-05T00:00:00Z, got {value[:60]!r}") from None
        return value


_Num = float | None  # strict: an int is a number, a bool or a string is not; NaN is allowed


class _Interval(_Closed):
    se: _Num
    ci95_low: _Num
    ci95_high: _Num


class _Limit(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    metric: str
    max: _Num = None
    min: _Num = None
    value: _Num
    status: Literal["ok", "breached"]


class _Uncertainty(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    market: dict[str, _Interval] = {}
    strategies: dict[str, dict[str, _Interval]] = {}


class _GreekPoint(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    date: str
    level: str
    price: _Num


class _BookGreeks(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    units: dict[str, str]
    points: list[_GreekPoint]
    curves: list[dict[str, str | list[_Num]]]


class Metrics(BaseModel):
    """``metrics.json`` (the ``cascade run --json`` object), checked when a run folder's metrics
    are first read: what the report, ``cascade compare`` and ``cascade rerun`` take from it has the
    type they expect, so a hand-edited file is refused with the key, never a traceback. Sections a
    run did not have (``strategies``, ``book_greeks``, ``limits``) may be absent; other keys are
    allowed."""

    model_config = ConfigDict(extra="allow", strict=True)

    scenario: str
    n_paths: int = Field(gt=0)
    n_steps: int = Field(ge=0)
    seed: int
    market: dict[str, dict[str, _Num] | _Num]
    touch_directions: dict[str, Literal["up", "down"]] = {}
    strategies: dict[str, dict[str, _Num]] = {}
    book_greeks: _BookGreeks | None = None
    uncertainty: _Uncertainty = _Uncertainty()
    limits: list[_Limit] = []


def _schema_problems(file: Path, exc: ValidationError, missing: str = "every run manifest has it") -> str:
    lines = []
    for err in exc.errors(include_url=False):
        key = terminal_safe(format_path(tuple(err["loc"]))) or "(top level)"
        if err["type"] == "missing":
            text = f"missing ({missing})"
        elif err["type"] == "extra_forbidden":
            text = "unexpected key"
        else:
            found = err.get("input")
            shown = repr(found) if not isinstance(found, (dict, list)) else type(found).__name__
            text = f"{err['msg']}, got {terminal_safe(shown[:60])}"
        lines.append(f"{file}: {key}: {text}")
    return lines[0] if len(lines) == 1 else f"{len(lines)} problems:\n  " + "\n  ".join(lines)


def _name_problem(name: str) -> str | None:
    """Why ``name`` is not a plain relative path inside the folder (``None`` when it is)."""
    if not name or "\x00" in name or "\\" in name:
        return "expected a relative file name inside the run folder"
    if name.startswith("/"):
        return "an absolute path; expected a file name relative to the run folder"
    parts = name.split("/")
    if ".." in parts:
        return "leaves the run folder (a '..' component); expected a file name inside it"
    if any(p in ("", ".") for p in parts):
        return "expected a plain relative file name (no empty or '.' components)"
    return None


def _member(folder: Path, name: str) -> Path:
    """``folder/name`` once each step on the way is checked without following anything: folders,
    no symbolic link, a regular file at the end. Raises :class:`RunFolderError`."""
    where = f"{folder / 'manifest.json'}: files.{terminal_safe(name)}"
    problem = _name_problem(name)
    if problem:
        raise RunFolderError(f"{where}: {problem}")
    path, parts = folder, name.split("/")
    for i, part in enumerate(parts):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            raise RunFolderError(f"{folder / name}: listed in the manifest but missing") from None
        except OSError as exc:
            raise RunFolderError(f"{path}: cannot be read: {exc.strerror or exc}") from None
        if S_ISLNK(mode):
            raise RunFolderError(f"{where}: {path} is a symbolic link; a run folder holds plain files only, "
                                 "and links are not followed")
        if i < len(parts) - 1 and not S_ISDIR(mode):
            raise RunFolderError(f"{where}: {path} is not a folder")
        if i == len(parts) - 1 and not S_ISREG(mode):
            raise RunFolderError(f"{where}: {path} is {_kind(mode)}, not a regular file")
    return path


def _open_member(path: Path) -> int:
    """An open descriptor of ``path`` (checked by :func:`_member`), refused unless still a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise RunFolderError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not S_ISREG(mode):
        os.close(fd)
        raise RunFolderError(f"{path}: is {_kind(mode)}, not a regular file")
    return fd


def _member_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with os.fdopen(_open_member(path), "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _member_bytes(path: Path) -> bytes:
    with os.fdopen(_open_member(path), "rb") as fh:
        return fh.read()


class Run:
    """A run folder read back (:func:`load_run`): the manifest and the same tables the run had.

    ``per_path``, ``fan``, ``flows``, ``sample_paths``, ``shocks``, ``strategies``,
    ``strategy_pnl`` (``None`` when the run has none) and ``tables`` (every Parquet file the
    manifest lists, by name) are read lazily; ``metrics`` is ``metrics.json``; ``scenario`` is the
    resolved scenario. Only files the manifest lists are read; with ``verify`` (the default) each
    is served from the bytes whose SHA-256 matched the manifest.
    """

    def __init__(self, path: Path, manifest: dict | None = None, *, _verify: bool = True):
        self.path = Path(path)
        self.manifest = manifest if manifest is not None else _read_manifest(self.path, verify=_verify)
        self._verify = _verify

    def __repr__(self) -> str:
        m = self.manifest
        return f"<Run {m['scenario']['name']} seed {m['seed']}: {m['n_paths']} paths x {m['n_steps']} steps at {self.path}>"

    def _repr_html_(self) -> str:
        """What ``metrics.json`` holds, as tables, in a notebook."""
        from .notebook import run_html

        return run_html(self)

    def plot(self):
        """The report's price fan of this run: a ``plotly.graph_objects.Figure``. Raises
        ``ValueError`` when the run kept no per-step prices."""
        from .notebook import price_figure

        return price_figure(self)

    @property
    def name(self) -> str:
        return self.manifest["scenario"]["name"]

    def read_bytes(self, name: str) -> bytes | None:
        """The bytes of the listed file ``name`` (``None`` when the manifest does not list it)."""
        digest = (self.manifest.get("files") or {}).get(name)
        if digest is None:
            return None
        path = _member(self.path, name)
        data = _member_bytes(path)
        if self._verify and hashlib.sha256(data).hexdigest() != digest:
            raise RunFolderError(f"{path}: changed since the run was written (SHA-256 differs from the manifest)")
        return data

    def _required(self, name: str) -> bytes:
        data = self.read_bytes(name)
        if data is None:
            raise RunFolderError(f"{self.path / 'manifest.json'}: files: {name} is not listed (every run has it)")
        return data

    def _table(self, name: str) -> pd.DataFrame | None:
        data = self.read_bytes(f"{name}.parquet")
        if data is None:
            return None
        try:
            return pd.read_parquet(io.BytesIO(data))
        except Exception as exc:  # pyarrow raises several kinds for a damaged file
            raise RunFolderError(f"{self.path / (name + '.parquet')}: not a readable Parquet table "
                                 f"({type(exc).__name__}: {terminal_safe(str(exc))[:200]})") from None

    @cached_property
    def tables(self) -> dict[str, pd.DataFrame]:
        names = sorted(n[: -len(".parquet")] for n in (self.manifest.get("files") or {})
                       if n.endswith(".parquet") and "/" not in n)
        return {name: self._table(name) for name in names}

    per_path = cached_property(lambda self: self._table("per_path"))
    fan = cached_property(lambda self: self._table("fan"))
    flows = cached_property(lambda self: self._table("flows"))
    shocks = cached_property(lambda self: self._table("shocks"))
    strategies = cached_property(lambda self: self._table("strategies"))
    strategy_pnl = cached_property(lambda self: self._table("strategy_pnl"))

    @cached_property
    def sample_paths(self) -> pd.DataFrame | None:
        frame = self._table("sample_paths")
        if frame is not None:
            frame.columns = pd.RangeIndex(frame.shape[1], name="path")
        return frame

    @cached_property
    def metrics(self) -> dict:
        file = self.path / "metrics.json"
        try:
            metrics = json.loads(self._required("metrics.json"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            line = f"line {exc.lineno}: " if isinstance(exc, json.JSONDecodeError) else ""
            raise RunFolderError(f"{file}: {line}not valid JSON ({getattr(exc, 'msg', exc)})") from None
        if not isinstance(metrics, dict):
            raise RunFolderError(f"{file}: expected a JSON object, got a {type(metrics).__name__}")
        try:
            Metrics.model_validate(metrics)
        except ValidationError as exc:
            raise RunFolderError(_schema_problems(file, exc, "every run's metrics have it")) from None
        return metrics

    @cached_property
    def scenario_yaml(self) -> str:
        try:
            return self._required("scenario.yaml").decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise RunFolderError(f"{self.path / 'scenario.yaml'}: not UTF-8 text (byte {exc.start})") from None

    @cached_property
    def scenario(self):
        from ..scenario.loader import load_scenario, read_stored_document

        return load_scenario(read_stored_document(self.scenario_yaml, str(self.path / "scenario.yaml")))

    @property
    def seed(self) -> int:
        return int(self.manifest["seed"])

    @property
    def n_paths(self) -> int:
        return int(self.manifest["n_paths"])

    @property
    def levels(self) -> list[float]:
        return [float(x) for x in self.scenario.outputs.price_levels_usd]

    @property
    def bands(self) -> list[tuple[float, float, str]]:
        return [(float(b.low_usd), float(b.high_usd), b.label) for b in self.scenario.outputs.price_bands]


def _read_manifest(path: Path, *, verify: bool, regenerated=lambda name: False) -> dict:
    """The validated manifest of the run folder ``path``; ``verify`` checks every listed file's
    SHA-256 except those ``regenerated(name)`` says are about to be drawn again (``cascade report``)."""
    if not path.is_dir():
        raise RunFolderError(f"{path}: no such run folder")
    if ".partial" in path.name:
        raise RunFolderError(f"{path}: an unfinished run (interrupted while writing); delete it")
    file = path / "manifest.json"
    if not file.exists() and not file.is_symlink():
        raise RunFolderError(f"{path}: not a run folder (no manifest.json)")
    try:
        manifest = json.loads(_member_bytes(_member(path, "manifest.json")))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = f"line {exc.lineno}: " if isinstance(exc, json.JSONDecodeError) else ""
        raise RunFolderError(f"{file}: {line}not valid JSON ({getattr(exc, 'msg', exc)})") from None
    except RecursionError:
        raise RunFolderError(f"{file}: nested too deeply for a run manifest") from None
    fmt = manifest.get("format") if isinstance(manifest, dict) else None
    if fmt != FORMAT:
        raise RunFolderError(f"{file}: format {terminal_safe(repr(fmt))[:60]}, this engine reads format {FORMAT}")
    try:
        Manifest.model_validate(manifest)
    except ValidationError as exc:
        raise RunFolderError(_schema_problems(file, exc)) from None
    for name, digest in manifest["files"].items():
        problem = _name_problem(name)
        if problem or name == "manifest.json":
            raise RunFolderError(f"{file}: files.{terminal_safe(name)}: {problem or 'the manifest cannot list itself'}")
        if not verify or regenerated(name):
            continue
        target = _member(path, name)
        if _member_digest(target) != digest:
            raise RunFolderError(f"{target}: changed since the run was written (SHA-256 differs from the manifest)")
    return manifest


def load_run(path: str | Path, *, verify: bool = True) -> Run:
    """Read a run folder (``cascade run``'s output), treating it as untrusted.

    Parameters
    ----------
    path : str or Path
        The run folder.
    verify : bool
        Check every file against the manifest's SHA-256; the tables are then served from the
        bytes that matched.

    Returns
    -------
    Run
        Its manifest, metrics, scenario and tables (read lazily, only those the manifest lists).

    Raises
    ------
    RunFolderError
        A manifest that is missing, malformed or lists a path outside the folder, a file that
        does not match its hash, or one that is not a regular file.
    InvalidParameterError
        ``path`` not a path, or ``verify`` not a bool.

    Examples
    --------
    >>> import tempfile, engine
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = write_run(engine.run("scenarios/ci/ci-calm.yaml", n_paths=64), tmp.name + "/calm",
    ...                    report=False, figures=False)
    >>> run = load_run(folder)
    >>> run.n_paths, sorted(run.tables)[:2]
    (64, ['fan', 'flows'])
    >>> tmp.cleanup()
    """
    from .._params import check_bool, check_path

    path = check_path("load_run", "path", path)
    verify = check_bool("load_run", "verify", verify)
    return Run(path, _read_manifest(path, verify=verify), _verify=verify)


def load_run_for_report(path: str | Path, *, figures: bool = True) -> Run:
    """Read a run folder to draw its report again (``cascade report``): everything is verified
    except the report and (with ``figures``) the figures about to be replaced, so a folder whose
    report is missing or damaged but whose tables verify can be repaired."""
    def regenerated(name: str) -> bool:
        return name == "report.html" or (figures and name.startswith("figures/"))

    return Run(Path(path), _read_manifest(Path(path), verify=True, regenerated=regenerated), _verify=True)


def identical(a: Run, b: Run) -> list[str]:
    """Names of the result tables that differ between two runs (bit for bit); [] when identical."""
    differ = []
    for name in _TABLES:
        fa, fb = getattr(a, name), getattr(b, name)
        if fa is None and fb is None:
            continue
        if fa is None or fb is None or not _frames_equal(fa, fb):
            differ.append(name)
    if a.metrics != b.metrics:
        differ.append("metrics")
    return differ


def _frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    if a.shape != b.shape or not a.columns.equals(b.columns) or not a.index.equals(b.index):
        return False
    for col in a.columns:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if x.dtype.kind == "f":
            if not np.array_equal(x.view(np.uint8) if x.flags.c_contiguous else x.copy().view(np.uint8),
                                  y.view(np.uint8) if y.flags.c_contiguous else y.copy().view(np.uint8)):
                return False
        elif not np.array_equal(x, y):
            return False
    return True

