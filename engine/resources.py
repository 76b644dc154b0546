"""Memory estimates, checked before a simulation allocates anything.

A simulation's arrays grow with paths x steps: the per-path summaries, the per-step fans
(price, open interest, liquidations, funding, ATM IV: float32, kept when ``keep_steps``), the
flows per RNG block, the dealer hedge table (steps x IV levels x grid), and the strategy evaluation's float64 copies of the price paths and its outcomes per
rule. :func:`simulation_bytes` adds them up from the scenario alone (nothing compiled), and
:func:`check_memory` refuses, as a located :class:`~engine.errors.ScenarioError` naming the knobs
(``--paths``/``n_paths``, ``horizon.step``, ``horizon.duration``, ``keep_steps``/``--no-save``),
a run whose estimate exceeds the memory available, so that it fails in a second with a clear
message instead of a ``MemoryError`` after minutes of work.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from .errors import Problem, ScenarioError

__all__ = ["Estimate", "simulation_bytes", "memory_bytes", "check_memory", "memory_problem", "GB"]

GB = 1024**3
BASE_BYTES = 400 * 1024**2  # the interpreter, numpy, numba and the kernels themselves
CHUNK_SCRATCH_BYTES = 64 * 1024**2  # engine.simulate.CHUNK_SCRATCH_BYTES: the kernel's task sums per chunk
STEP_FANS = 6  # price, open interest, long and short liquidations, funding, ATM IV (float32 each)


@dataclass(frozen=True)
class Estimate:
    """Bytes a run needs, and what it was made from (for the message)."""

    bytes: int
    n_paths: int
    n_steps: int
    keep_steps: bool
    workers: int = 1

    @property
    def gb(self) -> float:
        return self.bytes / GB


def simulation_bytes(n_paths: int, n_steps: int, *, keep_steps: bool = True, n_rules: int = 0,
                     n_options: int = 0) -> int:
    """Peak bytes of one simulation (:func:`engine.simulate.run_prepared`) and, with ``n_rules``
    strategy rows, of their evaluation (:mod:`engine.portfolio.hedge`), from the sizes alone."""
    from .compile.layout import DEALER_GRID, N_HEDGE_OUT, N_IV_LEVELS, N_STEP_SUMS
    from .compile.layout import SUMMARY_FIELDS  # not the kernel module: validate needs no numba
    from .compile.compiler import RNG_BLOCK_SIZE

    n_blocks = -(-n_paths // RNG_BLOCK_SIZE)
    total = BASE_BYTES
    total += n_paths * len(SUMMARY_FIELDS) * 8  # per-path summaries
    total += n_blocks * n_steps * N_STEP_SUMS * 8  # flow sums per RNG block
    total += max(CHUNK_SCRATCH_BYTES, RNG_BLOCK_SIZE // 64 * n_steps * N_STEP_SUMS * 8)  # task scratch
    # the dealer table, built in place by one kernel loop from the (steps x options) open interest
    total += n_steps * N_IV_LEVELS * DEALER_GRID * 8 + n_steps * max(n_options, 1) * 8
    total += 64 * n_steps * 8  # compiled per-step arrays and drivers
    paths = n_paths * n_steps
    if keep_steps:
        total += STEP_FANS * paths * 4
        total += paths * 8  # one float64 working copy (fan quantiles, the strategies' prices)
        if n_rules:
            total += 2 * paths * 8  # the strategies' ATM IV and funding paths
            total += n_rules * n_paths * N_HEDGE_OUT * 8
    return int(total)


def _cgroup_limit() -> int | None:
    """The memory limit of this process's cgroup (v2 ``memory.max``, v1 ``memory.limit_in_bytes``):
    a container's memory, which ``/proc/meminfo`` does not show."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(path, encoding="ascii").read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    return None


def memory_bytes() -> tuple[int | None, int | None]:
    """``(available, total)`` bytes of memory on this machine, ``None`` where it cannot tell.

    Linux: ``MemAvailable`` and ``MemTotal`` of ``/proc/meminfo``, capped by the cgroup's limit;
    elsewhere the physical memory (``os.sysconf``) for both."""
    available, total = _meminfo()
    limit = _cgroup_limit()
    if limit is not None:
        available = limit if available is None else min(available, limit)
        total = limit if total is None else min(total, limit)
    return available, total


def _meminfo() -> tuple[int | None, int | None]:
    try:
        fields = {}
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                name, _, rest = line.partition(":")
                fields[name] = int(rest.split()[0]) * 1024
        return fields.get("MemAvailable"), fields.get("MemTotal")
    except (OSError, ValueError, IndexError):
        pass
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return total, total
    except (AttributeError, ValueError, OSError):
        return None, None


def _scenario_sizes(scenario) -> tuple[int, int]:
    rules = len(getattr(scenario, "strategies", ()) or ())
    options = getattr(getattr(scenario.market, "options", None), "open_interest", None) or ()
    return rules, len(options)


def estimate(scenario, *, n_paths: int | None = None, keep_steps: bool = True, workers: int = 1) -> Estimate:
    """The :class:`Estimate` of simulating ``scenario`` (``n_paths`` overriding its own), ``workers``
    processes at once each holding one simulation (a sweep)."""
    n = int(n_paths if n_paths is not None else scenario.n_paths)
    steps = int(scenario.horizon.n_steps)
    rules, options = _scenario_sizes(scenario)
    one = simulation_bytes(n, steps, keep_steps=keep_steps, n_rules=rules, n_options=options)
    return Estimate(one * max(1, workers), n, steps, keep_steps, max(1, workers))


def _message(est: Estimate, limit: int, what: str, flag: str | None) -> str:
    fans = "per-step fans kept" if est.keep_steps else "per-path summaries only"
    per = f", {est.workers} worker processes at once" if est.workers > 1 else ""
    text = (f"the simulation needs about {est.gb:,.1f} GB of memory ({est.n_paths:,} paths x {est.n_steps:,} steps, "
            f"{fans}{per}) but {limit / GB:,.1f} GB {what}")
    return text


def _hint(est: Estimate, flag: str | None, no_save: bool) -> str:
    paths = f"{flag} or n_paths" if flag else "n_paths"
    hint = f"lower {paths}, shorten horizon.duration or lengthen horizon.step"
    if est.keep_steps and no_save:
        hint += ", or give --no-save (keep_steps=False: no per-step fans)"
    if est.workers > 1:
        hint += ", or give fewer --jobs"
    return hint


def memory_problem(scenario, est: Estimate, limit: int, what: str, *, flag: str | None = None,
                   no_save: bool = False) -> Problem:
    """A located problem on ``n_paths`` (or the scenario's file) for an estimate over ``limit``."""
    message = _message(est, limit, what, flag)
    hint = _hint(est, flag, no_save)
    doc = getattr(scenario, "_source", None)
    if flag is not None and est.n_paths != scenario.n_paths:  # the flag asked for these paths, not the file
        return Problem(f"{flag} {est.n_paths:,}: {message}", file=getattr(doc, "file", None), hint=hint)
    from .scenario.problems import scenario_problem

    return scenario_problem(scenario, ("n_paths",), message, hint=hint)


def check_memory(scenario, *, n_paths: int | None = None, keep_steps: bool = True, workers: int = 1,
                 flag: str | None = "--paths", no_save: bool = False) -> Estimate:
    """Raise :class:`ScenarioError` when simulating ``scenario`` would need more memory than is
    available now; return the estimate otherwise (also when the machine's memory is unknown).
    ``CASCADE_MEMORY_LIMIT`` (bytes, e.g. ``4e9``) caps what is taken as available."""
    est = estimate(scenario, n_paths=n_paths, keep_steps=keep_steps, workers=workers)
    available, _ = memory_bytes()
    cap = _env_limit()
    if cap is not None:
        available = cap if available is None else min(available, cap)
    if available is not None and est.bytes > available:
        raise ScenarioError(memory_problem(scenario, est, available, "is available", flag=flag, no_save=no_save))
    return est


def validate_problems(scenario) -> list[Problem]:
    """For ``cascade validate``: a problem when even the leanest run of the scenario as written
    (no per-step fans unless its strategies need them) exceeds the machine's total memory."""
    est = estimate(scenario, keep_steps=bool(scenario.strategies))
    _, total = memory_bytes()
    cap = _env_limit()
    if cap is not None:
        total = cap if total is None else min(total, cap)
    if total is None or est.bytes <= total:
        return []
    return [memory_problem(scenario, est, total, "is this machine's total memory", flag=None)]


def _env_limit() -> int | None:
    text = os.environ.get("CASCADE_MEMORY_LIMIT")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        print(f"cascade: note: CASCADE_MEMORY_LIMIT={text!r} is not a number of bytes; ignored", file=sys.stderr)
        return None
    return int(value) if value > 0 else None
