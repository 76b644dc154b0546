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
pjit = numba.njit(**PARALLEL)
