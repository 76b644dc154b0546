"""Identifiability: which parameters, and which combinations of them, the targets pin down.

At the fitted point the objective is a sum of squared residuals, ``F(u) = sum r_k(u)^2`` (one
residual per fitted target, ``sqrt(weight / W) * z``, and the fan-coverage term), over the
parameters' unit coordinates ``u`` (log-scaled where the parameter is). :func:`jacobian` measures
``J = dr/du`` by central differences on the same random numbers (the fit's seed), and
``H = J^T J`` is the Gauss-Newton curvature: moving by ``d`` raises the objective by about
``d^T H d``. Its directions and curvatures come from the singular value decomposition of ``J``
(``H = V S^2 V^T``), which keeps the weak directions accurate where forming ``H`` would not.

:func:`identifiability` reads ``H``:

* per parameter, the half-width (in unit coordinates) over which the objective rises by
  ``tolerance`` (default 10% of its value at the fit) moving that parameter **alone**
  (``sqrt(tol / H_ii)``) and with the others **re-fitted** (the profile: ``sqrt(tol * (H^-1)_ii)``).
  A parameter is identified when its profile half-width is at most a quarter of its box (the
  range itself at most half the box); alone narrow but re-fitted wide means another parameter can
  make up for it;
* the eigen-directions of ``H`` with the smallest curvature: a direction whose half-width exceeds
  a quarter of the box is a **ridge**, a combination the targets do not pin down (they pin the
  orthogonal ones). Each is written as relative changes of the parameters that trade off along it.

The quadratic model is local: a parameter at a bound of its box (the fit pressed against it) is
flagged, since there the objective's slope is not zero and the spans are one-sided at best.

A ridge is a finding about the targets, not a failure of the optimiser: the report says which
combination is identified and which is not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

__all__ = ["residual_vector", "jacobian", "identifiability", "Identifiability", "STEP", "RIDGE_SPAN"]

STEP = 0.05  # the finite-difference step in unit coordinates (5% of each box)
RIDGE_SPAN = 0.25  # a half-width beyond a quarter of the box (a range over half of it): not identified
TOLERANCE_SHARE = 0.10  # the objective's rise that bounds a span: 10% of its value at the fit
_EIGEN_FLOOR = 1e-12


def residual_vector(table: pd.DataFrame, coverage: float | None, weights: float) -> np.ndarray:
    """The residuals whose squares sum to the fit's objective (:func:`engine.calibration.fit.objective_parts`)."""
    from .parameters import COVERAGE_GOAL, COVERAGE_SCALE

    scale = 1.0 / math.sqrt(max(weights, 1e-12))
    r = [math.sqrt(row.weight) * float(row.z) * scale for _, row in table.iterrows() if row.weight > 0]
    if coverage is not None:
        r.append(max(0.0, (COVERAGE_GOAL - coverage) / COVERAGE_SCALE) * scale)
    return np.nan_to_num(np.asarray(r, dtype=np.float64), nan=0.0, posinf=1e6, neginf=-1e6)


def jacobian(residuals: Callable[[np.ndarray], np.ndarray | None], u0: np.ndarray, *, step: float = STEP,
             progress: Callable[[str], None] | None = None) -> np.ndarray:
    """``dr/du`` at ``u0`` by central differences (one-sided at a bound of the unit box, or where
    ``residuals`` returns None: a point the schema refuses, such as a leverage median below its
    distribution's ``min``)."""
    u0 = np.asarray(u0, dtype=np.float64)
    centre: list[np.ndarray] = []

    def at_centre() -> np.ndarray:
        if not centre:
            r = residuals(u0)
            if r is None:
                raise ValueError("the fitted point itself is refused by the schema")
            centre.append(r)
        return centre[0]

    columns = []
    for i in range(u0.size):
        lo, hi = max(u0[i] - step, 0.0), min(u0[i] + step, 1.0)
        if hi - lo < 1e-9:
            raise ValueError(f"the unit box has no room around coordinate {i}")
        a, b = u0.copy(), u0.copy()
        a[i], b[i] = lo, hi
        ra, rb = residuals(a), residuals(b)
        if ra is None and rb is None:
            columns.append(np.zeros_like(at_centre()))  # refused both ways: no direction to measure
        elif ra is None:
            columns.append((rb - at_centre()) / (hi - u0[i]))
        elif rb is None:
            columns.append((at_centre() - ra) / (u0[i] - lo))
        else:
            columns.append((rb - ra) / (hi - lo))
        if progress is not None:
            progress(f"[identifiability {i + 1}/{u0.size}]")
    return np.stack(columns, axis=1)


@dataclass
class Identifiability:
    """Spans per parameter, the weakest directions, and the findings in words."""

    parameters: pd.DataFrame  # per parameter: fitted, alone/profile spans (unit and as values), identified
    directions: pd.DataFrame  # per eigen-direction, weakest first: curvature, span, loadings
    findings: list[str] = field(default_factory=list)
    tolerance: float = 0.0

    def to_dict(self) -> dict:
        return {"tolerance": self.tolerance, "findings": self.findings,
                "parameters": self.parameters.reset_index().to_dict(orient="records"),
                "directions": self.directions.reset_index().to_dict(orient="records")}


def _relative_change(p, u0: float, du: float) -> float:
    """The parameter's relative change for a move ``du`` in unit coordinates from ``u0`` (unclipped)."""
    if p.log:
        return math.exp(du * (math.log(p.high) - math.log(p.low))) - 1.0
    base = p.low + u0 * (p.high - p.low)
    return du * (p.high - p.low) / base if base != 0 else math.inf


def identifiability(J: np.ndarray, names: list[str], u0: np.ndarray, objective: float, *,
                    tolerance: float | None = None) -> Identifiability:
    """Read the curvature ``J^T J`` at the fitted unit point ``u0`` (see the module docstring)."""
    from .parameters import PARAMETERS

    J = np.asarray(J, dtype=np.float64)
    tol = float(tolerance if tolerance is not None else max(TOLERANCE_SHARE * objective, 1e-6))
    diag = np.sum(J * J, axis=0)  # H_ii
    # the curvature's directions from the SVD of J itself (J^T J would square its condition
    # number): H = V S^2 V^T; directions with fewer residuals than parameters have none
    _, sv, vt = np.linalg.svd(J, full_matrices=True)
    n = J.shape[1]
    s_full = np.zeros(n)
    s_full[:sv.size] = sv
    order = np.argsort(s_full, kind="stable")  # ascending: the weakest direction first
    lam = s_full[order] ** 2
    vec = vt.T[:, order]
    # numerically flat: a singular value within rounding of the largest (numpy's matrix_rank rule)
    weak = s_full[order] <= (sv.max() if sv.size else 0.0) * max(J.shape) * np.finfo(np.float64).eps
    rows = []
    for i, name in enumerate(names):
        p = PARAMETERS[name]
        alone = math.sqrt(tol / diag[i]) if diag[i] > _EIGEN_FLOOR else math.inf
        if np.any(weak & (np.abs(vec[i]) > 1e-6)):
            profile = math.inf
        else:
            profile = math.sqrt(tol * float(np.sum(vec[i] ** 2 / np.where(weak, np.inf, lam))))
        row = {"parameter": name, "fitted": p.from_unit(u0[i]), "alone_span": alone, "profile_span": profile}
        for label, span in (("alone", alone), ("profile", profile)):
            row[f"{label}_low"] = p.from_unit(u0[i] - span) if math.isfinite(span) else p.low
            row[f"{label}_high"] = p.from_unit(u0[i] + span) if math.isfinite(span) else p.high
        row["at_bound"] = bool(min(u0[i], 1.0 - u0[i]) < 1e-3)
        row["identified"] = bool(profile <= RIDGE_SPAN and not row["at_bound"])
        rows.append(row)
    params = pd.DataFrame(rows).set_index("parameter")
    directions = []
    for k in range(len(lam)):
        span = math.inf if weak[k] or lam[k] <= 0.0 else math.sqrt(tol / lam[k])
        v = vec[:, k] * (1.0 if vec[np.argmax(np.abs(vec[:, k])), k] > 0 else -1.0)
        directions.append({"direction": k + 1, "curvature": float(lam[k]), "span": span,
                           "ridge": bool(span > RIDGE_SPAN),
                           **{f"loading_{n}": float(v[i]) for i, n in enumerate(names)}})
    dirs = pd.DataFrame(directions).set_index("direction")
    findings = _findings(params, dirs, names, u0, objective, tol)
    return Identifiability(params, dirs, findings, tol)


def _combination(dirs_row, names: list[str], u0: np.ndarray) -> str:
    """A weak direction in words: the relative changes that trade off along it, the largest 10%."""
    from .parameters import PARAMETERS

    loadings = np.array([dirs_row[f"loading_{n}"] for n in names])
    main = int(np.argmax(np.abs(loadings)))
    p_main = PARAMETERS[names[main]]
    # the unit move along the direction that raises the main parameter by 10%
    if p_main.log:
        du_main = math.log(1.10) / (math.log(p_main.high) - math.log(p_main.low))
    else:
        du_main = 0.10 * (p_main.low + u0[main] * (p_main.high - p_main.low)) / (p_main.high - p_main.low)
    du = du_main / loadings[main]
    parts = []
    for i in np.argsort(-np.abs(loadings)):
        if abs(loadings[i]) < 0.25 * abs(loadings[main]):
            continue  # the parameters that trade off along it, the main one first
        change = _relative_change(PARAMETERS[names[i]], u0[i], du * loadings[i])
        parts.append(f"{names[i]} {change * 100:+.0f}%")
    return ", ".join(parts)


def _findings(params: pd.DataFrame, dirs: pd.DataFrame, names: list[str], u0: np.ndarray, objective: float,
              tol: float) -> list[str]:
    out = []
    bound = [n for n, r in params.iterrows() if r.at_bound]
    if bound:
        out.append("At a bound of its box, where the objective still slopes (spans one-sided at best, not "
                   f"counted as identified): {', '.join(bound)}.")
    ridges = dirs[dirs.ridge]
    unrelated = [n for n, r in params.iterrows() if not math.isfinite(r.alone_span) or r.alone_span > RIDGE_SPAN]
    if unrelated:
        out.append("Barely moved by any target (the objective rises by less than "
                   f"{tol:.3g} within +-25% of the box either way): {', '.join(unrelated)}.")
    for k, row in ridges.iterrows():
        if all(abs(row[f"loading_{n}"]) < 0.9 or n not in unrelated for n in names):
            combo = _combination(row, names, u0)
            if combo.count("%") >= 2:
                reach = "anywhere in the box" if not math.isfinite(row.span) or row.span > 1 else (
                    f"over {row.span:.0%} of the box")
                out.append(f"Ridge: moving {combo} together changes the objective by less than {tol:.3g} "
                           f"{reach}. The targets pin what is orthogonal to it, not each of them.")
    good = [n for n, r in params.iterrows() if r.identified]
    if good:
        out.append("Identified (the others re-fitted, the objective rises by "
                   f"{tol:.3g} within +-25% of the box): "
                   + ", ".join(good) + ".")
    if not ridges.shape[0] and not unrelated:
        out.append("No ridge: every direction raises the objective by " f"{tol:.3g} within +-25% of the box.")
    return out
