"""Every compact number format of the engine's tables and messages, in one module.

A compact format picks the largest suffix a number reaches (``T``, ``B``, ``M``, ``k``) and
writes the scaled number with a format spec; below the smallest, a spec of its own. Each table has
its style (a hedge table wants ``-19.65M``, a scenario reference ``61B``, a regression row five
significant digits); the styles are the named functions below, each a table of steps for
:func:`compact`, so that the rule that picks the suffix exists once.
"""

from __future__ import annotations

import math

__all__ = ["compact", "amount", "amount_exact", "usd", "usd_k", "usd_2f", "usd_3g", "signed_3g", "five_digits",
           "compare_value"]

_SUFFIXES = (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3))


def compact(x: float, steps, below: str, *, missing: str = "-") -> str:
    """``x`` formatted by the first step ``(size, suffix, spec)`` whose ``size`` ``|x|`` reaches
    (scaled by it, the suffix appended), else by ``below``; ``missing`` for NaN, inf or None.
    A ``spec`` may be a callable ``spec(scaled) -> str`` for formats that depend on the value."""
    if x is None or not math.isfinite(x):
        return missing
    for size, suffix, spec in steps:
        if abs(x) >= size:
            scaled = x / size
            return (spec(scaled) if callable(spec) else format(scaled, spec)) + suffix
    return format(x, below)


def _all(spec: str):
    return tuple((size, suffix, spec) for suffix, size in _SUFFIXES)


def amount(x: float) -> str:
    """A scenario amount as a table shows it: ``61e9`` -> ``61B``, ``689.2e6`` -> ``689.2M``."""
    return compact(x, _all(".4g"), ".6g", missing=str(x))


def amount_exact(x: float) -> str:
    """An amount with every digit it has (the scenario reference's defaults): ``73.6k``."""
    return compact(x, _all(".10g"), ".10g", missing=str(x))


def usd(x: float) -> str:
    """Compact USD of the report: 61B, 689.2M, 73.6k, 740, 0.5; ``-`` for NaN."""
    if x is None or not math.isfinite(x):
        return "-"
    return amount(x) if abs(x) >= 1e3 else format(x, ",.0f") if abs(x) >= 1 else format(x, ".3g")


def usd_k(x: float) -> str:
    """The hedge tables' USD (terminal and report): -19.65M, -258.2k, 740; empty for NaN."""
    return compact(x, ((1e9, "B", ".2f"), (1e6, "M", ".2f"), (1e3, "k", ".1f")), ".0f", missing="")


def usd_2f(x: float, *, comma: bool = False) -> str:
    """USD to a few digits, nothing shorter than a dollar: 1.02B, 689.2M, 73,600 (replay and
    calibration tables; ``comma`` groups the scaled digits, for the calibration's)."""
    c = "," if comma else ""
    return compact(x, ((1e9, "B", f"{c}.2f"), (1e6, "M", f"{c}.1f")), ",.0f")


def usd_3g(x: float) -> str:
    """Three significant digits, whole numbers from 100 of a unit: 3.41M, 884M, 1,640B."""
    def spec(scaled: float) -> str:
        return format(scaled, ".3g") if abs(scaled) < 100 else format(scaled, ",.0f")

    return compact(x, ((1e9, "B", spec), (1e6, "M", spec), (1e3, "k", spec)), ".0f", missing="nan")


def signed_3g(x: float) -> str:
    """A signed effect to three significant digits: +6.08M, -10.5k, +917."""
    return compact(x, ((1e9, "B", "+.3g"), (1e6, "M", "+.3g"), (1e3, "k", "+.3g")), "+.0f", missing="nan")


def five_digits(x: float | None, signed: bool = False) -> str:
    """Five significant digits with a suffix (regression rows): 68387, 649.35M, +1.2e-05."""
    if x is not None and not math.isfinite(x):
        return str(x)
    sign = "+" if signed else ""
    return compact(x, _all(f"{sign}.5g"), f"{sign}.5g")


def compare_value(x: float) -> str:
    """``cascade compare``'s non-fraction cells: 1.024B, 689.20M, 73,600.00, 0.0012."""
    if x is not None and math.isfinite(x) and abs(x) < 1e6:
        return format(x, ",.2f") if abs(x) >= 1 else format(x, ".4g")
    return compact(x, ((1e9, "B", ",.3f"), (1e6, "M", ",.2f")), ",.2f")
