"""Expanding a scenario's sweeps into grid points.

Dimensions come from two places: sweep specs written inline in strategy parameters
(``strategies[put_60k].strike_usd``) and the top-level ``sweep.parameters``. ``sweep.mode``
combines them: ``product`` (default) takes every combination, ``zip`` pairs them element-wise
and refuses unequal lengths.
"""

from __future__ import annotations

import itertools

from pydantic import BaseModel

from .sweep import SweepBase

__all__ = ["inline_sweeps", "sweep_dimensions", "combine", "expand_grid"]


def _walk(model: BaseModel, prefix: str):
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{prefix}.{name}"
        if isinstance(value, SweepBase):
            yield key, value.expand()
        elif isinstance(value, BaseModel):
            yield from _walk(value, key)


def inline_sweeps(scenario) -> list[tuple[str, list]]:
    """``[('strategies[put].strike_usd', [50000.0, ...]), ('strategies[put].tenor', ['14d', ...])]``
    in file order (durations as canonical texts)."""
    dims = []
    for strategy in scenario.strategies:
        dims += list(_walk(strategy, f"strategies[{strategy.label}]"))
    return dims


def sweep_dimensions(scenario) -> list[tuple[str, list]]:
    """Every swept key with its values; raises ``ValueError`` for a zip of unequal lengths."""
    dims = inline_sweeps(scenario)
    if scenario.sweep is not None:
        for key, spec in scenario.sweep.parameters.items():
            dims.append((key, spec.expand() if isinstance(spec, SweepBase) else list(spec)))
    if scenario.sweep is not None and scenario.sweep.mode == "zip" and dims:
        lengths = {key: len(values) for key, values in dims}
        if len(set(lengths.values())) > 1:
            listing = ", ".join(f"{k} has {n}" for k, n in lengths.items())
            raise ValueError(f"mode zip needs equally long value lists: {listing}")
    return dims


def combine(dims: list[tuple[str, list]], mode: str) -> list[dict]:
    """Dimensions ``[(key, values), ...]`` combined into points ``{key: value}``: ``zip`` pairs
    the value lists element-wise, any other mode (``product``) takes every combination;
    ``[{}]`` when there is no dimension."""
    if not dims:
        return [{}]
    keys = [k for k, _ in dims]
    values = [v for _, v in dims]
    rows = zip(*values) if mode == "zip" else itertools.product(*values)
    return [dict(zip(keys, row)) for row in rows]


def expand_grid(scenario) -> list[dict]:
    """The grid of a scenario's sweeps: one ``{key path: value}`` per point.

    Parameters
    ----------
    scenario : Scenario
        A loaded scenario (:func:`engine.load_scenario`) whose strategies or ``sweep.parameters``
        may sweep keys (``strike_usd: {values: [50k, 60k]}``).

    Returns
    -------
    list of dict
        One dict per grid point, keys as ``--set`` writes them, in the sweep's order: ``product``
        combines every dimension, ``zip`` pairs them; ``[{}]`` when nothing is swept.

    Raises
    ------
    InvalidParameterError
        ``scenario`` is a file name or anything else but a loaded scenario: load it first.

    Examples
    --------
    >>> import engine
    >>> grid = engine.expand_grid(engine.load_scenario("scenarios/put-protection-sweep.yaml"))
    >>> len(grid)
    198
    >>> grid[0]["strategies[put].strike_usd"], grid[0]["shocks[warsh].depth_multiplier"]
    (50000.0, 0.9)
    >>> engine.expand_grid(engine.load_scenario("scenarios/ci/ci-calm.yaml"))
    [{}]
    """
    from .._params import check_scenario

    check_scenario("expand_grid", "scenario", scenario, path=False)
    return combine(sweep_dimensions(scenario), scenario.sweep.mode if scenario.sweep is not None else "product")
