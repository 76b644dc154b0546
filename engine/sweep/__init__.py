"""Parameter sweeps: grids over strategy and scenario keys, run in chunks, streamed to disk, resumable.

A grid has two kinds of dimensions:

* **strategy parameters** (inline sweep specs, ``--grid strategies[put].strike_usd=...``, or
  ``sweep.parameters`` keys under ``strategies[...]``): they do not change the market, so each
  scenario point is simulated once and every parameter set is evaluated on the same paths;
* **scenario keys** (``sweep.parameters``, ``--grid shocks[etf_run].total_usd=...``): each point
  is simulated on its own, with the same seed, so the random draws are common to every point
  (common random numbers): differences between points are the parameters' effect, not noise.

``product`` combines every scenario point with every parameter set of every strategy; ``zip``
pairs the i-th scenario point with the i-th parameter set (equal lengths required).

The work is a list of items (scenario point, strategy, parameter set), the unhedged book first
at each point, cut into chunks of consecutive items. Chunks run through joblib (``loky`` by
default, ``threading``, ``sequential``, or Dask through joblib's dask backend). A sweep with one
scenario point (strategy parameters only) is simulated once, by the parent on every core, and
handed to the workers (:class:`.chunks.SharedRun`: memory-mapped files for loky, scattered once to each
Dask worker, the object itself in the parent's own process); with several points, each worker
simulates a point once and keeps it for the next chunk. The parent writes each finished chunk as
``chunks/chunk-NNNNNN.parquet`` (atomically, with its SHA-256 and the hash of its work in a JSON
sidecar) as it arrives, so memory does not grow with the grid and an interruption loses at most
the chunks in flight. Running the same sweep again finds the folder by the plan's hash and skips
the chunks whose files verify. At the end the folder also becomes a run folder (manifest last):
``sweep.parquet``, ``sweep_failures.parquet``, the base point's market tables and the report
with the sweep's heatmaps.

Every number is a function of (scenario, grid, seed) only: rows are sorted by their item index
and each is computed from its own point's simulation, whatever the backend, job count or chunk
size.

A sweep holds a lock on its folder while it runs (:class:`.folder.FolderLock`: ``fcntl.flock`` on
``.sweep.lock``, which records the pid, host, start time and command): a second sweep into the
same folder is refused with who holds it, a lock left by a dead process is taken over with a
note. A SIGTERM of the parent is handled as an interruption, which shuts the loky workers down;
after a ``kill -9``, each loky worker sees its parent gone and ends itself (:func:`.chunks._die_with_parent`).

The package, one job per module:

* :mod:`.grid`: ``--grid KEY=VALUES`` read from the command line and written into a scenario;
* :mod:`.plan`: the sweep's items (point, strategy, parameter set) and their chunks;
* :mod:`.chunks`: one chunk computed, in a worker (simulate its point once, evaluate its rows);
* :mod:`.folder`: the sweep folder: chunk files and their sidecars, the lock, resuming;
* :mod:`.executors`: the joblib backends (loky, threading, sequential, Dask) and their shutdown;
* :mod:`.run`: :func:`run_sweep`, which ties them together, and :class:`SweepResult`.
"""

from __future__ import annotations

from .executors import BACKENDS
from .grid import apply_grid, parse_grid
from .plan import SweepPlan, plan_sweep
from .run import SweepResult, run_sweep

__all__ = ["SweepPlan", "plan_sweep", "run_sweep", "parse_grid", "apply_grid", "SweepResult", "BACKENDS"]
