""":func:`run_sweep`: a sweep planned, its chunks run and streamed to its folder, the table and
the report written; :class:`SweepResult`."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .chunks import chunk_task, point_scenario
from .executors import BACKENDS, Executor, kill_loky_workers, terminate_interrupts
from .folder import chunk_finished, default_folder, FolderLock, load_chunks, prepare_folder, save_chunk
from .plan import plan_sweep, SweepPlan


def lowest_first(metric: str) -> bool:
    """Whether the lowest value of a metric is the best: losses, probabilities, drawdowns and
    everything else yes; PnL and ES99 saved per dollar of premium no."""
    return not metric.startswith(("pnl", "d_pnl", "effectiveness"))


@dataclass
class SweepResult:
    folder: Path
    plan: SweepPlan
    table: pd.DataFrame  # one row per item, sorted by ``row``
    failures: pd.DataFrame
    computed: int  # chunks computed in this call
    resumed: int  # chunks found finished on disk
    seconds: float

    def _repr_html_(self) -> str:
        """The sweep's size and its best rows by ES99, in a notebook."""
        from ..results.notebook import sweep_html

        return sweep_html(self)

    def plot(self, metric: str | None = None):
        """The report's heatmap of ``metric`` (default: the first it draws) over the sweep's first two
        parameters: a ``plotly.graph_objects.Figure``."""
        from ..results.notebook import sweep_figure

        return sweep_figure(self, metric)

    def top(self, n: int = 10, by: str = "es99", ascending: bool | None = None) -> pd.DataFrame:
        """The ``n`` best rows by a metric (losses and probabilities: lowest first)."""
        if by not in self.table.columns:
            raise KeyError(by)
        if ascending is None:
            ascending = lowest_first(by)
        return self.table.sort_values([by, "row"], ascending=[ascending, True]).head(n)


def _check_memory(scenario, plan: SweepPlan, backend: str, n_jobs: int, scheduler: str | None) -> None:
    """Refuse (:class:`ScenarioError`) a sweep whose simulations do not fit in this machine's memory:
    one point with its fans per worker process that simulates at once (one in all for a single
    point, simulated here and shared; a remote Dask scheduler's machines are not this one)."""
    from ..resources import check_memory

    if scheduler:
        return
    parallel = backend in ("loky", "dask") and n_jobs != 1 and len(plan.points) > 1
    workers = min(n_jobs, len(plan.points)) if parallel else 1
    check_memory(scenario, n_paths=plan.n_paths, keep_steps=True, workers=workers)


def _check_sweep_arguments(scenario, *, n_paths, seed, out, root, n_jobs, backend, chunk_size, scheduler, dask_local,
                           on_error, threads, progress, report) -> None:
    """:func:`run_sweep`'s arguments, each of its type and range (:class:`~engine.errors.InvalidParameterError`)."""
    from .._params import check_bool, check_choice, check_count, check_path, check_scenario, check_seed
    from ..errors import invalid_parameter

    f = "run_sweep"
    check_scenario(f, "scenario", scenario, path=False)
    check_count(f, "n_paths", n_paths, optional=True)
    check_seed(f, "seed", seed)
    check_path(f, "out", out, optional=True)
    check_path(f, "root", root)
    check_count(f, "n_jobs", n_jobs)
    check_choice(f, "backend", backend, BACKENDS)
    check_count(f, "chunk_size", chunk_size, low=0)
    if scheduler is not None and not (isinstance(scheduler, str) and scheduler.strip()):
        raise invalid_parameter(f, "scheduler", "a Dask scheduler's address (a str) or None", scheduler)
    check_count(f, "dask_local", dask_local, optional=True)
    check_choice(f, "on_error", on_error, ("raise", "collect"))
    check_count(f, "threads", threads, optional=True)
    check_bool(f, "progress", progress)
    check_bool(f, "report", report, optional=True)


def run_sweep(scenario, *, n_paths: int | None = None, seed: int | None = None, out: str | Path | None = None,
              root: str | Path = "results", n_jobs: int = 1, backend: str = "loky", chunk_size: int = 0,
              scheduler: str | None = None, dask_local: int | None = None, on_error: str = "raise",
              threads: int | None = None, progress: bool = False, report: bool | None = None) -> SweepResult:
    """Run (or resume) a sweep: every grid point of ``scenario``, every strategy parameter set.

    Parameters
    ----------
    scenario : Scenario
        A scenario with sweep specs (``strike_usd: {values: [...]}``, ``sweep.parameters``);
        :func:`apply_grid` adds ``--grid`` dimensions to one.
    n_paths, seed : int, optional
        Override the scenario's.
    out : str or Path, optional
        The sweep's folder (default: ``<root>/<name>/sweep-<plan hash>``); a folder of the same
        plan is resumed, its finished chunks kept.
    n_jobs, backend : int, str
        Parallel jobs and their joblib backend (``loky``, ``threading``, ``sequential``, ``dask``).
    chunk_size : int
        Rows per chunk (0: chosen for the job count).
    scheduler, dask_local : str, int, optional
        A Dask scheduler's address, or a local cluster of that many workers.
    on_error : str
        ``raise`` the first failure, or ``collect`` them (in ``failures``) and go on.
    threads : int, optional
        Kernel threads per job (default: 1 with several jobs, all cores with one).
    progress, report : bool
        A tqdm bar; write the HTML report (``None``: as the scenario's ``outputs.report`` says).

    Returns
    -------
    SweepResult
        Its folder, plan, tidy table (one row per scenario point, strategy and parameter set)
        and failures. The table is the same whatever ``n_jobs``, ``backend`` or ``chunk_size``.

    Raises
    ------
    ScenarioError
        A grid too large for memory, a bad sweep spec.
    RunFolderError
        ``out`` holds another sweep, or another process's sweep holds its lock.
    InvalidParameterError
        A bad argument (a ``ScenarioError`` and a ``TypeError``): an unknown ``backend`` or
        ``on_error``, ``n_jobs`` below 1, ``chunk_size`` below 0, ...

    Examples
    --------
    >>> import tempfile, engine
    >>> from engine.sweep import apply_grid, run_sweep
    >>> scenario = apply_grid(engine.load_scenario("scenarios/feb-2026-deleveraging.yaml", ["n_paths=64"]),
    ...                       ["strategies[put_60k].strike_usd=55k,60k"])
    >>> tmp = tempfile.TemporaryDirectory()
    >>> sweep = run_sweep(scenario, root=tmp.name, report=False)
    >>> sorted(set(sweep.table["param.strike_usd"].dropna()))
    [55000.0, 60000.0]
    >>> tmp.cleanup()
    """
    _check_sweep_arguments(scenario, n_paths=n_paths, seed=seed, out=out, root=root, n_jobs=n_jobs, backend=backend,
                           chunk_size=chunk_size, scheduler=scheduler, dask_local=dask_local, on_error=on_error,
                           threads=threads, progress=progress, report=report)
    started = time.perf_counter()
    workers = dask_local or n_jobs
    plan = plan_sweep(scenario, n_paths=n_paths, seed=seed, chunk_size=chunk_size)
    folder = Path(out) if out is not None else default_folder(plan, root)
    _check_memory(scenario, plan, backend, n_jobs, scheduler)  # before the folder exists
    with FolderLock(folder), terminate_interrupts():
        try:
            return _run_locked(plan, folder, started=started, workers=workers, n_jobs=n_jobs, backend=backend,
                               scheduler=scheduler, dask_local=dask_local, on_error=on_error, threads=threads,
                               progress=progress, report=report)
        except BaseException:  # interrupted (Ctrl-C, SIGTERM) or failed: no worker outlives the sweep
            if backend == "loky":
                kill_loky_workers()
            raise


def _run_locked(plan: SweepPlan, folder: Path, *, started: float, workers: int, n_jobs: int, backend: str,
                scheduler: str | None, dask_local: int | None, on_error: str, threads: int | None, progress: bool,
                report: bool | None) -> SweepResult:
    """:func:`run_sweep` in its folder, once the folder is locked."""
    prepare_folder(plan, folder)
    todo = [k for k in range(plan.n_chunks) if not chunk_finished(plan, folder, k)]
    resumed = plan.n_chunks - len(todo)
    if threads is None:
        threads = (os.cpu_count() or 1) if workers == 1 and not scheduler else 1
    bar = None
    if progress:
        from tqdm import tqdm

        pending = set(todo)
        bar = tqdm(total=len(plan.items), initial=sum(len(plan.chunks[k]) for k in range(plan.n_chunks)
                                                      if k not in pending),
                   unit="row", desc="sweep", dynamic_ncols=True)
    executor = Executor(backend, n_jobs, scheduler, dask_local)
    base = warm = None
    for stale in folder.glob(".shared-*"):  # left by a sweep killed here before
        shutil.rmtree(stale, ignore_errors=True)
    tmp = None
    try:
        shared = None
        if todo and len(plan.points) == 1:  # simulate once, here on every core, not once per worker
            try:
                base = _base_run(plan)
            except Exception:  # the workers meet the error again and raise it or collect it per row
                base = None
            if base is not None:
                # in the sweep's folder, so that files a kill leaves behind are found by the next run
                tmp = tempfile.TemporaryDirectory(prefix=".shared-", dir=folder)
                shared = executor.share(base, Path(tmp.name))
                # the run folder's tables of the base point, while the workers compute: its fan (the
                # quantiles of every step) is a second of a 10,000-path point, otherwise spent at the end
                warm = threading.Thread(target=_base_tables, args=(base,), name="sweep-base-tables", daemon=True)
                warm.start()
        tasks = [(plan, k, on_error, threads, shared, os.getpid()) for k in todo]
        scatter = [shared] if shared is not None else []
        for k, rows, failures, seconds in executor.map(chunk_task, tasks, scatter=scatter):
            save_chunk(plan, folder, k, rows, failures, seconds)
            if bar is not None:
                bar.update(len(plan.chunks[k]))
    finally:
        executor.close()
        if bar is not None:
            bar.close()
        if warm is not None:
            warm.join()
        if tmp is not None:
            tmp.cleanup()
    table, failures = load_chunks(plan, folder)
    result = SweepResult(folder, plan, table, failures, len(todo), resumed, time.perf_counter() - started)
    _finish(result, report=report, base=base)
    result.seconds = time.perf_counter() - started
    return result


def _base_tables(base) -> None:
    """Compute (and cache on ``base``) what the run folder writes of the base point; an error
    here is met again, and raised, when the folder is written."""
    try:
        base.per_path, base.flows, base.fan, base.sample_paths  # noqa: B018 (cached properties)
    except Exception:
        pass


def _base_run(plan: SweepPlan):
    """The first scenario point's simulation, on every core (per-step values kept: the strategies
    and the fan need them)."""
    from ..simulate import run

    return run(point_scenario(plan, 0), n_paths=plan.n_paths, seed=plan.seed, n_jobs=os.cpu_count() or 1,
               keep_steps=True)


def _finish(result: SweepResult, report: bool | None, base=None) -> None:
    """Make the sweep folder a run folder: the base point's market, the sweep table, the report.
    The manifest is written last (and again after a resume that computed more chunks). ``base``:
    the first point's simulation if the caller has it (the same numbers as :func:`_base_run`)."""
    from ..results.store import write_run

    plan, folder = result.plan, result.folder
    if (folder / "manifest.json").exists() and result.computed == 0:
        return
    if base is None:
        base = _base_run(plan)
    failures = result.failures.drop(columns=["traceback"]) if not result.failures.empty else result.failures
    write_run(base, folder, source=None, merge=True, report=report,
              tables={"sweep": result.table, "sweep_failures": failures.astype({"row": "int64"})
                      if not failures.empty else failures},
              extra_manifest={"kind": "sweep", "sweep": {"plan": plan.hash, "rows": len(result.table),
                                                         "failures": len(result.failures),
                                                         "chunks": plan.n_chunks, "chunk_size": plan.chunk_size,
                                                         "mode": plan.mode, "base_point": plan.points[0]}})
