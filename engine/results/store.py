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
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cached_property
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import RunFolderError

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


# --------------------------------------------------------------------------- provenance
def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True,
                             timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _provenance() -> dict:
    from .. import __version__

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


def _sweep_dead_partials(parent: Path) -> None:
    """Remove the staging folders of killed writers (their process is gone); a live writer's stay."""
    for stale in parent.glob(".*.partial-*"):
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


def write_run(result, out: str | Path | None = None, *, root: str | Path = "results", source: str | Path | None = None,
              overrides=(), command: list[str] | None = None, tables: dict[str, pd.DataFrame] | None = None,
              report: bool | None = None, figures: bool | None = None, merge: bool = False,
              extra_manifest: dict | None = None) -> Path:
    """Write a :class:`~engine.result.SimulationResult` as a run folder and return its path.

    ``out`` is the folder (must not exist, or be empty); default ``<root>/<scenario>/<UTC
    timestamp>-<short hash>``. ``source`` and ``overrides`` are recorded in the manifest;
    ``tables`` are extra tables stored as ``<name>.parquet`` (e.g. ``{"sweep": frame}``).
    ``report``/``figures`` default to the scenario's ``outputs.report``/``outputs.figures``.
    ``merge`` writes into an existing folder (a sweep's), the manifest last; ``extra_manifest``
    adds keys to the manifest.
    """
    from ..scenario.canonical import dump_scenario

    scenario = result.scenario
    if scenario is None:
        raise ValueError("write_run needs a result of engine.run on a scenario (not a compiled one)")
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
        if result._raw["price"].shape[0]:
            frames["fan"] = result.fan
            frames["sample_paths"] = result.sample_paths.rename(columns=str)
        if "strategies" in metrics:
            frames["strategies"] = result.strategies
            pnl = result.strategy_paths["pnl"]
            frames["strategy_pnl"] = pd.DataFrame(pnl.T, columns=[str(i) for i in range(pnl.shape[0])],
                                                  index=pd.RangeIndex(pnl.shape[1], name="path"))
        for name, frame in (tables or {}).items():
            if name in _TABLES or not name.isidentifier() or name == "plan":
                raise ValueError(f"extra table name {name!r} is reserved or not an identifier")
            frames[name] = frame
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
                                   "files": {}}, _verify=False)
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
        manifest["files"] = {str(p.relative_to(d)): _sha256_file(p) for p in sorted(d.rglob("*")) if p.is_file()}
        _write_json_atomic(d / "manifest.json", manifest)
        return stage.merge() if merge else stage.commit()
    except BaseException:
        stage.abort()
        raise


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + f".partial-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


def rewrite_report(run: Run, *, report: bool = True, figures: bool = True) -> list[Path]:
    """Regenerate ``report.html`` and ``figures/`` of an existing run folder from its tables
    (``cascade report``): each file is replaced atomically, then the manifest's hashes."""
    from .figures import write_figures
    from .report import write_report

    written = []
    if report:
        tmp = run.path / f".report.html.partial-{os.getpid()}"
        try:
            write_report(run, tmp)
            os.replace(tmp, run.path / "report.html")
        finally:
            tmp.unlink(missing_ok=True)
        written.append(run.path / "report.html")
    if figures:
        tmp = run.path / f".figures.partial-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            write_figures(run, tmp)
            old = run.path / "figures"
            if old.exists():
                shutil.rmtree(old)
            os.rename(tmp, old)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        written += sorted((run.path / "figures").glob("*.png"))
    manifest = dict(run.manifest)
    manifest["files"] = {str(p.relative_to(run.path)): _sha256_file(p) for p in sorted(run.path.rglob("*"))
                         if p.is_file() and p.name != "manifest.json" and ".partial" not in p.name}
    _write_json_atomic(run.path / "manifest.json", manifest)
    run.manifest = manifest
    return written


# --------------------------------------------------------------------------- reading
class Run:
    """A run folder read back (:func:`load_run`): the manifest and the same tables the run had.

    ``per_path``, ``fan``, ``flows``, ``sample_paths``, ``shocks``, ``strategies``,
    ``strategy_pnl`` (``None`` when the run has none) and ``tables`` (every Parquet file by name)
    are read lazily; ``metrics`` is ``metrics.json``; ``scenario`` is the resolved scenario.
    """

    def __init__(self, path: Path, manifest: dict | None = None, *, _verify: bool = True):
        self.path = Path(path)
        self.manifest = manifest if manifest is not None else _read_manifest(self.path, verify=_verify)

    def __repr__(self) -> str:
        m = self.manifest
        return f"<Run {m['scenario']['name']} seed {m['seed']}: {m['n_paths']} paths x {m['n_steps']} steps at {self.path}>"

    @property
    def name(self) -> str:
        return self.manifest["scenario"]["name"]

    def _table(self, name: str) -> pd.DataFrame | None:
        file = self.path / f"{name}.parquet"
        return pd.read_parquet(file) if file.exists() else None

    @cached_property
    def tables(self) -> dict[str, pd.DataFrame]:
        return {p.stem: pd.read_parquet(p) for p in sorted(self.path.glob("*.parquet"))}

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
        return json.loads((self.path / "metrics.json").read_text())

    @cached_property
    def scenario_yaml(self) -> str:
        return (self.path / "scenario.yaml").read_text()

    @cached_property
    def scenario(self):
        from ..scenario.loader import load_scenario

        return load_scenario(self.path / "scenario.yaml")

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


def _read_manifest(path: Path, *, verify: bool) -> dict:
    if not path.is_dir():
        raise RunFolderError(f"{path}: no such run folder")
    if ".partial" in path.name:
        raise RunFolderError(f"{path}: an unfinished run (interrupted while writing); delete it")
    file = path / "manifest.json"
    if not file.exists():
        raise RunFolderError(f"{path}: not a run folder (no manifest.json)")
    try:
        manifest = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{file}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    fmt = manifest.get("format") if isinstance(manifest, dict) else None
    if fmt != FORMAT:
        raise RunFolderError(f"{file}: format {fmt!r}, this engine reads format {FORMAT}")
    if verify:
        for name, digest in manifest.get("files", {}).items():
            target = path / name
            if not target.exists():
                raise RunFolderError(f"{target}: listed in the manifest but missing")
            if _sha256_file(target) != digest:
                raise RunFolderError(f"{target}: changed since the run was written (SHA-256 differs from the manifest)")
    return manifest


def load_run(path: str | Path, *, verify: bool = True) -> Run:
    """Read a run folder. ``verify`` checks every file against the manifest's SHA-256."""
    return Run(Path(path), _read_manifest(Path(path), verify=verify))


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

