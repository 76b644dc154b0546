"""Per-path random streams and the draws the kernels use.

Each path owns a xoshiro256** generator seeded (through splitmix64) from its RNG block's seed
pair and its offset inside the block, so a path's numbers depend on (scenario seed, path index)
only: never on threads, chunks or job counts. Each 64-bit output gives two uniforms of 32 bits
(``(k + 0.5) / 2**32``: never 0 or 1; the normal tail they reach is 6.2 sigma). Normals come from
an inverse-CDF table with linear interpolation (:func:`engine.simulate.normal_table`), with
Acklam's approximation (relative error < 1.2e-9) in the outermost cells; the Student-t scale
is read from its own table in one draw (:func:`engine.simulate.student_t_table`).

Six uniforms are drawn at every step in a fixed order, whether used or not, two more when
volatility clusters (and two once before the first step), and two more on the steps with a
scheduled jump (the same steps on every path), so the stream layout never depends on the path:
see :mod:`engine.nb.kernel` for the order (``UNIFORMS_PER_STEP`` counts them all).
The smallest uniform is ``2**-33``, so ``-ln u < 22.9`` (``engine.nb.kernel.BRIDGE_REACH`` rests on it).
"""

from __future__ import annotations

import numpy as np

from .config import jit

UNIFORMS_PER_STEP = 12
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_TWO32 = 1.0 / 4294967296.0
_LOW32 = np.uint64(0xFFFFFFFF)


@jit
def splitmix64_nb(x):
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31)), z


@jit
def seed_path_nb(state, seed0, seed1, offset):
    """Fill ``state`` (4 uint64) for path ``offset`` of a block seeded by ``(seed0, seed1)``."""
    x = seed0 ^ (np.uint64(offset) * _GOLDEN) ^ (seed1 << np.uint64(1))
    for i in range(4):
        out, x = splitmix64_nb(x)
        state[i] = out
    if state[0] == 0 and state[1] == 0 and state[2] == 0 and state[3] == 0:
        state[0] = np.uint64(1)


@jit
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@jit
def xoshiro_next_nb(state):
    """Advance xoshiro256** and return its 64-bit output."""
    result = _rotl(state[1] * np.uint64(5), 7) * np.uint64(9)
    t = state[1] << np.uint64(17)
    state[2] ^= state[0]
    state[3] ^= state[1]
    state[1] ^= state[2]
    state[0] ^= state[3]
    state[2] ^= t
    state[3] = _rotl(state[3], 45)
    return result


@jit
def next_pair_nb(state):
    """Two uniforms in (0, 1) of 32 bits each from one xoshiro256** output."""
    result = xoshiro_next_nb(state)
    return ((result >> np.uint64(32)) + 0.5) * _TWO32, ((result & _LOW32) + 0.5) * _TWO32


# Acklam's coefficients
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
_P_LOW = 0.02425


@jit
def norm_ppf_nb(p):
    """Inverse standard normal CDF (Acklam 2003), for p in (0, 1)."""
    if p < _P_LOW:
        q = np.sqrt(-2.0 * np.log(p))
        return (((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / \
               ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0)
    if p > 1.0 - _P_LOW:
        q = np.sqrt(-2.0 * np.log(1.0 - p))
        return -(((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / \
                ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0)
    q = p - 0.5
    r = q * q
    return (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q / \
           (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)


@jit
def norm_table_ppf_nb(u, table):
    """Inverse normal CDF from ``table`` (quantiles at ``k/(n-1)``), Acklam in the end cells."""
    n = table.shape[0]
    x = u * (n - 1)
    k = int(x)
    if k == 0 or k >= n - 2:
        return norm_ppf_nb(u)
    return table[k] + (x - k) * (table[k + 1] - table[k])


@jit
def t_table_ppf_nb(u, table, tail_power, tail_scale):
    """Inverse CDF of a symmetric heavy-tailed law: linear in ``table`` (quantiles at ``k/(n-1)``),
    exact power laws ``-+tail_scale * u^-tail_power`` in the first and last cells
    (:func:`engine.simulate.student_t_table`)."""
    n = table.shape[0]
    x = u * (n - 1)
    k = int(x)
    if k == 0:
        return -tail_scale * u ** (-tail_power)
    if k >= n - 2:
        return tail_scale * (1.0 - u) ** (-tail_power)
    return table[k] + (x - k) * (table[k + 1] - table[k])


@jit
def draw_uniforms_nb(block_seeds, block_size, first_path, n_paths, n_steps, extra, clustering):
    """The uniforms the kernel draws, ``(n_paths, n_steps, UNIFORMS_PER_STEP)``, for tests, NaN where
    none is drawn: ``u0``-``u5`` at every step; ``u6``, ``u7`` at every step if ``clustering``; ``u8``,
    ``u9`` on the steps where ``extra[t]`` (scheduled jumps); ``u10``, ``u11`` at ``t = 0`` only, if
    ``clustering``: the pair drawn once before the first step (the path's starting regime)."""
    out = np.full((n_paths, n_steps, UNIFORMS_PER_STEP), np.nan)
    state = np.empty(4, dtype=np.uint64)
    for i in range(n_paths):
        p = first_path + i
        b = p // block_size
        seed_path_nb(state, block_seeds[b, 0], block_seeds[b, 1], p - b * block_size)
        if clustering and n_steps > 0:
            out[i, 0, 10], out[i, 0, 11] = next_pair_nb(state)
        for t in range(n_steps):
            for k in range(0, 6, 2):
                out[i, t, k], out[i, t, k + 1] = next_pair_nb(state)
            if clustering:
                out[i, t, 6], out[i, t, 7] = next_pair_nb(state)
            if extra[t]:
                out[i, t, 8], out[i, t, 9] = next_pair_nb(state)
    return out
