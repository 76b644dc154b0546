"""prepare -> kernel -> wrap: ``engine.run`` turns a scenario into a :class:`SimulationResult`.

Preparation tabulates, once per scenario, what depends only on (step, price): the dealers' hedge
of the option book on a (step x log-price) grid (Black-Scholes deltas on the step's vol surface),
the Student-t table and the per-step drivers (impact coefficients, drift, decay). The kernel (:mod:`engine.nb.kernel`)
then runs paths in fixed blocks of ``RNG_BLOCK_SIZE``: chunks are whole blocks, so the numbers do
not depend on ``n_jobs`` or ``chunk_paths``.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .compile.compiled import CompiledScenario
from .compile.layout import (DEALER_GRID, IV_FLOOR, IV_H_POINTS, IV_LEVEL_INV, IV_LEVEL_LO, IV_TENOR, N_IV_LEVELS, N_STEP_SUMS,
                             OPTION_PUT, Venue)
from .errors import ScenarioError

__all__ = ["run", "run_prepared", "prepare", "Prepared", "student_t_table", "dealer_hedge_table", "DEALER_GRID",
           "iv_forward_table", "iv_levels", "N_IV_LEVELS", "IV_TENOR", "IV_FLOOR"]

TAIL_TABLE = 4097  # quantiles of the unit-variance Student-t
NORMAL_TABLE = 4097  # quantiles of the standard normal
TASK_PATHS = 64  # paths per parallel task (a divisor of the RNG block): finer tasks, less idle at the end
CHUNK_SCRATCH_BYTES = 64 * 1024**2  # per-task flow sums of one chunk stay within this


def student_t_table(dof: float, n: int = TAIL_TABLE) -> tuple[np.ndarray, float, float]:
    """Quantiles of the unit-variance Student-t with ``dof`` degrees of freedom (``dof > 2``).

    Returns ``(table, tail_power, tail_scale)`` for :func:`engine.nb.rng.t_table_ppf_nb`: the table
    holds the quantiles at ``u = k/(n-1)``; the first and last cells are the exact power-law tails
    ``-+tail_scale * u^(-1/dof)`` (``u`` measured from the nearer end), continuous with the table.
    The table is rescaled so that the distribution it defines has variance 1 exactly.
    """
    from scipy.special import stdtrit  # what scipy.stats.t.ppf calls, without importing scipy.stats

    if dof <= 0:
        return np.zeros(2), 0.0, 0.0  # Gaussian: the kernel uses the normal table instead
    u = np.arange(n) / (n - 1)
    with np.errstate(divide="ignore"):
        table = stdtrit(dof, u)
    table[0], table[-1] = -table[-2], table[-2]  # the end values are never read (power law there)
    cell = 1.0 / (n - 1)
    power = 1.0 / dof
    scale = table[n - 2] * cell**power
    # variance of the piecewise-linear body (exact for linear segments) plus both tails' integrals
    a, b = table[1:-2], table[2:-1]
    body = ((a * a + a * b + b * b) / 3.0).sum() * cell
    tails = 2.0 * scale**2 * cell ** (1.0 - 2.0 * power) / (1.0 - 2.0 * power)
    norm = math.sqrt(body + tails)
    return table / norm, power, scale / norm


def normal_table(n: int = NORMAL_TABLE) -> np.ndarray:
    """Standard normal quantiles at ``u = k/(n-1)`` (the ends, +-inf, are never read: the kernel
    uses Acklam's approximation in the first and last cells)."""
    from scipy.special import ndtri

    u = np.arange(n) / (n - 1)
    table = ndtri(u)
    table[0], table[-1] = table[1], table[-2]
    return table


def dealer_hedge_table(compiled: CompiledScenario) -> tuple[np.ndarray, float, float]:
    """Dealers' hedge in BTC by step, ATM implied vol and log price: ``sum_k share * OI_k * delta_k``.

    Dealers are short the share DEALER_SHORT_SHARE of the open interest and hold its delta:
    short BTC against puts, long against calls, so they sell into a fall (short gamma). Implied
    vol: the step's :class:`engine.options.surface.VolSurface` (RISK_REVERSAL_25D, TERM_SLOPE, the
    butterfly, the risk reversal moved by ``skew_beta`` times the log return from the start to the
    grid price) with its ATM level at each of ``N_IV_LEVELS`` log-spaced levels from ``IV_LEVEL_LO``
    to ``IV_LEVEL_HI``: the path's ATM IV (:data:`IV_TENOR`, the kernel's ``iv``) picks between them
    (:func:`engine.nb.kernel.dealer_hedge_nb`). The spot as the forward (no rates). The vols and
    deltas are :mod:`engine.nb.bs`'s, the strategy kernels' own (:func:`engine.nb.bs.dealer_delta_table_nb`).
    Returns ``(table[n_steps, N_IV_LEVELS, DEALER_GRID], log-price of column 0, columns per unit log price)``.
    """
    spot = compiled.param("SPOT0")
    span = math.log(max(compiled.book_bankruptcy_usd[-1] / spot, 2.0))
    lo = math.log(spot) - span
    step = 2.0 * span / (DEALER_GRID - 1)
    n_steps = compiled.n_steps
    opts = compiled.options
    table = np.zeros((n_steps, N_IV_LEVELS, DEALER_GRID))
    if opts.kind.size == 0:
        return table, lo, 1.0 / step
    from .nb.bs import dealer_delta_table_nb
    from .nb.config import before_call

    def f64(a):
        return np.ascontiguousarray(a, dtype=np.float64)

    share = compiled.step("DEALER_SHORT_SHARE")
    before_call(dealer_delta_table_nb, "the dealers' hedge table")
    dealer_delta_table_nb(f64(lo + step * np.arange(DEALER_GRID)), math.log(spot), f64(opts.strike_usd),
                          np.ascontiguousarray(opts.kind != OPTION_PUT), f64(opts.expiry_years),
                          f64(share[:, None] * opts.open_interest_btc),
                          f64(np.arange(n_steps) * compiled.param("DT_YEARS")), f64(compiled.step("RISK_REVERSAL_25D")),
                          f64(compiled.step("TERM_SLOPE")), f64(iv_levels()), compiled.param("SURFACE_BF25"),
                          compiled.param("SURFACE_SKEW_BETA"), IV_TENOR, IV_FLOOR, table)
    return table, lo, 1.0 / step


def iv_levels() -> np.ndarray:
    """The dealer table's ATM IV levels: ``exp(ln IV_LEVEL_LO + k / IV_LEVEL_INV)``."""
    return np.exp(math.log(IV_LEVEL_LO) + np.arange(N_IV_LEVELS) / IV_LEVEL_INV)


def iv_forward_table(compiled: CompiledScenario) -> tuple[np.ndarray, float, float]:
    """The forward-variance factor ``F(h)``: the conditional variance multiplier ``m^2 = exp(h -
    s^2/2)`` expected over the next :data:`IV_TENOR` years given the log-variance deviation ``h``
    today, averaged, ``F(h) = 1/T int_0^T exp(h e^{-k u} - s^2 e^{-2 k u} / 2) du`` (``h`` an
    Ornstein-Uhlenbeck process with stationary deviation ``s`` = CLUSTER_STDEV and mean reversion
    ``k = -ln(CLUSTER_PERSIST) / DT_YEARS`` per year), at ``IV_H_POINTS`` values of ``h`` over
    ``[-6s, 6s]`` (all ones over ``[-1, 1]`` when ``s = 0``, or when ``h`` forgets itself within a step).
    Returns ``(table, h of point 0, points per unit h)``; the kernel reads it linearly, clamped."""
    s = compiled.param("CLUSTER_STDEV")
    persist = compiled.param("CLUSTER_PERSIST")
    if s <= 0.0 or not 0.0 < persist < 1.0:  # no clustering, or h forgets itself within a step: F = 1
        return np.ones(IV_H_POINTS), -1.0, (IV_H_POINTS - 1) / 2.0
    kappa = -math.log(persist) / compiled.param("DT_YEARS")
    h = np.linspace(-6.0 * s, 6.0 * s, IV_H_POINTS)
    # w = kappa*u: F = 1 + 1/(kappa T) int_0^{kappa T} [exp(h e^-w - s^2 e^-2w / 2) - 1] dw; the bracket
    # decays like e^-w, so it is integrated on panels [0, 1/2], [1/2, 1], [1, 2], ... up to
    # min(kappa T, 48) (beyond, below 1e-19 of its start), 32 Gauss-Legendre nodes each
    end = min(kappa * IV_TENOR, 48.0)
    edges = [0.0] + [min(0.5 * 2.0**i, end) for i in range(8) if 0.5 * 2.0**i < end] + [end]
    nodes, weights = np.polynomial.legendre.leggauss(32)
    total = np.zeros(IV_H_POINTS)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        w = a + 0.5 * (b - a) * (nodes + 1.0)
        decay = np.exp(-w)
        total += 0.5 * (b - a) * (weights[None, :] * np.expm1(h[:, None] * decay[None, :]
                                                              - 0.5 * s * s * decay[None, :] ** 2)).sum(axis=1)
    table = 1.0 + total / (kappa * IV_TENOR)
    return table, float(h[0]), (IV_H_POINTS - 1) / (12.0 * s)


@dataclass(frozen=True)
class Prepared:
    """What the kernel reads besides the compiled arrays; built once per compiled scenario."""

    compiled: CompiledScenario
    dealer_table: np.ndarray
    dealer_lo: float
    dealer_inv: float
    tail_table: np.ndarray
    tail_power: float
    tail_scale: float
    normal_table: np.ndarray
    drivers: np.ndarray  # (n_steps, N_DRIVERS): see engine.compile.layout.DRIVER_FIELDS
    iv_table: np.ndarray  # the forward-variance factor F(h) (iv_forward_table)
    iv_h_lo: float
    iv_h_inv: float
    venue_share: np.ndarray  # each venue's share of the book at the start (new positions follow it)
    rows: np.ndarray  # compiled.book_rows with Row.SHARE: the venue's share on its smallest class's row
    steps: np.ndarray  # (n_steps, N_STEP_FIELDS): one step's drivers side by side in memory
    venue_steps: np.ndarray  # (n_steps, n_venues, N_VENUE_FIELDS)
    grid: np.ndarray  # the bankruptcy grid + [log(grid[0]), cells per unit log price]
    # empty for a simulation; replaying an observed path (engine.history.replay), the log price at the end
    # of every step, with the impact coefficients in ``drivers`` set to 0
    replay: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def new_leverage(self) -> np.ndarray:
        """(3, N_NEW_NODES): the leverage nodes of new longs, new shorts and momentum positions."""
        return self.compiled.new_leverage


def slow_depth(d: np.ndarray, a: float) -> np.ndarray:
    """The book's slow depth averaged over each step: ``s`` relaxes toward the step's depth
    multiplier ``d[t]`` with the time constant of ``market.impact.depth_memory`` (``a = exp(-dt /
    memory)`` per step), from ``s = 1`` (the market's normal depth) before the horizon. Within a
    step ``d`` is constant, so the step's average is exact: ``d + (s - d)(1 - a)/(-ln a)``, and
    ``s`` ends the step at ``d + (s - d) a``. ``a = 0``: the momentary depth; ``a = 1``: always 1.

    A vacuum of quotes much shorter than the memory barely moves ``s`` (a wick that heals); books
    thin for much longer than it raise the permanent impact in proportion."""
    if a >= 1.0:
        return np.ones(len(d))
    if a <= 0.0:
        return np.asarray(d, dtype=np.float64).copy()
    g = (1.0 - a) / -math.log(a)
    out = np.empty(len(d))
    s = 1.0
    for t, x in enumerate(d):  # a few thousand steps at most: once per compiled scenario
        out[t] = x + (s - x) * g
        s = x + (s - x) * a
    return out


def impact_drivers(compiled: CompiledScenario) -> dict[str, np.ndarray]:
    """The impact coefficients per step (see :data:`engine.compile.layout.DRIVER_FIELDS`)."""
    from .compile.layout import IMPACT_LINEAR, IMPACT_SQRT

    model = int(compiled.param("IMPACT_MODEL"))
    d = compiled.step("DEPTH_MULT")
    depth = compiled.param("DEPTH_USD_PER_PCT") * d * 100.0
    sqrt_coef = compiled.param("SQRT_COEFFICIENT") * compiled.param("SIGMA_DAY") / np.sqrt(
        compiled.param("DAILY_VOLUME_USD") * d)
    decay = compiled.param("RESILIENCE_DECAY") ** compiled.step("RESILIENCE_MULT")
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(decay < 1.0, (1.0 - decay) / -np.log(decay), 1.0)
    return {
        "SQRT_COEF": sqrt_coef if model != IMPACT_LINEAR else np.zeros_like(d),
        "LINEAR_COEF": 1.0 / depth if model != IMPACT_SQRT else np.zeros_like(d),
        "PERMANENT_COEF": compiled.param("PERMANENT_FRACTION") / (
            compiled.param("DEPTH_USD_PER_PCT") * 100.0 * slow_depth(d, compiled.param("DEPTH_MEMORY_DECAY"))),
        "DECAY": decay,
        "GAIN": gain,
    }


def bridge_reach(bridge: np.ndarray) -> np.ndarray:
    """``Driver.REACH`` from ``Driver.BRIDGE``: no bridge draw takes a step's path below its lower
    end times this (nor above its upper end divided by it); 1 where there is no excursion."""
    from .nb.kernel import BRIDGE_REACH

    return np.exp(-np.sqrt(BRIDGE_REACH / bridge))


def prepare(compiled: CompiledScenario) -> Prepared:
    from .compile.layout import N_DRIVERS, Driver

    table, lo, inv = dealer_hedge_table(compiled)
    tail, power, scale = student_t_table(compiled.param("TAIL_DOF"))
    from .compile.layout import Row

    row_venue = compiled.book_rows[:, Row.VENUE].astype(np.int64)
    sizes = np.bincount(row_venue, compiled.book_long_btc.sum(axis=1) + compiled.book_short_btc.sum(axis=1),
                        minlength=compiled.n_venues)
    share = sizes / sizes.sum() if sizes.sum() > 0 else np.full(sizes.size, 1.0 / sizes.size)
    rows = compiled.book_rows.copy()
    rows[:, Row.SHARE] = np.where(rows[:, Row.DOWN] < 0, share[row_venue], 0.0)
    drivers = np.empty((compiled.n_steps, N_DRIVERS))
    for name, values in impact_drivers(compiled).items():
        drivers[:, getattr(Driver, name)] = values
    beta = compiled.step("MACRO_BETA")
    drivers[:, Driver.DRIFT] = compiled.step("DRIFT") + beta * compiled.step("MACRO_DRIFT") + compiled.step("CROSS_ASSET_RETURN")
    drivers[:, Driver.MACRO_VOL] = beta * compiled.step("MACRO_VOL")
    variance = compiled.step("VOL") ** 2 + drivers[:, Driver.MACRO_VOL] ** 2
    with np.errstate(divide="ignore"):
        drivers[:, Driver.BRIDGE] = np.where(variance > 0.0, 2.0 / variance, np.inf)
    drivers[:, Driver.REACH] = bridge_reach(drivers[:, Driver.BRIDGE])
    drivers[:, Driver.REACH_LOG] = np.log(drivers[:, Driver.REACH])
    rare = ((compiled.step("SCHEDULED_JUMP") != 0) | (compiled.step("SCHEDULED_JUMP_SPREAD") != 0)
            | (compiled.step("NEW_SHORT_NOTIONAL_USD") > 0) | (compiled.step("DIFFICULTY_ADJUST") != 0)
            | (compiled.venue_steps[Venue.MARGIN_CHANGE] != 0).any(axis=0))
    drivers[:, Driver.RARE] = rare
    dt_years = compiled.param("DT_YEARS")
    drivers[:, Driver.IV_DIFFUSION_VAR] = variance / dt_years
    drivers[:, Driver.IV_JUMP_VAR] = compiled.step("JUMP_PROB") * (
        compiled.param("JUMP_MEAN") ** 2 + compiled.param("JUMP_STDEV") ** 2) / dt_years
    atm = compiled.step("ATM_IV")
    drivers[:, Driver.IV_SHIFT] = atm - atm[0]
    iv_table, iv_h_lo, iv_h_inv = iv_forward_table(compiled)
    g = compiled.book_bankruptcy_usd
    grid = np.concatenate([g, [math.log(g[0]), (g.size - 1) / math.log(g[-1] / g[0])]])
    return Prepared(compiled, table, lo, inv, tail, power, scale, normal_table(), drivers, iv_table, iv_h_lo, iv_h_inv,
                    share, rows,
                    np.ascontiguousarray(compiled.steps.T), np.ascontiguousarray(compiled.venue_steps.transpose(2, 1, 0)),
                    grid)


@contextlib.contextmanager
def _threads(n_jobs: int):
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n_jobs, numba.config.NUMBA_NUM_THREADS)))
    # threads take blocks one at a time: paths that cascade take longer, a static split idles a core
    old_chunk = numba.set_parallel_chunksize(1)
    try:
        yield
    finally:
        numba.set_parallel_chunksize(old_chunk)
        numba.set_num_threads(old)


def _task_paths(block: int) -> int:
    """Paths per parallel task: a divisor of the RNG block, so tasks never straddle blocks."""
    return math.gcd(block, TASK_PATHS)


def _run_chunk(prep: Prepared, first: int, count: int, keep_steps: bool, out: dict) -> None:
    from .nb.config import before_call
    from .nb.kernel import N_STRESS, simulate_nb

    c = prep.compiled
    n_steps = c.n_steps
    block = c.rng.block_size
    task = _task_paths(block)
    per_block = block // task
    n_blocks = (count + block - 1) // block
    rows = slice(first, first + count)
    tasks = np.zeros((n_blocks * per_block, n_steps, out["flows"].shape[2]))
    if keep_steps:
        views = [out[k][rows] for k in ("price", "open_interest", "liq_long", "liq_short", "funding", "atm_iv")]
    else:
        views = [np.empty((1, n_steps), dtype=np.float32) for _ in range(6)]
    before_call(simulate_nb, "the market kernel")
    simulate_nb(prep.steps, prep.venue_steps, c.params, prep.grid, c.book_long_btc, c.book_short_btc,
                c.book_long_entry_usd, c.book_short_entry_usd, prep.rows, c.new_leverage, prep.dealer_table, prep.dealer_lo, prep.dealer_inv,
                prep.iv_table, prep.iv_h_lo, prep.iv_h_inv, prep.tail_table,
                prep.tail_power, prep.tail_scale, prep.normal_table, prep.drivers, c.rng.block_seeds, block, task, first,
                out["summary"][rows], *views, tasks, keep_steps, prep.replay,
                out["stress"] if prep.replay.size else np.empty((0, N_STRESS)))
    tasks = tasks.reshape(n_blocks, per_block, n_steps, tasks.shape[2])
    flows = tasks[:, 0].copy()
    for j in range(1, per_block):  # the tasks of a block in order: the same sums whatever ran them
        flows += tasks[:, j]
    out["flows"][first // block: first // block + n_blocks] = flows


def run(scenario, n_paths: int | None = None, seed: int | None = None, n_jobs: int = 1, *,
        overrides=(), chunk_paths: int | None = None, keep_steps: bool = True, progress: bool = False):
    """Simulate a scenario's Monte Carlo paths.

    Parameters
    ----------
    scenario : str, Path, Scenario or CompiledScenario
        A scenario file or library name, a loaded scenario, or a compiled one.
    n_paths, seed : int, optional
        Override the scenario's.
    n_jobs : int
        Kernel threads. No number depends on it, nor on ``chunk_paths``.
    overrides : sequence of str
        ``key.path=value`` strings, as ``cascade run --set`` takes them (not for a compiled
        scenario, whose arrays are fixed).
    chunk_paths : int, optional
        Paths per chunk (rounded to whole random-number blocks): the progress bar's granularity.
    keep_steps : bool
        Keep the per-step arrays (the fans, sample paths and hedges need them); ``False`` keeps
        the per-path summaries only.
    progress : bool
        A tqdm bar on stderr.

    Returns
    -------
    SimulationResult
        Per-path summaries, fans, flows, probabilities and (with strategies) the hedge table.

    Raises
    ------
    ScenarioError
        A scenario that cannot be used, or a run larger than this machine's memory.
    InvalidParameterError
        A bad argument (a ``ScenarioError`` and a ``TypeError``): ``n_jobs`` below 1, ``overrides``
        not a list of strings, or ``n_paths``, ``seed`` or ``overrides`` with a compiled scenario.

    Examples
    --------
    >>> result = run("scenarios/ci/ci-calm.yaml", n_paths=256, seed=1)
    >>> result.n_paths, result.n_steps
    (256, 72)
    >>> result.per_path.equals(run("scenarios/ci/ci-calm.yaml", n_paths=256, seed=1, n_jobs=2).per_path)
    True
    """
    from ._params import check_bool, check_count, check_overrides, check_scenario, check_seed
    from .compile.compiler import compile_scenario
    from .errors import invalid_parameter

    started = time.perf_counter()
    check_scenario("run", "scenario", scenario, compiled=True)
    n_paths = check_count("run", "n_paths", n_paths, optional=True)
    seed = check_seed("run", "seed", seed)
    n_jobs = check_count("run", "n_jobs", n_jobs)
    overrides = check_overrides("run", overrides)
    chunk_paths = check_count("run", "chunk_paths", chunk_paths, optional=True)
    keep_steps = check_bool("run", "keep_steps", keep_steps)
    progress = check_bool("run", "progress", progress)
    if isinstance(scenario, CompiledScenario):
        compiled, spec = scenario, None
        for name, value in (("n_paths", n_paths), ("seed", seed), ("overrides", overrides or None)):
            if value is not None:
                raise invalid_parameter("run", name, "None with a compiled scenario, whose arrays are fixed", value,
                                        hint="apply n_paths, seed and overrides before compile_scenario")
    else:
        from .resources import check_memory
        from .scenario.loader import load_scenario, with_overrides

        if isinstance(scenario, (str, Path)):
            scenario = load_scenario(scenario, overrides)
        else:
            scenario = with_overrides(scenario, overrides)
        spec = scenario
        check_memory(scenario, n_paths=n_paths, keep_steps=keep_steps, flag=None)  # a located error, not a MemoryError
        compiled = compile_scenario(scenario, n_paths=n_paths, seed=seed)
    return run_prepared(prepare(compiled), spec, n_jobs, chunk_paths=chunk_paths, keep_steps=keep_steps,
                        progress=progress, started=started)


def run_prepared(prep: Prepared, scenario=None, n_jobs: int = 1, *, chunk_paths: int | None = None,
                 keep_steps: bool = True, progress: bool = False, started: float | None = None):
    """:func:`run` from a :class:`Prepared` (its ``compiled.n_paths`` paths): for callers that change
    what the kernel reads (:mod:`engine.history.replay`). ``scenario`` is kept on the result."""
    from .nb.kernel import N_STRESS, N_SUMMARY
    from .result import SimulationResult

    started = time.perf_counter() if started is None else started
    compiled = prep.compiled
    n, n_steps, block = compiled.n_paths, compiled.n_steps, compiled.rng.block_size
    if prep.replay.shape not in ((0,), (n_steps,)):
        raise ValueError(f"prep.replay: expected no price or one per step ({n_steps}), got shape {prep.replay.shape}")
    step_shape = (n, n_steps) if keep_steps else (0, n_steps)
    out = {
        "summary": np.zeros((n, N_SUMMARY)),
        "price": np.zeros(step_shape, dtype=np.float32),
        "open_interest": np.zeros(step_shape, dtype=np.float32),
        "liq_long": np.zeros(step_shape, dtype=np.float32),
        "liq_short": np.zeros(step_shape, dtype=np.float32),
        "funding": np.zeros(step_shape, dtype=np.float32),  # the funding rate per interval, each step
        "atm_iv": np.zeros(step_shape, dtype=np.float32),  # the path's ATM implied vol at the end of each step
        # per RNG block, (step, field): one step's flows side by side in memory
        "flows": np.zeros((compiled.rng.block_seeds.shape[0], n_steps, N_STEP_SUMS)),
        # replay only: the book's margin stress at the end of every step (engine.nb.kernel.STRESS_FIELDS)
        "stress": np.zeros((n_steps if prep.replay.size else 0, N_STRESS)),
    }
    # default: one chunk (no barrier between chunks); with a progress bar ~20 updates, and never
    # fewer blocks per chunk than threads to keep busy
    chunk = chunk_paths or (max(n // 20, 4 * block * max(1, n_jobs)) if progress else n)
    task_bytes = (block // _task_paths(block)) * n_steps * N_STEP_SUMS * 8  # per block of a chunk
    chunk = min(chunk, max(1, CHUNK_SCRATCH_BYTES // task_bytes) * block)
    chunk = max(block, chunk // block * block)
    starts = list(range(0, n, chunk))
    bar = _progress(progress, n)
    prepared_at = time.perf_counter()
    _run_chunk(prep, 0, 0, keep_steps, out)  # no paths: loads (or compiles) the kernel, untimed below
    loaded_at = time.perf_counter()
    with _threads(n_jobs):
        for first in starts:
            count = min(chunk, n - first)
            _run_chunk(prep, first, count, keep_steps, out)
            bar.update(count)
    bar.close()
    flows = np.zeros((n_steps, N_STEP_SUMS))
    for b in range(out["flows"].shape[0]):  # fixed block order: identical whatever the chunking
        flows += out["flows"][b]
    flows = np.ascontiguousarray(flows.T)
    if not prep.replay.size:
        _check_finite(out, flows, scenario, compiled)
    timings = {"prepare_s": prepared_at - started, "kernel_load_s": loaded_at - prepared_at,
               "simulate_s": time.perf_counter() - loaded_at}
    return SimulationResult(compiled, scenario, prep, out, flows, timings)


def _check_finite(out: dict, flows: np.ndarray, scenario, compiled: CompiledScenario) -> None:
    """Refuse a simulation whose numbers overflowed (an inf or NaN in a path's summary, a fan or the
    flows): a :class:`ScenarioError` naming the scenario's file, never silent infinities in the results."""
    bad = [name for name in ("summary", "price", "open_interest", "liq_long", "liq_short", "funding", "atm_iv")
           if out[name].size and not np.isfinite(out[name]).all()]
    if not np.isfinite(flows).all():
        bad.append("flows")
    if not bad:
        return
    doc = getattr(scenario, "_source", None)
    file = getattr(doc, "file", None) or compiled.name
    raise ScenarioError(f"the simulation overflowed: {', '.join(bad)} hold infinite or undefined numbers; the "
                        "scenario's sizes (notionals, depth, volumes, flows) are too large or too small for the "
                        "model to compute: bring them to market scale", file=file)


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(enabled: bool, total: int):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="path", desc="simulating", leave=False, dynamic_ncols=True)

