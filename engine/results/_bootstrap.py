"""Bootstrap over paths: statistics of a run recomputed on resamples of its paths.

A resample draws ``n`` paths with replacement. It is held as counts, ``W[b, i]`` = how many times
resample ``b`` drew path ``i``; every statistic registered on one :class:`Bootstrap` sees the same
resamples, so differences and ratios of statistics (a hedge's ES minus the unhedged ES) are
resampled jointly. Nothing of size ``resamples x n`` is sorted:

* a mean is ``mean(x) + W @ (x - mean(x)) / n``;
* a percentile (numpy's default, linear between the order statistics at ``floor(h)`` and
  ``floor(h) + 1``, ``h = (n - 1) q / 100``) is read off cumulative counts in ``x``'s sorted
  order: the count below a window around rank ``h`` comes from one matrix product shared by all
  statistics, the counts inside it from a cumulative sum over the window. The window spans many
  binomial standard deviations; a resample whose rank falls outside it is redone over all ranks,
  so the result is exact either way;
* a tail mean (the mean of the values at or below the resample's percentile, i.e. minus the
  expected shortfall of a PnL) uses the same sums weighted by ``x``.

``run()`` returns one array of ``resamples`` values per statistic; ``run(identity=True)`` the
statistics of the sample itself (every count 1), which equal numpy's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Bootstrap"]

CHUNK_CELLS = 4_000_000  # resamples x paths held at once (float64 counts: 32 MB)


@dataclass
class _Ranked:
    """A percentile's sorted values, its window of ranks and the matrix columns it reads."""

    xs: np.ndarray  # x sorted
    order: np.ndarray  # path of each rank
    lo: int  # the order statistics interpolated: lo and hi (0-based)
    hi: int
    frac: float
    j0: int  # window of ranks [j0, j1)
    j1: int
    col_count: int  # mask column: resampled paths ranked below j0
    col_sum: int  # value column: the sum of their values (tail means only, else -1)


class Bootstrap:
    """Statistics of ``n`` paths and their bootstrap resamples (a fixed ``seed``: reproducible)."""

    def __init__(self, n: int, resamples: int, seed: int):
        if n < 1 or resamples < 2:
            raise ValueError(f"need at least 1 path and 2 resamples, got {n} and {resamples}")
        self.n, self.resamples, self.seed = n, resamples, seed
        self._masks: list[np.ndarray] = []  # 0/1 per path: the product with counts is exact in float32
        self._values: list[np.ndarray] = []  # per-path values (float64)
        self._stats: list[tuple] = []
        self._sorted: dict[int, tuple] = {}  # id(x) -> (x, order, x sorted): one sort per array

    # ------------------------------------------------------------------ registration
    @staticmethod
    def _column(columns: list, values: np.ndarray) -> int:
        columns.append(values)
        return len(columns) - 1

    def _vector(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.n,):
            raise ValueError(f"expected {self.n} per-path values, got shape {x.shape}")
        return x

    def mean(self, x) -> int:
        """Register the mean of ``x``; returns its index in :meth:`run`'s output."""
        x = self._vector(x)
        center = float(x.mean())  # resampled about the mean: a constant gets exactly 0 spread
        self._stats.append(("mean", (self._column(self._values, x - center), center)))
        return len(self._stats) - 1

    def quantile(self, x, q: float) -> int:
        """Register the ``q``-th percentile of ``x`` (0 <= q <= 100, numpy's linear method)."""
        self._stats.append(("quantile", self._ranked(x, q, False)))
        return len(self._stats) - 1

    def tail_mean(self, x, q: float) -> int:
        """Register the mean of the values of ``x`` at or below its ``q``-th percentile."""
        self._stats.append(("tail_mean", self._ranked(x, q, True)))
        return len(self._stats) - 1

    def _ranked(self, x, q: float, sums: bool) -> _Ranked:
        if id(x) not in self._sorted:
            v = self._vector(x)
            order = np.argsort(v, kind="stable")
            self._sorted[id(x)] = (x, order, v[order])  # x kept: its id stays unique
        _, order, xs = self._sorted[id(x)]
        x = self._vector(x)
        n = self.n
        h = (n - 1) * q / 100.0
        lo = min(math.floor(h), n - 1)
        hi = min(lo + 1, n - 1)
        p = (lo + 0.5) / n
        width = math.ceil(10.0 * math.sqrt(n * p * (1.0 - p))) + 16
        j0, j1 = max(0, lo - width), min(n, hi + width + 1)
        below = np.zeros(n, dtype=np.float32)
        below[order[:j0]] = 1.0
        return _Ranked(xs, order, lo, hi, h - lo, j0, j1, self._column(self._masks, below),
                       self._column(self._values, x * below) if sums else -1)

    # ------------------------------------------------------------------ evaluation
    def run(self, identity: bool = False) -> list[np.ndarray]:
        """Each statistic on every resample (``identity``: on the sample itself, one value each)."""
        masks = np.column_stack(self._masks) if self._masks else np.zeros((self.n, 0), dtype=np.float32)
        values = np.column_stack(self._values) if self._values else np.zeros((self.n, 0))
        if identity:
            return list(self._evaluate(np.ones((1, self.n), dtype=np.float32), masks, values))
        rng = np.random.default_rng(self.seed)
        chunk = max(1, CHUNK_CELLS // self.n)
        parts = []
        for start in range(0, self.resamples, chunk):
            b = min(chunk, self.resamples - start)
            draws = rng.integers(0, self.n, size=(b, self.n)) + (np.arange(b) * self.n)[:, None]
            counts = np.bincount(draws.ravel(), minlength=b * self.n).reshape(b, self.n).astype(np.float32)
            parts.append(self._evaluate(counts, masks, values))
        return [np.concatenate([p[i] for p in parts]) for i in range(len(self._stats))]

    def _evaluate(self, counts: np.ndarray, masks: np.ndarray, values: np.ndarray) -> list[np.ndarray]:
        # counts are small whole numbers: float32 products with 0/1 masks are exact (sums < 2**24)
        sums = (counts @ masks).astype(np.float64), counts.astype(np.float64) @ values
        out = []
        for kind, spec in self._stats:
            if kind == "mean":
                column, center = spec
                out.append(center + sums[1][:, column] / self.n)
                continue
            value, pos = _percentile(counts, sums, spec)
            out.append(value if kind == "quantile" else _tail_mean(counts, sums, spec, value, pos))
        return out


def _cumulative(counts: np.ndarray, sums: np.ndarray, r: _Ranked) -> tuple[np.ndarray, int]:
    """Resampled paths ranked at or below each rank of the window, and the window's start.
    A resample whose order statistics fall outside the window is redone over all ranks."""
    base = sums[0][:, r.col_count]
    cum = base[:, None] + np.cumsum(counts[:, r.order[r.j0:r.j1]], axis=1, dtype=np.float64)
    if (base <= r.lo).all() and (cum[:, -1] > r.hi).all():
        return cum, r.j0
    return np.cumsum(counts[:, r.order], axis=1, dtype=np.float64), 0


def _percentile(counts, sums, r: _Ranked) -> tuple[np.ndarray, np.ndarray]:
    cum, j0 = _cumulative(counts, sums, r)
    pos_lo = j0 + np.argmax(cum > r.lo, axis=1)  # rank of the resample's order statistic lo
    pos_hi = j0 + np.argmax(cum > r.hi, axis=1)
    a, b = r.xs[pos_lo], r.xs[pos_hi]
    return a + r.frac * (b - a), pos_lo


def _tail_mean(counts, sums, r: _Ranked, level: np.ndarray, pos_lo: np.ndarray) -> np.ndarray:
    """Mean of the resampled values <= ``level`` (per resample): ranks below j0 from the matrix
    product, ranks from j0 up to the last value <= level (ties included) summed here."""
    last = np.searchsorted(r.xs, level, side="right")  # ranks [0, last) hold values <= level
    j0 = r.j0 if (pos_lo >= r.j0).all() else 0
    count = sums[0][:, r.col_count] if j0 else np.zeros(counts.shape[0])
    total = sums[1][:, r.col_sum] if j0 else np.zeros(counts.shape[0])
    end = int(last.max())
    window = counts[:, r.order[j0:end]].astype(np.float64) * (np.arange(j0, end)[None, :] < last[:, None])
    return (total + window @ r.xs[j0:end]) / (count + window.sum(axis=1))
