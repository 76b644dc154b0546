"""Numba settings, in one place (stumpy ``config.py`` style).

``cache=True`` keeps compiled kernels on disk (first run pays the compile, later runs load it);
``nogil=True`` lets the threading backend run kernels side by side.

``fastmath`` stays off, even the ``contract`` flag alone (fusing ``a*b + c`` into one FMA): with it
the kernel drifted from ``tests/reference.py`` by a last-bit rounding that flipped a liquidation
boundary (a 1e-6 difference in one wipe-out case). (Its speed gain, 4-5% in a harness that called
the kernel directly, was never confirmed: the A/B bench of the time, ``bench/ab_kernel.py``, timed
one version against itself.) Every operation rounds as IEEE 754 says, the same on every CPU.

Numba keys its cache on each kernel's own source file; :mod:`engine._kernel_cache` keys it on
every kernel source instead (this file, the kernels, ``compile/layout.py``), so a change to any
of them recompiles the kernels once, on their next call.
"""

from __future__ import annotations

import numba

from .. import _kernel_cache

_kernel_cache.install(__file__)  # before any kernel is defined: their caches are made at decoration

JIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")
PARALLEL = dict(JIT, parallel=True)

jit = numba.njit(**JIT)
# helpers that take arrays and loop, called inside the step loop: without the runtime (``_nrt``)
# numba emits no reference counting at their entry and exit (two atomic operations per array
# argument per call, about a tenth of the kernel's time before). They must not allocate.
jit_norc = numba.njit(**JIT, _nrt=False)
# short helpers called many times per path inside a row's loop (a stretch of steps between two cash
# flows): inlined into the caller at numba's IR level, so a call costs nothing (not inlined, the
# calls were half of evaluate_fixed_nb's time for a book with 8-hourly funding: bench/bench_hedge.py)
jit_inline = numba.njit(**JIT, _nrt=False, inline="always")
pjit = numba.njit(**PARALLEL)


# ----------------------------------------------------------------------------- first-run notice
COMPILE_SECONDS = "30-60 s"
"""What compiling the kernels takes on a first run: 45 s for the flagship on 2 cores (market kernel
35 s, hedging kernels the rest), measured with an empty ``NUMBA_CACHE_DIR``."""

_told = False


def is_cached(dispatcher) -> bool:
    """Whether calling ``dispatcher`` loads it rather than compiles it: it is compiled in this
    process already, or numba's on-disk index holds a version for this machine's code generator.
    ``True`` when it cannot tell (numba's cache internals may change; a missing notice is harmless)."""
    try:
        if dispatcher.overloads:
            return True
        index = dispatcher._cache._cache_file._load_index()
        magic = dispatcher.targetctx.codegen().magic_tuple()
        return any(key[1] == magic for key in index)
    except Exception:  # noqa: BLE001 - private API: never fail a run for a notice
        return True


def before_call(dispatcher, what: str) -> None:
    """Tell :data:`engine._notice.on_compile`, once per process, that ``dispatcher`` (``what``:
    "the market kernel") is about to be compiled."""
    from .. import _notice

    global _told
    if _notice.on_compile is None or _told or is_cached(dispatcher):
        return
    _told = True
    _notice.on_compile(f"compiling the kernels with numba, starting with {what} (first run only, about "
               f"{COMPILE_SECONDS}; later runs load them from the cache)")
