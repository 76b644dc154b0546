"""Checks of the public functions' arguments, each raising :class:`~engine.errors.InvalidParameterError`.

Every check takes the calling function's name first (it goes in the message: "The 'n_jobs'
parameter of run must be an int >= 1. Got 0 instead."), then the parameter's name and value, and
returns the value (a path as a :class:`~pathlib.Path`). Checks run at the top of each public
function, before any file is read or any path simulated.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path

from .errors import invalid_parameter

__all__ = ["check_bool", "check_callable", "check_choice", "check_count", "check_number", "check_overrides",
           "check_path", "check_scenario", "check_seed", "check_strings"]

SEED_LIMIT = 2**63  # numpy's SeedSequence takes any non-negative int; the schema bounds a file's seed so


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_count(function: str, name: str, value, *, low: int = 1, optional: bool = False):
    """An int ``>= low`` (numpy ints too; a bool or a float is refused), or ``None`` if ``optional``."""
    if value is None and optional:
        return None
    if not _is_int(value) or value < low:
        raise invalid_parameter(function, name, f"an int >= {low}" + (" or None" if optional else ""), value)
    return int(value)


def check_seed(function: str, name: str, value):
    """``None`` (the scenario's seed) or an int in ``[0, 2**63)``."""
    if value is not None and not (_is_int(value) and 0 <= value < SEED_LIMIT):
        raise invalid_parameter(function, name, "an int in [0, 2**63) or None", value)
    return None if value is None else int(value)


def check_number(function: str, name: str, value, expected: str, ok=lambda x: True) -> float:
    """A finite real number for which ``ok`` holds; ``expected`` says which."""
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and ok(value)):
        raise invalid_parameter(function, name, expected, value)
    return float(value)


def check_bool(function: str, name: str, value, *, optional: bool = False):
    """``True`` or ``False`` (numpy's too), or ``None`` if ``optional``."""
    if value is None and optional:
        return None
    if not isinstance(value, (bool, _np_bool())):
        raise invalid_parameter(function, name, "True, False or None" if optional else "True or False", value)
    return bool(value)


def _np_bool():
    import numpy as np

    return np.bool_


def check_choice(function: str, name: str, value, choices) -> str:
    """One of ``choices`` (strings)."""
    if not isinstance(value, str) or value not in choices:
        raise invalid_parameter(function, name, "one of " + ", ".join(repr(c) for c in choices), value)
    return value


def check_path(function: str, name: str, value, *, optional: bool = False, expected: str | None = None):
    """A path (``str`` or ``os.PathLike``, not empty) as a :class:`~pathlib.Path`, or ``None`` if
    ``optional``; ``expected`` says what else the function takes, for the message."""
    if value is None and optional:
        return None
    if not isinstance(value, (str, os.PathLike)) or not str(os.fspath(value)).strip():
        expected = expected or "a path (str or pathlib.Path)" + (" or None" if optional else "")
        raise invalid_parameter(function, name, expected, value)
    return Path(value)


def check_strings(function: str, name: str, value, what: str = "strings") -> list[str]:
    """A list or tuple of strings (``what`` says which, for the message). One string alone is
    refused: iterated, each of its characters would be an item."""
    expected = f"a list or tuple of {what}"
    if not isinstance(value, (list, tuple)):
        hint = f"one is a list of one: [{value!r}]" if isinstance(value, str) else None
        raise invalid_parameter(function, name, expected, value, hint=hint)
    for item in value:
        if not isinstance(item, str):
            raise invalid_parameter(function, name, expected, value,
                                    hint=f"the item {item!r} is of type {type(item).__name__}, not str")
    return list(value)


def check_overrides(function: str, value, name: str = "overrides") -> list[str]:
    """A list or tuple of ``key.path=value`` strings, as ``--set`` takes them."""
    return check_strings(function, name, value, "'key.path=value' strings")


def check_callable(function: str, name: str, value):
    """A callable, or ``None``."""
    if value is not None and not callable(value):
        raise invalid_parameter(function, name, "a callable or None", value)
    return value


def check_scenario(function: str, name: str, value, *, path: bool = True, mapping: bool = False,
                   compiled: bool = False):
    """A loaded :class:`~engine.scenario.schema.Scenario`, or what else the function takes: a file or
    library name (``path``), raw scenario data (``mapping``), a compiled scenario (``compiled``)."""
    from .compile.compiled import CompiledScenario
    from .scenario.schema import Scenario

    if isinstance(value, Scenario) or (compiled and isinstance(value, CompiledScenario)) or (
            mapping and isinstance(value, dict)):
        return value
    if path and isinstance(value, (str, Path)) and str(value).strip():
        return value
    kinds = (["a scenario file or library name"] if path else []) + ["a Scenario (engine.load_scenario)"] + (
        ["a mapping of scenario data"] if mapping else []) + (["a CompiledScenario"] if compiled else [])
    expected = kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " or " + kinds[-1]
    raise invalid_parameter(function, name, expected, value)
