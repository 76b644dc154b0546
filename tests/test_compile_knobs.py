"""No knob is parsed and then ignored: changing any scenario parameter changes the compiled arrays.

Every leaf of the validated ``RICH`` scenarios (which use every shock type, every form of the
book's distributions, finite ramps and durations) is perturbed in turn. The first perturbation
that still validates must change :meth:`CompiledScenario.fingerprint`. Leaves that cannot be
perturbed alone, or that feed later layers only, are listed in ``EXEMPT`` with the reason.
"""

from __future__ import annotations

import copy
import fnmatch
import typing
from datetime import date, datetime, timedelta

import pytest
from pydantic import BaseModel

import engine
from engine.errors import ScenarioError
from engine.scenario.loader import set_path
from engine.scenario.units import format_duration

from compile_fixtures import RICH, RICH_TABLES

EXEMPT = {
    "description": "free text, shown by `cascade list`",
    "shocks.*.id": "a label for sweeps and reports",
    "shocks.*.type": "the discriminator: changing it makes another shock",
    "shocks.*.moves.*.asset": "a label",
    "shocks.*.moves.*.is_macro_factor": "flipping it needs btc_beta at once; covered by "
                                        "test_macro_factor_move_uses_live_beta",
    "market.perpetuals.venues.*.share": "shares must sum to 1, so one cannot move alone; "
                                        "test_book_holds_the_stated_notional checks the split",
    "market.perpetuals.*.leverage.distribution": "discriminator; both forms are in RICH / RICH_TABLES",
    "market.perpetuals.*.entry_price.distribution": "discriminator; every form is in RICH / RICH_TABLES",
    "strategies*": "evaluated by the strategy layer, not compiled",
    "sweep*": "expanded by engine.expand_grid, not compiled",
    "regression*": "read by the regression check, not compiled",
    "outputs.price_bands*": "drawn by the report only (tests/test_report.py checks the shading)",
}


def _exempt(key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in EXEMPT)


def _leaves(model: BaseModel, prefix: tuple = ()):
    """Leaves the scenario sets explicitly (defaults are covered by test_rich_sets_every_field)."""
    for name in type(model).model_fields:
        if name not in model.model_fields_set:
            continue
        value = getattr(model, name)
        path = prefix + (name,)
        if isinstance(value, BaseModel):
            yield from _leaves(value, path)
        elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
            for i, item in enumerate(value):
                yield from _leaves(item, path + (i,))
        elif isinstance(value, dict) and value and isinstance(next(iter(value.values())), BaseModel):
            for key, item in value.items():
                yield from _leaves(item, path + (key,))
        elif value is not None:
            yield path, value


def _candidates(value):
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1, value * 2]
    if isinstance(value, float):
        if value == 0:
            return [0.01, -0.01, 1.0]
        return [value * 1.1, value * 0.9, value + 0.01, value - 0.01, -value]
    if isinstance(value, timedelta):
        return [format_duration(value + timedelta(days=1)), format_duration(value + timedelta(hours=1)),
                format_duration(max(value - timedelta(hours=1), timedelta(0)))]
    if isinstance(value, datetime):
        return [(value + timedelta(hours=h)).isoformat() for h in (24, 1, -1)]
    if isinstance(value, str):  # names, venues and the enum values of the schema
        return [c for c in (value + "x", "main", "cme", "linear", "sqrt", "put", "call") if c != value]
    if isinstance(value, dict):
        items = list(value.items())
        (k0, v0), rest = items[0], items[1:]
        bumped = {k0: v0 * 1.5 if not isinstance(v0, bool) else v0, **dict(rest)}
        if len(items) > 1:
            (k1, v1) = items[1]
            swapped = {k0: v1, k1: v0, **dict(items[2:])}
            return [bumped, swapped]
        return [bumped]
    if isinstance(value, list):
        if all(isinstance(x, str) for x in value):
            return [["cme"], ["main"], ["main", "cme"]]
        return [value[:-1], [x * 1.05 for x in value]]
    raise TypeError(type(value))


def _time_of_day(minutes: int):
    return [f"{(minutes + d) // 60:02d}:{(minutes + d) % 60:02d}" for d in (30, -30)]


def _plain(value):
    if isinstance(value, dict):
        return {(k.isoformat() if isinstance(k, date) else k): v for k, v in value.items()}
    return value


def _cases():
    seen = set()
    for label, raw in (("rich", RICH), ("tables", RICH_TABLES)):
        scenario = engine.load_scenario(raw)
        for path, value in _leaves(scenario):
            key = ".".join("*" if isinstance(p, int) or (path[:3] == ("market", "perpetuals", "venues")
                                                         and i == 3) else str(p) for i, p in enumerate(path))
            concrete = ".".join(map(str, path))
            if _exempt(key) or (concrete, repr(value)) in seen:
                continue
            seen.add((concrete, repr(value)))
            candidates = _time_of_day(value) if path[-2:-1] == ("execution_window",) else _candidates(value)
            candidates = [c for c in candidates if c != value]
            yield pytest.param(raw, path, value, candidates, id=f"{label}:{concrete}")


@pytest.fixture(scope="module")
def fingerprints():
    return {id(raw): engine.compile_scenario(engine.load_scenario(raw)).fingerprint()
            for raw in (RICH, RICH_TABLES)}


@pytest.mark.parametrize("raw, path, value, candidates", list(_cases()))
def test_every_knob_changes_the_compiled_scenario(raw, path, value, candidates, fingerprints):
    tried = []
    for candidate in candidates:
        data = copy.deepcopy(raw)
        set_path(data, path, _plain(candidate))
        try:
            scenario = engine.load_scenario(data)
        except ScenarioError as exc:
            tried.append(f"{candidate!r}: {exc.problems[0].message}")
            continue
        changed = engine.compile_scenario(scenario).fingerprint()
        assert changed != fingerprints[id(raw)], (
            f"changing {'.'.join(map(str, path))} from {value!r} to {candidate!r} left the compiled "
            "scenario unchanged: the knob is parsed and then ignored"
        )
        return
    pytest.fail(f"no valid perturbation of {'.'.join(map(str, path))}={value!r}; tried {tried}")


def test_macro_factor_move_uses_live_beta():
    """A move flagged as the macro factor goes to MACRO_DRIFT; the same move with a beta goes direct."""
    data = copy.deepcopy(RICH)
    moves = data["shocks"][6]["moves"]
    assert moves[1]["is_macro_factor"]
    base = engine.compile_scenario(engine.load_scenario(data))
    moves[1] = {"asset": "nasdaq", "move": "-2%", "btc_beta": 1.2}
    direct = engine.compile_scenario(engine.load_scenario(data))
    assert base.step("MACRO_DRIFT").sum() < direct.step("MACRO_DRIFT").sum()
    assert base.step("CROSS_ASSET_RETURN").sum() > direct.step("CROSS_ASSET_RETURN").sum()


def _models(tp, seen: set) -> None:
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if tp in seen:
            return
        seen.add(tp)
        for field in tp.model_fields.values():
            _models(field.annotation, seen)
    elif origin is not None or typing.get_args(tp):
        for arg in typing.get_args(tp):
            _models(arg, seen)


def _set_fields(model: BaseModel, out: set) -> None:
    for name in model.model_fields_set:
        out.add((type(model).__name__, name))
        value = getattr(model, name)
        items = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]
        for item in items:
            if isinstance(item, BaseModel):
                _set_fields(item, out)


def test_rich_sets_every_field():
    """The knob test only sees what RICH sets: RICH must set every compiled field of every model."""
    from engine.scenario.schema import Scenario
    from engine.scenario.sweep import SweepSpec

    models: set = set()
    _models(Scenario, models)
    given: set = set()
    for raw in (RICH, RICH_TABLES):
        _set_fields(engine.load_scenario(raw), given)
    skip_models = {"SweepSpec", "DurationSweep", "Sweep", "Regression", "Tolerance", "Costs", "Limit"} | {
        m.__name__ for m in models if m.__module__.startswith("engine.strategies")
    }
    missing = sorted(
        f"{m.__name__}.{name}"
        for m in models
        if m.__name__ not in skip_models
        for name in m.model_fields
        if (m.__name__, name) not in given and name not in NOT_IN_RICH
    )
    assert not missing, f"RICH / RICH_TABLES never set these fields, so no test proves they matter: {missing}"
    assert SweepSpec  # imported for the skip list's sake


# Fields RICH leaves unset on purpose: alternative forms (one of two) and defaults that mean "none".
NOT_IN_RICH = {
    "extends",
    "strategies", "sweep", "regression", "limits",  # later layers
    "positions_csv",  # the book read from a file at load time: the portfolio's typed fields are what compiles
    "at",  # MarginStep.at of the first step / AnnouncementJump.at: default = the shock's start
    "schedule",  # the direct form of margin_hike is used by shock 0, the schedule by shock 1
    "initial_margin_usd_per_contract", "maintenance_margin_usd_per_contract",
}
