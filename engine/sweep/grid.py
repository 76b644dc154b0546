"""Grids given on the command line (``--grid KEY=VALUES``), read and written into a scenario."""

from __future__ import annotations

import math

from ..errors import Problem, ScenarioError


def parse_grid(text: str, durations: bool = False) -> tuple[str, dict]:
    """``key=50k:60k:2k`` (range, stop included on the grid), ``key=1,2,3`` (values),
    ``key=linspace:a:b:n`` or ``key=logspace:a:b:n`` -> ``(key, sweep spec)``. With ``durations``
    (the key is a duration, e.g. a tenor) the values are durations: ``14d,30d`` or ``7d:35d:7d``."""
    if "=" not in text:
        raise ScenarioError(Problem(f"--grid expects key.path=values, got {text!r}", source="--grid"))
    key, raw = (part.strip() for part in text.split("=", 1))
    parts = raw.split(":")
    value = _duration if durations else _number
    try:
        if parts[0] in ("linspace", "logspace"):
            if durations:
                raise ValueError(f"{parts[0]} sweeps numbers; a duration takes v1,v2,... or start:stop:step")
            if len(parts) != 4:
                raise ValueError(f"{parts[0]} takes start:stop:count")
            spec = {parts[0]: [_number(parts[1]), _number(parts[2]), int(_number(parts[3]))]}
        elif len(parts) == 3:
            spec = {"range": [value(p) for p in parts]}
        elif len(parts) == 1:
            spec = {"values": [value(p) for p in raw.split(",") if p.strip()]}
        else:
            raise ValueError("use start:stop:step, v1,v2,..., linspace:a:b:n or logspace:a:b:n")
    except ValueError as exc:
        raise ScenarioError(Problem(f"--grid {key}: {exc}", source="--grid", found=raw, has_found=True)) from None
    if not key or (list(spec.values())[0] == []):
        raise ScenarioError(Problem(f"--grid expects key.path=values, got {text!r}", source="--grid"))
    return key, spec


def _number(text: str) -> float:
    from ..scenario.sweep import parse_value

    value = parse_value(text.strip())
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"not a number: {text.strip()!r}")
    return float(value)


def _duration(text: str) -> str:
    from ..scenario import units

    try:
        return units.format_duration(units.parse_duration(text.strip()))
    except units.UnitError as exc:
        raise ValueError(str(exc)) from None


def _is_duration(scenario, key: str) -> bool:
    """Whether ``key`` is a strategy's duration parameter (``strategies[put].tenor``), whose
    ``--grid`` values are durations (``30m`` there is 30 minutes, not 30 million)."""
    from ..scenario.keypaths import strategy_key
    from ..scenario.sweep import DurationSweep, field_sweep

    if (named := strategy_key(key)) is None:
        return False
    label, rest = named
    return any(s.label == label and field_sweep(type(s), rest) is DurationSweep for s in scenario.strategies)


def apply_grid(scenario, grids: list[str]):
    """The scenario with ``--grid`` dimensions added: strategy keys become inline sweeps of that
    strategy, other keys entries of ``sweep.parameters``. Validated like a file."""
    if not grids:
        return scenario
    from ..scenario.canonical import to_plain
    from ..scenario.keypaths import set_path, split_path, strategy_key
    from ..scenario.loader import load_scenario

    plain = to_plain(scenario)
    for text in grids:
        key, spec = parse_grid(text, durations=_is_duration(scenario, text.split("=", 1)[0].strip()))
        if (named := strategy_key(key)) is not None:
            label, rest = named
            labels = [s.get("name") or s.get("rule") for s in plain.get("strategies") or []]
            if not rest:
                raise ScenarioError(Problem(f"--grid {key}: name a field of the strategy, like "
                                            f"strategies[{label.rstrip(']')}].strike_usd", source="--grid"))
            if label not in labels:
                raise ScenarioError(Problem(f"--grid {key}: no strategy {label!r}; the scenario has "
                                            f"{', '.join(labels) or 'none'}", source="--grid"))
            try:
                set_path(plain["strategies"][labels.index(label)], split_path(rest), spec)
            except (ValueError, KeyError) as exc:
                raise ScenarioError(Problem(f"--grid {key}: {exc.args[0]}", source="--grid")) from None
        else:
            sweep = plain.get("sweep") or {"mode": "product", "parameters": {}}
            sweep.setdefault("parameters", {})[key] = spec
            plain["sweep"] = sweep
    return load_scenario(plain)
