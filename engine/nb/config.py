"""Numba settings, in one place (stumpy ``config.py`` style).

``cache=True`` keeps compiled kernels on disk (first run pays the compile, later runs load it);
``nogil=True`` lets the threading backend run kernels side by side. ``fastmath`` stays off:
results must not depend on how LLVM chooses to reassociate sums, and the kernels are bound by
random draws and branches rather than by vectorisable arithmetic.
"""

from __future__ import annotations

import numba

JIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")
PARALLEL = dict(JIT, parallel=True)

jit = numba.njit(**JIT)
# helpers that take arrays and loop, called inside the step loop: without the runtime (``_nrt``)
# numba emits no reference counting at their entry and exit (two atomic operations per array
# argument per call, about a tenth of the kernel's time before). They must not allocate.
jit_norc = numba.njit(**JIT, _nrt=False)
pjit = numba.njit(**PARALLEL)
