"""Numba settings, in one place (stumpy ``config.py`` style).

``cache=True`` keeps compiled kernels on disk (first run pays the compile, later runs load it);
``nogil=True`` lets the threading backend run kernels side by side.

Floating point: of LLVM's fast-math flags only ``contract`` is on, which lets it fuse ``a*b + c``
into one FMA instruction (one rounding instead of two; about 5% of the kernel's time, measured
one-for-one in the same process). Nothing is reassociated, no NaN or infinity is assumed away,
and the same compiled code runs every path: results stay bit-identical whatever the number of
threads, chunks or workers. Across machines they are bit-identical between CPUs with FMA (every
x86-64 since 2013, every ARM64); a CPU without FMA would round some sums differently in the last
bit.
"""

from __future__ import annotations

import numba

JIT = dict(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
PARALLEL = dict(JIT, parallel=True)

jit = numba.njit(**JIT)
# helpers that take arrays and loop, called inside the step loop: without the runtime (``_nrt``)
# numba emits no reference counting at their entry and exit (two atomic operations per array
# argument per call, about a tenth of the kernel's time before). They must not allocate.
jit_norc = numba.njit(**JIT, _nrt=False)
pjit = numba.njit(**PARALLEL)
